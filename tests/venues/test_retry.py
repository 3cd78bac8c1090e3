"""The retry policy: what is retried, how long it waits, and what never is."""

from __future__ import annotations

import asyncio

import pytest

from botwarden.venues.base import Ambiguous, Rejected, Retryable
from botwarden.venues.retry import NO_RETRY, READS, RetryPolicy, call_with_retry


class Script:
    """A venue call that fails as scripted, then answers; records each try."""

    def __init__(self, *outcomes: Exception | str) -> None:
        self.outcomes = list(outcomes)
        self.tries = 0

    async def __call__(self) -> str:
        self.tries += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "hang":
            await asyncio.sleep(10)
        return outcome


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


async def run(script: Script, policy: RetryPolicy, time: FakeTime, per_try: float = 1.0) -> str:
    return await call_with_retry(
        script,
        policy,
        venue="paper",
        what="positions",
        per_try=per_try,
        sleep=time.sleep,
        clock=time.clock,
        rng=lambda: 1.0,  # the top of the jitter range: delays are exact
    )


async def test_reads_retry_with_exponential_backoff_until_they_answer() -> None:
    time = FakeTime()
    busy = Retryable("paper", "rate limited")
    lost = Ambiguous("paper", "connection reset")
    script = Script(busy, lost, busy, "ok")
    assert await run(script, READS, time) == "ok"
    assert script.tries == 4
    assert time.slept == [0.25, 0.5, 1.0]


async def test_a_venue_asking_to_wait_is_obeyed() -> None:
    time = FakeTime()
    script = Script(Retryable("paper", "429", retry_after=3.0), "ok")
    await run(script, READS, time)
    assert time.slept == [3.0]


async def test_a_definitive_answer_is_never_retried() -> None:
    script = Script(Rejected("paper", "insufficient funds"), "never reached")
    with pytest.raises(Rejected):
        await run(script, READS, FakeTime())
    assert script.tries == 1


async def test_a_submission_that_may_have_landed_is_not_resent() -> None:
    script = Script(Ambiguous("paper", "timeout after sending"), "would double the position")
    with pytest.raises(Ambiguous):
        await run(script, NO_RETRY, FakeTime())
    assert script.tries == 1


async def test_a_call_that_hangs_is_ambiguous_after_its_timeout() -> None:
    script = Script("hang", "ok")
    assert await run(script, READS, FakeTime(), per_try=0.01) == "ok"
    with pytest.raises(Ambiguous, match=r"no answer within 0\.01 s"):
        await run(Script("hang"), NO_RETRY, FakeTime(), per_try=0.01)


async def test_retries_stop_at_the_deadline_and_raise_the_last_error() -> None:
    time = FakeTime()
    policy = RetryPolicy(
        attempts=100, base_delay=1, max_delay=4, deadline=10, retry_on=READS.retry_on
    )
    script = Script(*[Retryable("paper", f"outage {n}") for n in range(100)])
    with pytest.raises(Retryable, match="outage 3"):
        await run(script, policy, time)
    assert time.slept == [1, 2, 4], "the fifth try would start after 11 s, past the deadline"


async def test_an_ambiguous_cancel_is_not_retried_but_resolved_by_lookup() -> None:
    from botwarden.venues.retry import CANCELS

    script = Script(Ambiguous("paper", "answer lost"), "not open: it was canceled")
    with pytest.raises(Ambiguous):
        await run(script, CANCELS, FakeTime())
    assert script.tries == 1
    assert (
        await run(Script(Retryable("paper", "429"), "canceled"), CANCELS, FakeTime()) == "canceled"
    )
