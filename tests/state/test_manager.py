"""StateManager against every backend: what a bot writes is what it finds after a restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from botwarden.domain import (
    BotEvent,
    BotStatus,
    Fill,
    IllegalBotTransition,
    OrderIntent,
    Position,
    RiskState,
)
from botwarden.domain.orders import IntentStatus
from botwarden.errors import FencedOut
from botwarden.state.base import Change, Snapshot, StateStore, encode
from botwarden.state.manager import DuplicateFill, StateManager
from botwarden.state.records import document, stored
from tests.conftest import Backend

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def position(pid: str = "p1", size: str = "10", **changes: object) -> Position:
    fields: dict[str, object] = {
        "id": pid,
        "bot_id": "bot",
        "symbol": "SPY",
        "side": "long",
        "size": Decimal(size),
        "entry_price": Decimal("450.25"),
        "entry_time": T0,
        "stop_price": Decimal("441.24"),
        "metadata": {"signal": "golden_cross", "bars": [1, 2]},
    }
    fields.update(changes)
    return Position.model_validate(fields)


def entry(cid: str = "bot-1-000001", qty: str = "10") -> OrderIntent:
    return OrderIntent(
        client_order_id=cid,
        symbol="SPY",
        side="buy",
        type="market",
        qty=Decimal(qty),
        purpose="entry",
        position_id="p1",
        created_at=T0,
        updated_at=T0,
    )


def fill(trade_id: str = "T1", qty: str = "10", cid: str = "bot-1-000001") -> Fill:
    return Fill(
        trade_id=trade_id,
        client_order_id=cid,
        symbol="SPY",
        side="buy",
        qty=Decimal(qty),
        price=Decimal("450.25"),
        fee=Decimal("0.01"),
        time=T0,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def manager(backend: Backend, clock: Clock) -> AsyncIterator[StateManager]:
    async with StateManager("bot", backend.store(), clock=clock) as state:
        yield state


async def reopened(backend: Backend, clock: Clock) -> StateManager:
    """A new manager on a new store object: what a restarted process would see."""
    state = StateManager("bot", backend.store(), clock=clock)
    await state.open()
    return state


async def test_positions_survive_a_restart(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    await manager.save_position(position("p1"))
    await manager.save_position(position("p2", size="3", side="short"))
    await manager.remove_position("p2")
    await manager.save_position(position("p1", best_price=Decimal("455.5")))

    again = await reopened(backend, clock)
    assert await again.get_positions() == [position("p1", best_price=Decimal("455.5"))]
    assert await again.get_position("p2") is None
    await again.close()


async def test_records_come_back_oldest_first_whatever_the_backends_order(
    backend: Backend, clock: Clock
) -> None:
    """The engine walks positions and orders in the order the state gives them, so
    that order must not be the backend's own (a Redis hash has one): the same bot does
    the same things on every store, which the simulator's histories compare."""
    async with StateManager("bot", backend.store(), clock=clock) as state:
        for n, pid in enumerate(["p-z", "p-a", "p-m"]):  # created in this order
            at = T0 + timedelta(minutes=n)
            await state.save_position(position(pid, entry_time=at))
            await state.save_order(
                entry(f"c-{pid}").evolve(position_id=pid, created_at=at, updated_at=at)
            )
    again = await reopened(backend, clock)
    loaded = await again.snapshot()
    assert list(loaded.positions) == ["p-z", "p-a", "p-m"]
    assert list(loaded.intents) == ["c-p-z", "c-p-a", "c-p-m"]
    await again.close()


async def test_a_fill_its_position_and_its_intent_are_one_atomic_write(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    sent = entry().submit(T0, 1)
    await manager.save_order(sent)
    done = sent.fill(T0, Decimal("10"), Decimal("450.25"))
    assert await manager.record_fill(fill(), position=position(), intent=done)

    again = await reopened(backend, clock)
    assert await again.get_fills() == [fill()]
    assert await again.get_positions() == [position()]
    assert (await again.get_order(done.client_order_id)).status is IntentStatus.FILLED
    assert await again.get_pending_orders() == []
    await again.close()


async def test_a_fill_reported_twice_is_recorded_once(manager: StateManager) -> None:
    assert await manager.record_fill(fill("T1", qty="4"))
    assert not await manager.record_fill(fill("T1", qty="4"), position=position(size="8"))
    assert await manager.get_positions() == [], "a duplicate fill must write nothing at all"
    async with manager.transaction() as tx:
        assert tx.record_fill(fill("T2", qty="6"))
        assert not tx.record_fill(fill("T2", qty="6"))
    assert [f.trade_id for f in await manager.get_fills()] == ["T1", "T2"]


async def test_a_fill_is_known_from_the_store_after_a_restart(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    """De-duplication asks the store, not a set of every trade id the bot has seen."""
    assert await manager.record_fill(fill("T1", qty="4"))
    again = await reopened(backend, clock)
    assert again.history.flow_id == manager.flow_id
    assert await again.has_fill("T1") and not await again.has_fill("T2")
    assert not await again.record_fill(fill("T1", qty="4"), position=position(size="4"))
    assert await again.get_positions() == []
    # A change that records it anyway (not asked first) is refused whole.
    with pytest.raises(DuplicateFill, match="fill T1 is recorded already"):
        async with again.transaction() as tx:
            assert tx.record_fill(fill("T1", qty="4")), "not among the newest it holds"
            tx.save_position(position(size="4"))
    assert await again.get_positions() == [], "nothing of it written"
    assert len(await again.get_fills()) == 1
    await again.close()


async def test_a_transaction_that_fails_halfway_writes_nothing(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    await manager.save_position(position("p1"))
    unencodable = position("p2", metadata={"ratio": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        async with manager.transaction() as tx:
            tx.record_fill(fill())
            tx.save_position(position("p1", size="20"))
            tx.save_position(unencodable)
            tx.save_order(entry())

    for state in (manager, again := await reopened(backend, clock)):
        assert await state.get_positions() == [position("p1")]
        assert await state.get_fills() == []
        assert await state.get_orders() == []
    await again.close()


async def test_an_exception_inside_the_block_writes_nothing(manager: StateManager) -> None:
    with pytest.raises(RuntimeError):
        async with manager.transaction() as tx:
            tx.save_position(position())
            raise RuntimeError("strategy crashed mid-decision")
    assert await manager.get_positions() == []


async def test_pending_orders_are_every_intent_not_terminal(manager: StateManager) -> None:
    new = entry("c-new")
    unknown = entry("c-unknown").submit(T0, 1).mark_unknown(T0, "timeout")
    partial = entry("c-partial").submit(T0, 1).accept(T0, "V1").fill(T0, Decimal("1"), Decimal("9"))
    filled = entry("c-filled").submit(T0, 1).fill(T0, Decimal("10"), Decimal("9"))
    rejected = entry("c-rejected").submit(T0, 1).reject(T0, "insufficient funds")
    for intent in (new, unknown, partial, filled, rejected):
        await manager.save_order(intent)
    pending = {i.client_order_id for i in await manager.get_pending_orders()}
    assert pending == {"c-new", "c-unknown", "c-partial"}


async def test_the_circuit_breaker_survives_a_restart_and_expires_by_itself(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    assert await manager.check_circuit_breaker() is None
    await manager.trigger_circuit_breaker("daily loss limit", timedelta(hours=1))

    again = await reopened(backend, clock)
    clock.advance(minutes=59)
    assert await again.check_circuit_breaker() == "daily loss limit"
    clock.advance(minutes=1)
    assert await again.check_circuit_breaker() is None
    assert (await again.get_risk_state()).breaker_until is None, "an expired breaker is cleared"
    await again.close()


async def test_daily_pnl_and_trades_roll_over_at_the_new_day(
    manager: StateManager, clock: Clock
) -> None:
    await manager.count_trade()
    risk = await manager.update_daily_pnl(Decimal("-12.5"))
    assert (risk.daily_pnl, risk.daily_trade_count, risk.consecutive_losses) == (
        Decimal("-12.5"),
        1,
        1,
    )

    clock.advance(days=1)
    risk = await manager.update_daily_pnl(Decimal("3"))
    assert (risk.daily_pnl, risk.daily_trade_count, risk.consecutive_losses) == (Decimal("3"), 0, 0)
    assert risk.trading_day == clock.now.date()


async def test_equity_tracks_peak_and_drawdown(manager: StateManager) -> None:
    await manager.update_equity(Decimal("10000"))
    risk = await manager.update_equity(Decimal("9000"))
    assert (risk.peak_equity, risk.drawdown) == (Decimal("10000"), Decimal("0.1"))


async def test_processed_signals_are_remembered_for_the_retention_window(
    backend: Backend, clock: Clock
) -> None:
    state = StateManager("bot", backend.store(), clock=clock, signal_retention=timedelta(hours=1))
    await state.open()
    for n in range(150):  # more than any fixed-size window of 100
        await state.mark_signal_processed(f"sig-{n}")
        clock.advance(seconds=10)
    assert await state.is_signal_processed("sig-0")
    assert not await state.is_signal_processed("never-seen")

    clock.advance(minutes=45)  # sig-0 is now 1h09m old
    assert not await state.is_signal_processed("sig-0")
    await state.mark_signal_processed("sig-new")  # prunes what aged out, in the same write
    await state.close()

    again = await reopened(backend, clock)
    remembered = (await again.get_signal_state()).processed
    assert "sig-0" not in remembered and "sig-149" in remembered and "sig-new" in remembered
    assert all(clock.now - at <= timedelta(hours=1) for at in remembered.values())
    await again.close()


async def test_cooldowns_and_last_bar_survive_a_restart(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    await manager.set_cooldown("SPY", timedelta(minutes=30))
    await manager.set_last_bar_time(T0 - timedelta(minutes=1))

    again = await reopened(backend, clock)
    assert await again.is_on_cooldown("SPY") and not await again.is_on_cooldown("QQQ")
    assert (await again.get_signal_state()).last_bar_time == T0 - timedelta(minutes=1)
    clock.advance(minutes=30)
    assert not await again.is_on_cooldown("SPY")
    await again.close()


async def test_heartbeat_and_staleness(manager: StateManager, clock: Clock) -> None:
    assert not await manager.check_stale(timedelta(hours=24)), "a bot never seen is not stale"
    await manager.heartbeat()
    clock.advance(hours=24)
    assert not await manager.check_stale(timedelta(hours=24))
    clock.advance(seconds=1)
    assert await manager.check_stale(timedelta(hours=24))


async def test_status_lifecycle_keeps_run_time_and_last_error(
    manager: StateManager, clock: Clock
) -> None:
    assert (await manager.move(BotEvent.START)).status is BotStatus.PENDING
    record = await manager.move(BotEvent.RECOVER)
    assert record.status is BotStatus.RUNNING
    assert record.last_run_at == T0 and record.last_error is None
    clock.advance(minutes=5)
    record = await manager.move(BotEvent.FAIL, "error: API key rejected by venue")
    assert record.status is BotStatus.ERROR
    assert record.last_error == "error: API key rejected by venue"
    assert record.last_run_at == T0 and record.last_updated_at == clock.now
    assert (await manager.get_bot_record()) == record
    with pytest.raises(IllegalBotTransition, match="bot bot: cannot decide again from pending"):
        await manager.move(BotEvent.START)
        await manager.move(BotEvent.DECIDE_AGAIN)
    assert (await manager.get_bot_record()).status is BotStatus.PENDING, "refused: unwritten"


async def test_a_fenced_out_instance_cannot_write(backend: Backend, clock: Clock) -> None:
    old = StateManager("bot", backend.store(), clock=clock)
    await old.open()
    assert await old.claim() == 1
    await old.save_position(position("p1"))

    new = StateManager("bot", backend.store(), clock=clock)
    await new.open()
    await old.update_daily_pnl(Decimal("-100"))  # the old instance's last word
    assert await new.claim() == 2

    with pytest.raises(FencedOut):
        await old.save_position(position("p1", size="99"))
    with pytest.raises(FencedOut):
        await old.fence(1)  # (it cannot carry on as the holder of epoch 1 either)
    assert await old.get_positions() == [position("p1")], "a refused write changes nothing"

    # Taking over carries on from everything the old instance wrote, not from what
    # the new one had read before it fenced.
    assert (await new.update_daily_pnl(Decimal("-5"))).daily_pnl == Decimal("-105")
    await new.save_position(position("p2"))
    assert {p.id for p in await new.get_positions()} == {"p1", "p2"}
    for state in (old, new):
        await state.close()


async def test_an_instance_that_never_fenced_is_refused_once_another_has(
    backend: Backend, clock: Clock
) -> None:
    careless = StateManager("bot", backend.store(), clock=clock)
    await careless.open()
    await careless.save_position(position("p1"))

    owner = StateManager("bot", backend.store(), clock=clock)
    await owner.open()
    await owner.claim()
    with pytest.raises(FencedOut):
        await careless.save_position(position("p1", size="99"))
    for state in (careless, owner):
        await state.close()


async def test_values_are_validated_before_anything_is_written(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    naive = datetime(2026, 3, 2, 14, 30)  # a bar time straight from a feed, no zone
    with pytest.raises(ValidationError):
        await manager.set_last_bar_time(naive)
    with pytest.raises(ValidationError):
        async with manager.transaction() as tx:
            tx.set_cooldown("SPY", naive)
    with pytest.raises(ValidationError):
        await manager.update_daily_pnl(Decimal("Infinity"))
    with pytest.raises(ValidationError):
        RiskState().evolve(daily_trade_count=-1)  # the rules' copies are checked too

    again = await reopened(backend, clock)  # the state still loads
    assert (await again.get_signal_state()).last_bar_time is None
    assert (await again.get_risk_state()).daily_pnl == 0
    await again.close()


class LosesTheAnswer:
    """A store whose write lands but whose answer is lost, like a connection that drops
    after the server committed. An honest adapter of the port, not a patch."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.durable = inner.durable
        self.drop_next_answer = False

    def describe(self) -> str:
        return self.inner.describe()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def load(self, flow_id: str) -> Snapshot:
        return await self.inner.load(flow_id)

    async def apply(self, flow_id: str, change: Change) -> None:
        await self.inner.apply(flow_id, change)
        if self.drop_next_answer:
            self.drop_next_answer = False
            raise ConnectionResetError("connection reset after the write was sent")

    async def flows(self) -> list[str]:
        return await self.inner.flows()

    async def epoch(self, flow_id: str) -> int:
        return await self.inner.epoch(flow_id)


async def test_after_a_lost_answer_the_manager_trusts_only_the_store(
    backend: Backend, clock: Clock
) -> None:
    store = LosesTheAnswer(backend.store())
    async with StateManager("bot", store, clock=clock) as state:
        store.drop_next_answer = True
        with pytest.raises(ConnectionResetError):
            await state.save_position(position("p1"))
        # The write did land: the manager must say so rather than trust its cache.
        assert await state.get_positions() == [position("p1")]


async def test_from_config_builds_the_configured_backend(tmp_path: Path) -> None:
    settings = {"backend": "jsonfile", "jsonfile": {"path": "st/{flow_id}.json"}}
    async with StateManager.from_config("alpha", settings, base_dir=tmp_path) as state:
        await state.save_position(position(bot_id="alpha"))
    assert (tmp_path / "st" / "alpha.json").exists()

    async with StateManager.from_config(
        "alpha", {"bot_id": "alpha", "state": settings}, base_dir=tmp_path
    ) as state:
        assert len(await state.get_positions()) == 1


async def test_order_sequence_and_event_log_survive_a_restart(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    async with manager.transaction() as tx:
        assert (tx.next_order_seq(), tx.next_order_seq()) == (0, 1)
        tx.save_order(entry("bot-0-1"))
        tx.add_event(clock.now, "order", "entry sent", {"cid": "bot-0-1"})
        tx.set_fills_cursor("T7")
    for n in range(4):
        async with manager.transaction() as tx:
            tx.add_event(clock.now, "tick", f"tick {n}")

    again = await reopened(backend, clock)
    state = await again.snapshot()
    assert (state.ledger.next_order_seq, state.ledger.fills_cursor) == (2, "T7")
    every = await again.history.events()
    assert [e.message for e in every] == ["entry sent", "tick 0", "tick 1", "tick 2", "tick 3"]
    assert [e.seq for e in await again.history.events(after=2)] == [3, 4]
    newest = await again.history.events(limit=2, newest_first=True)
    assert [e.message for e in newest] == ["tick 3", "tick 2"]
    async with again.transaction() as tx:
        assert tx.next_order_seq() == 2, "a number is never handed out twice"
    await again.close()


async def test_a_terminal_intent_leaves_the_live_state_in_the_write_that_ends_it(
    manager: StateManager, backend: Backend, clock: Clock
) -> None:
    sent = entry().submit(T0, 1)
    await manager.save_order(sent)
    canceled = sent.accept(T0, "V1").cancel(T0)
    await manager.save_order(canceled)
    assert (await manager.snapshot()).intents == {}
    assert await manager.get_order(sent.client_order_id) == canceled
    stored = await manager.store.load(manager.flow_id)
    assert stored["intents"] == {}, "not live in the store either"

    again = await reopened(backend, clock)
    assert await again.get_pending_orders() == []
    assert await again.history.orders() == [canceled]
    await again.close()


async def test_a_sequence_number_from_a_failed_change_is_not_spent(manager: StateManager) -> None:
    with pytest.raises(RuntimeError):
        async with manager.transaction() as tx:
            tx.next_order_seq()
            raise RuntimeError("crash before the write")
    async with manager.transaction() as tx:
        assert tx.next_order_seq() == 0


@pytest.mark.parametrize(
    "model",
    [
        position(metadata={"ratio": 0.1, "é": [1, 2.5e-7, 1e22]}),
        position(metadata={"note": "NaN is a word here"}),
        entry(),
        fill(),
        RiskState(peak_equity=Decimal("1000.5")),
    ],
    ids=lambda m: type(m).__name__,
)
def test_a_change_puts_what_the_encoder_would_write(model: object) -> None:
    """A transaction's documents come with their JSON made by pydantic in one step:
    it reads back as the document `encode` would have written."""
    put = stored(model)
    assert json.loads(encode(put)) == document(model) == dict(put)


def test_a_nan_in_a_document_is_refused_as_before() -> None:
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="JSON"):
            encode(stored(position(metadata={"ratio": bad})))
