"""Run `train.fit.trainer.run` in a fresh process and save the final generator weights (for distribution tests).

    python tests/fit_driver.py CONFIG.yaml OUT.npz [--logical-cpus N] [--set key=value ...]

`--logical-cpus` splits the CPU into N logical devices before TensorFlow starts (MirroredStrategy then has N
replicas); it must happen before any TF op, which is why these tests run in a subprocess.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
    from pipeline.config import load_config
    from train.fit.trainer import run

    result = run(load_config(args.config, args.overrides))
    weights = result.generator.get_weights()
    np.savez(args.out, *weights, step=np.int64(result.step))


if __name__ == "__main__":
    main()
