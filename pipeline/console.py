"""Terminal output shared by both CLIs: one-line errors with exit codes, progress bars or plain log lines.

On a terminal progress is a rich bar; otherwise (CI, logs, pipes) it is a quiet line every few seconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import typer

from pipeline.errors import GoproError
from pipeline.interrupts import Terminated, exit_code

T = TypeVar("T")

_debug = False


def set_debug(flag: bool) -> None:
    """Turn tracebacks on (`--debug` or GOPRO_DEBUG=1); exported, so worker processes show theirs too."""
    global _debug
    _debug = flag
    if flag:
        os.environ["GOPRO_DEBUG"] = "1"


def debug_enabled() -> bool:
    return _debug or os.environ.get("GOPRO_DEBUG", "") not in ("", "0", "false", "False")


def is_tty() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def log(message: str) -> None:
    """A line of progress or summary for the user (stderr keeps stdout clean for tables and JSON). One write per
    line: worker processes sharing the stream (Beam, Dask) never splice their lines together."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def error_line(exc: BaseException) -> str:
    """The one line shown for an error: names the file, key or value it is about."""
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or exc.__class__.__name__
        return f"{exc.filename}: {reason}"
    return str(exc) or exc.__class__.__name__


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn project errors and OS errors (disk full, read-only dirs) into `error: ...` and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except GoproError as exc:
        if debug_enabled():
            raise
        log(f"error: {error_line(exc)}")
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        if debug_enabled():
            raise
        log(f"error: {error_line(exc)}")
        raise typer.Exit(1) from None
    except (KeyboardInterrupt, Terminated) as exc:
        log("interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated (SIGTERM)")
        raise typer.Exit(exit_code(exc)) from None
    except Exception as exc:
        # TensorFlow's own errors (out of memory, a file vanishing mid-run) carry a message a user can act on;
        # anything else is a bug and keeps its traceback.
        if debug_enabled() or not type(exc).__module__.startswith("tensorflow"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log(f"error: {type(exc).__name__}: {message}")
        raise typer.Exit(1) from None


def track(items: Iterable[T], total: int | None, description: str, every_s: float = 5.0) -> Iterator[T]:
    """Yield `items` while showing progress: a rich bar on a TTY, else a line every `every_s` seconds."""
    if is_tty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.advance(task)
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            of = f"/{total}" if total else ""
            log(f"{description}: {done}{of} ({done / (now - start):.1f}/s)")
