"""`trainctl import-weights`: PyTorch checkpoints read without PyTorch, parity with the reference NAFNet, the way
back (`export --format safetensors`), and bad files refused with one line and nothing written.

The golden files in tests/golden/ were made by running megvii-research/NAFNet on random weights
(scripts/golden/make_nafnet_golden.py; tests/golden/README.md)."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from train.cli import app
from train.weights.state_file import read_state

GOLDEN = Path(__file__).resolve().parent / "golden"
runner = CliRunner()


def golden(name: str = "nafnet_w8") -> dict[str, np.ndarray]:
    with np.load(GOLDEN / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def reference_weights() -> dict[str, np.ndarray]:
    """The reference model's state dict, read from its checkpoint (the parity tests prove the reading right)."""
    return read_state(str(GOLDEN / "nafnet_w8.pth")).tensors


def trainctl(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """The golden BasicSR checkpoint imported through the command, trained on 64 px crops (TLC window 96)."""
    out = tmp_path_factory.mktemp("imported") / "run"
    result = trainctl(
        "import-weights", str(GOLDEN / "nafnet_w8.pth"), "--out", str(out), "--train-size", "64"
    )
    assert result.exit_code == 0, result.output
    assert (
        "as nafnet width=8 enc_blocks=[1, 1, 1, 2] middle_blocks=1 dec_blocks=[1, 1, 1, 1]" in result.output
    )
    return out


# ---- reading the file ------------------------------------------------------------------------------------------


def test_a_pth_reads_as_numpy_arrays_with_the_reference_names_and_shapes() -> None:
    state = read_state(str(GOLDEN / "nafnet_w8.pth"))
    assert state.key == "params" and len(state.tensors) == 196
    assert all(t.dtype == np.float32 for t in state.tensors.values())
    shapes = {k: t.shape for k, t in state.tensors.items()}
    assert shapes["intro.weight"] == (8, 3, 3, 3) and shapes["encoders.0.0.beta"] == (1, 8, 1, 1)
    assert shapes["encoders.0.0.conv2.weight"] == (16, 1, 3, 3) and shapes["ups.0.0.weight"] == (
        256,
        128,
        1,
        1,
    )
    assert sum(t.size for t in state.tensors.values()) == 321_499


@pytest.mark.parametrize(
    ("key", "used", "same"),
    [("auto", "params_ema", True), ("params_ema", "params_ema", True), ("params", "params", False)],
)
def test_which_state_dict_is_read(key: str, used: str, same: bool) -> None:
    """nafnet_w4_ema.pth holds two random state dicts; its params_ema is the bare file's."""
    bare = read_state(str(GOLDEN / "nafnet_w4_bare.pth"))
    assert bare.key is None and len(bare.tensors) > 20
    state = read_state(str(GOLDEN / "nafnet_w4_ema.pth"), key)
    assert state.key == used and set(state.tensors) == set(bare.tensors)
    assert all(np.array_equal(state.tensors[k], v) for k, v in bare.tensors.items()) is same


def test_an_ema_checkpoint_imports_its_ema_weights(tmp_path: Path) -> None:
    from train.run.versions import load_generator

    out = tmp_path / "run"
    result = trainctl("import-weights", str(GOLDEN / "nafnet_w4_ema.pth"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (
        "(params_ema, " in result.output
        and "width=4 enc_blocks=[1, 1] middle_blocks=1 dec_blocks=[1, 1]" in result.output
    )
    meta = json.loads((out / "generator/v0001/meta.json").read_text())
    assert meta["source"]["key"] == "params_ema" and meta["arch"]["train_size"] == 256
    intro = load_generator(out / "generator/v0001").get_layer("intro").get_weights()[0]
    bare = read_state(str(GOLDEN / "nafnet_w4_bare.pth")).tensors["intro.weight"]
    np.testing.assert_array_equal(intro, bare.transpose(2, 3, 1, 0))


def test_legacy_format_is_refused_with_how_to_resave() -> None:
    result = trainctl("import-weights", str(GOLDEN / "nafnet_w4_legacy.pth"), "--out", "never")
    assert result.exit_code == 1
    assert (
        "legacy (pre-1.6) checkpoint format" in result.output
        and "torch.save(torch.load(OLD), NEW)" in result.output
    )
    assert not os.path.exists("never")


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"params": _RunsCode(marker)}, protocol=2))
    result = trainctl("import-weights", str(evil), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {evil}: refused: it names `posix.system`")
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, not weights", "not a PyTorch checkpoint"),
        ("torchscript", "a TorchScript archive, not a state dict"),
        ("nopickle", "a zip file, but not a PyTorch checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints_are_one_line_exit_1(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "model.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("m/constants.pkl" if content == "torchscript" else "m/other.txt", b"x")
    result = trainctl("import-weights", str(path), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1 and message in result.output and len(result.output.splitlines()) == 1
    assert not (tmp_path / "run").exists()


# ---- the weights that do not fit -------------------------------------------------------------------------------


def _safetensors(tmp_path: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    return path


def test_a_shape_that_does_not_fit_names_the_key_and_both_shapes(tmp_path: Path) -> None:
    weights = reference_weights()
    weights["encoders.0.0.conv2.weight"] = np.zeros((16, 1, 5, 5), np.float32)
    result = trainctl("import-weights", str(_safetensors(tmp_path, weights)), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert (
        "key 'encoders.0.0.conv2.weight' has shape (16, 1, 5, 5), but the model needs (16, 1, 3, 3)"
        in result.output
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("change", "message"), [("drop", "missing key 'ending.bias'"), ("add", "unexpected key 'extra.weight'")]
)
def test_missing_and_unexpected_keys_are_named(tmp_path: Path, change: str, message: str) -> None:
    weights = reference_weights()
    if change == "drop":
        del weights["ending.bias"]
    else:
        weights["extra.weight"] = np.zeros(3, np.float32)
    result = trainctl("import-weights", str(_safetensors(tmp_path, weights)), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "run").exists()


def test_another_architecture_and_unreadable_arch_choices(tmp_path: Path) -> None:
    other = _safetensors(tmp_path, {"conv_first.weight": np.zeros((4, 3, 3, 3), np.float32)})
    result = trainctl("import-weights", str(other), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1 and "matches none of the known architectures" in result.output
    result = trainctl(
        "import-weights", str(GOLDEN / "nafnet_w8.pth"), "--out", str(tmp_path / "r"), "--arch", "deblurgan"
    )
    assert result.exit_code == 2 and "--arch deblurgan: has no PyTorch reference" in result.output
    result = trainctl(
        "import-weights", str(GOLDEN / "nafnet_w8.pth"), "--out", str(tmp_path / "r"), "--key", "params_g"
    )
    assert result.exit_code == 1 and "no key 'params_g' (keys: params)" in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()


def test_an_existing_run_dir_is_never_replaced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "generator").mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    result = trainctl("import-weights", str(GOLDEN / "nafnet_w8.pth"), "--out", str(run))
    assert result.exit_code == 2 and "already holds a run dir" in result.output
    assert (run / "notes.txt").read_text() == "mine" and os.listdir(run / "generator") == []


def test_a_failure_while_writing_leaves_no_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run dir is staged beside its place and renamed in when complete: a write that fails leaves nothing."""
    import train.run.versions
    from train.weights.importer import import_weights

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train.run.versions, "fsync_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        import_weights(str(GOLDEN / "nafnet_w4_bare.pth"), str(tmp_path / "run"))
    assert sorted(os.listdir(tmp_path)) == []  # no run dir, no staging dir, no lock


# ---- parity with the reference code ----------------------------------------------------------------------------


def test_the_imported_version_describes_its_source(imported: Path) -> None:
    import hashlib

    meta = json.loads((imported / "generator" / "v0001" / "meta.json").read_text())
    assert meta["imported"] == "pytorch" and meta["step"] == 0
    assert meta["source"]["file"] == "nafnet_w8.pth" and meta["source"]["key"] == "params"
    assert meta["source"]["sha256"] == hashlib.sha256((GOLDEN / "nafnet_w8.pth").read_bytes()).hexdigest()
    assert meta["arch"]["name"] == "nafnet" and meta["arch"]["train_size"] == 64
    assert meta["arch"]["settings"]["width"] == 8 and meta["arch"]["settings"]["enc_blocks"] == [1, 1, 1, 2]
    assert (imported / "generator" / "latest").read_text().strip() == "v0001"


def forward(run: Path, x: np.ndarray, tlc: bool = False, pad: str = "reflect") -> np.ndarray:
    """The imported model on a [0, 1] batch, padded to its stride as inference pads it, unclipped (the reference
    outputs are not clipped)."""
    from train.inference.deblurrer import load
    from train.inference.serving import model_input

    loaded = load(str(run / "generator" / "v0001"), tlc=tlc)
    assert loaded.tlc is tlc
    h, w = x.shape[1:3]
    return loaded.model(model_input(x, loaded.spec, pad), training=False).numpy()[:, :h, :w]


def test_the_imported_version_is_listed_and_fine_tunes(imported: Path) -> None:
    """`versions` lists it (step 0); `train.init_from` takes its weights for a NAFNet of the same shape."""
    from train.archs.nafnet import NafNetSettings
    from train.fit.finetune import load_init_weights
    from train.run import versions

    assert [(r[0], r[1], r[-1]) for r in versions.table_rows(imported)] == [("v0001", "0", "latest")]
    settings = NafNetSettings(width=8, enc_blocks=(1, 1, 1, 2), middle_blocks=1, dec_blocks=(1, 1, 1, 1))
    weights, lineage = load_init_weights(str(imported), settings)
    model = versions.load_generator(imported / "generator" / "v0001")
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    assert lineage["version"] == "v0001" and lineage["step"] == 0


def test_plain_forward_equals_the_reference_nafnet(imported: Path) -> None:
    fixture = golden()
    got = forward(imported, fixture["input_plain"])
    assert np.abs(got - fixture["output_plain"]).max() <= 1e-4
    assert np.abs(fixture["output_plain"] - fixture["input_plain"]).max() > 0.1  # the model does something


def test_tlc_equals_the_reference_nafnet_local(imported: Path) -> None:
    """TLC with the 64 px training size: NAFNetLocal's 96 px windows, computed by the Keras model."""
    fixture = golden()
    got = forward(imported, fixture["input_tlc"], tlc=True)
    assert np.abs(got - fixture["output_tlc"]).max() <= 1e-4
    without = forward(imported, fixture["input_tlc"], tlc=False)
    assert np.abs(without - fixture["output_tlc"]).max() > 1e-3  # TLC is what makes them agree


def test_an_odd_size_with_zero_padding_equals_the_reference(imported: Path) -> None:
    fixture = golden()
    x, expected = fixture["input_odd"], fixture["output_odd"]
    assert np.abs(forward(imported, x, pad="zero") - expected).max() <= 1e-4
    assert np.abs(forward(imported, x, pad="reflect") - expected).max() > 1e-3  # the padding is what differs


def _uint8(x01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x01, 0, 1) * 255).astype(np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("tlc", [False, True], ids=["plain", "tlc"])
def test_cli_deblur_savedmodel_and_tflite_give_the_reference_output(
    imported: Path, tmp_path: Path, tlc: bool
) -> None:
    """Within 1 level on uint8 of the reference's output, through `Deblurrer`, `trainctl deblur`, the SavedModel
    and TFLite (the golden inputs are multiples of 1/255, so the uint8 frame is exactly the reference's input)."""
    import cv2
    import tensorflow as tf

    from train.inference.deblurrer import Deblurrer

    fixture = golden()
    x, expected = (
        (fixture["input_tlc"], fixture["output_tlc"])
        if tlc
        else (fixture["input_plain"], fixture["output_plain"])
    )
    frame = np.round(x[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(frame / np.float32(255), x[0])
    want = _uint8(expected[0]).astype(int)
    flag = [] if tlc else ["--no-tlc"]
    assert np.abs(Deblurrer(str(imported), tlc=tlc)(frame).astype(int) - want).max() <= 1
    cv2.imwrite(str(tmp_path / "in.png"), frame[:, :, ::-1])
    result = trainctl(
        "deblur", "--model", str(imported), str(tmp_path / "in.png"), "--out", str(tmp_path / "o"), *flag
    )
    assert result.exit_code == 0, result.output
    assert np.abs(cv2.imread(str(tmp_path / "o" / "in.png"))[:, :, ::-1].astype(int) - want).max() <= 1
    assert trainctl("export", "--model", str(imported), "--out", str(tmp_path / "sm"), *flag).exit_code == 0
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    served = serve(images=tf.constant(frame[None]))["deblurred"].numpy()[0]
    assert np.abs(served.astype(int) - want).max() <= 1
    result = trainctl(
        "export", "--model", str(imported), "--out", str(tmp_path / "tfl"), "--format", "tflite", *flag
    )
    assert result.exit_code == 0, result.output
    run = tf.lite.Interpreter(model_path=str(tmp_path / "tfl" / "generator.tflite")).get_signature_runner()
    assert np.abs(run(images=frame[None])["deblurred"][0].astype(int) - want).max() <= 1


def test_export_safetensors_then_import_is_bit_for_bit(imported: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from train.run.versions import load_generator

    result = trainctl(
        "export", "--model", str(imported), "--format", "safetensors", "--out", str(tmp_path / "st")
    )
    assert result.exit_code == 0, result.output
    exported = load_file(str(tmp_path / "st" / "generator.safetensors"))
    reference = reference_weights()
    assert set(exported) == set(reference)
    for name, value in reference.items():  # the reference's own names, shapes and values
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
    again = tmp_path / "again"
    result = trainctl(
        "import-weights",
        str(tmp_path / "st" / "generator.safetensors"),
        "--out",
        str(again),
        "--train-size",
        "64",
    )
    assert result.exit_code == 0, result.output
    first = load_generator(imported / "generator" / "v0001").get_weights()
    second = load_generator(again / "generator" / "v0001").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_pixel_shuffle_order_is_what_makes_the_outputs_agree(imported: Path) -> None:
    """Without the up-convolution's channel permutation the imported model is far from the reference."""
    from train.archs import torch_layout as tl
    from train.inference.deblurrer import Deblurrer

    order = tl.shuffle_order(4)
    assert order.tolist() == [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15]
    deblur = Deblurrer(str(imported), tlc=False)
    layer = deblur.loaded.model.get_layer("up4_conv")
    kernel = layer.get_weights()[0]
    x, expected = golden()["input_plain"][0], golden()["output_plain"][0]
    layer.set_weights([kernel[..., np.argsort(tl.shuffle_order(kernel.shape[-1] // 4))]])  # undo it
    wrong = Deblurrer(deblur.loaded, tlc=False).restore(x)
    assert np.abs(wrong - np.clip(expected, 0, 1)).max() > 0.05


def test_safetensors_export_of_an_arch_without_a_reference_is_refused(tmp_path: Path) -> None:
    from tiny_generators import random_deblurgan

    from train.archs import deblurgan
    from train.run.versions import write_version

    settings = deblurgan.DeblurGanSettings(filters=4, blocks=1, dropout=0.0)
    write_version(
        tmp_path / "gan", random_deblurgan(), {"step": 1, "arch": deblurgan.ARCH.describe(settings, 64)}
    )
    result = trainctl(
        "export", "--model", str(tmp_path / "gan"), "--format", "safetensors", "--out", str(tmp_path / "x")
    )
    assert result.exit_code == 2 and "deblurgan has no PyTorch reference" in result.output
    assert not (tmp_path / "x").exists()


def test_bfloat16_storages_widen_to_float32() -> None:
    from train.weights.torch_pickle import _numpy_storage

    values = np.array([1.0, -2.5, 3.140625], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    np.testing.assert_array_equal(_numpy_storage(bf16, "bfloat16", little_endian=True), values)
