"""Moving a stop and exiting a position without ever resting two exits that could
both fire: new-first only where the venue honours reduce-only orders."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.models import OrderSide
from botwarden.domain.orders import IntentStatus, OrderType, Purpose
from botwarden.domain.positions import StopPolicy
from botwarden.engine.checks import check_promises
from botwarden.venues.base import Ambiguous, OrderState, Rejected, Retryable
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.engine.harness import World
from tests.venues.test_paper import FEED, T0, first_time_price

TRAILING = StopPolicy(distance=Decimal(2), trailing=True)


async def held_and_protected(world: World):
    bot = await world.start()
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    await bot.protect()
    [position] = (await whole(bot.ctx.state)).positions.values()
    return bot, position


def resting_stops(world: World) -> list[str]:
    return [o.client_order_id for o in world.book.open_orders() if o.type is OrderType.STOP]


@pytest.mark.parametrize("reduce_only", [False, True])
async def test_a_trailing_stop_moves_without_two_stops_that_could_both_fire(
    tmp_path: Path, reduce_only: bool
) -> None:
    world = World(tmp_path, stop=TRAILING, reduce_only=reduce_only, replaces=False)
    bot, position = await held_and_protected(world)
    [old] = resting_stops(world)
    world.clock.now = first_time_price("SPY", T0, lambda p: p > position.entry_price * 102 / 100)
    bot.venue.faults = FaultPlan.parse("timeout_before:on=cancel")  # cancels go unanswered
    await bot.protect()
    if reduce_only:  # both may rest: whichever fires second finds nothing to reduce
        assert len(resting_stops(world)) == 2 and old in resting_stops(world)
    else:  # the old one's cancel is not confirmed: no second stop beside it
        assert resting_stops(world) == [old]
    bot.venue.faults = FaultPlan([])
    await bot.protect()
    [new] = resting_stops(world)
    assert new != old
    stop = next(o for o in world.book.open_orders() if o.client_order_id == new)
    assert stop.stop_price > position.stop_price, "moved up behind the price"
    await world.close()


def moved_up(world: World, position) -> None:
    """The clock on the first moment the price is 2% above the entry: a 2-point
    trailing stop belongs higher than where it was placed."""
    world.clock.now = first_time_price("SPY", T0, lambda p: p > position.entry_price * 102 / 100)


async def test_a_trailing_stop_is_replaced_in_one_request_never_a_moment_without_one(
    tmp_path: Path,
) -> None:
    """Where exits cannot rest side by side (no reduce-only), a venue that replaces
    orders moves the stop in one request: the exchange's own records show the old
    one canceled at the very moment the new one was taken, by that one request."""
    world = World(tmp_path, stop=TRAILING)
    bot, position = await held_and_protected(world)
    [old] = resting_stops(world)
    moved_up(world, position)
    await bot.protect()
    [new] = resting_stops(world)
    orders = {o.client_order_id: o for o in world.book.all_orders()}
    assert new != old and orders[new].stop_price > position.stop_price
    assert orders[old].state is OrderState.CANCELED
    assert orders[old].reason == f"replaced by {new}"
    await bot.protect()  # the next pass: the old one's end, as the venue tells it
    assert resting_stops(world) == [new], "nothing more sent, nothing canceled"
    state = await whole(bot.ctx.state)
    assert state.intents[old].status is IntentStatus.CANCELED
    assert state.intents[new].status is IntentStatus.ACCEPTED
    assert state.intents[new].replaces == old
    assert state.positions[position.id].stop_client_order_id == new
    assert check_promises(state, world.book, bot.ctx.ids) == []
    await world.close()


@pytest.mark.parametrize("fault", ["timeout_after", "timeout_before"])
async def test_a_replace_left_unanswered_is_found_or_sent_again_never_doubled(
    tmp_path: Path, fault: str
) -> None:
    """The answer to a replace is lost: it either took place (found by its id) or it
    did not (sent again, in place of the old stop, which still rests). Either way one
    stop rests at the end, at the new price, and the position knows it."""
    world = World(tmp_path, stop=TRAILING, grace=timedelta(seconds=0))
    bot, position = await held_and_protected(world)
    [old] = resting_stops(world)
    moved_up(world, position)
    bot.venue.faults = FaultPlan.parse(f"{fault}:on=submit,times=1")
    await bot.protect()
    assert len(resting_stops(world)) == 1, "never two stops that could both sell"
    state = await whole(bot.ctx.state)
    new = state.positions[position.id].stop_client_order_id
    assert state.intents[new].status is IntentStatus.UNKNOWN
    for _ in range(2):  # a pass: what became of it is resolved, then protection
        await bot.recover()
        await bot.protect()
    [resting] = resting_stops(world)
    assert resting == new, "the same id again, never a new one"
    state = await whole(bot.ctx.state)
    assert state.intents[new].status is IntentStatus.ACCEPTED
    assert state.intents[old].status is IntentStatus.CANCELED
    assert state.positions[position.id].stop_client_order_id == new
    assert check_promises(state, world.book, bot.ctx.ids) == []
    await world.close()


async def test_an_exit_cancels_the_stop_first_where_reduce_only_is_not_honoured(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    bot, position = await held_and_protected(world)
    bot.venue.faults = FaultPlan.parse("timeout_before:on=cancel")
    with pytest.raises(Ambiguous):
        await bot.desk.close(position)  # the stop may still rest: no exit beside it
    assert not any(o.side is OrderSide.SELL and o.type is OrderType.MARKET
                   for o in world.book.all_orders())  # fmt: skip
    bot.venue.faults = FaultPlan([])
    await bot.desk.close(position)
    await bot.desk.sync_fills()
    assert resting_stops(world) == [] and world.book.positions() == []
    await world.close()


async def test_a_position_whose_price_sits_on_its_stop_is_closed_not_left_bare(
    tmp_path: Path,
) -> None:
    """No venue takes a stop at the price itself (it would fire at once): a position
    whose stop could not be placed, found later with the price right at the stop, is
    closed at market (the simulator found it left unprotected, its stop refused)."""
    entry = FEED.price("SPY", T0)
    later = first_time_price("SPY", T0, lambda p: p < entry * Decimal("0.995"))
    at = FEED.price("SPY", later)
    world = World(tmp_path, stop=StopPolicy(kind="absolute", distance=entry - at))
    bot = await world.start()
    bot.venue.faults = FaultPlan.parse("error_before:on=submit,nth=2")  # the stop's
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    await bot.protect()  # its stop did not reach the venue
    assert resting_stops(world) == []
    world.clock.now = later
    await bot.protect()
    await bot.desk.sync_fills()
    assert world.book.positions() == [], "closed at market where the stop would have fired"
    state = await whole(bot.ctx.state)
    assert not [e for e in state.events.values() if e.kind == "alert"], "no refused stop"
    await world.close()


async def test_a_position_far_past_its_stop_is_left_for_an_operator_loudly(
    tmp_path: Path,
) -> None:
    """Beyond `max_underwater_pct` no stop is placed (it would fire at once into
    slippage) and nothing is sold: the position is reported unprotected, once, as an
    alert an operator is told of."""
    entry = FEED.price("SPY", T0)
    later = first_time_price("SPY", T0, lambda p: p < entry * Decimal("0.985"))
    stop = StopPolicy(kind="percent", distance=Decimal("0.2"), max_underwater_pct=Decimal("0.5"))
    world = World(tmp_path, stop=stop)
    bot = await world.start()
    bot.venue.faults = FaultPlan.parse("error_before:on=submit,nth=2")  # the stop's
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    await bot.protect()
    world.clock.now = later
    assert await bot.protect() == ["SPY"], "left unprotected, and said so"
    assert await bot.protect() == ["SPY"]
    assert resting_stops(world) == [] and len(world.book.positions()) == 1, "nothing sold"
    alerts = [e for e in (await whole(bot.ctx.state)).events.values() if e.data.get("attention")]
    assert len(alerts) == 1, "once, not at every pass"
    assert alerts[0].data["notify"] == "unprotected" and "an operator must decide" in (
        alerts[0].message
    )
    await world.close()


async def test_a_stop_never_answered_is_not_sent_again_beside_a_guard_for_its_position(
    tmp_path: Path,
) -> None:
    """A position's stop went unanswered (it never reached the venue), then the store
    failed and the outage guard put a guard stop under the position. Once the store
    writes again and the stop's fate is resolved, sending it again would rest two
    stops where both could fire (no reduce-only): it is dropped, and the guard is taken
    up as the position's stop (the torture simulator found the double, seed 321)."""
    from botwarden.engine.outage import OutageGuard

    world = World(tmp_path, grace=timedelta(seconds=15))
    bot = await world.start()
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    bot.venue.faults = FaultPlan.parse("timeout_before:on=submit,times=1")
    await bot.protect()
    state = await whole(bot.ctx.state)
    [position] = state.positions.values()
    assert state.intents[position.stop_client_order_id].status is IntentStatus.UNKNOWN
    assert resting_stops(world) == []
    guard = OutageGuard(bot.ctx, bot.protector)
    await guard.protect(await whole(bot.ctx.state))  # the store failing meanwhile
    [guard_stop] = resting_stops(world)
    async with bot.ctx.state.transaction() as tx:  # the store writes again: written down
        for intent in guard.unwritten.values():
            tx.save_order(intent)
    world.clock.now += timedelta(minutes=1)  # past the grace
    await bot.recover()
    await bot.protect()
    assert world.venue_orders(position.stop_client_order_id) == 0, "never sent beside it"
    assert resting_stops(world) == [guard_stop], "one stop: the guard"
    state = await whole(bot.ctx.state)
    assert state.positions[position.id].stop_client_order_id == guard_stop
    assert check_promises(state, world.book, bot.ctx.ids) == []
    await world.close()


class CancelsFirst(PaperVenue):
    """The paper exchange with Binance spot's cancel-replace when the new order is
    refused after the old one's cancel (409, -2021 "partially failed"): neither rests."""

    async def replace(self, old, new, venue_order_id=None):
        await self.cancel(old.client_order_id, old.symbol)
        raise Rejected(self.name, "Order cancel-replace partially failed.", code="-2021")


class RefusesReplace(PaperVenue):
    """The paper exchange refusing a replace outright, the old order untouched (as
    Alpaca answers "order parameters are not changed", say)."""

    async def replace(self, old, new, venue_order_id=None):
        raise Rejected(self.name, "order parameters are not changed")


async def a_move_refused(tmp_path: Path, venue: type[PaperVenue]):
    """A trailing stop to move, on `venue`, which refuses the replace its own way; the
    pass that tried it has run. (world, bot, position, the stop it had)"""
    world = World(tmp_path, stop=TRAILING)
    bot, position = await held_and_protected(world)
    [old] = resting_stops(world)
    moved_up(world, position)
    bot.venue.__class__ = venue
    await bot.protect()
    return world, bot, position, old


async def test_a_refused_replace_that_took_the_old_stop_leaves_no_position_bare(
    tmp_path: Path,
) -> None:
    """A venue that canceled the old stop and then refused the new one: the bot looks
    at once, finds the old one gone, and places a stop in the same pass (never waits a
    pass bare); where the old one still rests, it stays the position's stop."""
    world, bot, position, old = await a_move_refused(tmp_path, CancelsFirst)
    [placed] = resting_stops(world)
    assert placed != old, "the old one went with the refused replace"
    state = await whole(bot.ctx.state)
    assert state.positions[position.id].stop_client_order_id == placed
    assert state.intents[old].status is IntentStatus.CANCELED
    assert check_promises(state, world.book, bot.ctx.ids) == []
    await world.close()


async def test_a_refused_replace_that_left_the_old_stop_keeps_it_as_the_stop(
    tmp_path: Path,
) -> None:
    world, bot, position, old = await a_move_refused(tmp_path, RefusesReplace)
    assert resting_stops(world) == [old], "nothing else sent, nothing canceled"
    state = await whole(bot.ctx.state)
    assert state.positions[position.id].stop_client_order_id == old
    alerts = [e for e in state.events.values() if e.kind == "alert"]
    assert any("still rests" in e.message for e in alerts)
    assert not any(e.data.get("notify") for e in alerts), "not told as unprotected"
    await world.close()


async def test_a_pair_placed_anew_first_cancels_a_guard_resting_beside_it(
    tmp_path: Path,
) -> None:
    """A position grew while the store failed, and the outage guard covered the growth
    with a guard stop. Once the store writes again its pair (stop and take-profit, no
    reduce-only) is placed anew for all of it: the guard goes first, or guard and
    pair stop would both fire and sell twice (the simulator found it, seed 1774)."""
    from botwarden.domain.models import TakeProfit
    from botwarden.engine.outage import OutageGuard

    world = World(tmp_path, take_profit=TakeProfit.percent(5))
    bot = await world.start()
    bot.venue.faults = FaultPlan.parse("partial_fill:p=1,fraction=0.5,times=1")
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    await bot.protect()  # a pair for the half filled
    world.clock.now += timedelta(minutes=1)
    await bot.desk.sync_fills()  # the rest filled: 10 held, 5 covered
    guard = OutageGuard(bot.ctx, bot.protector)
    await guard.protect(await whole(bot.ctx.state))  # the store failing meanwhile
    assert len(resting_stops(world)) == 2, "the pair's stop and a guard for the rest"
    async with bot.ctx.state.transaction() as tx:  # the store writes again
        for intent in guard.unwritten.values():
            tx.save_order(intent)
    await bot.protect()
    [stop] = [o for o in world.book.open_orders() if o.type is OrderType.STOP]
    assert stop.qty == Decimal(10) and stop.oco_with is not None, "one pair, for all of it"
    state = await whole(bot.ctx.state)
    assert check_promises(state, world.book, bot.ctx.ids) == []
    await world.close()


async def test_a_stop_grown_to_its_position_never_rests_beside_a_guard(tmp_path: Path) -> None:
    """No reduce-only: a position of 10 holds a stop for 5 and a guard stop for the
    other 5 (sent while the store could not write). Its stop grows to 10 only once the
    guard is gone: both resting, they could sell 15 and open a short (the torture
    simulator found it, seed 1348, with the guard's cancel failing)."""
    from botwarden.venues.base import OrderRequest

    world = World(tmp_path)
    bot = await world.start()
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    [position] = (await whole(bot.ctx.state)).positions.values()
    stop_at = (FEED.price("SPY", T0) * Decimal("0.97")).quantize(Decimal("0.01"))

    def mine(tx, intent) -> None:
        tx.save_position(
            position.evolve(stop_price=stop_at, stop_client_order_id=intent.client_order_id)
        )

    await bot.desk.place(
        symbol="SPY", side=OrderSide.SELL, qty=Decimal(5), purpose=Purpose.STOP,
        position_id=position.id, type=OrderType.STOP, stop_price=stop_at, also=mine,
    )  # fmt: skip
    guard = OrderRequest(
        client_order_id=bot.ctx.ids.guard_stop_id(position.id), symbol="SPY",
        side=OrderSide.SELL, type=OrderType.STOP, qty=Decimal(5), stop_price=stop_at,
    )  # fmt: skip
    world.book.submit(guard, world.clock.now)
    bot.venue.faults = FaultPlan.parse("error_before:on=cancel,times=1")  # the guard's
    with pytest.raises(Retryable):
        await bot.protect()  # (the pass ends there, as the runner's would)
    resting = [o for o in world.book.open_orders("SPY") if o.type is OrderType.STOP]
    assert sum(o.qty for o in resting) <= 10, [(o.client_order_id, o.qty) for o in resting]
    bot.venue.faults = FaultPlan.parse("")
    await bot.protect()  # the next pass: the guard goes, then the stop grows
    resting = [o for o in world.book.open_orders("SPY") if o.type is OrderType.STOP]
    assert [o.qty for o in resting] == [Decimal(10)]
    await world.close()
