"""Training input: stream (blur, sharp) crops from the TFRecord shards listed in dataset.json.

A shards dir without dataset.json is incomplete (the shard stage writes it last) and is refused; dataset.json
is read and checked by `pipeline.dataset_info`. Files are split
between input pipelines (workers) by file when there are enough of them, else by record; reads interleave over
files in parallel; records are shuffled before decoding (small strings, small checkpoints of the iterator).
Every example's random crop and flip is keyed on (seed, pipeline, example index): the stream is deterministic
given the seed, and the same on 1 or N replicas of one worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from pipeline import dataset_info, records
from pipeline.console import log
from pipeline.dataset_info import DatasetInfo
from pipeline.errors import ConfigError, DataError
from train.fit.augment import paired_augment

SHUFFLE_RECORDS = (
    64  # records held for shuffling, after an 8-file interleave; their bytes go into every checkpoint
)
MAX_PARALLEL_FILES = 8


def _read_bytes(path: str) -> bytes:
    """Local files directly, anything else through tf.io.gfile (gs://, and s3:// once registered)."""
    if "://" not in path:
        return Path(path).read_bytes()
    try:
        with tf.io.gfile.GFile(path, "rb") as fh:
            return fh.read()
    except tf.errors.NotFoundError:
        raise FileNotFoundError(path) from None


def read_dataset_info(shards_dir: str) -> DatasetInfo:
    """DIR/dataset.json (local or any tf.io.gfile path), checked by its owner `pipeline.dataset_info`."""
    return dataset_info.read(shards_dir, _read_bytes)


def find_corrupt_shards(info: DatasetInfo, split: str) -> list[str]:
    """Shard files of `split` whose TFRecord framing or checksums are broken (used to name the file in errors)."""
    bad = []
    for path in info.files(split):
        try:
            with tf.io.gfile.GFile(path, "rb") as fh:
                for _ in records.iter_records(fh, verify=True):
                    pass
        except (ValueError, OSError, tf.errors.OpError) as exc:
            bad.append(f"{path} ({exc})")
    return bad


def _shard_files(files: list[str], ctx: Any) -> tuple[tf.data.Dataset, bool]:
    """Split files between input pipelines: by FILE when each pipeline gets one, else every pipeline reads all
    files and keeps every n-th record (DATA). Returns the file dataset and whether records still need sharding."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    pipelines = ctx.num_input_pipelines if ctx is not None else 1
    if pipelines <= 1:
        return ds, False
    if len(files) >= pipelines:
        return ds.shard(pipelines, ctx.input_pipeline_id), False
    return ds, True


def make_dataset(
    shards_dir: str,
    split: str,
    global_batch_size: int,
    crop_size: int,
    training: bool,
    input_context: Any = None,
    seed: int = 0,
    skip_corrupt: bool = False,
    deterministic: bool = True,
    info: DatasetInfo | None = None,
) -> tf.data.Dataset:
    """(blur, sharp) float32 [-1, 1] batches of `crop_size` crops, batched per replica when `input_context` is set.

    training: endless, shuffled, random crop/flip/rot90, full batches only. Else: one pass in file order, centre
    crops. `skip_corrupt` skips unreadable records (logged) instead of failing.
    """
    info = info or read_dataset_info(shards_dir)
    files = info.files(split)
    if not files:
        raise DataError(f"{info.json_path}: split {split!r} lists no shard files")
    if crop_size > info.crop_size:
        raise ConfigError(
            f"train.crop_size={crop_size} is larger than the shards' crop_size {info.crop_size} ({info.json_path})"
        )
    batch = (
        input_context.get_per_replica_batch_size(global_batch_size) if input_context else global_batch_size
    )
    pipeline_id = input_context.input_pipeline_id if input_context else 0

    file_ds, shard_records = _shard_files(files, input_context)
    if training:
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    cycle = max(1, min(len(files), MAX_PARALLEL_FILES))

    def read(path: tf.Tensor) -> tf.data.Dataset:
        ds = tf.data.TFRecordDataset(path, buffer_size=1 << 20)
        return ds.ignore_errors() if skip_corrupt else ds

    ds = file_ds.interleave(read, cycle_length=cycle, num_parallel_calls=cycle, deterministic=deterministic)
    if shard_records:
        ds = ds.shard(input_context.num_input_pipelines, pipeline_id)
    if training:
        ds = ds.shuffle(min(SHUFFLE_RECORDS, max(1, info.examples(split))), seed=seed)
    encoding = info.encoding
    base_seed = tf.constant(seed * 1_000_003 + pipeline_id, tf.int64)

    def decode(index: tf.Tensor, serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        ex = records.tf_parse(serialized, encoding)
        return paired_augment(ex["blur"], ex["sharp"], crop_size, tf.stack([base_seed, index]), training)

    # decode branches on settings only: no autograph rewrite (start-up time).
    decode = tf.autograph.experimental.do_not_convert(decode)
    ds = ds.enumerate().map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if skip_corrupt:
        # One checksum pass over the split names the damaged files up front; tf.data only says "skipped".
        bad = find_corrupt_shards(info, split)
        for entry in bad:
            log(f"train.skip_corrupt: skipping unreadable records in {entry}")
        if not bad:
            log(f"train.skip_corrupt: all {len(files)} {split} shards in {shards_dir} pass their checksums")
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch, drop_remainder=training, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def stack_replicas(ds: tf.data.Dataset, local_replicas: int) -> tf.data.Dataset:
    """Group per-replica batches by this worker's replica count: [local_replicas, batch, h, w, 3] elements, so
    one plain (checkpointable) iterator feeds every local replica in order."""
    return ds.batch(local_replicas, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
