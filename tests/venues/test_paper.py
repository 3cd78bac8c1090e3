"""The paper exchange: fills, stops, client-id semantics, restarts, and bad input."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from botwarden.domain.models import Side
from botwarden.domain.timeframes import TIMEFRAMES
from botwarden.venues.base import NotFound, OrderRequest, OrderState, Rejected
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
FEED = RandomWalkFeed(
    {
        "SPY": Instrument("SPY", Decimal("450")),
        "BTC/USDT": Instrument("BTC/USDT", Decimal("60000"), Decimal("0.1"), Decimal("0.001")),
    },
    seed=11,
)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_venue(path: Path, clock: Clock, **settings: object) -> PaperVenue:
    return PaperVenue(PaperBook(path, FEED, BookSettings(**settings)), clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def venue(tmp_path: Path, clock: Clock) -> Iterator[PaperVenue]:
    venue = make_venue(tmp_path / "paper.db", clock, fee_rate=Decimal("0.001"))
    yield venue
    venue.book.close()


def order(
    cid: str, side: str = "buy", qty: str = "10", symbol: str = "SPY", **extra: object
) -> OrderRequest:
    fields: dict[str, object] = {
        "client_order_id": cid,
        "symbol": symbol,
        "side": side,
        "type": "market",
        "qty": Decimal(qty),
    }
    fields.update(extra)
    return OrderRequest.model_validate(fields)


def first_time_price(symbol: str, start: datetime, test) -> datetime:
    """The first step after `start` at which the feed's price passes `test`."""
    at = start
    for _ in range(288 * 60):
        at += FEED.step
        if test(FEED.price(symbol, at)):
            return at
    raise AssertionError("the feed never got there in 60 days")


async def test_a_market_order_fills_at_the_mark_and_moves_cash_and_position(
    venue: PaperVenue,
) -> None:
    price = FEED.price("SPY", T0)
    filled = await venue.submit(order("bot-000001"))
    assert filled.state is OrderState.FILLED
    assert (filled.filled_qty, filled.avg_price) == (Decimal("10"), price)

    [position] = await venue.positions()
    assert (position.symbol, position.side, position.qty) == ("SPY", Side.LONG, Decimal("10"))
    fee = Decimal("10") * price * Decimal("0.001")
    assert (await venue.balance()).cash == Decimal("100000") - 10 * price - fee

    page = await venue.fills()
    assert [(f.client_order_id, f.qty, f.price, f.fee) for f in page.fills] == [
        ("bot-000001", Decimal("10"), price, fee)
    ]
    assert (await venue.fills(cursor=page.cursor)).fills == [], "the cursor moves past them"


async def test_a_stop_triggers_when_the_price_crosses_it_even_while_nobody_asks(
    venue: PaperVenue, clock: Clock
) -> None:
    await venue.submit(order("bot-entry"))
    stop_price = (FEED.price("SPY", T0) * Decimal("0.99")).quantize(Decimal("0.01"))
    stop = await venue.submit(
        order("bot-stop", side="sell", type="stop", stop_price=stop_price, reduce_only=True)
    )
    assert stop.state is OrderState.OPEN
    crossing = first_time_price("SPY", T0, lambda p: p <= stop_price)

    clock.now = crossing + timedelta(days=3)  # the bot was down; the exchange was not
    assert await venue.positions() == []
    done = await venue.order("bot-stop", "SPY")
    assert done.state is OrderState.FILLED
    assert done.avg_price <= stop_price, "a stop fills where the path crossed, gaps included"
    [_, stop_fill] = (await venue.fills()).fills
    assert stop_fill.time == crossing


async def test_a_limit_order_rests_until_the_price_comes_to_it(
    venue: PaperVenue, clock: Clock
) -> None:
    limit = (FEED.price("SPY", T0) * Decimal("0.995")).quantize(Decimal("0.01"))
    resting = await venue.submit(order("bot-limit", type="limit", limit_price=limit))
    assert resting.state is OrderState.OPEN
    assert [o.client_order_id for o in await venue.open_orders()] == ["bot-limit"]

    clock.now = first_time_price("SPY", T0, lambda p: p <= limit)
    filled = await venue.order("bot-limit", "SPY")
    assert (filled.state, filled.avg_price) == (OrderState.FILLED, limit)
    assert await venue.open_orders() == []


async def test_alpaca_semantics_reject_a_reused_client_order_id_forever(venue: PaperVenue) -> None:
    await venue.submit(order("bot-000001"))
    with pytest.raises(Rejected, match="duplicate client order id") as refused:
        await venue.submit(order("bot-000001"))
    assert refused.value.code == "duplicate_client_id"
    assert len((await venue.fills()).fills) == 1


async def test_binance_semantics_accept_a_reused_id_once_filled_which_doubles_a_blind_resend(
    tmp_path: Path, clock: Clock
) -> None:
    """Why a bot must never resend an order it is unsure of: on Binance the id only
    protects while the first order is open. A market order fills at once, so the
    'safe' resend after a timeout buys a second time."""
    venue = make_venue(tmp_path / "binance.db", clock, client_ids="binance")
    await venue.submit(order("bot-000001"))  # its answer was lost in a timeout...
    await venue.submit(order("bot-000001"))  # ...and the bot resent it
    [position] = await venue.positions()
    assert position.qty == Decimal("20")

    limit = (FEED.price("SPY", T0) * Decimal("0.9")).quantize(Decimal("0.01"))
    await venue.submit(order("bot-000002", type="limit", limit_price=limit))
    with pytest.raises(Rejected, match="duplicate"):  # while open, the id does protect
        await venue.submit(order("bot-000002", type="limit", limit_price=limit))
    venue.book.close()


async def test_the_exchange_survives_its_own_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "paper.db"
    first = make_venue(path, clock)
    await first.submit(order("bot-entry"))
    stop_price = (FEED.price("SPY", T0) * Decimal("0.9")).quantize(Decimal("0.01"))
    await first.submit(order("bot-stop", side="sell", type="stop", stop_price=stop_price))
    before = (await first.positions(), await first.open_orders(), (await first.fills()).fills)
    first.book.close()  # the process dies; the file stays

    second = make_venue(path, clock)
    assert (
        await second.positions(),
        await second.open_orders(),
        (await second.fills()).fills,
    ) == before
    assert (await second.order("bot-entry", "SPY")).state is OrderState.FILLED
    with pytest.raises(Rejected, match="duplicate"):
        await second.submit(order("bot-entry"))
    second.book.close()


async def test_cancel(venue: PaperVenue) -> None:
    limit = (FEED.price("SPY", T0) * Decimal("0.9")).quantize(Decimal("0.01"))
    await venue.submit(order("bot-limit", type="limit", limit_price=limit))
    assert (await venue.cancel("bot-limit", "SPY")).state is OrderState.CANCELED
    assert await venue.open_orders() == []
    with pytest.raises(Rejected, match="is not open"):
        await venue.cancel("bot-limit", "SPY")
    with pytest.raises(NotFound):
        await venue.cancel("never-sent", "SPY")


async def test_bad_orders_get_one_clear_answer(
    tmp_path: Path, clock: Clock, venue: PaperVenue
) -> None:
    with pytest.raises(Rejected, match="unknown symbol 'TSLA'; this exchange lists BTC/USDT, SPY"):
        await venue.submit(order("c1", symbol="TSLA"))
    with pytest.raises(NotFound, match="unknown symbol 'TSLA'"):
        await venue.last_price("TSLA")
    price = FEED.price("SPY", T0)
    with pytest.raises(Rejected, match="a sell stop must be below the price") as wrong:
        await venue.submit(order("c2", side="sell", type="stop", stop_price=price + 1))
    assert wrong.value.code == "stop_wrong_side"
    with pytest.raises(Rejected, match="insufficient funds"):
        await venue.submit(order("c3", qty="1000000"))
    for bad_qty in ("0", "-1"):
        with pytest.raises(ValidationError):
            order("c4", qty=bad_qty)

    spot = make_venue(tmp_path / "spot.db", clock, shorting=False)
    with pytest.raises(Rejected, match="insufficient SPY: selling 1, holding 0"):
        await spot.submit(order("c5", side="sell", qty="1"))
    spot.book.close()


async def test_shorts_are_allowed_where_the_account_allows_them(venue: PaperVenue) -> None:
    await venue.submit(order("short-1", side="sell", qty="5"))
    [position] = await venue.positions()
    assert (position.side, position.qty) == (Side.SHORT, Decimal("5"))
    await venue.submit(order("cover-1", side="buy", qty="5"))
    assert await venue.positions() == []


async def test_bars_and_market_rules(venue: PaperVenue) -> None:
    bars = await venue.bars("SPY", "1d", 30)
    assert len(bars) == 30
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    assert bars[-1].time + timedelta(days=1) <= T0
    rules = await venue.market("BTC/USDT")
    assert (rules.price_tick, rules.qty_step) == (Decimal("0.1"), Decimal("0.001"))


async def test_four_hour_and_weekly_bars_open_on_utc_boundaries(venue: PaperVenue) -> None:
    # T0 is Monday 2026-03-02 14:30 UTC: the 12:00 bar is forming, the week has begun.
    four = await venue.bars("SPY", "4h", 12)
    assert [b.time.hour for b in four[-3:]] == [0, 4, 8]
    assert four[-1].time == datetime(2026, 3, 2, 8, tzinfo=UTC)
    weeks = await venue.bars("SPY", "1w", 10)
    assert weeks[-1].time == datetime(2026, 2, 23, tzinfo=UTC), "the last completed week"
    assert {b.time.weekday() for b in weeks} == {0}, "weeks open on Mondays"
    assert [b.time for b in weeks] == [weeks[0].time + timedelta(weeks=n) for n in range(10)]


@pytest.mark.parametrize(
    ("wide", "narrow", "count"), [("4h", "1h", 4), ("1d", "4h", 6), ("1w", "1d", 7)]
)
async def test_a_wide_bar_agrees_with_the_narrower_bars_it_contains(
    venue: PaperVenue, wide: str, narrow: str, count: int
) -> None:
    """Open of the first, close of the last, the highest high and the lowest low: what a
    strategy computing weekly bars from daily ones would find."""
    for symbol in ("SPY", "BTC/USDT"):
        inner = await venue.bars(symbol, narrow, count * 5)
        for bar in await venue.bars(symbol, wide, 4):
            parts = [b for b in inner if bar.time <= b.time < bar.time + TIMEFRAMES[wide]]
            assert len(parts) == count and parts[0].time == bar.time
            assert (bar.open, bar.high, bar.low, bar.close) == (
                parts[0].open,
                max(b.high for b in parts),
                min(b.low for b in parts),
                parts[-1].close,
            )


async def test_the_older_timeframes_serve_the_bars_they_always_did(
    venue: PaperVenue, clock: Clock
) -> None:
    """Bots and the torture simulator replay by seed: a bar once served never changes.
    The digests were taken before 4h and 1w bars (and their Monday alignment) came."""
    served = {
        "1m": "f19855b0fef66aa7",
        "5m": "51125ba2872044ef",
        "15m": "6f476185a4e07782",
        "1h": "cf85e9e7a62562b7",
        "1d": "08fa32da9d843a50",
    }
    for timeframe, digest in served.items():
        bars = [
            *await venue.bars("SPY", timeframe, 40),
            *await venue.bars("BTC/USDT", timeframe, 40),
        ]
        text = "\n".join(f"{b.time.isoformat()} {b.open} {b.high} {b.low} {b.close}" for b in bars)
        assert hashlib.sha256(text.encode()).hexdigest()[:16] == digest, timeframe
    [hour] = await venue.bars("SPY", "1h", 1)
    assert (hour.time, hour.open, hour.high, hour.low, hour.close) == (
        datetime(2026, 3, 2, 13, tzinfo=UTC), Decimal("415.04"), Decimal("416.12"),
        Decimal("415.04"), Decimal("415.70"),
    )  # fmt: skip
    clock.now = datetime(2026, 3, 5, 21, 43, tzinfo=UTC)
    [day] = await venue.bars("SPY", "1d", 1)
    assert (day.time, day.open, day.high, day.low, day.close) == (
        datetime(2026, 3, 4, tzinfo=UTC), Decimal("423.84"), Decimal("424.13"),
        Decimal("417.76"), Decimal("418.92"),
    )  # fmt: skip


async def test_an_unknown_timeframe_is_not_found_with_the_supported_ones(
    venue: PaperVenue,
) -> None:
    with pytest.raises(NotFound, match="'2h'; use one of 1m, 5m, 15m, 1h, 4h, 1d, 1w"):
        await venue.bars("SPY", "2h", 5)


async def test_orders_crossed_during_downtime_fill_in_the_order_they_crossed(
    venue: PaperVenue, clock: Clock
) -> None:
    await venue.submit(order("entry", qty="10"))
    start = FEED.price("SPY", T0)
    stop_price = (start * Decimal("0.98")).quantize(Decimal("0.01"))
    limit_price = (start * Decimal("0.995")).quantize(Decimal("0.01"))
    await venue.submit(order("stop", side="sell", type="stop", stop_price=stop_price, qty="10"))
    await venue.submit(order("add", type="limit", limit_price=limit_price, qty="10"))
    limit_at = first_time_price("SPY", T0, lambda p: p <= limit_price)
    stop_at = first_time_price("SPY", T0, lambda p: p <= stop_price)
    assert limit_at < stop_at, "the test needs the later order to cross first"

    clock.now = stop_at + timedelta(days=1)
    fills = (await venue.fills()).fills
    assert [f.client_order_id for f in fills] == ["entry", "add", "stop"]
    assert [f.time for f in fills] == sorted(f.time for f in fills)
    assert [f.trade_id for f in fills] == sorted(f.trade_id for f in fills)
    [position] = await venue.positions()
    assert position.avg_entry_price == (fills[0].price + limit_price) / 2


async def test_what_open_orders_claim_cannot_be_spent_twice(tmp_path: Path, clock: Clock) -> None:
    spot = make_venue(tmp_path / "spot.db", clock, shorting=False)
    await spot.submit(order("entry", qty="10"))
    stop_price = (FEED.price("SPY", T0) * Decimal("0.9")).quantize(Decimal("0.01"))
    await spot.submit(order("stop", side="sell", type="stop", stop_price=stop_price, qty="10"))
    with pytest.raises(Rejected, match="of which 0 is not already on sale"):
        await spot.submit(order("dump", side="sell", qty="10"))  # would leave the stop naked
    spot.book.close()

    small = make_venue(tmp_path / "small.db", clock, starting_cash=Decimal("10000"))
    price = FEED.price("SPY", T0)
    limit = (price * Decimal("0.9")).quantize(Decimal("0.01"))
    qty = (Decimal("9000") / limit).quantize(Decimal("1"))
    await small.submit(order("bid", type="limit", limit_price=limit, qty=str(qty)))
    with pytest.raises(Rejected, match="insufficient funds"):
        await small.submit(order("more", qty="5"))  # the cash is promised to the bid
    assert [o.client_order_id for o in await small.open_orders()] == ["bid"], "nothing half-kept"
    await small.submit(order("short", side="sell", qty="1"))
    with pytest.raises(Rejected, match="insufficient funds"):
        await small.submit(order("huge", qty="1000"))  # short proceeds are not a fortune
    small.book.close()


async def test_immediate_orders_never_rest(venue: PaperVenue) -> None:
    far = (FEED.price("SPY", T0) * Decimal("0.5")).quantize(Decimal("0.01"))
    ioc = await venue.submit(order("ioc", type="limit", limit_price=far, time_in_force="ioc"))
    assert (ioc.state, ioc.filled_qty) == (OrderState.CANCELED, Decimal(0))
    fok = await venue.submit(order("fok", time_in_force="fok"))
    assert fok.state is OrderState.FILLED
    assert await venue.open_orders() == []


async def test_the_rest_of_a_market_order_claims_cash_at_its_own_price(
    venue: PaperVenue,
) -> None:
    """The unfilled part of a partly filled buy is priced in its own market, not in
    the market of the order being checked (the simulator found a $60,000 coin price
    applied to shares, which refused a stop the account could well pay for)."""
    partial = venue.book.submit(order("spy", qty="100"), T0, fill_fraction=Decimal("0.5"))
    assert partial.state is OrderState.PARTIALLY_FILLED
    coin = await venue.submit(order("coin", symbol="BTC/USDT", qty="0.5"))
    assert coin.state is OrderState.FILLED


async def test_reduce_only_orders_never_grow_or_flip_a_position(
    tmp_path: Path, clock: Clock
) -> None:
    futures = make_venue(tmp_path / "futures.db", clock, reduce_only=True)
    await futures.submit(order("entry", qty="10"))
    below = (FEED.price("SPY", T0) * Decimal("0.99")).quantize(Decimal("0.01"))
    for cid in ("old-stop", "new-stop"):  # moving a stop: the new one placed first
        await futures.submit(
            order(cid, side="sell", type="stop", stop_price=below, qty="10", reduce_only=True)
        )
    clock.now = first_time_price("SPY", T0, lambda p: p < below)
    orders = {o.client_order_id: o for o in await futures.all_orders()}
    assert await futures.positions() == [], "closed, not flipped short"
    assert sorted(o.state for o in (orders["old-stop"], orders["new-stop"])) == [
        OrderState.CANCELED,
        OrderState.FILLED,
    ]
    exit_ = await futures.submit(order("late-exit", side="sell", qty="10", reduce_only=True))
    assert (exit_.state, exit_.filled_qty) == (OrderState.CANCELED, Decimal(0))
    assert await futures.positions() == []
    futures.book.close()

    stocks = make_venue(tmp_path / "stocks.db", clock)  # no reduce-only: an order is an order
    await stocks.submit(order("entry", qty="10"))
    await stocks.submit(order("exit", side="sell", qty="20", reduce_only=True))
    assert [(p.side, p.qty) for p in await stocks.positions()] == [(Side.SHORT, Decimal(10))]
    stocks.book.close()
