"""Pick the tf.distribute strategy and the mixed precision policy from `train.strategy` / `train.mixed_precision`.

`auto` strategy: MultiWorkerMirrored when TF_CONFIG is set (a cluster), Mirrored over the GPUs of this machine
when there are several, else the default strategy. `auto` precision: mixed_float16 on GPU; on CPU mixed_bfloat16
only where the CPU computes bfloat16 natively (AVX512_BF16 / AMX), since emulated bf16 is slower than float32.
MultiWorkerMirroredStrategy must be created before any other TensorFlow op runs: call `make_strategy` first.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Cluster:
    """Where this process sits: worker count and index (from TF_CONFIG), and whether it writes the files."""

    workers: int
    index: int
    is_chief: bool


def cluster_from_env(environ: dict[str, str] | None = None) -> Cluster:
    """Parse TF_CONFIG (absent: a single chief). The chief is task `chief`, or worker 0 when there is none."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        return Cluster(1, 0, True)
    try:
        tf_config = json.loads(raw)
        spec = tf_config.get("cluster", {})
        task = tf_config.get("task", {})
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"TF_CONFIG: not valid cluster JSON ({exc})") from None
    workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
    has_chief = bool(spec.get("chief"))
    is_chief = kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
    position = index if kind == "chief" or not has_chief else index + 1
    return Cluster(max(workers, 1), position, is_chief)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when /proc/cpuinfo flags show hardware bfloat16 (AVX512_BF16 or AMX-BF16)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as fh:
                cpuinfo = fh.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(flag in flags for flag in NATIVE_BF16_FLAGS)
    return False


def choose_precision(requested: str, has_gpu: bool, native_bf16: bool) -> str:
    """The Keras dtype policy name for `train.mixed_precision` on this hardware."""
    if requested != "auto":
        return requested
    if has_gpu:
        return "mixed_float16"
    return "mixed_bfloat16" if native_bf16 else "float32"


def make_strategy(name: str) -> Any:
    """Build the strategy for `train.strategy` (see module docstring for `auto`)."""
    import tensorflow as tf

    has_tf_config = bool(os.environ.get("TF_CONFIG", "").strip())
    if name == "auto":
        if has_tf_config:
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            return tf.distribute.get_strategy()
    if name == "multi_worker":
        if not has_tf_config:
            raise ConfigError("train.strategy=multi_worker needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        # No GPU: mirror over the logical CPU devices (the way tests run 2 replicas on one CPU).
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ConfigError(f"train.strategy: unknown strategy {name!r}")


def set_precision(policy: str) -> None:
    """Set the global Keras dtype policy (before building any model)."""
    import keras

    keras.mixed_precision.set_global_policy(policy)


@contextlib.contextmanager
def global_policy_restored() -> Iterator[None]:
    """Fit sets the global Keras dtype policy to build its models; give the caller's policy back afterwards."""
    import keras

    previous = keras.mixed_precision.global_policy()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def is_multi_worker(strategy: Any) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def describe(strategy: Any) -> str:
    """Short name of a strategy for the start-up log line."""
    if is_multi_worker(strategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__.replace("_DefaultDistributionStrategy", "DefaultStrategy")
