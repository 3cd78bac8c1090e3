"""The venue conformance suite: the same promises, checked against every venue.

`paper` is the simulated exchange called directly; `alpaca` is the real alpaca-py,
over HTTP, against the Alpaca emulator running on the same paper exchange. Both share
a clock the test moves, which is how a stop gets triggered on a price move.
(ccxt joins when its emulators land.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.venues.base import (
    Ambiguous,
    NotFound,
    OrderState,
    Rejected,
    Retryable,
    Venue,
)
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from tests.venues.test_paper import FEED, T0, Clock, first_time_price, order


@asynccontextmanager
async def paper_venue(tmp_path: Path, faults: str) -> AsyncIterator[tuple[Venue, Clock]]:
    clock = Clock()
    book = PaperBook(tmp_path / "paper.db", FEED, BookSettings())
    yield PaperVenue(book, clock, FaultPlan.parse(faults)), clock
    book.close()


@asynccontextmanager
async def alpaca_venue(tmp_path: Path, faults: str) -> AsyncIterator[tuple[Venue, Clock]]:
    pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")
    from tests.venues.test_alpaca_adapter import emulated_alpaca

    async with emulated_alpaca(tmp_path, faults) as opened:
        yield opened


VENUES = {"paper": paper_venue, "alpaca": alpaca_venue}


@pytest.fixture(params=sorted(VENUES))
def opened(request: pytest.FixtureRequest, tmp_path: Path):
    """`opened(faults)`: an async context manager giving (venue, clock)."""
    return lambda faults="": VENUES[request.param](tmp_path, faults)


async def test_an_order_is_found_by_its_client_order_id_open_and_filled(opened) -> None:
    async with opened() as (venue, _):
        filled = await venue.submit(order("conf-000001", qty="10"))
        assert filled.state is OrderState.FILLED
        found = await venue.order("conf-000001", "SPY")
        assert (found.state, found.filled_qty, found.venue_order_id) == (
            OrderState.FILLED, Decimal("10"), filled.venue_order_id
        )  # fmt: skip

        limit = (FEED.price("SPY", T0) * Decimal("0.9")).quantize(Decimal("0.01"))
        await venue.submit(order("conf-000002", type="limit", limit_price=limit, qty="1"))
        assert (await venue.order("conf-000002", "SPY")).state is OrderState.OPEN
        assert [o.client_order_id for o in await venue.open_orders()] == ["conf-000002"]
        with pytest.raises(NotFound):
            await venue.order("never-sent", "SPY")


async def test_positions_balance_and_fills_after_trading(opened) -> None:
    async with opened() as (venue, _):
        cash = (await venue.balance()).cash
        await venue.submit(order("conf-buy", qty="10"))
        await venue.submit(order("conf-sell", side="sell", qty="4"))
        [position] = await venue.positions()
        assert (position.symbol, position.qty) == ("SPY", Decimal("6"))
        assert (await venue.balance()).cash == cash - 6 * FEED.price("SPY", T0)
        page = await venue.fills()
        assert [(f.client_order_id, f.side.value, f.qty) for f in page.fills] == [
            ("conf-buy", "buy", Decimal("10")),
            ("conf-sell", "sell", Decimal("4")),
        ]
        assert (await venue.fills(cursor=page.cursor)).fills == []


async def test_a_resting_order_can_be_canceled(opened) -> None:
    async with opened() as (venue, _):
        limit = (FEED.price("SPY", T0) * Decimal("0.9")).quantize(Decimal("0.01"))
        await venue.submit(order("conf-limit", type="limit", limit_price=limit, qty="1"))
        assert (await venue.cancel("conf-limit", "SPY")).state is OrderState.CANCELED
        assert await venue.open_orders() == []


async def test_a_stop_triggers_on_a_price_move(opened) -> None:
    async with opened() as (venue, clock):
        await venue.submit(order("conf-entry", qty="10"))
        stop_price = (FEED.price("SPY", T0) * Decimal("0.99")).quantize(Decimal("0.01"))
        stop = await venue.submit(
            order("conf-stop", side="sell", type="stop", stop_price=stop_price, qty="10")
        )
        assert stop.state is OrderState.OPEN
        clock.now = first_time_price("SPY", T0, lambda p: p <= stop_price) + timedelta(hours=1)
        assert await venue.positions() == []
        assert (await venue.order("conf-stop", "SPY")).state is OrderState.FILLED
        assert [f.client_order_id for f in (await venue.fills()).fills] == [
            "conf-entry",
            "conf-stop",
        ]


async def test_a_reused_client_order_id_is_rejected(opened) -> None:
    async with opened() as (venue, _):
        await venue.submit(order("conf-000001"))
        with pytest.raises(Rejected, match=r"duplicate"):
            await venue.submit(order("conf-000001"))
        with pytest.raises(Rejected):
            await venue.submit(order("conf-000002", symbol="NOPE"))


@pytest.mark.parametrize(
    ("fault", "error", "applied"),
    [
        ("error_before", Retryable, False),
        ("rate_limit", Retryable, False),
        ("outage", Retryable, False),
        ("timeout_before", Ambiguous, False),
        ("timeout_after", Ambiguous, True),
    ],
)
async def test_every_fault_reaches_the_caller_as_its_error_class(
    opened, fault: str, error: type, applied: bool
) -> None:
    async with opened(f"{fault}:on=submit,nth=1") as (venue, _):
        with pytest.raises(error):
            await venue.submit(order("conf-000001"))
        if applied:
            assert (await venue.order("conf-000001", "SPY")).state is OrderState.FILLED
        else:
            with pytest.raises(NotFound):
                await venue.order("conf-000001", "SPY")
            await venue.submit(order("conf-000001"))  # known absent: the same id again
        assert len((await venue.fills()).fills) == 1, "never two orders for one intent"
