"""What every command of both CLIs shares (pipeline.cli_base): an unknown option is one line and exit 2, only the
arguments after `--` go to Beam, `--config FILE` everywhere (./pipeline.yaml by default), `--help` shows the
values pipeline.yaml supplies and no `<bool>` placeholders."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from fault_helpers import env, gopro_prep, run, trainctl
from typer.testing import CliRunner

from pipeline import cli as prep_cli
from pipeline.cli_base import closest_option
from train import cli as train_cli

runner = CliRunner()
PREP = ["organize", "sample", "synthesize", "shard", "inspect"]
TRAIN = ["fit", "evaluate", "deblur", "export", "versions"]
COMMANDS = [(prep_cli.app, name) for name in PREP] + [(train_cli.app, name) for name in TRAIN]
IDS = [f"gopro-prep {n}" for n in PREP] + [f"trainctl {n}" for n in TRAIN]


def flat(text: str) -> str:
    """Help text without the box drawing and line wrapping."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def only_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


# ---- unknown options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("app", "command"), COMMANDS, ids=IDS)
def test_an_unknown_option_is_one_line_and_exit_2_on_every_command(app, command) -> None:
    result = runner.invoke(app, [command, "--bogus", "1"])
    assert result.exit_code == 2, result.output
    line = only_error_line(result)
    assert line.endswith(f"{command}: no such option --bogus"), line


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("--shard", "--shards"), ("--crops_per_pair", "--crops-per-pair"), ("--crop-size", "--crop")],
)
def test_shard_refuses_a_mistyped_option_and_names_the_real_one(organized_dir, tmp_path, typo, meant) -> None:
    """`--shard 3` used to be handed to Beam (a warning) and the dataset published with the config's 8 shards."""
    out = tmp_path / "shards"
    result = runner.invoke(
        prep_cli.app, ["shard", "--src", str(organized_dir), "--out", str(out), typo, "1", "--crop", "32"]
    )
    assert result.exit_code == 2, result.output
    assert only_error_line(result).endswith(f"no such option {typo} (did you mean {meant}?)")
    assert not out.exists()


def test_shard_passes_only_the_arguments_after_dashdash_to_beam(organized_dir, tmp_path) -> None:
    out = tmp_path / "shards"
    stray = runner.invoke(prep_cli.app, ["shard", "--src", str(organized_dir), "--out", str(out), "x", "--"])
    assert stray.exit_code == 2 and "unexpected extra argument" in only_error_line(stray)
    before = runner.invoke(
        prep_cli.app, ["shard", "--src", str(organized_dir), "--out", str(out), "--direct_num_workers=1"]
    )
    assert before.exit_code == 2 and "no such option --direct_num_workers" in only_error_line(before)
    assert not out.exists()


def test_unknown_commands_and_top_level_options_are_one_line_too() -> None:
    command = runner.invoke(prep_cli.app, ["shrd"])
    assert command.exit_code == 2 and "No such command 'shrd'. Did you mean 'shard'?" in only_error_line(
        command
    )
    option = runner.invoke(train_cli.app, ["--debg", "versions"])
    assert option.exit_code == 2 and only_error_line(option).endswith(
        "no such option --debg (did you mean --debug?)"
    )
    value = runner.invoke(prep_cli.app, ["sample", "--scenes", "x"])
    assert value.exit_code == 2 and "'--scenes'" in only_error_line(value)


def test_the_real_command_prints_exactly_one_line() -> None:
    """Through the console entry (not CliRunner): stderr is the error line alone, nothing on stdout."""
    done = run(gopro_prep("shard", "--shard", "3"), timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: python -m pipeline.cli shard: no such option --shard (did you mean --shards?)"
    ]


def test_closest_option() -> None:
    known = ["--src", "--out", "--crop", "--crops-per-pair", "--shards", "--seed", "--runner", "--overwrite"]
    assert closest_option("--shard", known) == "--shards"
    assert closest_option("--crops_per_pair", known) == "--crops-per-pair"
    assert closest_option("--overwrit", known) == "--overwrite"
    assert closest_option("--bogus", known) is None
    assert closest_option("--verbose", known) is None


# ---- flags and --help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("app", "command"), [*COMMANDS, (prep_cli.app, None), (train_cli.app, None)])
def test_help_shows_flags_without_a_placeholder(app, command) -> None:
    result = runner.invoke(app, [command, "--help"] if command else ["--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "--help" in result.output


def test_a_flag_takes_no_value() -> None:
    result = runner.invoke(prep_cli.app, ["organize", "--verify", "true"])
    assert result.exit_code == 2 and "(true)" in only_error_line(result)


def test_help_shows_the_defaults_pipeline_yaml_supplies(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text(
        "organize: {raw: /data/gopro, blur: blur}\nshard: {crops_per_pair: 9, shards: {train: 12}}\n"
    )
    (tmp_path / "other.yaml").write_text("organize: {out: /elsewhere}\nshard: {runner: FnApiRunner}\n")
    organize = flat(runner.invoke(prep_cli.app, ["organize", "--help"]).output)
    for shown in (
        "[default: /data/gopro]",
        "[default: data/organized]",
        "[default: blur]",
        "[default: hardlink]",
    ):
        assert shown in organize, organize
    shard = flat(runner.invoke(prep_cli.app, ["shard", "--help"]).output)
    for shown in ("[default: 9]", "[default: 12]", "[default: 256]", "[default: DirectRunner]"):
        assert shown in shard, shard
    assert "[-- BEAM_ARGS...]" in shard
    other = flat(
        runner.invoke(prep_cli.app, ["shard", "--config", str(tmp_path / "other.yaml"), "--help"]).output
    )
    assert "[default: FnApiRunner]" in other and "[default: 4]" in other
    other = flat(runner.invoke(prep_cli.app, ["organize", "--config=other.yaml", "--help"]).output)
    assert "[default: /elsewhere]" in other and "[default: GOPRO_Large]" in other


def test_help_renders_with_a_broken_pipeline_yaml(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("organize: [\n")
    result = runner.invoke(prep_cli.app, ["organize", "--help"])
    assert result.exit_code == 0, result.output
    assert "[default: GOPRO_Large]" in flat(result.stdout)
    assert "pipeline.yaml: invalid YAML" in result.stderr and "built-in" in result.stderr


# ---- --config everywhere ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("app", "command"), COMMANDS, ids=IDS)
def test_every_command_takes_config(app, command) -> None:
    assert "--config" in runner.invoke(app, [command, "--help"]).output


@pytest.fixture
def run_with_versions(tmp_path: Path) -> Path:
    from tiny_generators import identity_generator, save_version

    run_dir = tmp_path / "run"
    model = identity_generator()
    save_version(run_dir, model, step=10)
    save_version(run_dir, model, step=20)
    return run_dir


def test_trainctl_reads_pipeline_yaml_by_default_or_config_file(
    tmp_path, monkeypatch, run_with_versions
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text(json.dumps({"train": {"run_dir": str(run_with_versions)}}))
    (tmp_path / "other.yaml").write_text(json.dumps({"train": {"run_dir": str(tmp_path / "other")}}))
    default = runner.invoke(train_cli.app, ["versions"])
    assert default.exit_code == 0 and "v0002" in default.stdout, default.output
    other = runner.invoke(train_cli.app, ["versions", "--config", "other.yaml"])
    assert other.exit_code == 1 and f"{tmp_path / 'other'}" in other.output
    same = runner.invoke(
        train_cli.app, ["versions", "pipeline.yaml", "--config", str(tmp_path / "pipeline.yaml")]
    )
    assert same.exit_code == 0 and "v0002" in same.stdout
    both = runner.invoke(train_cli.app, ["versions", "pipeline.yaml", "--config", "other.yaml"])
    assert both.exit_code == 2
    assert (
        only_error_line(both)
        == "error: CONFIG pipeline.yaml and --config other.yaml name different files; give one"
    )


def test_fit_and_evaluate_need_no_config_argument(tmp_path, monkeypatch) -> None:
    """`trainctl fit` alone said "Missing argument 'CONFIG'"; now it reads ./pipeline.yaml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text(
        json.dumps({"train": {"data": str(tmp_path / "no-shards"), "run_dir": str(tmp_path / "no-run")}})
    )
    fit = runner.invoke(train_cli.app, ["fit"])
    assert fit.exit_code == 1 and str(tmp_path / "no-shards") in only_error_line(fit)
    evaluate = runner.invoke(train_cli.app, ["evaluate"])
    assert evaluate.exit_code == 1 and str(tmp_path / "no-run") in only_error_line(evaluate)


def test_sample_prints_a_summary(tmp_path) -> None:
    out = tmp_path / "GOPRO_Large"
    result = runner.invoke(
        prep_cli.app, ["sample", "--out", str(out), "--scenes", "5", "--frames", "2", "--size", "40x32"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"sample: 5 scenes (train 4, test 1) x 2 frames of 40x32 (blur, blur_gamma, sharp) -> {out}"
    ]
    assert len(list(out.glob("train/*/sharp/*.png"))) == 8 and len(list(out.glob("test/*/blur/*.png"))) == 2


def test_sample_writes_to_organize_raw_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("organize: {raw: my_raw}\n")
    result = runner.invoke(prep_cli.app, ["sample", "--size", "40x32", "--scenes", "2", "--frames", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "my_raw").iterdir()) == ["test", "train"]


def test_inspect_reads_shard_out_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text(f"shard: {{out: {tmp_path / 'nothing'}}}\n")
    result = runner.invoke(prep_cli.app, ["inspect"])
    assert result.exit_code != 0 and str(tmp_path / "nothing") in only_error_line(result)


def test_trainctl_subprocess_without_config_reads_cwd(tmp_path) -> None:
    """The console entry too: `trainctl versions` in a dir with pipeline.yaml (no CONFIG argument)."""
    (tmp_path / "pipeline.yaml").write_text(json.dumps({"train": {"run_dir": str(tmp_path / "r")}}))
    done = subprocess.run(
        trainctl("versions"), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and done.stderr.strip() == (
        f"error: {tmp_path / 'r' / 'generator'}: no generator versions yet (run `trainctl fit` first)"
    )


def test_fit_help_names_every_registered_arch_and_no_single_one() -> None:
    from train.archs import ARCHS

    runner = CliRunner()
    texts = [
        " ".join(runner.invoke(train_cli.app, args, terminal_width=200).output.split())
        for args in (["fit", "--help"], ["--help"])
    ]
    for text in texts:
        assert "Train DeblurGAN" not in text and "DeblurGAN generators" not in text
    for name in ARCHS:
        assert name in texts[0].lower(), name
