"""Calls into a strategy's code, each given at most `strategy.time_limit`.

A strategy that hangs (a loop that never ends, a request without a timeout, a lock
never released) must not hang the bot with it: fills, stops, the heartbeat and the
operator's word all wait on the same loop. So its calls run in a thread of their own
(one, for the strategy's life: what it made in one call, a database connection say,
works in the next) and each is waited on for the time limit; past it, the call is a
failure like a raise (`StrategyFailed`: no entries, everything else goes on), and it
is left to finish in the background (Python cannot stop a thread). Until it does, no
other call is started: the strategy is never run twice at once. The thread is a
daemon, so a stuck call never keeps the process from exiting on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from botwarden.strategies.loading import StrategyFailed

T = TypeVar("T")


class StrategyCalls:
    def __init__(self, strategy: str, limit: float | None) -> None:
        """`limit`: seconds; None: each call runs inline, unbounded (the simulator,
        whose clock is not the wall's, and a hop to a thread per call would cost it
        dearly)."""
        self.strategy = strategy
        self.limit = limit
        self._running: asyncio.Future | None = None
        self._running_call = ""
        self._worker: _Worker | None = None

    async def call(self, call: str, work: Callable[[], T]) -> T:
        if self.limit is None:
            return work()
        if self._running is not None and not self._running.done():
            raise StrategyFailed(
                self.strategy,
                call,
                f"not called: its {self._running_call} of more than {self.limit:g}s ago"
                " has not returned yet",
                None,
            )
        if self._worker is None:
            self._worker = _Worker(self.strategy)
        self._running, self._running_call = self._worker.submit(work), call
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), self.limit)
        except TimeoutError:
            raise StrategyFailed(
                self.strategy,
                call,
                f"took more than {self.limit:g}s (strategy.time_limit); it goes on in the"
                " background, and the strategy is not called again until it returns",
                None,
            ) from None


class _Worker:
    """The strategy's thread: its calls, one after the other."""

    def __init__(self, strategy: str) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"strategy {strategy}", daemon=True).start()

    def submit(self, work: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(_seen)
        self._calls.put((loop, future, work))
        return future

    def _run(self) -> None:
        while True:
            loop, future, work = self._calls.get()
            try:
                outcome = functools.partial(future.set_result, work())
            except BaseException as error:  # (a StrategyFailed, from the loaded strategy)
                outcome = functools.partial(future.set_exception, error)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future, outcome: Callable[[], None]) -> None:
    if not future.done():  # (the loop may have given up on it)
        outcome()


def _seen(future: asyncio.Future) -> None:
    """What a call abandoned at its time limit raised later is no one's to read."""
    if not future.cancelled():
        future.exception()
