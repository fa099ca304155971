"""Config fuzz: any YAML document or override either loads or raises ConfigError, never a deep traceback."""

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.errors import ConfigError
from train.config import Config

KEYS = [
    "organize",
    "shard",
    "train",
    "evaluate",
    "raw",
    "crop_size",
    "steps",
    "generator",
    "blocks",
    "shards",
    "train",
    "test",
    "loss",
    "pixel",
    "beam_options",
    "strategy",
    "batch_size",
    "x",
    "",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
    ),
    max_leaves=20,
)
override_keys = st.lists(st.sampled_from(KEYS), min_size=0, max_size=4).map(".".join)
override_values = st.one_of(
    st.text(max_size=10),
    st.integers(-5, 10**6).map(str),
    st.sampled_from(
        ["[1, 2]", "{a: 1}", "1e-3", "true", "null", ":", "'", "!!python/object:os.system", "*x", "&a 1"]
    ),
)
overrides = st.lists(
    st.builds(lambda k, v: f"{k}={v}", override_keys, override_values) | st.text(max_size=10), max_size=3
)

_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _load(path: Path, text: str, sets: list[str]) -> None:
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(path, sets)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc).strip() or ";" in str(exc)
        return
    assert isinstance(cfg, Config)


@_SETTINGS
@given(doc=documents, sets=overrides)
def test_random_documents_load_or_raise_config_error(tmp_path, doc, sets):
    _load(tmp_path / "pipeline.yaml", yaml.safe_dump(doc), sets)


@_SETTINGS
@given(text=st.text(max_size=200), sets=overrides)
def test_random_text_loads_or_raises_config_error(tmp_path, text, sets):
    _load(tmp_path / "pipeline.yaml", text, sets)


@_SETTINGS
@given(
    section=st.sampled_from(["organize", "shard", "train", "evaluate"]),
    key=st.sampled_from(KEYS),
    value=scalars,
)
def test_random_values_in_real_sections(tmp_path, section, key, value):
    _load(tmp_path / "pipeline.yaml", yaml.safe_dump({section: {key: value}}), [])
