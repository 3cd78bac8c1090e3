"""The alpaca adapter: real alpaca-py over real HTTP to the Alpaca emulator, and every
failure mapped to the error class that tells the engine what it may do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")

from botwarden.venues.alpaca import AlpacaVenue
from botwarden.venues.base import (
    Ambiguous,
    AuthError,
    NotFound,
    OrderState,
    Rejected,
    Retryable,
)
from botwarden.venues.emulators.server import serving
from tests.state.test_crash import free_port
from tests.support.alpaca import adapter, emulated_alpaca, start
from tests.venues.test_paper import FEED, T0, Clock, order


@pytest.fixture
async def alpaca(tmp_path: Path) -> AsyncIterator[tuple[AlpacaVenue, Clock]]:
    async with emulated_alpaca(tmp_path) as opened:
        yield opened


async def test_orders_positions_and_fills_through_alpaca_py(alpaca) -> None:
    venue, _ = alpaca
    filled = await venue.submit(order("bot-000001", qty="10"))
    assert (filled.state, filled.filled_qty) == (OrderState.FILLED, Decimal("10"))
    assert (await venue.order("bot-000001", "SPY")).venue_order_id == filled.venue_order_id

    [position] = await venue.positions()
    assert (position.symbol, position.qty, position.avg_entry_price) == (
        "SPY", Decimal("10"), FEED.price("SPY", T0)
    )  # fmt: skip
    page = await venue.fills()
    assert [(f.client_order_id, f.qty) for f in page.fills] == [("bot-000001", Decimal("10"))]
    assert (await venue.fills(cursor=page.cursor)).fills == []

    stop_price = (FEED.price("SPY", T0) * Decimal("0.95")).quantize(Decimal("0.01"))
    stop = await venue.submit(order("bot-stop", side="sell", type="stop", stop_price=stop_price))
    assert stop.state is OrderState.OPEN
    assert [o.client_order_id for o in await venue.open_orders()] == ["bot-stop"]
    assert (await venue.cancel("bot-stop", "SPY")).state is OrderState.CANCELED
    assert (await venue.balance()).cash < Decimal("100000")


async def test_prices_and_bars_come_from_the_data_api(alpaca) -> None:
    venue, _ = alpaca
    assert await venue.last_price("SPY") == FEED.price("SPY", T0)
    bars = await venue.bars("SPY", "1d", 5)
    assert len(bars) == 5
    assert all(b.low <= b.close <= b.high for b in bars)


@pytest.mark.parametrize(("timeframe", "limit"), [("1h", 100), ("4h", 60), ("1d", 30), ("1w", 10)])
async def test_bars_are_the_newest_completed_ones_up_to_alpacas_now(
    tmp_path: Path, timeframe: str, limit: int
) -> None:
    """As many bars as asked, oldest first, the newest the last one completed by
    Alpaca's own clock (read at `GET /v2/clock`), wherever the host's clock is: asked
    newest first from far enough back (a stock's bars leave out nights, weekends and
    holidays), never counted from the host's now."""
    from botwarden.domain.timeframes import last_completed_bar_open, width

    clock = Clock()
    exchange, app = start(tmp_path, clock=clock)
    with serving(app) as url:
        venue = adapter(url, host_clock=lambda: clock.now + timedelta(days=200))
        await venue.connect()
        bars = await venue.bars("SPY", timeframe, limit)
        newest = last_completed_bar_open(timeframe, clock.now)
        assert [b.time for b in bars] == [
            newest - width(timeframe) * n for n in range(limit - 1, -1, -1)
        ]
        reading = await venue.read_clock()
        assert reading.venue_time == clock.now and reading.skewed
        assert "200.0 days behind" in reading.describe("alpaca")
        await venue.close()
    exchange.book.close()


async def test_refusals_are_rejected_and_missing_orders_not_found(alpaca) -> None:
    venue, _ = alpaca
    await venue.submit(order("bot-000001"))
    with pytest.raises(Rejected) as duplicate:
        await venue.submit(order("bot-000001"))
    assert duplicate.value.code == "40010001"
    with pytest.raises(Rejected, match="insufficient funds"):
        await venue.submit(order("bot-000002", qty="1000000"))
    with pytest.raises(NotFound):
        await venue.order("never-sent", "SPY")


async def test_an_answer_lost_after_acceptance_is_ambiguous_and_never_resent(
    tmp_path: Path,
) -> None:
    venue, app = start(tmp_path, "timeout_after:on=submit,nth=1")
    with serving(app) as url:
        alpaca = adapter(url)
        await alpaca.connect()
        with pytest.raises(Ambiguous):
            await alpaca.submit(order("bot-000001"))
        assert len((await alpaca.fills()).fills) == 1, "sent once, filled once"
        assert (await alpaca.order("bot-000001", "SPY")).state is OrderState.FILLED
        await alpaca.close()
    venue.book.close()


async def test_an_answer_that_never_comes_is_ambiguous_after_the_timeout(tmp_path: Path) -> None:
    venue, app = start(tmp_path, "slow:on=submit,seconds=3,nth=1")
    with serving(app) as url:
        alpaca = adapter(url, timeout=0.5)
        await alpaca.connect()
        with pytest.raises(Ambiguous, match="no answer"):
            await alpaca.submit(order("bot-000001"))
        assert (await alpaca.order("bot-000001", "SPY")).state is OrderState.FILLED
        await alpaca.close()
    venue.book.close()


async def test_rate_limits_and_outages_are_retried_for_reads(tmp_path: Path) -> None:
    venue, app = start(tmp_path, "rate_limit:on=positions,nth=1,retry_after=0.01")
    with serving(app) as url:
        alpaca = adapter(url)
        await alpaca.connect()
        assert await alpaca.positions() == []  # the 429 was retried by our policy
        await alpaca.close()
    venue.book.close()


async def test_wrong_keys_are_an_auth_error_at_connect(tmp_path: Path) -> None:
    venue, app = start(tmp_path)
    with serving(app) as url, pytest.raises(AuthError, match="401"):
        await adapter(url, key="PKWRONG").connect()
    venue.book.close()


async def test_a_venue_that_cannot_be_reached_is_retryable() -> None:
    with pytest.raises(Retryable, match="could not connect"):
        await adapter(f"http://127.0.0.1:{free_port()}").connect()


async def test_fills_since_a_time(alpaca) -> None:
    venue, clock = alpaca
    await venue.submit(order("early"))
    clock.now += timedelta(minutes=5)
    await venue.submit(order("late"))
    later = await venue.fills(since=T0 + timedelta(minutes=1))
    assert [f.client_order_id for f in later.fills] == ["late"]


async def test_recovery_names_fills_with_a_few_bulk_calls_not_one_per_order(tmp_path: Path) -> None:
    """Alpaca's fills name only the order; a restarted bot must learn the client order
    ids without asking order by order."""
    clock = Clock()
    exchange, app = start(tmp_path, clock=clock)
    with serving(app) as url:
        before = adapter(url)
        await before.connect()
        for n in range(30):
            clock.now += timedelta(seconds=1)
            await before.submit(order(f"bot-{n:06d}", qty="1"))
        await before.close()

        restarted = adapter(url)  # knows nothing yet
        await restarted.connect()
        app.state.calls.clear()
        fills = (await restarted.fills()).fills
        assert [f.client_order_id for f in fills] == [f"bot-{n:06d}" for n in range(30)]
        assert dict(app.state.calls) == {
            "GET /v2/account/activities/FILL": 1,
            "GET /v2/orders": 1,
        }
        await restarted.close()
    exchange.book.close()


async def test_fills_come_in_pages_and_say_when_more_are_waiting(tmp_path: Path) -> None:
    clock = Clock()
    exchange, app = start(tmp_path, clock=clock)
    with serving(app) as url:
        venue = adapter(url)
        await venue.connect()
        for n in range(101):
            await venue.submit(order(f"bot-{n:06d}", qty="1"))
        first = await venue.fills()
        assert (len(first.fills), first.more) == (100, True), "Alpaca's largest page"
        rest = await venue.fills(cursor=first.cursor)
        assert ([f.client_order_id for f in rest.fills], rest.more) == (["bot-000100"], False)
        await venue.close()
    exchange.book.close()


@asynccontextmanager
async def a_stop_to_move(tmp_path: Path, held: str):
    """The adapter on an emulator where it holds `held` SPY and a stop `bot-1` for 10
    of them: (adapter, exchange, emulator app, the stop's request, two stop prices)."""
    clock = Clock()
    exchange, app = start(tmp_path, clock=clock)
    with serving(app) as url:
        app.state.url = url
        venue = adapter(url)
        await venue.connect()
        price = FEED.price("SPY", T0)
        stop_at = [(price * Decimal(f)).quantize(Decimal("0.01")) for f in ("0.95", "0.96")]
        await venue.submit(order("bot-entry", qty=held))
        first = order("bot-1", side="sell", type="stop", qty="10", stop_price=stop_at[0])
        await venue.submit(first)
        yield venue, exchange, app, first, stop_at
        await venue.close()
    exchange.book.close()


async def test_a_stop_is_moved_by_alpacas_replace_in_one_request(tmp_path: Path) -> None:
    """Alpaca holds the shares a stop sells (a second stop is refused): the adapter
    moves one with Alpaca's replace, which Alpaca shows as `replaced` by the new order,
    under the bot's new client id. A fractional quantity (before or after), which
    Alpaca does not change, is canceled and placed again; an order no longer open is
    refused."""
    from tests.support.alpaca import client

    async with a_stop_to_move(tmp_path, held="12.5") as (venue, exchange, app, first, stop_at):
        url = app.state.url
        moved = order("bot-2", side="sell", type="stop", qty="10", stop_price=stop_at[1])
        taken = await venue.replace(first, moved)
        assert (taken.client_order_id, taken.stop_price) == ("bot-2", stop_at[1])
        old = client(url).get_order_by_client_id("bot-1")
        assert (old.status.value, str(old.replaced_by)) == ("replaced", taken.venue_order_id)
        assert exchange.book.order("bot-1").reason == "replaced by bot-2", "in one change"
        assert [o.client_order_id for o in await venue.open_orders()] == ["bot-2"]

        part = order("bot-3", side="sell", type="stop", qty="12.5", stop_price=stop_at[1])
        fractional = await venue.replace(moved, part)
        assert (fractional.client_order_id, fractional.qty) == ("bot-3", Decimal("12.5"))
        assert exchange.book.order("bot-2").reason is None, "canceled, not replaced"
        assert exchange.book.order("bot-2").state is OrderState.CANCELED
        whole = order("bot-4", side="sell", type="stop", qty="12", stop_price=stop_at[0])
        back = await venue.replace(part, whole)  # from a fraction: canceled and placed too
        assert exchange.book.order("bot-3").reason is None
        assert [o.client_order_id for o in exchange.book.open_orders()] == [back.client_order_id]

        again = order("bot-5", side="sell", type="stop", qty="10", stop_price=stop_at[0])
        with pytest.raises(Rejected, match="not open"):
            await venue.replace(first, again)  # replaced already: not open
        assert [o.client_order_id for o in exchange.book.open_orders()] == ["bot-4"]


async def test_a_stop_alpaca_has_not_routed_yet_is_canceled_and_placed_instead(
    tmp_path: Path,
) -> None:
    """Outside market hours Alpaca holds orders `accepted`, not sent to an exchange, and
    refuses to replace one ("order isn't sent to exchange yet"): the adapter cancels it
    and places the new one (a stock's stop cannot fire then anyway)."""
    async with a_stop_to_move(tmp_path, held="10") as (venue, exchange, app, first, stop_at):
        app.state.routed = False  # the market closes
        moved = order("bot-2", side="sell", type="stop", qty="10", stop_price=stop_at[1])
        taken = await venue.replace(first, moved)
        assert (taken.client_order_id, taken.stop_price) == ("bot-2", stop_at[1])
        assert exchange.book.order("bot-1").state is OrderState.CANCELED
        assert exchange.book.order("bot-1").reason is None, "canceled, not replaced"
        assert [o.client_order_id for o in exchange.book.open_orders()] == ["bot-2"]
