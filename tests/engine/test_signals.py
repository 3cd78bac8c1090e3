"""What a signal can ask for, checked on the exchange's book: its own size (units,
notional, a share of equity, the risk at the stop), a limit entry that expires, its own
stop, more of the position, part of it out, and custom state that outlives the process.
A size that cannot be met is skipped, saying why; nothing smaller is ever sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from botwarden.domain.models import Bar, Position, Stop
from botwarden.domain.orders import OrderType
from botwarden.domain.sizing import Size
from botwarden.engine.runner import Runner
from botwarden.strategies.base import Signal
from botwarden.venues.base import OrderState, VenueOrder
from tests.conftest import whole
from tests.engine.harness import Exchange

Plan = Callable[[int, Bar, Position | None], Signal | None]


class Script:
    """Decides by the number of the pass: `plan(n, last bar, position)`."""

    name = "script"
    bars_needed = 1

    def __init__(self, plan: Plan) -> None:
        self.plan, self.n = plan, 0

    def decide(self, symbol: str, bars: list[Bar], position: Position | None) -> Signal | None:
        self.n += 1
        return self.plan(self.n, bars[-1], position)


def on_pass(wanted: int, make: Callable[[Bar], Signal]) -> Plan:
    return lambda n, bar, position: make(bar) if n == wanted else None


def orders(exchange: Exchange, type: OrderType | None = None) -> list[VenueOrder]:
    return [o for o in exchange.book.all_orders("SPY") if type in (None, o.type)]


def stops_resting(exchange: Exchange) -> list[VenueOrder]:
    return [o for o in exchange.book.open_orders("SPY") if o.type is OrderType.STOP]


def entries(exchange: Exchange) -> list[VenueOrder]:
    return [o for o in orders(exchange) if o.type is not OrderType.STOP and o.side.value == "buy"]


async def trade(exchange: Exchange, plan: Plan, hours: int = 2, **config: object) -> Runner:
    runner = await exchange.runner(Script(plan), **config)
    await exchange.hours(runner, hours)
    return runner


def skipped(events: dict) -> list[str]:
    return [e.message for e in events.values() if e.kind == "signal" and "skipped" in e.message]


@pytest.mark.parametrize(
    ("size", "value_of"),
    [
        (Size.units(7), lambda qty, price, equity: qty == 7),
        (Size.notional(2000), lambda qty, price, equity: 2000 - price < qty * price <= 2000),
        (Size.equity_pct(5), lambda qty, price, equity: qty * price <= equity * Decimal("0.05")),
    ],
)
async def test_an_entry_carries_its_own_size(exchange: Exchange, size: Size, value_of) -> None:
    runner = await trade(exchange, on_pass(1, lambda bar: Signal.long("SPY", bar, size=size)))
    [entry] = entries(exchange)
    equity = Decimal(100000)
    assert value_of(entry.qty, entry.avg_price, equity), (entry.qty, entry.avg_price)
    [stop] = stops_resting(exchange)
    assert stop.qty == entry.qty
    await runner.state.close()


async def test_an_entry_sized_by_risk_loses_that_much_at_its_stop(exchange: Exchange) -> None:
    """risk_pct 1 of 100,000 with its own stop 3% away: 1,000 lost if the stop fires."""
    signal = lambda bar: Signal.long("SPY", bar, size=Size.risk_pct(1), stop=Stop.percent(3))  # noqa: E731
    runner = await trade(exchange, on_pass(1, signal))
    [entry] = entries(exchange)
    [stop] = stops_resting(exchange)
    loss = (entry.avg_price - stop.stop_price) * entry.qty
    assert Decimal(990) < loss <= Decimal(1000) + entry.qty * Decimal("0.01"), loss
    await runner.state.close()


async def test_the_configs_size_may_be_a_risk_too(exchange: Exchange) -> None:
    runner = await trade(
        exchange,
        on_pass(1, lambda bar: Signal.long("SPY", bar)),
        order={"risk_pct": 0.5},
        stop={"kind": "absolute", "distance": 5},
    )
    [entry] = entries(exchange)
    assert entry.qty * 5 <= 500 and entry.qty * 5 > 499, entry.qty
    await runner.state.close()


@pytest.mark.parametrize(
    ("symbol", "size", "why"),
    [
        ("SPY", Size.units(100000), "is more than the buying power 100000"),
        ("BTC/USDT", Size.notional(10), "below the minimum 0.001"),
    ],
)
async def test_a_size_that_cannot_be_met_is_skipped_never_shrunk(
    exchange: Exchange, symbol: str, size: Size, why: str
) -> None:
    runner = await trade(
        exchange, on_pass(1, lambda bar: Signal.long(symbol, bar, size=size)), symbols=[symbol]
    )
    assert exchange.book.all_orders() == [], "nothing reached the exchange"
    [message] = skipped((await whole(runner.state)).events)
    assert f"enter_long {symbol} skipped: {symbol}: " in message and why in message, message
    await runner.state.close()


async def test_a_limit_entry_rests_then_expires_unfilled(exchange: Exchange) -> None:
    def low_limit(bar: Bar) -> Signal:
        far_below = (bar.close * Decimal("0.5")).quantize(Decimal("0.01"))
        return Signal.long("SPY", bar, limit=far_below, expires_after=timedelta(hours=3))

    runner = await trade(exchange, on_pass(1, low_limit), hours=2)
    [entry] = entries(exchange)
    assert entry.type is OrderType.LIMIT and entry.state is OrderState.OPEN
    await exchange.hours(runner, 3)
    [entry] = entries(exchange)
    assert entry.state is OrderState.CANCELED and entry.filled_qty == 0
    state = await whole(runner.state)
    assert not state.positions
    assert any("canceled: expired" in e.message for e in state.events.values())
    await runner.state.close()


async def test_a_limit_entry_at_or_above_the_price_fills_and_is_protected(
    exchange: Exchange,
) -> None:
    def high_limit(bar: Bar) -> Signal:
        above = (bar.close * Decimal("1.05")).quantize(Decimal("0.01"))
        return Signal.long("SPY", bar, size=Size.units(3), limit=above)

    runner = await trade(exchange, on_pass(1, high_limit))
    [entry] = entries(exchange)
    assert entry.type is OrderType.LIMIT and entry.state is OrderState.FILLED
    assert [s.qty for s in stops_resting(exchange)] == [3]
    await runner.state.close()


async def test_a_position_keeps_its_own_stop_not_the_configs(exchange: Exchange) -> None:
    signal = lambda bar: Signal.long("SPY", bar, stop=Stop.price(400))  # noqa: E731
    runner = await trade(exchange, on_pass(1, signal))
    [stop] = stops_resting(exchange)
    assert stop.stop_price == 400
    state = await whole(runner.state)
    [position] = state.positions.values()
    assert position.stop_rule == Stop.price(400)
    await runner.state.close()


async def test_a_stop_on_the_wrong_side_of_the_entry_is_skipped(exchange: Exchange) -> None:
    signal = lambda bar: Signal.long("SPY", bar, stop=Stop.price(9999))  # noqa: E731
    runner = await trade(exchange, on_pass(1, signal))
    assert orders(exchange) == []
    [message] = skipped((await whole(runner.state)).events)
    assert "a long's stop must be below the entry" in message
    await runner.state.close()


async def test_scaling_in_resizes_the_stop_to_the_whole_position(exchange: Exchange) -> None:
    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        if n == 1:
            return Signal.long("SPY", bar, size=Size.units(4))
        if n == 3:
            return Signal.add("SPY", bar, size=Size.units(6))
        return None

    runner = await trade(exchange, plan, hours=4)
    [position] = (await whole(runner.state)).positions.values()
    assert position.size == 10
    assert [s.qty for s in stops_resting(exchange)] == [10]
    await runner.state.close()


async def test_adding_to_nothing_is_skipped(exchange: Exchange) -> None:
    runner = await trade(exchange, on_pass(1, lambda bar: Signal.add("SPY", bar)))
    assert orders(exchange) == []
    assert "nothing is held to add to" in skipped((await whole(runner.state)).events)[0]
    await runner.state.close()


@pytest.mark.parametrize("reduce_only", [True, False])
async def test_a_partial_exit_leaves_the_rest_protected(tmp_path, reduce_only: bool) -> None:
    exchange = Exchange(tmp_path, reduce_only=reduce_only)

    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        if n == 1:
            return Signal.long("SPY", bar, size=Size.units(10))
        if n == 3:
            return Signal.exit("SPY", bar, "take half", fraction=0.5)
        if n == 5:
            return Signal.exit("SPY", bar, "two more", qty=2)
        return None

    runner = await trade(exchange, plan, hours=3)
    [position] = (await whole(runner.state)).positions.values()
    assert position.size == 5
    assert [s.qty for s in stops_resting(exchange)] == [5]
    await exchange.hours(runner, 2)
    [position] = (await whole(runner.state)).positions.values()
    assert position.size == 3 and [s.qty for s in stops_resting(exchange)] == [3]
    await runner.state.close()
    exchange.book.close()


async def test_a_partial_exit_that_would_leave_dust_closes_all(tmp_path) -> None:
    exchange = Exchange(tmp_path)

    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        if n == 1:
            return Signal.long("BTC/USDT", bar, size=Size.units("0.0015"))
        if n == 3:
            return Signal.exit("BTC/USDT", bar, qty="0.001")  # would leave 0.0005 < 0.001
        return None

    runner = await trade(exchange, plan, hours=3, symbols=["BTC/USDT"])
    state = await whole(runner.state)
    assert not state.positions, "closed whole"
    assert not [o for o in exchange.book.open_orders() if o.type is OrderType.STOP]
    await runner.state.close()
    exchange.book.close()


async def test_custom_state_and_a_tighter_stop_outlive_the_process(exchange: Exchange) -> None:
    seen: list[dict] = []

    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        if position is not None:
            seen.append(dict(position.custom))
        if n == 1:
            return Signal.long("SPY", bar, stop=Stop.price(400), state={"stage": 1})
        if n == 3:
            return Signal.update("SPY", bar, stop=Stop.price(420), state={"stage": 2})
        if n == 4:
            return Signal.update("SPY", bar, stop=Stop.price(410))  # looser: not taken
        return None

    first = await trade(exchange, plan, hours=4)
    assert [s.stop_price for s in stops_resting(exchange)] == [420]
    await first.state.close()  # killed: a new instance takes over the same state
    again: list[dict] = []
    second = await exchange.runner(
        Script(lambda n, bar, position: again.append(dict(position.custom)) if position else None)
    )
    await exchange.hours(second, 1)
    assert seen[0] == {"stage": 1} and seen[-1] == {"stage": 2}
    assert again == [{"stage": 2}]
    assert [s.stop_price for s in stops_resting(exchange)] == [420], "never loosened"
    await second.state.close()


async def test_a_stop_at_or_below_zero_is_skipped_before_anything_is_sent(
    exchange: Exchange,
) -> None:
    signal = lambda bar: Signal.long("SPY", bar, stop=Stop.distance(100000))  # noqa: E731
    runner = await trade(exchange, on_pass(1, signal))
    assert orders(exchange) == []
    assert "is at or below zero" in skipped((await whole(runner.state)).events)[0]
    with pytest.raises(ValueError, match="at or below zero"):
        Stop.percent(100)
    await runner.state.close()


async def test_what_a_strategy_does_to_the_position_it_is_shown_stays_with_it(
    exchange: Exchange,
) -> None:
    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        if position is None:
            return Signal.long("SPY", bar, state={"stage": 1})
        position.custom["stage"] = 99  # in place: not how state is kept
        position.metadata["underwater_alert"] = "forged"
        return None

    runner = await trade(exchange, plan, hours=4)
    [position] = (await whole(runner.state)).positions.values()
    assert position.custom == {"stage": 1} and "underwater_alert" not in position.metadata
    await runner.state.close()


async def test_a_strategy_failing_with_a_new_message_each_pass_is_told_once(
    exchange: Exchange,
) -> None:
    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        raise ValueError(f"no value for bar {n}")

    runner = await trade(exchange, plan, hours=4)
    state = await whole(runner.state)
    told = [e for e in state.events.values() if "decide(SPY) failed" in e.message]
    assert len(told) == 1 and state.bot.last_error.endswith("no value for bar 1")
    await runner.state.close()


async def test_the_first_signal_after_a_failure_is_acted_on(exchange: Exchange) -> None:
    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        if n == 1:
            raise RuntimeError("warming up")
        return Signal.long("SPY", bar) if position is None else None

    runner = await trade(exchange, plan, hours=2)
    state = await whole(runner.state)
    assert len(state.positions) == 1, "entered at once, not skipped for the last failure"
    assert state.bot.status.value == "running"
    await runner.state.close()


async def test_a_part_out_starts_no_cooldown_and_breaks_no_streak(exchange: Exchange) -> None:
    def plan(n: int, bar: Bar, position: Position | None) -> Signal | None:
        if n == 1:
            return Signal.long("SPY", bar, size=Size.units(10))
        if n == 2:
            return Signal.exit("SPY", bar, qty=4)
        if n == 3:
            return Signal.add("SPY", bar, size=Size.units(1))
        return None

    runner = await trade(exchange, plan, hours=3, risk={"cooldown_after_exit": "1d"})
    state = await whole(runner.state)
    [position] = state.positions.values()
    assert position.size == 7, "the add came right after the part out"
    assert not state.cooldowns and state.risk.consecutive_losses == 0
    assert position.realized_pnl != 0
    await runner.state.close()
