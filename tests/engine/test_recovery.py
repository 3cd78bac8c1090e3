"""Recovery modes, orphan policies, phantoms, staleness, an unreadable balance, and the
classic scenarios: restarted while in a position, flat in the state but held at the
broker, killed between the buy and the stop."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.models import OrderSide, Side
from botwarden.domain.orders import Purpose
from botwarden.engine.checks import check_promises
from botwarden.engine.crash import CRASH, SimulatedCrash
from botwarden.venues.base import OrderRequest
from tests.conftest import whole
from tests.engine.harness import Bot, World


async def held_and_protected(world: World) -> Bot:
    bot = await world.start()
    await bot.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await bot.desk.sync_fills()
    await bot.protect()
    return bot


def behind_the_bots_back(world: World, cid: str, side: str = "buy", qty: str = "5") -> None:
    """An order the bot did not send (an operator, another program)."""
    request = OrderRequest(
        client_order_id=cid, symbol="SPY", side=side, type="market", qty=Decimal(qty)
    )
    world.book.submit(request, world.clock.now)


def lose_the_state(world: World) -> None:
    for companion in ("", "-wal", "-shm"):
        Path(f"{world.state_path}{companion}").unlink(missing_ok=True)


def stops_on_venue(world: World) -> list:
    return [o for o in world.book.open_orders() if o.type.value == "stop"]


async def promises(bot: Bot, world: World) -> None:
    violations = check_promises(await whole(bot.ctx.state), world.book, bot.ctx.ids)
    assert violations == [], "\n".join(map(str, violations))


async def test_restarted_while_in_a_position_it_does_not_buy_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    await held_and_protected(world)
    bot = await world.start()
    report = await bot.recover()
    assert "recovered: 1 position(s)" in str(report)
    assert len([o for o in world.book.all_orders() if o.side is OrderSide.BUY]) == 1
    assert len(stops_on_venue(world)) == 1, "the stop it had is kept, not doubled"
    await promises(bot, world)
    await world.close()


async def test_a_stop_that_fired_while_the_bot_was_down_closes_the_position(
    tmp_path: Path,
) -> None:
    from tests.venues.test_paper import T0, first_time_price

    world = World(tmp_path)
    first = await held_and_protected(world)
    [position] = (await whole(first.ctx.state)).positions.values()
    world.clock.now = first_time_price("SPY", T0, lambda p: p <= position.stop_price)
    bot = await world.start()
    await bot.recover()
    state = await whole(bot.ctx.state)
    assert state.positions == {}
    [trade] = [e for e in state.events.values() if e.kind == "trade"]
    assert Decimal(trade.data["pnl"]) < 0
    await promises(bot, world)
    await world.close()


@pytest.mark.parametrize(
    ("policy", "held_after", "attention"),
    [("close", 0, False), ("adopt", 5, False), ("manual", 5, True)],
)
async def test_a_position_the_bot_does_not_know_goes_by_the_orphan_policy(
    tmp_path: Path, policy: str, held_after: int, attention: bool
) -> None:
    world = World(tmp_path)
    behind_the_bots_back(world, "manual-1")
    bot = await world.start()
    report = await bot.recover(orphan_positions=policy)
    held = world.book.positions()
    assert sum(p.qty for p in held) == held_after
    assert report.needs_attention is attention
    if policy == "adopt":
        [position] = (await whole(bot.ctx.state)).positions.values()
        assert position.metadata["adopted"] and position.size == 5
        [stop] = stops_on_venue(world)
        assert stop.qty == 5, "adopted means protected"
    await world.close()


async def test_an_orphan_whose_close_is_refused_is_never_said_closed(tmp_path: Path) -> None:
    """Another program's coins on a spot account, locked by its own resting stop: the
    close at market is refused. Recovery said "closed at market" all the same."""
    world = World(tmp_path, shorting=False)
    behind_the_bots_back(world, "other-1")
    stop = OrderRequest(
        client_order_id="other-2", symbol="SPY", side="sell", type="stop", qty=Decimal(5),
        stop_price=Decimal(1),
    )  # fmt: skip
    world.book.submit(stop, world.clock.now)
    bot = await world.start()
    report = await bot.recover(orphan_positions="close")
    assert sum(p.qty for p in world.book.positions()) == 5, "nothing could be sold"
    assert "closed at market" not in str(report)
    assert "its close at market was rejected" in str(report) and report.needs_attention
    assert (await whole(bot.ctx.state)).positions == {}, "not the bot's: not kept"
    again = await world.start()  # killed, started again: still for an operator
    report = await again.recover(orphan_positions="close")
    assert report.needs_attention and "left for an operator" in str(report)
    rejected_stops = [o for o in world.book.all_orders() if o.type.value == "stop"]
    assert [o.client_order_id for o in rejected_stops] == ["other-2"], "no stop sent for it"
    await world.close()


async def test_flat_in_the_state_but_held_at_the_broker_is_corrected(tmp_path: Path) -> None:
    """The state was lost (deleted, corrupt and set aside): the venue still holds the
    bot's position. Sync mode with orphans adopted puts it back under a stop."""
    world = World(tmp_path)
    await held_and_protected(world)
    lose_the_state(world)
    bot = await world.start()
    await bot.recover(orphan_positions="adopt")
    [position] = (await whole(bot.ctx.state)).positions.values()
    assert (position.size, position.side) == (Decimal(10), Side.LONG)
    stops = stops_on_venue(world)
    assert position.stop_client_order_id in {s.client_order_id for s in stops}
    await world.close()


async def test_a_position_closed_behind_the_bots_back_is_a_phantom_closed_out(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    await held_and_protected(world)
    [stop] = stops_on_venue(world)
    world.book.cancel(stop.client_order_id, world.clock.now)
    behind_the_bots_back(world, "manual-sell", side="sell", qty="10")
    bot = await world.start()
    report = await bot.recover()
    assert "phantom position closed out" in str(report)
    state = await whole(bot.ctx.state)
    assert state.positions == {} and stops_on_venue(world) == []
    await world.close()


async def test_a_partial_close_by_hand_resizes_the_position_and_its_stop(tmp_path: Path) -> None:
    world = World(tmp_path)
    await held_and_protected(world)
    [stop] = stops_on_venue(world)
    world.book.cancel(stop.client_order_id, world.clock.now)
    behind_the_bots_back(world, "manual-sell", side="sell", qty="4")
    bot = await world.start()
    await bot.recover()
    [position] = (await whole(bot.ctx.state)).positions.values()
    assert position.size == 6
    [stop] = stops_on_venue(world)
    assert stop.qty == 6
    await world.close()


async def test_restore_mode_keeps_the_state_and_reports_every_mismatch(tmp_path: Path) -> None:
    world = World(tmp_path)
    await held_and_protected(world)
    behind_the_bots_back(world, "manual-buy", qty="5")
    bot = await world.start()
    report = await bot.recover(mode="restore")
    assert "MISMATCH SPY" in str(report) and report.needs_attention
    [position] = (await whole(bot.ctx.state)).positions.values()
    assert position.size == 10
    await world.close()


async def test_close_all_flattens_and_cancels_everything(tmp_path: Path) -> None:
    world = World(tmp_path)
    await held_and_protected(world)
    behind_the_bots_back(world, "manual-buy", qty="5")
    bot = await world.start()
    await bot.recover(mode="close_all")
    assert world.book.positions() == [] and world.book.open_orders() == []
    assert (await whole(bot.ctx.state)).positions == {}
    await world.close()


async def test_manual_mode_touches_nothing_and_asks_for_an_operator(tmp_path: Path) -> None:
    world = World(tmp_path)
    await held_and_protected(world)
    [stop] = stops_on_venue(world)
    world.book.cancel(stop.client_order_id, world.clock.now)
    bot = await world.start()
    report = await bot.recover(mode="manual")
    assert report.needs_attention and "waiting for an operator" in str(report)
    assert "SPY: the bot holds long 10, the venue long 10" in str(report)
    assert stops_on_venue(world) == [], "nothing placed until an operator decides"
    await world.close()


async def test_stale_state_is_reported_and_can_wait_for_an_operator(tmp_path: Path) -> None:
    world = World(tmp_path)
    first = await held_and_protected(world)
    await first.ctx.state.heartbeat()
    world.clock.now += timedelta(days=2)
    bot = await world.start()
    report = await bot.recover()
    assert "state is stale" in str(report) and not report.needs_attention
    again = await world.start()
    waiting = await again.recover(on_stale="manual")
    assert waiting.needs_attention and "waiting for an operator" in str(waiting)
    await world.close()


async def test_an_unreadable_balance_means_protect_only(tmp_path: Path) -> None:
    world = World(tmp_path, faults="outage:on=balance")
    await held_and_protected(world)
    bot = await world.start()
    report = await bot.recover()
    assert report.protect_only and "protecting only" in str(report)
    assert len(stops_on_venue(world)) == 1
    await world.close()


async def test_killed_between_the_buy_and_the_stop_the_stop_comes_first(tmp_path: Path) -> None:
    world = World(tmp_path)
    first = await world.start()
    await first.desk.place(symbol="SPY", side=OrderSide.BUY, qty=Decimal(10), purpose=Purpose.ENTRY)
    await first.desk.sync_fills()  # ...killed here: held, no stop
    assert stops_on_venue(world) == []
    bot = await world.start()
    await bot.recover()
    [stop] = stops_on_venue(world)
    assert stop.qty == 10
    await promises(bot, world)
    await world.close()


@pytest.mark.parametrize("policy", ["close", "adopt", "manual"])
@pytest.mark.parametrize("mode", ["sync", "restore", "close_all", "manual"])
async def test_every_mode_with_every_orphan_policy(tmp_path: Path, mode: str, policy: str) -> None:
    """The bot holds 10 SPY, protected; the account also holds 0.5 BTC it does not know.
    (More SPY than the bot thought is not an orphan: sync takes the venue's size.)"""
    world = World(tmp_path)
    await held_and_protected(world)
    orphan = OrderRequest(
        client_order_id="manual-btc", symbol="BTC/USDT", side="buy", type="market",
        qty=Decimal("0.5"),
    )  # fmt: skip
    world.book.submit(orphan, world.clock.now)
    bot = await world.start()
    report = await bot.recover(mode=mode, orphan_positions=policy)
    held = {p.symbol: p.qty for p in world.book.positions()}
    stops = {s.symbol: s.qty for s in stops_on_venue(world)}
    btc_after = {
        "sync": {"close": None, "adopt": Decimal("0.5"), "manual": Decimal("0.5")},
        "restore": dict.fromkeys(("close", "adopt", "manual"), Decimal("0.5")),
        "close_all": dict.fromkeys(("close", "adopt", "manual")),
        "manual": dict.fromkeys(("close", "adopt", "manual"), Decimal("0.5")),
    }[mode][policy]
    assert held.get("BTC/USDT") == btc_after, str(report)
    assert held.get("SPY") == (None if mode == "close_all" else Decimal(10))
    attention = mode in ("restore", "manual") or (mode == "sync" and policy == "manual")
    assert report.needs_attention is attention, str(report)
    if mode == "sync":  # what it holds and knows is protected; what it left, it says
        assert stops.get("SPY") == Decimal(10)
        assert stops.get("BTC/USDT") == (Decimal("0.5") if policy == "adopt" else None)
    if mode == "close_all":
        assert stops == {} and (await whole(bot.ctx.state)).positions == {}
    await world.close()


async def test_the_rest_of_a_partial_exit_filled_before_the_positions_are_read_is_no_phantom(
    tmp_path: Path,
) -> None:
    """An exit sent again at start fills half; the rest fills after the fills were read
    and before the positions are (the venue answered the fills late). The position it
    closed is closed by its fills, never closed out as a phantom (the fill would then
    open a position the other way)."""
    world = World(tmp_path)
    bot = await held_and_protected(world)
    [position] = (await bot.ctx.state.snapshot()).positions.values()
    CRASH.arm("exit_stored_not_sent")
    with pytest.raises(SimulatedCrash):
        await bot.desk.close(position)  # stored, never sent
    CRASH.disarm()
    world.clock.now += timedelta(minutes=1)  # past the grace: sent again at the start
    world.faults = "partial_fill:on=submit,times=1; slow:on=fills,nth=2,seconds=40"
    bot = await world.start()
    report = await bot.recover()
    assert "phantom" not in str(report)
    await bot.desk.sync_fills()
    assert (await bot.ctx.state.snapshot()).positions == {}
    assert world.book.positions() == []
    await promises(bot, world)
    await world.close()
