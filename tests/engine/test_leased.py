"""Nothing leaves for the venue without the lease, and nothing outlasts it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from botwarden.engine.leased import LeasedVenue
from botwarden.state.lease import Holder, LeaseExpired, Tenure
from botwarden.venues.base import Ambiguous


class SharedLeases:
    """A lease the store always renews (what these tests are about is the tenure's
    own account of its time)."""

    shared = True

    def describe(self) -> str:
        return "a shared store"

    async def acquire(self, *args: Any, **kwargs: Any) -> int:
        return 1

    async def renew(self, *args: Any) -> None:
        pass


class SlowVenue:
    """A venue whose adapter keeps at a cancel (retries) for `seconds`."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[str] = []

    async def cancel(self, client_order_id: str, symbol: str) -> str:
        self.calls.append(client_order_id)
        await asyncio.sleep(self.seconds)
        return "canceled"

    async def balance(self) -> str:
        return "read"


async def tenure(now: list[float], ttl: float = 1.0) -> Tenure:
    held = Tenure(SharedLeases(), "bot", ttl, Holder("h", 1, "t"), lambda: now[0])  # type: ignore[arg-type]
    await held.acquire()
    return held


async def test_a_call_outlasting_the_lease_is_cut_short_as_ambiguous() -> None:
    venue = SlowVenue(seconds=5)
    leased = LeasedVenue(venue, await tenure([0.0], ttl=0.25))  # type: ignore[arg-type]
    with pytest.raises(Ambiguous, match=r"the lease ran out after 0\.\d s"):
        await leased.cancel("bot-1", "SPY")
    assert venue.calls == ["bot-1"]


async def test_nothing_is_sent_once_the_lease_is_not_renewed_and_reads_still_pass() -> None:
    now = [0.0]
    venue = SlowVenue(seconds=0)
    leased = LeasedVenue(venue, await tenure(now))  # type: ignore[arg-type]
    assert await leased.cancel("bot-1", "SPY") == "canceled"
    now[0] = 0.81  # past 80% of the ttl since the last renewal was sent
    with pytest.raises(LeaseExpired):
        await leased.cancel("bot-2", "SPY")
    assert venue.calls == ["bot-1"], "refused before it left"
    assert await leased.balance() == "read"
