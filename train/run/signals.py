"""SIGTERM/SIGINT become a flag the training loop checks between steps, so it can checkpoint and exit cleanly.

Preemptible VMs and schedulers send SIGTERM with a grace period; Ctrl-C sends SIGINT. After saving, `trainctl fit`
exits 130 (SIGINT) or 143 (SIGTERM), the shell convention for "stopped by a signal", so `fit && evaluate` does not
go on with a half-trained run and a Job scheduler does not count a preempted run as finished.
A second signal of either kind ends the process at once with that code, without a traceback: whatever the save in
progress had written is a temp file the next run cleans up, and the previous checkpoint stays the latest.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType

HANDLED = (signal.SIGTERM, signal.SIGINT)
# A worker stopped because another one was signalled did not finish either: report it like a preemption.
OTHER_WORKER = "another worker"


def exit_code(stopped_by: str) -> int:
    """128 + the signal number (130 for SIGINT, 143 for SIGTERM, 143 when another worker was signalled)."""
    if stopped_by in signal.Signals.__members__:
        return 128 + int(signal.Signals[stopped_by])
    return 128 + int(signal.SIGTERM)


class StopFlag:
    """Context manager installing the handlers (main thread only; elsewhere the flag just stays unset)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def is_set(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if (
            self.is_set
        ):  # second signal: leave now, quietly (a KeyboardInterrupt would surface in some __del__)
            sys.stderr.write(
                f"fit: {name} again: exiting without waiting for the save; the previous checkpoint stays "
                "(rerun to resume)\n"
            )
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signal_name = name

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._restore()
