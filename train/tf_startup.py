"""Import TensorFlow without its start-up noise on the terminal.

`import tensorflow` and the first device query print lines from C++ straight to file descriptor 2 (the absl
"All log messages before absl::InitializeLog()" banner, "Could not find cuda drivers", "failed call to cuInit",
CPU feature notes), before and regardless of TF_CPP_MIN_LOG_LEVEL. `import_tensorflow` redirects fd 2 to a temp
file for both steps, then replays every captured line that is not known start-up noise, so Python warnings and
real errors still reach the user; if the import fails, everything is replayed. With `--debug` nothing is hidden.
The CLI calls it before anything imports TensorFlow, and so does train.run.rundir for remote paths.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType

from pipeline.console import debug_enabled

# C++ sources whose warnings and errors at import time are about the machine, not about the user's run.
_NOISY_SOURCES = (
    "cudart_stub.cc",  # Could not find cuda drivers on your machine, GPU will not be used.
    "cuda_platform.cc",  # failed call to cuInit (no GPU)
    "cuda_diagnostics.cc",  # the cuInit failure's diagnostics (hostname, driver version)
    "cuda_dnn.cc",  # Unable to register cuDNN factory: ... already been registered
    "cuda_fft.cc",
    "cuda_blas.cc",
    "computation_placer.cc",
    "cpu_feature_guard.cc",
)
_GLOG = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w.]+):\d+\] ")
_NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(
        r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
    ),
)

_imported = False


def is_startup_noise(line: str) -> bool:
    """True for a line TensorFlow prints at start-up about the machine: informational glog lines, the absl
    banner, CUDA probing on a machine without a GPU, CPU feature notes."""
    line = line.rstrip("\r\n")
    match = _GLOG.match(line)
    if match:
        severity, source = match.groups()
        return severity == "I" or source in _NOISY_SOURCES
    return any(pattern.match(line) for pattern in _NOISE)


@contextlib.contextmanager
def filtered_fd2() -> Iterator[None]:
    """Send fd 2 to a temp file for the block; afterwards replay what is not start-up noise (all of it on error)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            shown = lines if failed else [line for line in lines if not is_startup_noise(line)]
            if shown:
                sys.stderr.write("".join(shown))
                sys.stderr.flush()


def import_tensorflow() -> ModuleType:
    """`import tensorflow` and list its devices (where CUDA is probed) with the start-up noise filtered out."""
    global _imported
    if _imported or debug_enabled():
        import tensorflow as tf

        return tf
    with filtered_fd2():
        import tensorflow as tf

        tf.config.list_physical_devices()
    _imported = True
    return tf
