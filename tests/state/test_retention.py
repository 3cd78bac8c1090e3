"""Retention (`state.history.keep`): the history goes once it ended `keep` ago, and
nothing recovery needs goes with it, over random histories on every backend.

The expected outcome is worked out here from the rules as docs/state.md states them,
not by asking the code that applies them."""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botwarden.domain import Fill, OrderIntent, Position
from botwarden.domain.models import Event, Ledger, PnlSum
from botwarden.domain.positions import Trade
from botwarden.errors import StateError
from botwarden.state import retention
from botwarden.state.base import LIVE, Change, Put, StateStore
from botwarden.state.manager import StateManager
from botwarden.state.records import LEDGER, SWEEP, document, event_key, trade_key
from tests.conftest import Backend, make_backend

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
BOT = "bot"


@dataclass
class Order:
    cid: str
    age: timedelta
    """How long ago it last changed (terminal: when it ended)."""
    terminal: bool
    position_id: str | None
    fills: list[timedelta]
    """How long ago each of its fills happened."""


@dataclass
class History:
    """A random bot: live state and history, and what the venue lists as open."""

    orders: list[Order]
    open_positions: dict[str, tuple[str | None, str | None]]
    """Position id -> its stop's and take-profit's client order ids."""
    events: list[timedelta]
    """The event log's times, by sequence, as ages."""
    trades: list[timedelta]
    """Closed trades' exits, as ages."""
    fills_read: bool
    """The ledger holds a fills cursor."""
    venue_open: set[str]
    keep: timedelta
    page: int
    removed: dict[str, set[str]] = field(default_factory=dict)


ages = st.integers(min_value=0, max_value=24 * 40).map(lambda hours: timedelta(hours=hours))


@st.composite
def histories(draw: st.DrawFn) -> History:
    count = draw(st.integers(0, 30))
    orders = []
    for n in range(count):
        terminal = draw(st.booleans())
        orders.append(
            Order(
                cid=f"bot-1-{n:06d}",
                age=draw(ages),
                terminal=terminal,
                position_id=draw(st.sampled_from([None, f"pos-bot-1-{n:06d}", "pos-other"])),
                fills=draw(st.lists(ages, max_size=3)),
            )
        )
    cids = [o.cid for o in orders] or ["bot-1-999999"]
    positions = {}
    for cid in draw(st.lists(st.sampled_from(cids), max_size=4, unique=True)):
        stop = draw(st.sampled_from([None, *cids]))
        take_profit = draw(st.sampled_from([None, *cids]))
        positions[f"pos-{cid}"] = (stop, take_profit)
    if draw(st.booleans()):
        positions["pos-other"] = (None, None)
    # The log is written in time order but for a venue's clock running ahead now and
    # then: mostly decreasing ages, with jumps.
    events, age = [], draw(ages)
    for _ in range(draw(st.integers(0, 40))):
        events.append(age)
        age = max(timedelta(0), age - timedelta(hours=draw(st.integers(-30, 60))))
    return History(
        orders=orders,
        open_positions=positions,
        events=events,
        trades=sorted(draw(st.lists(ages, max_size=15)), reverse=True),
        fills_read=draw(st.booleans()),
        venue_open=set(draw(st.lists(st.sampled_from(cids), max_size=3))),
        keep=timedelta(days=draw(st.integers(1, 30)), hours=draw(st.sampled_from([0, 5]))),
        page=draw(st.sampled_from([1, 2, 3, 500])),
    )


def _intent(order: Order) -> OrderIntent:
    at = NOW - order.age
    intent = OrderIntent(
        client_order_id=order.cid,
        symbol="SPY",
        side="buy",
        type="market",
        qty=Decimal(3),
        purpose="entry",
        position_id=order.position_id,
        created_at=at - timedelta(minutes=5),
        updated_at=at,
    )
    return intent.evolve(status="canceled") if order.terminal else intent


def _fill(order: Order, number: int, age: timedelta) -> Fill:
    return Fill(
        trade_id=f"T-{order.cid}-{number}",
        client_order_id=order.cid,
        symbol="SPY",
        side="buy",
        qty=Decimal(1),
        price=Decimal("100.5"),
        time=NOW - age,
    )


def _trade(number: int, age: timedelta) -> Trade:
    return Trade(
        position_id=f"pos-{number}",
        symbol="SPY",
        side="long",
        qty=Decimal(1),
        entry_price=Decimal(100),
        exit_price=Decimal(101),
        pnl=Decimal(1),
        entry_time=NOW - age - timedelta(hours=1),
        exit_time=NOW - age,
        closed_by=f"x-{number}",
        exit_fill=f"F-{number}",
    )


def _position(pid: str, stop: str | None, take_profit: str | None) -> Position:
    return Position(
        id=pid,
        bot_id=BOT,
        symbol="SPY",
        side="long",
        size=Decimal(1),
        entry_price=Decimal(100),
        entry_time=NOW - timedelta(days=90),
        stop_client_order_id=stop,
        take_profit_client_order_id=take_profit,
    )


def _records(history: History) -> list[Put]:
    puts = []
    for order in history.orders:
        collection = "past_intents" if order.terminal else "intents"
        puts.append(Put(collection, order.cid, document(_intent(order))))
        for number, age in enumerate(order.fills):
            fill = _fill(order, number, age)
            puts.append(Put("fills", fill.trade_id, document(fill)))
    for pid, (stop, take_profit) in history.open_positions.items():
        puts.append(Put("positions", pid, document(_position(pid, stop, take_profit))))
    for seq, age in enumerate(history.events):
        event = Event(seq=seq, time=NOW - age, kind="note", message=f"event {seq}")
        puts.append(Put("events", event_key(seq), document(event)))
    days: dict[date, PnlSum] = {}
    for number, age in enumerate(history.trades):
        trade = _trade(number, age)
        puts.append(Put("trades", trade_key(trade), document(trade)))
        day = trade.exit_time.date()
        days[day] = days.get(day, PnlSum()).plus(trade.pnl, trade.fees)
    puts += [Put("trade_days", day.isoformat(), document(s)) for day, s in days.items()]
    ledger = Ledger(
        next_order_seq=len(history.orders),
        next_event_seq=len(history.events),
        fills_cursor="cursor-7" if history.fills_read else None,
    )
    puts.append(Put("meta", LEDGER, document(ledger)))
    return puts


def expected_removals(history: History) -> dict[str, set[str]]:
    """What the rules say goes: ended more than `keep` ago, and not needed."""
    before = NOW - history.keep
    needed = set(history.venue_open)
    for order in history.orders:
        if not order.terminal:
            needed.add(order.cid)
    for pid, (stop, take_profit) in history.open_positions.items():
        needed |= {pid.removeprefix("pos-"), stop, take_profit} - {None}
    removed: dict[str, set[str]] = {c: set() for c in retention.ROUND}
    for order in history.orders:
        held = order.position_id in history.open_positions
        if order.terminal and NOW - order.age < before and order.cid not in needed and not held:
            removed["past_intents"].add(order.cid)
        for number, age in enumerate(order.fills):
            if history.fills_read and NOW - age < before and order.cid not in needed:
                removed["fills"].add(f"T-{order.cid}-{number}")
    for seq, age in enumerate(history.events):  # the log's oldest run of old events
        if NOW - age >= before:
            break
        removed["events"].add(event_key(seq))
    for number, age in enumerate(history.trades):
        if NOW - age < before:
            removed["trades"].add(trade_key(_trade(number, age)))
    days = {(NOW - age).date() for age in history.trades}
    # A trading day two days after its date: one in the bot's zone may end a day late.
    removed["trade_days"] = {d.isoformat() for d in days if d < (before - timedelta(days=2)).date()}
    return removed


async def _everything(store: StateStore) -> dict[str, dict[str, object]]:
    """Every record, decoded (a backend may write a document's keys in its own order)."""
    records = {
        **await store.load(BOT),
        **{c: dict(await store.scan(BOT, c)) for c in retention.ROUND},
    }
    return {c: {k: json.loads(v) for k, v in texts.items()} for c, texts in records.items()}


async def _apply_retention(backend: Backend, history: History) -> None:
    store = backend.store(BOT)
    await store.open()
    try:
        await store.apply(BOT, Change(_records(history)))
        before = await _everything(store)
    finally:
        await store.close()
    state = StateManager(BOT, backend.store(BOT), clock=lambda: NOW, history_keep=history.keep)
    async with state:
        for _ in range(1000):  # a round over many calls, each going on where it stopped
            await state.keep_history(history.venue_open, budget=history.page)
            sweep = (await state.snapshot()).history_sweep
            if sweep is not None and sweep.collection is None:
                break
        else:
            pytest.fail("retention's round never ended")
        after = await _everything(state.store)
        # A round just ended: the next is a day away, and removes nothing before.
        assert await state.keep_history(history.venue_open) == 0
    for collection in LIVE:
        now = dict(after[collection])
        if collection == "meta":
            now.pop(SWEEP)
        assert now == before[collection], f"retention changed the live {collection}"
    history.removed = {c: set(before[c]) - set(after[c]) for c in retention.ROUND}
    for collection in retention.ROUND:
        assert set(after[collection]) <= set(before[collection])
        kept = {k: v for k, v in before[collection].items() if k in after[collection]}
        assert kept == after[collection], f"retention rewrote records of {collection}"


def _check(name: str, history: History) -> None:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(retention, "PAGE", history.page)
        for backend in make_backend(name, Path(folder)):
            asyncio.run(_apply_retention(backend, history))
    expected = expected_removals(history)
    for collection in retention.ROUND:
        assert history.removed[collection] == expected[collection], collection


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_retention_removes_what_ended_and_nothing_recovery_needs(history: History) -> None:
    _check("sqlite", history)


@pytest.mark.parametrize("name", ["memory", "duckdb", "jsonfile", "redis", "postgres"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_retention_on_every_backend(name: str, history: History) -> None:
    _check(name, history)


async def test_a_record_retention_cannot_read_stops_it_naming_the_record(tmp_path: Path) -> None:
    """A hand-edited record of the history: retention stops there, with the one error
    that names it, and removes nothing of that page."""
    [backend] = make_backend("sqlite", tmp_path)
    store = backend.store(BOT)
    await store.open()
    old = Event(seq=0, time=NOW - timedelta(days=9), kind="note", message="old")
    ops = [Put("events", event_key(0), {**document(old), "time": "last tuesday"})]
    ops.append(Put("events", event_key(1), document(old.evolve(seq=1))))
    await store.apply(BOT, Change(ops))
    await store.close()
    state = StateManager(BOT, backend.store(BOT), clock=lambda: NOW, history_keep=timedelta(days=1))
    async with state:
        with pytest.raises(StateError, match=r"record events/000000000000 is invalid at time"):
            await state.keep_history()
        assert len(await state.store.scan(BOT, "events")) == 2
