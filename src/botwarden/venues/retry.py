"""One retry policy for venue calls, declared where the call is made.

Reads are safe to repeat, so they retry `Retryable` and `Ambiguous` errors with
exponential backoff, full jitter, a cap and an overall deadline. Cancels retry only
`Retryable` ones (an ambiguous cancel is resolved by looking the order up). An order
submission is never retried here: a submission that ends `Ambiguous` goes back to the
caller, who looks the order up by its client order id (resending under a new id is how
bots double their positions).

Every try is bounded by a timeout; a try that runs out is `Ambiguous`, since the
request may have left.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from botwarden.venues.base import Ambiguous, Retryable, VenueError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.25
    """Seconds before the second try; doubled for each try after it, before jitter."""
    max_delay: float = 5.0
    deadline: float = 30.0
    """No try starts after this many seconds from the first."""
    retry_on: tuple[type[VenueError], ...] = (Retryable,)


READS = RetryPolicy(retry_on=(Retryable, Ambiguous))
"""For reads: asking again changes nothing at the venue."""

CANCELS = RetryPolicy(retry_on=(Retryable,))
"""For cancels: retried only when nothing reached the venue. After an ambiguous
cancel the order is looked up instead: a retry would answer "not open" for an order
the first try did cancel, which reads like a fill."""

NO_RETRY = RetryPolicy(attempts=1)
"""For order submissions."""


async def with_time_limit(call: Awaitable[T], seconds: float, venue: str, what: str) -> T:
    """`call`, or `Ambiguous` if it has not answered within `seconds`."""
    try:
        return await asyncio.wait_for(call, seconds)
    except TimeoutError:
        raise Ambiguous(venue, f"{what}: no answer within {seconds:g} s") from None


async def call_with_retry(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    venue: str,
    what: str,
    per_try: float,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
) -> T:
    """Run `operation()` (a fresh call each try, each limited to `per_try` seconds)
    under `policy`; the last error is raised when the tries or the deadline run out."""
    started = clock()
    for attempt in range(1, policy.attempts + 1):
        try:
            return await with_time_limit(operation(), per_try, venue, what)
        except policy.retry_on as error:
            delay = rng() * min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
            if isinstance(error, Retryable) and error.retry_after:
                delay = max(delay, error.retry_after)
            if attempt == policy.attempts or clock() + delay - started > policy.deadline:
                raise
            log.info("%s: %s failed (%s); try %d in %.2f s", venue, what, error, attempt + 1, delay)
            await sleep(delay)
    raise AssertionError("unreachable: the last try returns or raises")
