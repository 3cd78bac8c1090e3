"""Moving a stop and exiting a position without ever resting two exits that could
both fire: new-first only where the venue honours reduce-only orders."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.models import OrderSide
from botwarden.domain.orders import OrderType, Purpose
from botwarden.domain.positions import StopPolicy
from botwarden.venues.base import Ambiguous
from botwarden.venues.paper.faults import FaultPlan
from tests.engine.harness import World
from tests.venues.test_paper import FEED, T0, first_time_price

TRAILING = StopPolicy(distance=Decimal(2), trailing=True)


async def held_and_protected(world: World):
    bot = await world.start()
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    await bot.protect()
    [position] = (await bot.ctx.state.snapshot()).positions.values()
    return bot, position


def resting_stops(world: World) -> list[str]:
    return [o.client_order_id for o in world.book.open_orders() if o.type is OrderType.STOP]


@pytest.mark.parametrize("reduce_only", [False, True])
async def test_a_trailing_stop_moves_without_two_stops_that_could_both_fire(
    tmp_path: Path, reduce_only: bool
) -> None:
    world = World(tmp_path, stop=TRAILING, reduce_only=reduce_only)
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
    state = await bot.ctx.state.snapshot()
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
    alerts = [
        e for e in (await bot.ctx.state.snapshot()).events.values() if e.data.get("attention")
    ]
    assert len(alerts) == 1, "once, not at every pass"
    assert alerts[0].data["notify"] == "unprotected" and "an operator must decide" in (
        alerts[0].message
    )
    await world.close()
