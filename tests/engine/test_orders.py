"""Orders written ahead, answers stored as they come, unknown fates resolved by client id,
and fills recorded once with the position they change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.models import OrderSide, Side
from botwarden.domain.orders import IntentStatus, OrderType, Purpose
from botwarden.engine.ids import ClientIds, bot_prefix
from botwarden.venues.base import NotFound
from tests.conftest import whole
from tests.engine.harness import World, price


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    world = World(tmp_path)
    yield world
    await world.close()


async def buy(bot, qty: str = "10"):
    return await bot.desk.place(
        symbol="SPY", side=OrderSide.BUY, qty=Decimal(qty), purpose=Purpose.ENTRY
    )


def test_client_order_ids_fit_every_venue_and_never_repeat() -> None:
    ids = ClientIds("golden_cross.spy-hourly-with-a-very-long-name", epoch=123456)
    made = {ids.make(seq) for seq in (0, 1, 10**9)}
    assert len(made) == 3
    assert all(len(cid) <= 36 and cid.replace("-", "").isalnum() for cid in made)
    assert ids.owns(ids.make(5)) and not ids.owns("other-bot-1-5")
    assert bot_prefix("a.b") != bot_prefix("ab"), "same stem, different bots"
    assert ClientIds("golden", 1).make(7) != ClientIds("golden", 2).make(7)


def test_every_stop_id_leaves_room_for_its_pairs_take_profit() -> None:
    """An id one short of the limit made a pair's take-profit one too long: the error
    came from inside the pair's placing, with the old pair already canceled."""
    ids = ClientIds("golden_cross.spy-hourly", epoch=1_765_000_000)  # a rebuilt state's
    longest = max(n for n in (10**k - 1 for k in range(1, 12)) if _makes(ids, n))
    stop, target = ids.make_pair(longest)
    assert len(stop) == 35 and len(target) == 36
    with pytest.raises(ValueError, match="would be invalid"):
        ids.make(longest + 1)


def _makes(ids: ClientIds, seq: int) -> bool:
    try:
        ids.make(seq)
    except ValueError:
        return False
    return True


async def test_an_entry_is_stored_before_it_is_sent_and_its_fill_opens_the_position(
    world: World,
) -> None:
    bot = await world.start()
    intent = await buy(bot)
    await bot.desk.sync_fills()
    state = await whole(bot.ctx.state)
    stored = state.intents[intent.client_order_id]
    assert (stored.status, stored.filled_qty) == (IntentStatus.FILLED, Decimal(10))
    [position] = state.positions.values()
    assert (position.symbol, position.side, position.size, position.entry_price) == (
        "SPY", Side.LONG, Decimal(10), price()
    )  # fmt: skip
    assert [f.client_order_id for f in state.fills.values()] == [intent.client_order_id]
    assert state.ledger.next_order_seq == 1
    assert await bot.desk.sync_fills() == 0, "a fill is recorded once"


async def test_the_stop_goes_on_the_venue_right_after_the_entry_fill(world: World) -> None:
    bot = await world.start()
    await buy(bot)
    await bot.desk.sync_fills()
    assert await bot.protect() == []
    state = await whole(bot.ctx.state)
    [position] = state.positions.values()
    expected = (price() * Decimal("0.98")).quantize(Decimal("0.01"), rounding="ROUND_CEILING")
    assert position.stop_price == expected
    [stop] = await bot.venue.open_orders()
    assert (stop.client_order_id, stop.qty, stop.stop_price, stop.side) == (
        position.stop_client_order_id, Decimal(10), expected, OrderSide.SELL
    )  # fmt: skip
    assert await bot.protect() == [], "a stop in place is left alone"
    assert len(await bot.venue.open_orders()) == 1


async def test_a_missing_stop_is_placed_again(world: World) -> None:
    bot = await world.start()
    await buy(bot)
    await bot.desk.sync_fills()
    await bot.protect()
    [stop] = await bot.venue.open_orders()
    await bot.venue.cancel(stop.client_order_id, "SPY")  # an operator, or a venue purge
    await bot.protect()
    [again] = await bot.venue.open_orders()
    assert again.client_order_id != stop.client_order_id
    assert again.qty == Decimal(10)


async def test_an_answer_lost_after_acceptance_is_resolved_not_resent(tmp_path: Path) -> None:
    world = World(tmp_path, faults="timeout_after:on=submit,nth=1")
    bot = await world.start()
    intent = await buy(bot)
    assert intent.status is IntentStatus.UNKNOWN
    resolved = await bot.desk.resolve(intent, await bot.open_orders())
    assert resolved.status is IntentStatus.FILLED
    assert world.venue_orders(intent.client_order_id) == 1
    await world.close()


async def test_an_order_that_never_arrived_is_dropped_only_after_the_grace(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, faults="timeout_before:on=submit,nth=1")
    bot = await world.start()
    intent = await buy(bot)
    assert intent.status is IntentStatus.UNKNOWN
    still = await bot.desk.resolve(intent, await bot.open_orders())
    assert still.status is IntentStatus.UNKNOWN, "not found yet proves nothing"
    world.clock.now += timedelta(seconds=15)
    dropped = await bot.desk.resolve(still, await bot.open_orders())
    assert dropped.status is IntentStatus.CANCELED
    assert "never reached the venue" in dropped.reason
    assert world.venue_orders(intent.client_order_id) == 0
    await world.close()


@pytest.mark.parametrize(
    ("client_ids", "later", "sent_again"),
    [
        ("alpaca", timedelta(seconds=15), True),  # the strategy's bars are the same
        ("alpaca", timedelta(minutes=31), False),  # a new 1h bar closed at 15:00
        ("binance", timedelta(seconds=15), False),  # a reused id may be taken twice
    ],
)
async def test_an_entry_that_never_arrived_is_sent_again_while_its_bars_are_the_newest(
    tmp_path: Path, client_ids: str, later: timedelta, sent_again: bool
) -> None:
    """What the strategy decided on bars that are still the newest, it would decide
    again now: the entry goes, under its own id, as if the bot had been down until
    then. Where the venue could take the id twice, or the bars moved on, it is dropped."""
    world = World(tmp_path, faults="timeout_before:on=submit,nth=1", client_ids=client_ids)
    bot = await world.start()
    bot.ctx.timeframe = "1h"  # (decided at 14:30 on the bar that closed at 14:00)
    intent = await buy(bot)
    assert intent.status is IntentStatus.UNKNOWN
    world.clock.now += later
    resolved = await bot.desk.resolve(intent, await bot.open_orders())
    assert world.venue_orders(intent.client_order_id) == int(sent_again)
    if sent_again:
        await bot.desk.sync_fills()
        assert (await bot.ctx.intent(intent.client_order_id)).status is IntentStatus.FILLED
        assert [p.qty for p in world.book.positions()] == [Decimal(10)]
    else:
        assert resolved.status is IntentStatus.CANCELED
        assert "never reached the venue" in resolved.reason
        assert world.book.positions() == []
    await world.close()


async def test_a_resend_refused_as_a_duplicate_is_looked_up_not_taken_as_refused(
    tmp_path: Path,
) -> None:
    """An answer lost, lookups lagging past the grace: the order is sent again under its
    id, and the venue refuses it as a duplicate. That proves the first one arrived: the
    intent stays unknown (I5) and is found once the lookups catch up, never marked
    refused while its order rests (a later signal could then enter beside it, I1)."""
    world = World(tmp_path, faults="timeout_after:on=submit,nth=1")
    bot = await world.start()
    bot.ctx.timeframe = "1h"
    limit = (price() * Decimal("0.9")).quantize(Decimal("0.01"))
    intent = await bot.desk.place(
        symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY,
        type=OrderType.LIMIT, limit_price=limit,
    )  # fmt: skip
    assert intent.status is IntentStatus.UNKNOWN
    looked_up = bot.venue.order

    async def lagging(client_order_id: str, symbol: str | None):
        raise NotFound("paper", "not yet")

    bot.venue.order = lagging  # type: ignore[method-assign]
    world.clock.now += timedelta(seconds=16)
    resolved = await bot.desk.resolve(intent, {})  # (the open orders lag too)
    assert resolved.status is IntentStatus.UNKNOWN, resolved.reason
    assert "holds an order under its id" in (resolved.reason or "")
    assert world.venue_orders(intent.client_order_id) == 1
    bot.venue.order = looked_up  # type: ignore[method-assign]
    found = await bot.desk.resolve(resolved, await bot.open_orders())
    assert found.status is IntentStatus.ACCEPTED
    await world.close()


async def test_a_first_request_refused_as_a_duplicate_is_refused(tmp_path: Path) -> None:
    """Only a request sent again proves, by its duplicate, that the first arrived: a
    first one whose id another order holds is refused, with an alert."""
    from botwarden.venues.base import OrderRequest

    world = World(tmp_path)
    bot = await world.start()
    taken = bot.ctx.ids.make(0)  # the id the bot's next order will carry
    other = OrderRequest(client_order_id=taken, symbol="SPY", side=OrderSide.BUY,
                         type=OrderType.MARKET, qty=Decimal(1))  # fmt: skip
    world.book.submit(other, world.clock.now)
    intent = await buy(bot)
    assert intent.client_order_id == taken
    assert intent.status is IntentStatus.REJECTED and "duplicate" in (intent.reason or "")
    await world.close()


async def test_a_bot_on_a_real_venue_drops_such_an_entry_and_a_backtest_sends_it(
    tmp_path: Path,
) -> None:
    """Only where lookups are exact (a backtest's paper book) is the entry sent again:
    on a real venue a lookup may lag, and the bot cannot know it never arrived."""
    from botwarden.config import BotConfig
    from botwarden.engine.runner import Runner
    from botwarden.state.manager import StateManager
    from botwarden.state.sqlite import SqliteStore
    from tests.engine.harness import CONFIG, Exchange
    from tests.support.strategies import OnceLong

    exchange = Exchange(tmp_path)
    live = await exchange.runner(OnceLong())  # (a strategy decides, as in any live bot)
    assert live.ctx.timeframe is None, "a live bot drops it"
    await live.state.close()
    config = BotConfig.model_validate(CONFIG)
    state = StateManager("golden", SqliteStore(exchange.state_path), clock=exchange.clock)
    await state.open()
    exact = Runner(config.bot_settings(), state, live.venue, exchange.clock,
                   strategy=config.load_strategy(), exact_lookups=True)  # fmt: skip
    await exact.start()
    assert exact.ctx.timeframe == config.strategy.timeframe
    await state.close()
    exchange.book.close()


@pytest.mark.parametrize("client_ids", ["alpaca", "binance"])
async def test_a_lookup_that_lies_for_a_while_cannot_make_the_bot_send_twice(
    tmp_path: Path, client_ids: str
) -> None:
    """The answer is lost after the venue filled the order, and lookups say "no such
    order" for a minute: the fills prove it exists. Under Binance's rule a resend
    would have been accepted and doubled the position."""
    faults = "timeout_after:on=submit,nth=1; stale_lookup:seconds=60"
    world = World(tmp_path, faults=faults, client_ids=client_ids)
    bot = await world.start()
    intent = await buy(bot)
    world.clock.now += timedelta(seconds=30)  # past the grace, inside the lie
    resolved = await bot.desk.resolve(intent, await bot.open_orders())
    assert resolved.status is IntentStatus.FILLED
    assert world.venue_orders(intent.client_order_id) == 1
    [position] = (await whole(bot.ctx.state)).positions.values()
    assert position.size == Decimal(10)
    await world.close()


async def test_a_stop_that_never_arrived_is_sent_again_under_the_same_id(tmp_path: Path) -> None:
    world = World(tmp_path, faults="timeout_before:on=submit,nth=2")
    bot = await world.start()
    await buy(bot)
    await bot.desk.sync_fills()
    await bot.protect()
    position = next(iter((await whole(bot.ctx.state)).positions.values()))
    stop = (await whole(bot.ctx.state)).intents[position.stop_client_order_id]
    assert stop.status is IntentStatus.UNKNOWN
    assert await bot.protect() == [] and await bot.venue.open_orders() == [], (
        "no second stop while the first one's fate is unknown"
    )
    world.clock.now += timedelta(seconds=15)
    again = await bot.desk.resolve(stop, await bot.open_orders())
    assert (again.client_order_id, again.status) == (stop.client_order_id, IntentStatus.ACCEPTED)
    assert world.venue_orders(stop.client_order_id) == 1
    await world.close()


async def test_a_partial_fill_resizes_the_stop(tmp_path: Path) -> None:
    world = World(tmp_path, faults="partial_fill:fraction=0.4,times=1")
    bot = await world.start()
    await buy(bot)
    await bot.desk.sync_fills()
    await bot.protect()
    [first] = await stops(bot)
    assert first.qty == Decimal(4)
    world.clock.now += timedelta(seconds=1)
    await bot.desk.sync_fills()  # the rest filled
    await bot.protect()
    [second] = await stops(bot)
    assert (second.qty, second.client_order_id != first.client_order_id) == (Decimal(10), True)
    await bot.protect()  # the next pass: the replaced one's end, as the venue tells it
    canceled = (await whole(bot.ctx.state)).intents[first.client_order_id]
    assert canceled.status is IntentStatus.CANCELED
    await world.close()


async def test_a_position_far_past_its_stop_gets_no_stop_and_an_alert(tmp_path: Path) -> None:
    world = World(tmp_path)
    bot = await world.start()
    await buy(bot)
    await bot.desk.sync_fills()
    position = next(iter((await whole(bot.ctx.state)).positions.values()))
    crash = {"SPY": position.entry_price * Decimal("0.9")}  # 8% past a 2% stop
    assert await bot.protector.protect_all({}, crash) == ["SPY"]
    assert await bot.venue.open_orders() == []
    events = (await whole(bot.ctx.state)).events.values()
    assert any(e.kind == "alert" and "operator" in e.message for e in events)

    near = {"SPY": position.entry_price * Decimal("0.97")}  # 1% past: close it now
    fresh = World(tmp_path / "near")
    other = await fresh.start()
    await buy(other)
    await other.desk.sync_fills()
    await other.protector.protect_all({}, near)
    await other.desk.sync_fills()
    assert (await whole(other.ctx.state)).positions == {}
    await fresh.close()
    await world.close()


async def stops(bot):
    return [o for o in await bot.venue.open_orders() if o.type.value == "stop"]


async def test_a_venue_that_fills_more_than_ordered_gets_an_alert_not_a_crash(
    world: World,
) -> None:
    """A venue that rounds a quantity up (Alpaca keeps nine decimals, and its SDK
    reads them back as floats) fills a hair more than the intent: the fill stands, as
    on the venue, with an alert; the bot never stops on it at every start."""
    bot = await world.start()
    send = bot.venue.submit

    async def rounding_up(request):
        return await send(request.model_copy(update={"qty": request.qty + Decimal("1e-9")}))

    bot.venue.submit = rounding_up
    intent = await buy(bot, "10")
    assert await bot.desk.sync_fills() == 1
    state = await whole(bot.ctx.state)
    stored = state.intents[intent.client_order_id]
    assert (stored.status, stored.filled_qty) == (IntentStatus.FILLED, Decimal("10.000000001"))
    [position] = state.positions.values()
    assert position.size == Decimal("10.000000001"), "what the venue holds"
    alerts = [e.message for e in state.events.values() if e.kind == "alert"]
    assert any("more than the 10 left of the order" in a for a in alerts)
