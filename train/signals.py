"""SIGTERM/SIGINT become a flag the training loop checks between steps, so it can checkpoint and exit cleanly.

Preemptible VMs and schedulers send SIGTERM with a grace period; Ctrl-C sends SIGINT. A second signal of either
kind restores the default behaviour (an impatient second Ctrl-C interrupts at once).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

HANDLED = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Context manager installing the handlers (main thread only; elsewhere the flag just stays unset)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def is_set(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.is_set:  # second signal: give the default behaviour back and re-deliver
            self._restore()
            signal.raise_signal(signum)
            return
        self.signal_name = signal.Signals(signum).name

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
