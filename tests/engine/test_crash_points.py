"""A crash at every boundary of the order lifecycle and of recovery: the bot is rebuilt
from the same store and the same exchange, recovers, and every promise holds.

In-process: reaching an armed crash point raises `SimulatedCrash` (nothing in the
engine can catch it), and the instance is abandoned as a killed process would be. The
same points are armed in real processes (SIGKILL) by the process tests.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.models import OrderSide, TakeProfit
from botwarden.domain.orders import IntentStatus, Purpose
from botwarden.engine.checks import check_promises
from botwarden.engine.crash import CRASH, POINTS, SimulatedCrash
from tests.conftest import whole
from tests.engine.harness import Bot, World

ENTRY_POINTS = [
    "before_entry_stored",
    "entry_stored_not_sent",
    "entry_sent_answer_not_stored",
    "fill_seen_not_recorded",
    "fill_recorded",
    "before_stop_stored",
    "stop_stored_not_sent",
    "stop_sent_answer_not_stored",
]
EXIT_POINTS = ["before_exit_stored", "exit_stored_not_sent", "exit_sent_answer_not_stored"]
TAKE_PROFIT_POINTS = [
    "before_take_profit_stored",
    "take_profit_stored_not_sent",
    "take_profit_sent_answer_not_stored",
]
"""Reached where the take-profit is an order of its own (a reduce-only venue), placed
on its own (a take-profit asked of a position already protected, one resized); placed
with a new position's stop, both are written ahead together at the stop's points and
sent at once, each answer reaching its own point; where it is one of a pair, the
stop's points are reached with both legs at stake."""
RECOVERY_POINTS = sorted(p for p in POINTS if p.startswith("recovery_"))


@pytest.fixture(autouse=True)
def disarmed():
    yield
    CRASH.disarm()


async def enter(bot: Bot) -> None:
    """What the bot does on a buy signal: entry, its fill, its stop."""
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    await bot.protect()


async def leave(bot: Bot) -> None:
    """What the bot does on a sell signal: exit at market, its fill, its stop canceled."""
    [position] = (await whole(bot.ctx.state)).positions.values()
    await bot.desk.place(
        symbol="SPY",
        side=OrderSide.SELL,
        qty=position.size,
        purpose=Purpose.EXIT,
        position_id=position.id,
    )
    await bot.desk.sync_fills()
    await bot.protect()


async def crashed_at(world: World, point: str, step) -> None:
    bot = await world.start()
    CRASH.arm(point)
    with pytest.raises(SimulatedCrash):
        await step(bot)
    CRASH.disarm()


async def recovered(world: World) -> Bot:
    """A new instance after the unknown-order grace: recovery, then the promises."""
    world.clock.now += timedelta(seconds=20)
    bot = await world.start()
    await bot.recover()
    violations = check_promises(await whole(bot.ctx.state), world.book, bot.ctx.ids)
    assert violations == [], "\n".join(map(str, violations))
    return bot


def assert_no_crash_point_was_missed() -> None:
    assert set(ENTRY_POINTS + EXIT_POINTS + TAKE_PROFIT_POINTS + RECOVERY_POINTS) == set(POINTS)


@pytest.mark.parametrize("client_ids", ["alpaca", "binance"])
@pytest.mark.parametrize("point", ENTRY_POINTS)
async def test_a_crash_anywhere_in_an_entry_is_recovered(
    tmp_path: Path, point: str, client_ids: str
) -> None:
    assert_no_crash_point_was_missed()
    world = World(tmp_path, client_ids=client_ids)
    await crashed_at(world, point, enter)
    bot = await recovered(world)
    state = await whole(bot.ctx.state)
    entries = [i for i in state.intents.values() if i.purpose is Purpose.ENTRY]
    assert len(entries) <= 1, "recovery never enters"
    if entries and entries[0].status is IntentStatus.FILLED:
        [position] = state.positions.values()
        stops = [o for o in await bot.venue.open_orders() if o.type.value == "stop"]
        assert [s.client_order_id for s in stops] == [position.stop_client_order_id]
    else:  # never stored, or stored and never sent (then dropped): flat
        assert all(e.status is IntentStatus.CANCELED for e in entries)
        assert state.positions == {} and world.book.positions() == []
    await world.close()


@pytest.mark.parametrize("point", EXIT_POINTS)
async def test_a_crash_anywhere_in_an_exit_is_recovered(tmp_path: Path, point: str) -> None:
    world = World(tmp_path, client_ids="binance")
    await enter(await world.start())
    await crashed_at(world, point, leave)
    bot = await recovered(world)
    state = await whole(bot.ctx.state)
    exits = [i for i in state.intents.values() if i.purpose is Purpose.EXIT]
    if exits and exits[0].status is IntentStatus.FILLED:
        assert state.positions == {} and world.book.positions() == []
        assert await bot.venue.open_orders() == [], "the stop went with its position"
    else:  # the exit never left: still held, still protected
        assert len(state.positions) == 1
    await world.close()


@pytest.mark.parametrize("point", RECOVERY_POINTS)
@pytest.mark.parametrize("first", ["entry_sent_answer_not_stored", "stop_stored_not_sent"])
async def test_a_crash_during_recovery_is_recovered_too(
    tmp_path: Path, point: str, first: str
) -> None:
    world = World(tmp_path)
    await crashed_at(world, first, enter)
    world.clock.now += timedelta(seconds=20)
    second = await world.start()
    CRASH.arm(point)
    with pytest.raises(SimulatedCrash):
        await second.recover()
    CRASH.disarm()
    bot = await recovered(world)
    [position] = (await whole(bot.ctx.state)).positions.values()
    assert position.stop_client_order_id is not None
    await world.close()


@pytest.mark.parametrize(
    ("reduce_only", "point"),
    [(True, p) for p in [*ENTRY_POINTS[-3:], TAKE_PROFIT_POINTS[-1]]]
    + [(False, p) for p in ENTRY_POINTS[-3:]],
)
async def test_a_crash_while_a_stop_and_take_profit_are_placed_is_recovered(
    tmp_path: Path, reduce_only: bool, point: str
) -> None:
    """On a reduce-only venue the take-profit is its own order; elsewhere the two go as
    one pair. Either way, after the crash and a recovery: the position held, its stop
    and its take-profit resting, for all of it, and every promise kept."""
    world = World(tmp_path, reduce_only=reduce_only, take_profit=TakeProfit.percent(3))
    await crashed_at(world, point, enter)
    bot = await recovered(world)
    await bot.protect()  # (the next pass: what recovery left to do is done)
    state = await whole(bot.ctx.state)
    [position] = state.positions.values()
    resting = {o.type.value: o for o in await bot.venue.open_orders()}
    assert set(resting) == {"stop", "limit"}, resting
    assert resting["stop"].qty == resting["limit"].qty == position.size
    assert resting["limit"].limit_price == position.take_profit
    assert position.take_profit == (position.entry_price * Decimal("1.03")).quantize(
        Decimal("0.01")
    )
    if not reduce_only:
        assert resting["stop"].oco_with == resting["limit"].client_order_id
    violations = check_promises(state, world.book, bot.ctx.ids)
    assert violations == [], "\n".join(map(str, violations))
    await world.close()


@pytest.mark.parametrize("point", TAKE_PROFIT_POINTS)
async def test_a_crash_while_a_take_profit_joins_a_protected_position_is_recovered(
    tmp_path: Path, point: str
) -> None:
    """A position protected by its stop alone is given a take-profit (a config's, say,
    from the next start on): on a reduce-only venue it goes as an order of its own,
    beside the stop. A crash anywhere in that: the stop never stops resting, and after
    recovery both rest, once each, for all of the position."""
    held = World(tmp_path, reduce_only=True)
    await enter(await held.start())
    await held.close()
    world = World(tmp_path, reduce_only=True, take_profit=TakeProfit.percent(3))
    world.epoch = held.epoch
    bot = await world.start()
    [stop] = [o.client_order_id for o in world.book.open_orders()]
    CRASH.arm(point)
    with pytest.raises(SimulatedCrash):
        await bot.protect()
    CRASH.disarm()
    assert stop in [o.client_order_id for o in world.book.open_orders()], "the stop stayed"
    bot = await recovered(world)
    await bot.protect()
    state = await whole(bot.ctx.state)
    [position] = state.positions.values()
    resting = {o.type.value: o for o in world.book.open_orders()}
    assert set(resting) == {"stop", "limit"} and len(world.book.open_orders()) == 2
    assert resting["stop"].client_order_id == stop
    assert resting["limit"].qty == position.size
    violations = check_promises(state, world.book, bot.ctx.ids)
    assert violations == [], "\n".join(map(str, violations))
    await world.close()
