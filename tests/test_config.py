"""pipeline.yaml schema: defaults, unknown keys, wrong types, overrides, bad YAML; errors name the dotted key."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import apply_overrides, config_to_dict, load_config, parse_override, with_flags
from pipeline.errors import ConfigError, UsageError
from train.config import Config

REPO_YAML = Path(__file__).resolve().parents[1] / "pipeline.yaml"


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_repo_yaml_matches_the_defaults():
    assert load_config(REPO_YAML) == Config()


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert (cfg.organize.blur, cfg.organize.link, cfg.shard.crop_size, cfg.train.generator.blocks) == (
        "blur_gamma",
        "hardlink",
        256,
        9,
    )
    write(tmp_path, "organize: {link: copy}\n", "pipeline.yaml")
    assert load_config().organize.link == "copy"  # ./pipeline.yaml is read when present


def test_empty_file_is_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_unknown_key_names_the_dotted_key(tmp_path):
    path = write(tmp_path, "train:\n  generator: {blocks: 3, widht: 5}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: train.generator.widht: unknown key"
    with pytest.raises(ConfigError, match=r"organise: unknown key"):
        load_config(write(tmp_path, "organise: {raw: x}\n"))


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path, "shard: {crop_size: big}\n")
    with pytest.raises(ConfigError, match=r"shard\.crop_size: .*\(got 'big'\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"organize\.link: .*\(got 'rsync'\)"):
        load_config(write(tmp_path, "organize: {link: rsync}\n"))
    with pytest.raises(ConfigError, match=r"train\.batch_size: .*greater than or equal to 1"):
        load_config(write(tmp_path, "train: {batch_size: 0}\n"))
    with pytest.raises(ConfigError, match=r"train: .*crop_size=66 must be a multiple of 4"):
        load_config(write(tmp_path, "train: {crop_size: 66}\n"))


def test_config_is_frozen():
    cfg = load_config(REPO_YAML)
    with pytest.raises(ValueError):
        cfg.train.steps = 5


def test_bad_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "train:\n  steps: [1, 2\n  seed: 0\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid YAML at line \d+"):
        load_config(path)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides(tmp_path):
    path = write(tmp_path, "train: {steps: 10, generator: {blocks: 9}}\n")
    cfg = load_config(
        path,
        [
            "train.steps=200",
            "train.generator.blocks=3",
            "shard.shards.train=4",
            "train.loss.perceptual_weights=none",
        ],
    )
    assert (cfg.train.steps, cfg.train.generator.blocks, cfg.shard.shards.train) == (200, 3, 4)
    assert cfg.train.loss.perceptual_weights == "none"
    assert cfg.train.generator.filters == 64  # untouched siblings keep their values
    with pytest.raises(ConfigError, match=r"with --set: train\.steps: .*\(got 'lots'\)"):
        load_config(path, ["train.steps=lots"])
    with pytest.raises(ConfigError, match=r"train\.generator\.depth: unknown key"):
        load_config(path, ["train.generator.depth=3"])
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(path, ["train.steps"])
    with pytest.raises(ConfigError, match=r"train\.steps is not a section"):
        load_config(path, ["train.steps.x=1"])


def test_parse_override_values():
    assert parse_override("a.b=1.0e-4") == (["a", "b"], 1.0e-4)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=") == (["a"], None)
    assert apply_overrides({"a": {"b": 1}}, ["a.c=x"]) == {"a": {"b": 1, "c": "x"}}


def test_with_flags_overrides_only_given_values():
    cfg = load_config(REPO_YAML).organize
    assert with_flags(cfg, raw=None, link=None) is cfg
    new = with_flags(cfg, raw="/data/GOPRO_Large", link="copy", blur=None)
    assert (new.raw, new.link, new.blur, new.out) == (
        "/data/GOPRO_Large",
        "copy",
        "blur_gamma",
        "data/organized",
    )
    with pytest.raises(ConfigError, match=r"command line: link: .*\(got 'ftp'\)"):
        with_flags(cfg, link="ftp")
    assert issubclass(ConfigError, UsageError)


def test_config_to_dict_round_trips():
    cfg = load_config(REPO_YAML, ["train.steps=7"])
    assert Config.model_validate(config_to_dict(cfg)) == cfg


def test_cli_config_errors_exit_2_without_traceback(tmp_path):
    runner = CliRunner()
    path = write(tmp_path, "organize: {raw: x, colour: red}\n")
    result = runner.invoke(app, ["organize", "--config", str(path)])
    assert result.exit_code == 2
    assert "organize.colour: unknown key" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["organize", "--config", str(write(tmp_path, "organize: [\n", "bad.yaml"))])
    assert result.exit_code == 2 and "invalid YAML" in result.output


def test_generator_settings_are_per_architecture(tmp_path: Path) -> None:
    """`train.generator.arch` picks the settings class; each validates only its own keys (no arch: DeblurGAN)."""
    cfg = load_config(write(tmp_path, "train: {generator: {filters: 16, blocks: 3}}\n"))
    assert (cfg.train.generator.arch, cfg.train.generator.filters) == ("deblurgan", 16)
    cfg = load_config(
        write(tmp_path, "train: {generator: {arch: nafnet, width: 16}}\n"),
        [
            "train.generator.enc_blocks=[1,1,1,28]",
            "train.generator.dec_blocks=[1, 1, 1, 1]",
            "train.crop_size=128",
        ],
    )
    assert cfg.train.generator.enc_blocks == (1, 1, 1, 28) and cfg.train.generator.width == 16
    with pytest.raises(
        ConfigError, match=r"train\.generator\.filters: unknown key"
    ):  # not train.generator.nafnet.
        load_config(write(tmp_path, "train: {generator: {arch: nafnet, filters: 8}}\n"))
    with pytest.raises(ConfigError, match=r"train\.generator\.width: unknown key"):
        load_config(write(tmp_path, "train: {generator: {width: 8}}\n"))
    with pytest.raises(ConfigError, match=r"train\.generator: .*'naf'.*'deblurgan', 'nafnet'"):
        load_config(write(tmp_path, "train: {generator: {arch: naf}}\n"))
    with pytest.raises(ConfigError, match=r"enc_blocks has 2 levels but dec_blocks has 1"):
        load_config(
            write(tmp_path, "train: {generator: {arch: nafnet, enc_blocks: [1, 1], dec_blocks: [1]}}\n")
        )
    # NAFNet with 4 levels has stride 16: a 200 px crop does not fit.
    with pytest.raises(ConfigError, match=r"crop_size=200 must be a multiple of 16"):
        load_config(write(tmp_path, "train: {crop_size: 200, generator: {arch: nafnet}}\n"))


def test_recipe_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"weight_decay=0.001 needs name: adamw"):
        load_config(write(tmp_path, "train: {optimizer: {weight_decay: 0.001}}\n"))
    with pytest.raises(ConfigError, match=r"every weight is 0"):
        load_config(write(tmp_path, "train: {loss: {perceptual: 0, adversarial: 0}}\n"))
    cfg = load_config(write(tmp_path, "train: {validate: {every: 100, frames: 4}, ema_decay: 0.999}\n"))
    assert cfg.train.validation.every == 100 and cfg.train.ema_decay == 0.999
    assert config_to_dict(cfg)["train"]["validate"]["frames"] == 4  # the key users write, in run.json too


def test_each_cli_validates_every_section_whoever_owns_it(tmp_path):
    """pipeline/ owns organize and shard, train/ owns train and evaluate (registered through the package's entry
    points, so pipeline/ imports nothing from train/): gopro-prep still rejects an unknown train key, and trainctl
    an unknown organize key, each naming it."""
    from pipeline.config import config_model
    from train.cli import app as trainctl

    assert config_model() is Config
    runner = CliRunner()
    bad_train = write(tmp_path, "organize: {raw: x}\ntrain: {foo: 1}\n", "t.yaml")
    result = runner.invoke(app, ["organize", "--config", str(bad_train)])
    assert result.exit_code == 2 and f"{bad_train}: train.foo: unknown key" in result.output
    bad_organize = write(tmp_path, "organize: {colour: red}\n", "o.yaml")
    result = runner.invoke(trainctl, ["versions", str(bad_organize)])
    assert result.exit_code == 2 and f"{bad_organize}: organize.colour: unknown key" in result.output
