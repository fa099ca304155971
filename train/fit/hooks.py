"""Boundary hooks of a fit: things done every N steps (log, checkpoint, validate, version), and at the end.

The train function runs as many steps per call as fit in about two seconds, but never past a hook's boundary,
so every hook sees exactly the steps it asked for. Hooks run in list order at a boundary (validation before the
version that stores its result).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Hook:
    name: str
    every: int  # 0: never (but see `at_end`)
    run: Callable[[int, dict[str, float]], None]
    at_end: bool = True  # also at the last step of the run

    def due(self, step: int, last: int) -> bool:
        if self.every > 0 and step % self.every == 0:
            return True
        return self.at_end and step == last and (self.every > 0)


def steps_until_boundary(step: int, hooks: list[Hook], last: int, cap: int) -> int:
    """How many steps to run in the next call: up to `cap`, never past a hook's boundary or the last step."""
    n = min(cap, last - step)
    for hook in hooks:
        if hook.every > 0:
            n = min(n, hook.every - step % hook.every)
    return max(1, n)
