"""train.strategy: TF_CONFIG parsing, native bf16 detection, precision choice, strategy selection."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import ConfigError
from train.strategy import Cluster, choose_precision, cluster_from_env, cpu_has_native_bf16, make_strategy

CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 {extra}\nbugs\t\t: spectre\n"


def tf_config(cluster: dict, kind: str, index: int) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}


def test_cluster_from_tf_config() -> None:
    assert cluster_from_env({}) == Cluster(1, 0, True)
    workers = {"worker": ["a:1", "b:2", "c:3"]}
    assert cluster_from_env(tf_config(workers, "worker", 0)) == Cluster(3, 0, True)
    assert cluster_from_env(tf_config(workers, "worker", 2)) == Cluster(3, 2, False)
    with_chief = {"chief": ["c:0"], "worker": ["a:1", "b:2"]}
    assert cluster_from_env(tf_config(with_chief, "chief", 0)) == Cluster(3, 0, True)
    assert cluster_from_env(tf_config(with_chief, "worker", 0)) == Cluster(3, 1, False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        cluster_from_env({"TF_CONFIG": "{not json"})


def test_native_bf16_needs_avx512_bf16_or_amx() -> None:
    assert cpu_has_native_bf16(CPUINFO.format(extra="avx512f avx512_bf16"))
    assert cpu_has_native_bf16(CPUINFO.format(extra="amx_tile amx_bf16"))
    assert not cpu_has_native_bf16(CPUINFO.format(extra="avx512f avx512_vnni"))
    assert not cpu_has_native_bf16("")


@pytest.mark.parametrize(
    ("requested", "gpu", "bf16", "policy"),
    [
        ("auto", True, False, "mixed_float16"),
        ("auto", False, True, "mixed_bfloat16"),
        ("auto", False, False, "float32"),
        ("float32", True, True, "float32"),
        ("mixed_bfloat16", False, False, "mixed_bfloat16"),
    ],
)
def test_precision_choice(requested: str, gpu: bool, bf16: bool, policy: str) -> None:
    assert choose_precision(requested, gpu, bf16) == policy


def test_multi_worker_without_tf_config_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="train.strategy=multi_worker needs TF_CONFIG"):
        make_strategy("multi_worker")


def test_auto_on_one_cpu_is_the_default_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = make_strategy("auto")
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    assert make_strategy("one_device").num_replicas_in_sync == 1
