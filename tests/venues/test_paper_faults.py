"""Injected faults: each kind surfaces as the error class a real venue's would."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.errors import ConfigError
from botwarden.venues.base import Ambiguous, NotFound, OrderState, Retryable
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultKind, FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from tests.venues.test_paper import FEED, T0, Clock, order


def venue_with(tmp_path: Path, spec: str, clock: Clock | None = None, seed: int = 1) -> PaperVenue:
    book = PaperBook(tmp_path / "paper.db", FEED, BookSettings())
    return PaperVenue(book, clock or Clock(), FaultPlan.parse(spec, seed=seed))


async def test_an_answer_lost_after_acceptance_leaves_the_order_at_the_venue(
    tmp_path: Path,
) -> None:
    venue = venue_with(tmp_path, "timeout_after:on=submit,nth=1")
    with pytest.raises(Ambiguous):
        await venue.submit(order("bot-000001"))
    # The classic case: the bot never heard back, yet the order filled.
    assert (await venue.order("bot-000001", "SPY")).state is OrderState.FILLED
    assert len(await venue.positions()) == 1
    venue.book.close()


async def test_a_request_lost_before_acceptance_leaves_nothing(tmp_path: Path) -> None:
    venue = venue_with(tmp_path, "timeout_before:on=submit,nth=1; error_before:on=submit,nth=2")
    with pytest.raises(Ambiguous):
        await venue.submit(order("bot-000001"))
    with pytest.raises(Retryable):
        await venue.submit(order("bot-000001"))
    with pytest.raises(NotFound):
        await venue.order("bot-000001", "SPY")
    await venue.submit(order("bot-000001"))  # the same id, sent again once known absent
    assert len((await venue.fills()).fills) == 1
    venue.book.close()


async def test_a_server_error_may_or_may_not_have_applied_the_order(tmp_path: Path) -> None:
    outcomes = set()
    for seed in range(12):
        venue = venue_with(tmp_path / str(seed), "server_error:on=submit,nth=1", seed=seed)
        with pytest.raises(Ambiguous):
            await venue.submit(order("bot-000001"))
        try:
            await venue.order("bot-000001", "SPY")
            outcomes.add("applied")
        except NotFound:
            outcomes.add("not applied")
        venue.book.close()
    assert outcomes == {"applied", "not applied"}


async def test_rate_limits_and_outages_are_retryable(tmp_path: Path) -> None:
    clock = Clock()
    spec = (
        "rate_limit:on=positions,nth=1,retry_after=2;"
        " outage:from=2026-03-02T15:00Z,to=2026-03-02T15:05Z"
    )
    venue = venue_with(tmp_path, spec, clock)
    with pytest.raises(Retryable) as limited:
        await venue.positions()
    assert limited.value.retry_after == 2
    assert await venue.positions() == []
    clock.now = T0 + timedelta(minutes=31)  # 15:01, inside the outage
    for call in (venue.positions(), venue.balance(), venue.submit(order("c1"))):
        with pytest.raises(Retryable, match="outage"):
            await call
    clock.now = T0 + timedelta(minutes=36)
    assert await venue.positions() == []
    venue.book.close()


async def test_a_partial_fill_completes_at_the_next_look(tmp_path: Path) -> None:
    clock = Clock()
    venue = venue_with(tmp_path, "partial_fill:fraction=0.3,times=1", clock)
    first = await venue.submit(order("bot-000001", qty="10"))
    assert (first.state, first.filled_qty) == (OrderState.PARTIALLY_FILLED, Decimal("3"))
    clock.now = T0 + timedelta(seconds=1)
    done = await venue.order("bot-000001", "SPY")
    assert (done.state, done.filled_qty) == (OrderState.FILLED, Decimal("10"))
    assert [f.qty for f in (await venue.fills()).fills] == [Decimal("3"), Decimal("7")]
    venue.book.close()


async def test_a_stale_lookup_hides_a_fresh_order_for_a_while(tmp_path: Path) -> None:
    clock = Clock()
    venue = venue_with(tmp_path, "stale_lookup:seconds=30", clock)
    await venue.submit(order("bot-000001"))
    with pytest.raises(NotFound):
        await venue.order("bot-000001", "SPY")
    clock.now = T0 + timedelta(seconds=30)
    assert (await venue.order("bot-000001", "SPY")).state is OrderState.FILLED
    venue.book.close()


async def test_the_same_seed_gives_the_same_faults(tmp_path: Path) -> None:
    def history(seed: int) -> list[FaultKind | None]:
        plan = FaultPlan.parse("rate_limit:p=0.3; timeout_after:on=submit,p=0.3", seed=seed)
        return [
            (rule.kind if (rule := plan.draw(op, T0)) else None)
            for op in ["submit", "positions", "fills"] * 30
        ]

    assert history(5) == history(5)
    assert history(5) != history(6)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("meteor_strike", "unknown fault 'meteor_strike'; use one of error_before"),
        ("rate_limit:p=2", "'p=2': a probability is between 0 and 1"),
        ("outage:from=2026-03-02T15:00", "give the time zone"),
        ("slow:speed=3", "unknown option"),
        ("clock_skew:by=8 days", "clock_skew: 'by=8 days': give by= a number and a unit"),
        ("clock_skew:p=1", "clock_skew: 'p=1': give by= a number and a unit"),
    ],
)
def test_a_bad_fault_spec_is_one_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        FaultPlan.parse(spec, where="--faults")


async def test_a_slow_answer_still_did_the_work(tmp_path: Path) -> None:
    import asyncio

    venue = venue_with(tmp_path, "slow:on=submit,seconds=5,nth=1")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(venue.submit(order("bot-000001")), 0.05)
    assert (await venue.order("bot-000001", "SPY")).state is OrderState.FILLED
    venue.book.close()


async def test_stale_lookups_obey_their_options_and_hide_only_from_lookups(tmp_path: Path) -> None:
    never = venue_with(tmp_path / "never", "stale_lookup:seconds=30,p=0")
    await never.submit(order("a"))
    assert (await never.order("a", "SPY")).client_order_id == "a"
    never.book.close()

    venue = venue_with(tmp_path / "stale", "stale_lookup:seconds=30")
    limit = (FEED.price("SPY", T0) * Decimal("0.9")).quantize(Decimal("0.01"))
    await venue.submit(order("resting", type="limit", limit_price=limit))
    with pytest.raises(NotFound):
        await venue.order("resting", "SPY")
    assert (await venue.cancel("resting", "SPY")).state is OrderState.CANCELED
    venue.book.close()
