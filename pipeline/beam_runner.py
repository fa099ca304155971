"""Beam options for the shard stage, and the local runner: Beam's in-process FnApiRunner with one quiet SDK
worker process per core.

Options come from pipeline.yaml (`runner`, `beam_options`) and then the extra command-line args, so
`--runner DataflowRunner --project p ...` or `--runner FlinkRunner --flink_master host:8081` pass straight through.

Beam 2.77's DirectRunner first tries to download the Prism runner (NOTES.md), so the local default is the
FnApiRunner it would fall back to, built the same way (pipeline options reach the workers). In
`multi_processing` mode its workers run through `python -m pipeline.beam_runner`, which is Beam's own SDK
harness entry point minus the per-process log chatter (Beam's import-time apitools warning turns on a stderr
handler at INFO in every worker); worker logs at `--default_sdk_harness_log_level` and above still reach the
main process, and DoFns print their progress lines to stderr directly. Workers ignore SIGINT and SIGTERM: on
Ctrl-C the main process ends them (pipeline.interrupts).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from typing import Any

from pipeline.config import ShardConfig

LOCAL_RUNNERS = ("directrunner", "direct", "fnapirunner")
LOCAL_RUNNER = "FnApiRunner"
# Beam resolves only the runners in its own list by short name; DaskRunner (extra apache-beam[dask]) is not one.
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
RUNNER_PATHS = {"daskrunner": DASK_RUNNER, "dask": DASK_RUNNER}
_DASK_PARTITION_FLAGS = ("dask_npartitions", "dask_partition_size")


class _DropMessage(logging.Filter):
    """Drops log records whose message starts with a known, harmless text."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _add_filter(logger: logging.Logger, new: _DropMessage) -> None:
    if not any(isinstance(f, _DropMessage) and f.prefix == new.prefix for f in logger.filters):
        logger.addFilter(new)


def quiet_beam_import() -> None:
    """Drop Beam's harmless import-time 'apitools not found' warning (call before importing apache_beam)."""
    _add_filter(logging.getLogger(), _DropMessage("apitools not found"))


# Loggers that repeat a failing DoFn's traceback: in-process bundles log it from runners.common, and the job
# service forwards what worker processes log. The failure itself still reaches the caller as one exception.
FAILURE_LOGGERS = ("apache_beam.runners.common", "apache_beam.runners.portability.local_job_service")


@contextlib.contextmanager
def quiet_failures(enabled: bool = True) -> Iterator[None]:
    """While a pipeline runs, keep Beam's logged copies of a DoFn's traceback off stderr (the CLI prints one
    `error:` line instead; `--debug` passes `enabled=False` to keep them)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in FAILURE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def options_to_flags(options: dict[str, Any]) -> list[str]:
    """pipeline.yaml `beam_options` -> Beam flags (`{num_workers: 4}` -> `--num_workers=4`; lists repeat)."""
    flags = []
    for key, value in options.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is True:
                flags.append(f"--{key}")
            elif v is False or v is None:
                continue
            else:
                flags.append(f"--{key}={json.dumps(v) if isinstance(v, dict) else v}")
    return flags


def _flag_given(flags: list[str], name: str) -> bool:
    return any(f == f"--{name}" or f.startswith(f"--{name}=") for f in flags)


def pipeline_options(cfg: ShardConfig, beam_args: list[str]) -> Any:
    """Beam options from the config runner, its `beam_options`, then extra command-line args (last wins).

    The local default "DirectRunner" becomes the in-process FnApiRunner with one worker process per core
    (Beam 2.77's DirectRunner would first try to download the Prism runner).
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    flags = [f"--runner={cfg.runner}", *options_to_flags(cfg.beam_options), *beam_args]
    runner = PipelineOptions(flags).view_as(StandardOptions).runner or cfg.runner
    if runner.lower() in LOCAL_RUNNERS:
        flags.append(f"--runner={LOCAL_RUNNER}")
        defaults = {
            "direct_running_mode": "multi_processing",
            "direct_num_workers": "0",  # all usable cores
            "default_sdk_harness_log_level": "ERROR",  # workers print their own progress lines
        }
        flags += [f"--{k}={v}" for k, v in defaults.items() if not _flag_given(flags, k)]
    return PipelineOptions(flags)


def runner_path(name: str) -> str:
    """The name Beam's `create_runner` resolves: our short names for runners outside Beam's list, else `name`."""
    return RUNNER_PATHS.get(name.lower(), name)


def is_dask(name: str) -> bool:
    return runner_path(name) == DASK_RUNNER


def dask_partitions(flags: list[str], partitions: int) -> list[str]:
    """`flags` plus `--dask_npartitions=N` unless a partitioning flag is given. DaskRunner puts up to 128
    elements in one partition by default, and a partition runs on one worker: a manifest of a few hundred pairs
    would be sharded by one process. N = the number of shards spreads the shards over the workers."""
    if any(_flag_given(flags, name) for name in _DASK_PARTITION_FLAGS):
        return flags
    return [*flags, f"--dask_npartitions={max(1, partitions)}"]


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


WORKER_MODULE = "pipeline.beam_runner"


def worker_command() -> str:
    """The shell command Beam runs per worker. SIGINT and SIGTERM are ignored before Python starts (exec keeps
    an ignored disposition, and Python then installs no KeyboardInterrupt handler): a Ctrl-C reaching the whole
    process group leaves the workers alone, and the main process ends them (pipeline.interrupts)."""
    return f"trap '' INT TERM; exec {shlex.quote(sys.executable)} -m {WORKER_MODULE}"


def local_runner(options: Any) -> Any:
    """A FnApiRunner for `options` (DirectOptions decide the mode and worker count; 0 workers = all cores)."""
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    direct = options.view_as(DirectOptions)
    if not direct.direct_num_workers:
        direct.direct_num_workers = usable_cores()
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    if direct.direct_running_mode != "multi_processing":
        return fn_runner.FnApiRunner(provision_info=provision)
    # Our worker command instead of Beam's: FnApiRunner keeps a given environment in `in_memory` mode, and
    # still starts `direct_num_workers` processes for it (it only warns that the mode name looks odd).
    direct.direct_running_mode = "in_memory"
    env = SubprocessSDKEnvironment.from_command_string(worker_command())
    _add_filter(
        logging.getLogger(fn_runner.__name__), _DropMessage("If direct_num_workers is not equal to 1")
    )
    return fn_runner.FnApiRunner(default_environment=env, provision_info=provision)


class _NoTracebacks:
    """Worker stderr: the SDK harness prints a failed bundle's traceback here as well as sending it to the runner,
    which raises it in the main process (one `error:` line at the CLI). Drop that copy; pass everything else."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._dropping = False

    def write(self, text: str) -> int:
        was, self._dropping = self._dropping, text.startswith("Traceback (most recent call last):")
        if self._dropping or (was and text == "\n"):  # print() writes the trailing newline separately
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def worker_main() -> None:
    """Beam's SDK worker, without the stderr log handler Beam's import would install, and without its printed
    copy of a failing bundle's traceback unless debugging (GOPRO_DEBUG=1, which `--debug` exports)."""
    from pipeline.console import debug_enabled

    for signum in (signal.SIGINT, signal.SIGTERM):  # worker_command ignores them already; keep it so
        signal.signal(signum, signal.SIG_IGN)
    logging.getLogger().addHandler(logging.NullHandler())  # basicConfig() is a no-op once root has a handler
    if not debug_enabled():
        sys.stderr = _NoTracebacks(sys.stderr)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    worker_main()
