"""Named crash points: the boundaries of the order lifecycle and of recovery, where a
test (or the demo) makes the bot die, to prove that it comes back whole.

A point is armed in-process (`CRASH.arm(name)`: reaching it raises `SimulatedCrash`,
which no `except Exception` in the engine swallows) or, for a real process, by the
environment: `BOTWARDEN_CRASH_AT=<point>[:<n>]` kills the process with SIGKILL the
n-th time (default: first) it reaches the point. Unarmed, a point costs a dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "BOTWARDEN_CRASH_AT"

_PURPOSES = ("entry", "exit", "stop", "take_profit")
POINTS = frozenset(
    [f"before_{p}_stored" for p in _PURPOSES]
    + [f"{p}_stored_not_sent" for p in _PURPOSES]
    + [f"{p}_sent_answer_not_stored" for p in _PURPOSES]
    + [
        "fill_seen_not_recorded",  # the venue filled it; fill, position, trade not written
        "fill_recorded",  # fill, position (or closed trade) written; nothing after it yet
        "recovery_loaded",
        "recovery_unknowns_resolved",
        "recovery_reconciled",
        "recovery_protected",
    ]
)


class SimulatedCrash(BaseException):
    """The process 'died' here. A BaseException: nothing in the engine may catch it."""


class CrashPoints:
    def __init__(self) -> None:
        self._armed: dict[str, tuple[int, bool]] = {}
        self._hits: Counter[str] = Counter()

    def arm(self, point: str, nth: int = 1, kill: bool = False) -> None:
        """Crash the `nth` time `point` is reached: raise, or SIGKILL the process."""
        if point not in POINTS:
            raise ValueError(f"no crash point {point!r}; known: {', '.join(sorted(POINTS))}")
        self._armed[point] = (nth, kill)
        self._hits[point] = 0

    def disarm(self) -> None:
        self._armed.clear()
        self._hits.clear()

    def reached(self, point: str) -> None:
        armed = self._armed.get(point)
        if armed is None:
            return
        self._hits[point] += 1
        nth, kill = armed
        if self._hits[point] != nth:
            return
        del self._armed[point]
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise SimulatedCrash(point)

    def arm_from_environment(self) -> None:
        spec = os.environ.get(ENV)
        if spec:
            point, _, nth = spec.partition(":")
            self.arm(point, int(nth or 1), kill=True)


CRASH = CrashPoints()
"""The process's crash points (armed from the environment by `botwarden run`)."""
