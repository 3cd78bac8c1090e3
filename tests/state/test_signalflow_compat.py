"""A loop ported from signalflow keeps its calls, and botwarden keeps its own records.

signalflow's `StateManager.mark_signal_processed(signal_id, pair, timestamp)` and its
`Position` (`id, pair, side, size, entry_price, entry_ts, sl, tp, metadata`, or
`signalflow.core.Position`'s `position_type, qty, entry_time, meta`) come from
signalflow's `src/signalflow/strategy/state.py` and `core/containers/position.py`
(docs/porting-signalflow.md). The stand-ins below have exactly those fields, since
signalflow itself is not a dependency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from botwarden.compat.signalflow import from_signalflow
from botwarden.domain import Position
from botwarden.state.manager import StateManager
from tests.conftest import Backend

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
BAR = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
"""The signal's own time: the bar it fired on, before it was processed (T0)."""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class SignalflowPosition:
    """signalflow.strategy.state.Position, field for field."""

    id: str
    pair: str
    side: str
    size: float
    entry_price: float
    entry_ts: datetime
    sl: float | None = None
    tp: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class PositionType(str, Enum):  # noqa: UP042 (signalflow defines it so)
    """signalflow.core.enums.PositionType."""

    LONG = "long"
    SHORT = "short"


@dataclass(slots=True)
class SignalflowCorePosition:
    """signalflow.core.Position, field for field (defaults included)."""

    id: str = "core-1"
    is_closed: bool = False
    pair: str = ""
    position_type: PositionType = PositionType.LONG
    signal_strength: float = 1.0
    entry_time: datetime | None = None
    last_time: datetime | None = None
    entry_price: float = 0.0
    last_price: float = 0.0
    qty: float = 0.0
    fees_paid: float = 0.0
    realized_pnl: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def signalflow_position(**changes: Any) -> SignalflowPosition:
    fields: dict[str, Any] = {
        "id": "pos_001",
        "pair": "BTC/USDT",
        "side": "long",
        "size": 0.1,
        "entry_price": 50000.1,
        "entry_ts": T0,
        "sl": 49000.0,
        "tp": 55000.0,
        "metadata": {"detector": "sma_cross", "stage": 1},
    }
    fields.update(changes)
    return SignalflowPosition(**fields)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def _sqlite(folder: Path) -> dict[str, Any]:
    """signalflow's config dict, with the store botwarden embeds by default."""
    return {
        "backend": "sqlite",
        "sqlite": {"path": str(folder / "state" / "{flow_id}.db")},
        "recovery": {"mode": "sync", "orphan_positions": "close", "max_state_age": "24h"},
    }


async def opened(backend: Backend, clock: Clock, **settings: Any) -> StateManager:
    """A manager on a new store object: what a (re)started process sees."""
    state = StateManager("my_bot", backend.store("my_bot"), clock=clock, **settings)
    await state.open()
    return state


# -- mark_signal_processed as signalflow calls it -----------------------------------------


async def test_signalflows_call_is_remembered_across_a_restart(
    backend: Backend, clock: Clock
) -> None:
    state = await opened(backend, clock)
    await state.mark_signal_processed(signal_id="sig_789", pair="BTC/USDT", timestamp=BAR)
    await state.close()

    clock.advance(minutes=5)
    again = await opened(backend, clock)
    assert await again.is_signal_processed("sig_789")
    signals = await again.get_signal_state()
    assert signals.processed == {"sig_789": T0}, "remembered from when it was processed"
    assert signals.last_bar_time == BAR, "the signal's time is signalflow's last_processed_ts"
    await again.close()


async def test_the_positional_call_signalflow_declares_works_too(
    backend: Backend, clock: Clock
) -> None:
    state = await opened(backend, clock)
    await state.mark_signal_processed("sig_1", "ETH/USDT", BAR)
    assert await state.is_signal_processed("sig_1")
    assert (await state.get_signal_state()).last_bar_time == BAR
    await state.close()


async def test_an_old_signal_is_remembered_for_the_window_from_when_it_was_processed(
    backend: Backend, clock: Clock
) -> None:
    """A signal replayed from last month's bars must not be acted on twice: the window
    counts from processing, never from the signal's own time."""
    state = await opened(backend, clock, signal_retention=timedelta(days=7))
    month_old = T0 - timedelta(days=30)
    await state.mark_signal_processed("replayed", pair="BTC/USDT", timestamp=month_old)
    clock.advance(days=6)
    await state.mark_signal_processed("next", pair="BTC/USDT", timestamp=T0)  # prunes
    await state.close()

    again = await opened(backend, clock, signal_retention=timedelta(days=7))
    assert await again.is_signal_processed("replayed")
    await again.close()


async def test_the_last_bar_time_only_moves_forward(backend: Backend, clock: Clock) -> None:
    state = await opened(backend, clock)
    await state.mark_signal_processed("late", pair="BTC/USDT", timestamp=BAR)
    await state.mark_signal_processed("early", pair="ETH/USDT", timestamp=BAR - timedelta(hours=1))
    async with state.transaction() as tx:  # several in one write: the newest wins
        tx.mark_signal_processed("a", T0, pair="BTC/USDT", timestamp=BAR + timedelta(hours=2))
        tx.mark_signal_processed("b", T0, pair="ETH/USDT", timestamp=BAR + timedelta(hours=1))
    await state.close()

    again = await opened(backend, clock)
    signals = await again.get_signal_state()
    assert signals.last_bar_time == BAR + timedelta(hours=2)
    assert set(signals.processed) == {"late", "early", "a", "b"}
    await again.close()


async def test_todays_calls_leave_the_last_bar_alone(backend: Backend, clock: Clock) -> None:
    state = await opened(backend, clock)
    await state.set_last_bar_time(BAR)
    await state.mark_signal_processed("golden_cross:SPY:buy:2026-03-02T14:00")
    async with state.transaction() as tx:
        tx.mark_signal_processed("golden_cross:SPY:sell:2026-03-02T15:00", T0)
    await state.close()

    again = await opened(backend, clock)
    signals = await again.get_signal_state()
    assert signals.last_bar_time == BAR
    assert set(signals.processed) == {
        "golden_cross:SPY:buy:2026-03-02T14:00",
        "golden_cross:SPY:sell:2026-03-02T15:00",
    }
    await again.close()


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            {"timestamp": datetime(2026, 3, 2, 14, 0)},
            r"timestamp 2026-03-02T14:00:00 has no timezone",
        ),
        ({"timestamp": "2026-03-02T14:00:00+00:00"}, r"timestamp must be the signal's time"),
        ({"timestamp": BAR.date()}, r"timestamp must be the signal's time"),
        ({"pair": ""}, r"pair must be the signal's market"),
        ({"pair": 42}, r"pair must be the signal's market"),
        ({"signal_id": ""}, r"signal_id must be a non-empty string"),
        ({"signal_id": 789}, r"signal_id must be a non-empty string"),
    ],
    ids=["naive", "text", "a-date", "empty-pair", "number-pair", "empty-id", "number-id"],
)
async def test_a_wrong_argument_is_one_clear_error_and_writes_nothing(
    backend: Backend, clock: Clock, arguments: dict[str, Any], error: str
) -> None:
    state = await opened(backend, clock)
    call = {"signal_id": "sig_789", "pair": "BTC/USDT", "timestamp": BAR, **arguments}
    with pytest.raises(ValueError, match=error):
        await state.mark_signal_processed(**call)
    with pytest.raises(ValueError, match=error):
        async with state.transaction() as tx:
            tx.mark_signal_processed(call.pop("signal_id"), T0, **call)
    await state.close()

    again = await opened(backend, clock)
    signals = await again.get_signal_state()
    assert (signals.processed, signals.last_bar_time) == ({}, None)
    await again.close()


# -- the day's PnL, as signalflow hands it: a float ----------------------------------------


async def test_a_float_pnl_is_booked_as_it_prints(backend: Backend, clock: Clock) -> None:
    state = await opened(backend, clock)
    await state.update_daily_pnl(0.1)
    await state.update_daily_pnl(0.2)
    await state.update_equity(10000.1)
    await state.close()

    again = await opened(backend, clock)
    risk = await again.get_risk_state()
    assert (risk.daily_pnl, risk.peak_equity) == (Decimal("0.3"), Decimal("10000.1"))
    assert risk.daily_trade_count == 0, "booking PnL counts no trade (count_trade does)"
    await again.close()


@pytest.mark.parametrize("pnl", [True, "a lot", None, [1]])
async def test_a_pnl_that_is_not_a_number_is_refused(
    tmp_path: Path, clock: Clock, pnl: object
) -> None:
    async with StateManager.from_config("my_bot", _sqlite(tmp_path), clock=clock) as state:
        with pytest.raises(ValueError, match=r"pnl must be a number"):
            await state.update_daily_pnl(pnl)  # type: ignore[arg-type]
        assert (await state.get_risk_state()).daily_pnl == 0


# -- signalflow's positions ----------------------------------------------------------------


async def test_a_signalflow_position_comes_back_as_botwardens_after_a_restart(
    backend: Backend, clock: Clock
) -> None:
    position = from_signalflow(signalflow_position(), bot_id="my_bot")
    assert position == Position(
        id="pos_001",
        bot_id="my_bot",
        symbol="BTC/USDT",
        side="long",
        size=Decimal("0.1"),
        entry_price=Decimal("50000.1"),
        entry_time=T0,
        stop_price=Decimal("49000.0"),
        take_profit=Decimal("55000.0"),
        custom={"detector": "sma_cross", "stage": 1},
    )
    state = await opened(backend, clock)
    await state.save_position(position)
    await state.close()

    again = await opened(backend, clock)
    assert await again.get_positions() == [position]
    await again.close()


async def test_what_is_stored_keeps_botwardens_names(tmp_path: Path, clock: Clock) -> None:
    """Other code and older states read `symbol`, `size`, `entry_time`: a converted
    position is stored exactly as one built by botwarden."""
    config = _sqlite(tmp_path)
    async with StateManager.from_config(flow_id="my_bot", config=config, clock=clock) as state:
        await state.save_position(from_signalflow(signalflow_position(), bot_id="my_bot"))
        stored = json.loads((await state.store.load("my_bot"))["positions"]["pos_001"])
    assert set(stored) == set(Position.model_fields)
    assert (stored["symbol"], stored["size"], stored["entry_time"]) == (
        "BTC/USDT",
        "0.1",
        "2026-03-02T14:30:00Z",
    )
    assert stored["custom"] == {"detector": "sma_cross", "stage": 1}
    assert stored["metadata"] == {}, "botwarden's metadata is the engine's notes"


def test_signalflows_core_position_converts_too() -> None:
    core = SignalflowCorePosition(
        id="core-1",
        pair="ETH/USDT",
        position_type=PositionType.SHORT,
        entry_time=T0,
        entry_price=3000.5,
        qty=0.25,
        last_price=2990.0,
        realized_pnl=1.5,
        meta={"grid": 3},
    )
    position = from_signalflow(core, bot_id="my_bot")
    assert (position.symbol, position.side, position.size, position.entry_price) == (
        "ETH/USDT",
        "short",
        Decimal("0.25"),
        Decimal("3000.5"),
    )
    assert (position.entry_time, position.custom, position.stop_price) == (T0, {"grid": 3}, None)


def test_a_stored_signalflow_record_converts_once_its_zone_is_said() -> None:
    """What signalflow's DuckDB or Redis state holds: `to_dict()`, a naive ISO time."""
    record = {**signalflow_position().__dict__, "entry_ts": "2026-03-02T14:30:00"}
    with pytest.raises(ValueError, match=r"entry_ts 2026-03-02T14:30:00 has no timezone"):
        from_signalflow(record, bot_id="my_bot")
    assert from_signalflow(record, bot_id="my_bot", naive_tz=UTC).entry_time == T0


@pytest.mark.parametrize(
    ("position", "error"),
    [
        (signalflow_position(side="buy"), r"side 'buy' is not a position side"),
        (signalflow_position(size=0.0), r"size 0.0: Input should be greater than 0"),
        (signalflow_position(entry_price=float("nan")), r"entry_price nan: .*finite"),
        (signalflow_position(pair=""), r"pair '' is not a market"),
        (signalflow_position(metadata=["a"]), r"metadata \['a'\] is not a mapping"),
        ({**signalflow_position().__dict__, "qty": 1.0}, r"gives both size and qty"),
        ({**signalflow_position().__dict__, "sise": 1.0}, r"unknown field\(s\) sise"),
        (
            {"id": "x", "pair": "BTC/USDT", "side": "long", "size": 1, "entry_ts": T0},
            r"entry_price is missing",
        ),
        (
            SignalflowCorePosition(pair="BTC/USDT", entry_price=1.0, qty=1.0),
            r"entry_ts or entry_time is missing",
        ),
        (SignalflowCorePosition(is_closed=True), r"is_closed is True; only an open position"),
        ("pos_001", r"not a signalflow position"),
    ],
    ids=[
        "side",
        "zero-size",
        "nan-price",
        "empty-pair",
        "metadata",
        "two-sizes",
        "typo",
        "no-price",
        "no-time",
        "closed",
        "not-a-position",
    ],
)
def test_a_wrong_signalflow_position_is_one_error_naming_its_field(
    position: object, error: str
) -> None:
    with pytest.raises(ValueError, match=error) as raised:
        from_signalflow(position, bot_id="my_bot")
    assert "\n" not in str(raised.value), "one line"
