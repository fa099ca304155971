"""`trainctl deblur` throughput vs the bare generator forward pass on the same 1280x720 frames (goal: >= 0.9x).

For a small DeblurGAN (16 filters, 3 blocks) and a small NAFNet (width 16, one block per level, TLC on), both with
random weights: (1) the bare forward pass, the Keras model called in a tf.function on frames already decoded and
in the model's range; (2) `trainctl deblur` on a folder of the same frames as PNG files (decode, pad, model, crop,
encode and write: train.inference.files, as the CLI runs it); (3) a video of the same frames (H.264 in MP4,
written with PyAV) through train.inference.video as the CLI runs it: decoded, batched, deblurred and encoded again
to H.264 (libx264, CRF 18) with PyAV. Images/s, megapixels/s and the ratios, measured side by side in one run.
Prints one JSON object.

    .venv/bin/python benchmarks/bench_deblur.py [--frames 6] [--width 1280] [--height 720]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from train import archs  # noqa: E402
from train.archs import deblurgan, nafnet  # noqa: E402
from train.inference import files  # noqa: E402
from train.inference.deblurrer import Deblurrer, load  # noqa: E402
from train.inference.video import deblur_video  # noqa: E402
from train.run.versions import write_version  # noqa: E402

MODELS = {
    "deblurgan_small": deblurgan.DeblurGanSettings(filters=16, blocks=3, dropout=0.0),
    "nafnet_small": nafnet.NafNetSettings(
        width=16, enc_blocks=(1, 1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1, 1)
    ),
}


def frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Textured RGB frames (coarse noise, upsampled): decode and encode cost like photos, not like flat images."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        small = rng.uniform(0, 255, (h // 16, w // 16, 3)).astype(np.float32)
        out.append(np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8))
    return out


def version(root: Path, settings: object) -> str:
    model = archs.build(settings, dtype="float32")
    rng = np.random.default_rng(1)
    model.set_weights([w + rng.normal(0, 0.02, w.shape).astype(w.dtype) for w in model.get_weights()])
    return write_version(root, model, {"step": 0, "arch": archs.of(settings).describe(settings, 256)})


def bare_rate(deblurrer: Deblurrer, images: list[np.ndarray], batch: int = 1) -> float:
    """Images/s of the model alone: frames already decoded and converted, no padding, nothing written."""
    model, (lo, hi) = deblurrer.loaded.model, deblurrer.spec.input_range
    forward = tf.function(lambda x: model(x, training=False))
    x = [
        tf.constant(np.stack(images[i : i + batch]).astype(np.float32) / 255 * (hi - lo) + lo)
        for i in range(0, len(images), batch)
    ]
    forward(x[0]).numpy()  # trace + warm up
    start = time.perf_counter()
    for chunk in x:
        forward(chunk).numpy()
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()
    images = frames(args.frames, args.height, args.width)
    megapixels = args.width * args.height / 1e6
    result: dict = {
        "benchmark": "deblur_throughput",
        "frame": f"{args.width}x{args.height}",
        "frames": args.frames,
        "cpu_count": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "frames"
        src.mkdir()
        for i, img in enumerate(images):
            cv2.imwrite(str(src / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        clip = Path(tmp) / "clip.mp4"
        with av.open(str(clip), "w") as container:
            stream = container.add_stream("libx264", rate=30, options={"crf": "18"})
            stream.width, stream.height, stream.pix_fmt = args.width, args.height, "yuv420p"
            for i, img in enumerate(images):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        for name, settings in MODELS.items():
            d = Deblurrer(load(version(Path(tmp) / name, settings)))
            d(images[0])  # trace + warm up the serving function
            bare = bare_rate(d, images)
            out = Path(tmp) / f"out_{name}"
            with contextlib.redirect_stderr(io.StringIO()):
                start = time.perf_counter()
                assert files.run(d, [src], out) == 0
                cli = args.frames / (time.perf_counter() - start)
                d.restore_uint8(np.stack(images[:4]))  # trace the batched video path
                before = bare_rate(d, images, batch=4)
                start = time.perf_counter()
                assert deblur_video(d, clip, Path(tmp) / f"{name}.mp4", batch=4)
                video = args.frames / (time.perf_counter() - start)
                bare4 = (before + bare_rate(d, images, batch=4)) / 2  # on both sides: a shared machine drifts
            result[name] = {
                "bare_forward_images_per_s": round(bare, 3),
                "deblur_images_per_s": round(cli, 3),
                "deblur_megapixels_per_s": round(cli * megapixels, 2),
                "ratio_deblur_vs_bare": round(cli / bare, 3),
                "bare_forward_batch4_frames_per_s": round(bare4, 3),
                "video_frames_per_s": round(video, 3),
                "ratio_video_vs_bare_batch4": round(video / bare4, 3),
            }
    result["goal_ratio"] = 0.9
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
