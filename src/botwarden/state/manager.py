"""`StateManager`: one bot's state as domain objects, saved after every change.

    async with StateManager.from_config("golden_cross_spy", config) as state:
        await state.save_position(position)
        async with state.transaction() as tx:          # one atomic write
            tx.record_fill(fill)
            tx.save_position(grown_position)
            tx.save_order(intent.fill(now, fill.qty, fill.price))

The manager keeps a cache of the bot's records, loaded in one bulk read at open. It is
only ever changed after the store acknowledged the write, so it never shows anything
that is not durable. One bot has one writer (promise I4), which is what makes the
cache valid; if a write fails in a way that may or may not have reached the store
(a lost connection), the cache is reloaded from the store before it is used again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from botwarden.config import BotConfig, StateSettings
from botwarden.domain import risk as rules
from botwarden.domain.models import (
    BotRecord,
    BotStatus,
    DomainModel,
    Fill,
    Position,
    RiskState,
    SignalState,
    UtcDatetime,
)
from botwarden.domain.orders import OrderIntent
from botwarden.errors import FencedOut, StateError
from botwarden.state.base import Change, Delete, Op, Put, Snapshot, StateStore
from botwarden.state.factory import open_store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# The singletons a bot keeps in its `meta` collection.
_BOT, _RISK, _LAST_BAR = "bot", "risk", "last_bar"


class _Stamp(DomainModel):
    """The document of a processed signal or of the last bar: when it happened."""

    at: UtcDatetime


class _Until(DomainModel):
    """The document of a cooldown: until when it lasts."""

    until: UtcDatetime


def _doc(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


class Transaction:
    """Writes collected here are applied as ONE atomic change when the block exits.

    Reads inside the block see the state as it was before the block: a transaction is
    a batch of writes, decided from what is already durable.
    """

    def __init__(self, manager: StateManager) -> None:
        self._manager = manager
        self.ops: list[Op] = []
        self.effects: list[Callable[[], None]] = []
        self._fill_ids: set[str] = set()

    def _put(
        self, collection: str, key: str, value: Mapping[str, Any], effect: Callable[[], None]
    ) -> None:
        self.ops.append(Put(collection, key, value))
        self.effects.append(effect)

    def _delete(self, collection: str, key: str, effect: Callable[[], None]) -> None:
        self.ops.append(Delete(collection, key))
        self.effects.append(effect)

    def save_position(self, position: Position) -> None:
        cache = self._manager._positions
        self._put(
            "positions",
            position.id,
            _doc(position),
            lambda: cache.__setitem__(position.id, position),
        )

    def remove_position(self, position_id: str) -> None:
        cache = self._manager._positions
        self._delete("positions", position_id, lambda: cache.pop(position_id, None))

    def save_order(self, intent: OrderIntent) -> None:
        cache = self._manager._intents
        key = intent.client_order_id
        self._put("intents", key, _doc(intent), lambda: cache.__setitem__(key, intent))

    def record_fill(self, fill: Fill) -> bool:
        """Add a fill to the ledger; False (and nothing written) if its trade id is known.

        The ledger is keyed by the venue's trade id, so a fill reported twice (a retry,
        a replay after a crash) is recorded once (promise I3)."""
        if fill.trade_id in self._manager._fills or fill.trade_id in self._fill_ids:
            return False
        self._fill_ids.add(fill.trade_id)
        cache = self._manager._fills
        self._put(
            "fills", fill.trade_id, _doc(fill), lambda: cache.__setitem__(fill.trade_id, fill)
        )
        return True

    def save_risk_state(self, risk: RiskState) -> None:
        manager = self._manager
        self._put("meta", _RISK, _doc(risk), lambda: setattr(manager, "_risk", risk))

    def save_bot_record(self, record: BotRecord) -> None:
        manager = self._manager
        self._put("meta", _BOT, _doc(record), lambda: setattr(manager, "_bot", record))

    def mark_signal_processed(self, signal_id: str, at: datetime) -> None:
        signals = self._manager._signals
        self._put(
            "signals", signal_id, {"at": at.isoformat()}, lambda: signals.__setitem__(signal_id, at)
        )

    def forget_signal(self, signal_id: str) -> None:
        signals = self._manager._signals
        self._delete("signals", signal_id, lambda: signals.pop(signal_id, None))

    def set_cooldown(self, symbol: str, until: datetime) -> None:
        cooldowns = self._manager._cooldowns
        self._put(
            "cooldowns",
            symbol,
            {"until": until.isoformat()},
            lambda: cooldowns.__setitem__(symbol, until),
        )

    def clear_cooldown(self, symbol: str) -> None:
        cooldowns = self._manager._cooldowns
        self._delete("cooldowns", symbol, lambda: cooldowns.pop(symbol, None))

    def set_last_bar_time(self, at: datetime) -> None:
        manager = self._manager
        self._put(
            "meta", _LAST_BAR, {"at": at.isoformat()}, lambda: setattr(manager, "_last_bar", at)
        )


class StateManager:
    """The async facade over one bot's records in any `StateStore`."""

    def __init__(
        self,
        flow_id: str,
        store: StateStore,
        *,
        clock: Clock = utc_now,
        epoch: int | None = None,
        signal_retention: timedelta = timedelta(days=7),
    ) -> None:
        self.flow_id = flow_id
        self.store = store
        self.epoch = epoch
        """This instance's fencing epoch; every write carries it (see `fence`)."""
        self._clock = clock
        self._signal_retention = signal_retention
        self._stale_cache = True
        self._positions: dict[str, Position] = {}
        self._intents: dict[str, OrderIntent] = {}
        self._fills: dict[str, Fill] = {}
        self._signals: dict[str, datetime] = {}
        self._cooldowns: dict[str, datetime] = {}
        self._risk = RiskState()
        self._bot = BotRecord(bot_id=flow_id)
        self._last_bar: datetime | None = None

    @classmethod
    def from_config(
        cls,
        flow_id: str,
        config: BotConfig | StateSettings | Mapping[str, Any] | None = None,
        *,
        base_dir: Path | None = None,
        clock: Clock = utc_now,
        epoch: int | None = None,
    ) -> StateManager:
        """A manager over the configured store. `config` is a whole bot config, its
        `state:` section, or None for the embedded default. Not opened yet: use
        `async with`."""
        if isinstance(config, BotConfig):
            base_dir = base_dir or config.base_dir
            settings = config.state
        elif isinstance(config, StateSettings):
            settings = config
        elif config is None:
            settings = StateSettings()
        elif "state" in config or "bot_id" in config:
            settings = BotConfig.model_validate({"bot_id": flow_id, **config}).state
        else:
            settings = StateSettings.model_validate(config)
        store = open_store(settings, flow_id, base_dir or Path.cwd())
        return cls(
            flow_id, store, clock=clock, epoch=epoch, signal_retention=settings.signal_retention
        )

    # -- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        await self.store.open()
        try:
            await self.reload()
        except BaseException:
            await self.store.close()
            raise

    async def close(self) -> None:
        await self.store.close()

    async def reload(self) -> None:
        """Replace the cache with what the store holds."""
        snapshot = await self.store.load(self.flow_id)
        self._decode(snapshot)
        self._stale_cache = False

    def _decode(self, snapshot: Snapshot) -> None:
        def parse(model: type[BaseModel], collection: str, key: str) -> Any:
            text = snapshot[collection][key]
            try:
                return model.model_validate_json(text)
            except ValidationError as error:
                problem = error.errors()[0]
                field = ".".join(str(p) for p in problem["loc"]) or "(document)"
                raise StateError(
                    f"{self.store.describe()}: bot {self.flow_id}: record {collection}/{key}"
                    f" is invalid at {field}: {problem['msg']}"
                ) from None

        self._positions = {k: parse(Position, "positions", k) for k in snapshot["positions"]}
        self._intents = {k: parse(OrderIntent, "intents", k) for k in snapshot["intents"]}
        self._fills = {k: parse(Fill, "fills", k) for k in snapshot["fills"]}
        signals = {k: parse(_Stamp, "signals", k).at for k in snapshot["signals"]}
        # Kept in time order: pruning by age then only looks at the oldest entries.
        self._signals = dict(sorted(signals.items(), key=lambda item: item[1]))
        self._cooldowns = {k: parse(_Until, "cooldowns", k).until for k in snapshot["cooldowns"]}
        meta = snapshot["meta"]
        self._risk = parse(RiskState, "meta", _RISK) if _RISK in meta else RiskState()
        self._bot = (
            parse(BotRecord, "meta", _BOT) if _BOT in meta else BotRecord(bot_id=self.flow_id)
        )
        self._last_bar = parse(_Stamp, "meta", _LAST_BAR).at if _LAST_BAR in meta else None

    async def _fresh(self) -> None:
        if self._stale_cache:
            await self.reload()

    # -- writing -----------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Collect writes; on a clean exit they become one atomic, durable change."""
        await self._fresh()
        tx = Transaction(self)
        yield tx
        await self._commit(tx)

    async def _commit(self, tx: Transaction) -> None:
        if not tx.ops:
            return
        try:
            await self.store.apply(self.flow_id, Change(tx.ops, epoch=self.epoch))
        except (FencedOut, ValueError, TypeError):
            raise  # refused before anything was written: the cache is still right
        except BaseException:
            # The write may or may not have landed (a lost connection, a timeout):
            # trust only the store from here on.
            self._stale_cache = True
            raise
        for effect in tx.effects:
            effect()

    async def fence(self, epoch: int) -> None:
        """Take over as the instance holding `epoch`: from now on the store refuses
        writes from any instance with a lower epoch (raises `FencedOut` if a higher
        one already took over)."""
        await self.store.apply(self.flow_id, Change((), epoch=epoch))
        self.epoch = epoch

    async def save_position(self, position: Position) -> None:
        async with self.transaction() as tx:
            tx.save_position(position)

    async def remove_position(self, position_id: str) -> None:
        async with self.transaction() as tx:
            tx.remove_position(position_id)

    async def save_order(self, intent: OrderIntent) -> None:
        async with self.transaction() as tx:
            tx.save_order(intent)

    async def record_fill(
        self,
        fill: Fill,
        *,
        position: Position | None = None,
        remove_position: str | None = None,
        intent: OrderIntent | None = None,
    ) -> bool:
        """Record a fill and, in the same atomic write, the position and intent it
        changed. Returns False, writing nothing, if the fill was already recorded."""
        async with self.transaction() as tx:
            if not tx.record_fill(fill):
                return False
            if position is not None:
                tx.save_position(position)
            if remove_position is not None:
                tx.remove_position(remove_position)
            if intent is not None:
                tx.save_order(intent)
        return True

    async def save_risk_state(self, risk: RiskState) -> None:
        async with self.transaction() as tx:
            tx.save_risk_state(risk)

    async def _update_risk(self, change: Callable[[RiskState], RiskState]) -> RiskState:
        await self._fresh()
        risk = change(self._risk)
        if risk != self._risk:
            await self.save_risk_state(risk)
        return risk

    async def update_daily_pnl(self, pnl: Decimal) -> RiskState:
        """Book one closed trade's realized PnL (rolls the trading day if needed)."""
        return await self._update_risk(
            lambda r: rules.add_realized_pnl(r, Decimal(pnl), self._today())
        )

    async def count_trade(self) -> RiskState:
        """One more trade taken today (what the daily trade limit counts)."""
        return await self._update_risk(lambda r: rules.count_trade(r, self._today()))

    async def update_equity(self, equity: Decimal) -> RiskState:
        return await self._update_risk(lambda r: rules.mark_equity(r, Decimal(equity)))

    async def trigger_circuit_breaker(self, reason: str, duration: timedelta) -> RiskState:
        """Halt new entries for `duration`; survives restarts, expires by itself."""
        until = self._clock() + duration
        log.warning("bot %s: circuit breaker until %s: %s", self.flow_id, until.isoformat(), reason)
        return await self._update_risk(lambda r: rules.trip_breaker(r, reason, until))

    async def check_circuit_breaker(self) -> str | None:
        """The breaker's reason while it is active, else None (an expired one is cleared)."""
        risk = await self._update_risk(lambda r: rules.clear_expired_breaker(r, self._clock()))
        return risk.breaker_reason if rules.breaker_active(risk, self._clock()) else None

    async def mark_signal_processed(self, signal_id: str) -> None:
        """Remember `signal_id` (and forget ids older than the retention window)."""
        await self._fresh()
        now = self._clock()
        expired = rules.expired_signals(self._signals, now, self._signal_retention)
        async with self.transaction() as tx:
            for old in expired:
                tx.forget_signal(old)
            tx.mark_signal_processed(signal_id, now)

    async def is_signal_processed(self, signal_id: str) -> bool:
        await self._fresh()
        at = self._signals.get(signal_id)
        return at is not None and at >= self._clock() - self._signal_retention

    async def set_cooldown(self, symbol: str, duration: timedelta) -> None:
        async with self.transaction() as tx:
            tx.set_cooldown(symbol, self._clock() + duration)

    async def is_on_cooldown(self, symbol: str) -> bool:
        await self._fresh()
        return rules.on_cooldown(self._cooldowns, symbol, self._clock())

    async def set_last_bar_time(self, at: datetime) -> None:
        async with self.transaction() as tx:
            tx.set_last_bar_time(at)

    async def set_status(self, status: BotStatus, error: str | None = None) -> BotRecord:
        """Move the bot's lifecycle status; `error` is kept as the last error message."""
        await self._fresh()
        now = self._clock()
        changes: dict[str, Any] = {"status": status, "last_updated_at": now}
        if status is BotStatus.RUNNING:
            changes["last_run_at"] = now
        if error is not None:
            changes["last_error"] = error
        record = self._bot.model_copy(update=changes)
        async with self.transaction() as tx:
            tx.save_bot_record(record)
        return record

    async def heartbeat(self) -> None:
        await self._fresh()
        now = self._clock()
        record = self._bot.model_copy(update={"heartbeat_at": now, "last_updated_at": now})
        async with self.transaction() as tx:
            tx.save_bot_record(record)

    async def check_stale(self, max_age: timedelta) -> bool:
        """True if the last heartbeat is older than `max_age` (a bot never seen is not)."""
        await self._fresh()
        beat = self._bot.heartbeat_at
        return beat is not None and self._clock() - beat > max_age

    # -- reading -------------------------------------------------------------------------
    async def get_positions(self) -> list[Position]:
        await self._fresh()
        return list(self._positions.values())

    async def get_position(self, position_id: str) -> Position | None:
        await self._fresh()
        return self._positions.get(position_id)

    async def get_orders(self) -> list[OrderIntent]:
        await self._fresh()
        return list(self._intents.values())

    async def get_order(self, client_order_id: str) -> OrderIntent | None:
        await self._fresh()
        return self._intents.get(client_order_id)

    async def get_pending_orders(self) -> list[OrderIntent]:
        """Every intent not yet in a terminal state (including UNKNOWN ones)."""
        await self._fresh()
        return [i for i in self._intents.values() if not i.status.is_terminal]

    async def get_fills(self) -> list[Fill]:
        await self._fresh()
        return sorted(self._fills.values(), key=lambda f: (f.time, f.trade_id))

    async def get_risk_state(self) -> RiskState:
        await self._fresh()
        return self._risk

    async def get_signal_state(self) -> SignalState:
        await self._fresh()
        return self.signal_state()

    async def get_bot_record(self) -> BotRecord:
        await self._fresh()
        return self._bot

    def signal_state(self) -> SignalState:
        return SignalState(
            processed=dict(self._signals),
            cooldowns=dict(self._cooldowns),
            last_bar_time=self._last_bar,
        )

    def _today(self) -> date:
        return self._clock().date()
