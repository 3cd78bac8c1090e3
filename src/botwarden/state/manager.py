"""`StateManager`: one bot's state as domain objects, saved after every change.

    async with StateManager.from_config("golden_cross_spy", config) as state:
        await state.save_position(position)
        async with state.transaction() as tx:          # one atomic write
            tx.record_fill(fill)
            tx.save_position(grown_position)
            tx.save_order(intent.fill(now, fill.qty, fill.price))

The manager keeps the bot's records in memory, loaded in one bulk read at open, and
changes them only after the store acknowledged the write: it never shows anything
that is not durable. One bot has one writer (promise I4), which is what keeps that
copy true; if a write fails in a way that may or may not have reached the store (a
lost connection), the copy is reloaded from the store before it is used again.

Transactions are serialised by a lock, so tasks of one bot (the loop, a heartbeat)
never lose each other's updates; they do not nest.

Only the live state is held (positions, intents not yet terminal, signals, cooldowns,
risk, the ledger): what a bot did (terminal intents, fills, events) is history, kept
in the same store and read from it on demand, so a bot's memory and its start cost
do not grow with its age.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Container, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol, Self

from pydantic import ValidationError

from botwarden.domain import risk as rules
from botwarden.domain.models import (
    BotEvent,
    BotRecord,
    Event,
    Fill,
    Ledger,
    PnlBook,
    PnlSum,
    Position,
    RiskState,
    SignalState,
    format_duration,
)
from botwarden.domain.orders import OrderIntent
from botwarden.domain.positions import Trade
from botwarden.errors import FencedOut
from botwarden.state import retention
from botwarden.state.base import HISTORY, Change, Delete, Op, Put, StateStore
from botwarden.state.factory import open_store
from botwarden.state.history import History
from botwarden.state.records import (
    BOT,
    LAST_BAR,
    LEDGER,
    PNL,
    RISK,
    SWEEP,
    BotState,
    HistorySweep,
    Stamp,
    Until,
    decode,
    event_key,
    stored,
    trade_key,
)
from botwarden.state.settings import StateSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Effect = Callable[[BotState], None]
RECENT_FILLS = 4096
"""Trade ids of the newest fills the manager remembers, to answer most look-ups of a
fill reported again (the venue's pages overlap) without a read."""


def utc_now() -> datetime:
    return datetime.now(UTC)


# What a caller hands in is checked before anything is written, with one ValueError
# naming the argument, the value and what is accepted: a signalflow loop brings floats
# and naive times, and either must stop at the door, not surface in a later load.


def _check_signal_id(signal_id: object) -> None:
    if not isinstance(signal_id, str) or not signal_id:
        raise ValueError(f"signal_id must be a non-empty string, not {signal_id!r}")


def _check_pair(pair: object) -> None:
    if not isinstance(pair, str) or not pair.strip():
        raise ValueError(
            f"pair must be the signal's market, a non-empty string like 'BTC/USDT', not {pair!r}"
        )


def _signal_time(timestamp: object) -> datetime:
    if not isinstance(timestamp, datetime):
        raise ValueError(f"timestamp must be the signal's time, a datetime, not {timestamp!r}")
    if timestamp.utcoffset() is None:
        raise ValueError(
            f"timestamp {timestamp.isoformat()} has no timezone: give an aware time, such"
            " as datetime.now(UTC) (signalflow's datetime.utcnow() is naive)"
        )
    return Stamp(at=timestamp).at


def _amount(value: object, name: str) -> Decimal:
    """Money as a `Decimal`; a float as it prints (signalflow's PnL is a float: 100.1
    books 100.1, not 100.099999999999994315658113919198513031005859375)."""
    if isinstance(value, Decimal | int | float | str) and not isinstance(value, bool):
        try:
            # str: how a float prints (numpy's float64 too, which is a float)
            return Decimal(str(value) if isinstance(value, float) else value)
        except InvalidOperation:
            pass
    raise ValueError(
        f"{name} must be a number (a Decimal, int, float or numeric string), not {value!r}"
    )


class DuplicateFill(ValueError):
    """A change would record again a fill the store holds: refused whole."""

    def __init__(self, flow_id: str, trade_ids: list[str]) -> None:
        super().__init__(
            f"bot {flow_id}: fill {', '.join(trade_ids)} is recorded already; the change"
            " recording it again was refused, nothing of it written"
        )
        self.trade_ids = trade_ids


class Transaction:
    """Writes collected here are applied as ONE atomic change when the block exits.

    `state` is the bot's state as it was when the block began (what is durable); the
    writes show there only once the whole change is.
    """

    def __init__(self, state: BotState, recent_fills: Container[str]) -> None:
        self.state = state
        self._recent_fills = recent_fills
        self.ops: list[Op] = []
        self.effects: list[Effect] = []
        self._new_fills: set[str] = set()
        self.told: list[Event] = []
        """The events to say in the bot's log once the change is durable."""
        self._ledger: Ledger | None = None
        self._last_bar: datetime | None = None
        self._pnl: PnlBook | None = None
        self._days: dict[date, PnlSum] = {}

    def _put(self, collection: str, key: str, value: Mapping[str, Any], effect: Effect) -> None:
        self.ops.append(Put(collection, key, value))
        self.effects.append(effect)

    def _delete(self, collection: str, key: str, effect: Effect) -> None:
        self.ops.append(Delete(collection, key))
        self.effects.append(effect)

    def save_position(self, position: Position) -> None:
        def effect(s: BotState) -> None:
            s.positions[position.id] = position

        self._put("positions", position.id, stored(position), effect)

    def remove_position(self, position_id: str) -> None:
        self._delete("positions", position_id, lambda s: s.positions.pop(position_id, None))

    def save_order(self, intent: OrderIntent) -> None:
        """Save an intent; a terminal one leaves the live state for the history in this
        same write."""
        cid = intent.client_order_id
        if intent.status.is_terminal:

            def leaves(s: BotState) -> None:
                # A new dict, not a pop: the engine walks the intents across awaits
                # that end some of them, and a walk sees the dict it began with.
                s.intents = {key: kept for key, kept in s.intents.items() if key != cid}

            self._delete("intents", cid, leaves)
            self._put("past_intents", cid, stored(intent), lambda s: None)
            return

        def effect(s: BotState) -> None:
            s.intents[cid] = intent

        self._put("intents", cid, stored(intent), effect)

    def record_fill(self, fill: Fill) -> bool:
        """Add a fill to the ledger; False (and nothing written) if its trade id is
        known to this change or among the bot's newest fills.

        The ledger is keyed by the venue's trade id, so a fill reported twice (a retry,
        a replay after a crash) is recorded once (promise I3). The bot does not hold
        every trade id it has seen: the store is asked when the change commits, and a
        change recording a fill the store has already is refused whole
        (`DuplicateFill`, nothing written). Ask `StateManager.has_fill` first to skip
        such a fill instead."""
        if fill.trade_id in self._new_fills or fill.trade_id in self._recent_fills:
            return False
        self._new_fills.add(fill.trade_id)
        self._put("fills", fill.trade_id, stored(fill), lambda s: None)
        return True

    @property
    def new_fills(self) -> set[str]:
        """The trade ids this change records."""
        return self._new_fills

    def record_trade(self, trade: Trade, day: date, before: PnlSum) -> None:
        """Keep a closed trade in the trades history, added to its trading `day`
        (`before`: that day's sum as stored, `StateManager.day_pnl`) and to the bot's
        totals, in this change."""
        summed = self._days.get(day, before).plus(trade.pnl, trade.fees)
        self._days[day] = summed
        book = self._pnl or self.state.pnl or PnlBook()
        book = book.evolve(total=book.total.plus(trade.pnl, trade.fees))
        if book.day is None or day >= book.day:
            book = book.evolve(day=day, today=summed)
        self.set_pnl_book(book)
        self._put("trades", trade_key(trade), stored(trade), lambda s: None)
        self._put("trade_days", day.isoformat(), stored(summed), lambda s: None)

    def forget(self, collection: str, keys: Iterable[str]) -> None:
        """Remove records of the history (retention: `StateManager.keep_history`)."""
        if collection not in HISTORY:
            raise ValueError(f"only the history is forgotten, not {collection!r}")
        for key in keys:
            self._delete(collection, key, lambda s: None)

    def set_history_sweep(self, sweep: HistorySweep) -> None:
        def effect(s: BotState) -> None:
            s.history_sweep = sweep

        self._put("meta", SWEEP, stored(sweep), effect)

    def set_pnl_book(self, book: PnlBook) -> None:
        self._pnl = book

        def effect(s: BotState) -> None:
            s.pnl = book

        self._put("meta", PNL, stored(book), effect)

    def save_risk_state(self, risk: RiskState) -> None:
        def effect(s: BotState) -> None:
            s.risk = risk

        self._put("meta", RISK, stored(risk), effect)

    def save_bot_record(self, record: BotRecord) -> None:
        def effect(s: BotState) -> None:
            s.bot = record

        self._put("meta", BOT, stored(record), effect)

    def heartbeat(self, at: datetime) -> None:
        """The bot is alive at `at` (by its clock; `seen_at` by the wall's)."""
        beat = {"heartbeat_at": at, "last_updated_at": at, "seen_at": utc_now()}
        self.save_bot_record(self.state.bot.evolve(**beat))

    def mark_signal_processed(
        self,
        signal_id: str,
        at: datetime,
        *,
        pair: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Remember `signal_id` as processed at `at`, when it was acted on: the
        retention window (`state.signal_retention`) counts from then.

        `pair` and `timestamp` are what signalflow's `mark_signal_processed` passes
        (docs/porting-signalflow.md): the signal's market and the signal's own time (the
        bar it fired on, signalflow's `last_processed_ts`), not when it was processed.
        `timestamp` moves the bot's last bar time (`SignalState.last_bar_time`) forward
        to it in this write, never back; `pair` is checked and not stored, since a
        botwarden signal id names its market itself (`golden_cross:SPY:buy:...`)."""
        _check_signal_id(signal_id)
        if pair is not None:
            _check_pair(pair)
        stamp = Stamp(at=at)  # validated here: a naive time never reaches the store
        if timestamp is not None:
            self._advance_last_bar(_signal_time(timestamp))

        def effect(s: BotState) -> None:
            s.signals.pop(signal_id, None)  # re-marked: moves to the young end
            s.signals[signal_id] = stamp.at

        self._put("signals", signal_id, stored(stamp), effect)

    def forget_signal(self, signal_id: str) -> None:
        self._delete("signals", signal_id, lambda s: s.signals.pop(signal_id, None))

    def set_cooldown(self, symbol: str, until: datetime) -> None:
        cooldown = Until(until=until)

        def effect(s: BotState) -> None:
            s.cooldowns[symbol] = cooldown.until

        self._put("cooldowns", symbol, stored(cooldown), effect)

    def clear_cooldown(self, symbol: str) -> None:
        self._delete("cooldowns", symbol, lambda s: s.cooldowns.pop(symbol, None))

    def set_last_bar_time(self, at: datetime) -> None:
        stamp = Stamp(at=at)
        self._last_bar = stamp.at

        def effect(s: BotState) -> None:
            s.last_bar = stamp.at

        self._put("meta", LAST_BAR, stored(stamp), effect)

    def _advance_last_bar(self, at: datetime) -> None:
        known = self._last_bar if self._last_bar is not None else self.state.last_bar
        if known is None or at > known:
            self.set_last_bar_time(at)

    @property
    def ledger(self) -> Ledger:
        """The counters as this change leaves them."""
        return self._ledger or self.state.ledger

    def _save_ledger(self, ledger: Ledger) -> None:
        self._ledger = ledger

        def effect(s: BotState) -> None:
            s.ledger = ledger

        self._put("meta", LEDGER, stored(ledger), effect)

    def next_order_seq(self) -> int:
        """A sequence number for a client order id, stored with this change: a crash
        can lose the change, never hand the number out twice."""
        seq = self.ledger.next_order_seq
        self._save_ledger(self.ledger.evolve(next_order_seq=seq + 1))
        return seq

    def set_fills_cursor(self, cursor: str | None) -> None:
        self._save_ledger(self.ledger.evolve(fills_cursor=cursor))

    def set_first_order_at(self, at: datetime) -> None:
        self._save_ledger(self.ledger.evolve(first_order_at=at))

    def mark_state_lost(self, epoch: int) -> None:
        """This instance (`epoch`) rebuilds a lost state: older orders have no intents."""
        self._save_ledger(self.ledger.evolve(lost_before_epoch=epoch))

    def add_event(
        self,
        at: datetime,
        kind: str,
        message: str,
        data: Mapping[str, Any] | None = None,
        logged: bool = False,
    ) -> Event:
        """Append to the event log (history). Said in the bot's log too once the change
        is durable (an alert as a warning), unless `logged`: its producer says it there
        in its own words."""
        seq = self.ledger.next_event_seq
        event = Event(seq=seq, time=at, kind=kind, message=message, data=dict(data or {}))
        if not logged:
            self.told.append(event)
        self._save_ledger(self.ledger.evolve(next_event_seq=seq + 1))
        self._put("events", event_key(seq), stored(event), lambda s: None)
        return event


class BotsConfig(Protocol):
    """What a manager needs of a bot's whole config (`config.BotConfig`)."""

    @property
    def state(self) -> StateSettings: ...

    @property
    def base_dir(self) -> Path: ...


class StateManager:
    """The async facade over one bot's records in any `StateStore`."""

    def __init__(
        self,
        flow_id: str,
        store: StateStore,
        *,
        clock: Clock = utc_now,
        epoch: int = 0,
        signal_retention: timedelta = timedelta(days=7),
        history_keep: timedelta | None = None,
    ) -> None:
        self.flow_id = flow_id
        self.store = store
        self.epoch = epoch
        """This instance's fencing epoch; every write carries it (see `claim`). An
        instance that never claimed one writes as epoch 0, so once any instance of the
        bot has, the store refuses it."""
        self._clock = clock
        self._signal_retention = signal_retention
        self.history_keep = history_keep
        """How long the history is kept (`keep_history`); None: forever."""
        self._state = BotState.empty(flow_id)
        self._needs_reload = True
        self._lock = asyncio.Lock()
        self._recent_fills: dict[str, None] = {}
        """Trade ids recorded durably, newest last, at most `RECENT_FILLS`."""
        self.history = History(store, flow_id)
        """What the bot did (terminal intents, fills, events): read on demand."""

    @classmethod
    def from_config(
        cls,
        flow_id: str,
        config: BotsConfig | StateSettings | Mapping[str, Any] | None = None,
        *,
        base_dir: Path | None = None,
        clock: Clock = utc_now,
        epoch: int = 0,
    ) -> StateManager:
        """A manager over the configured store. `config` is a whole bot config (a
        `BotConfig`, or a dict of one), its `state:` section, or None for the embedded
        default. Not opened yet: use `async with`."""
        if isinstance(config, StateSettings):
            settings = config
        elif config is None:
            settings = StateSettings()
        elif isinstance(config, Mapping):
            bots = "state" in config or "bot_id" in config  # a whole config, or its section
            settings = StateSettings.model_validate(config.get("state", {}) if bots else config)
        else:
            base_dir = base_dir or config.base_dir
            settings = config.state
        store = open_store(settings, flow_id, base_dir or Path.cwd())
        return cls(
            flow_id,
            store,
            clock=clock,
            epoch=epoch,
            signal_retention=settings.signal_retention,
            history_keep=settings.history.keep,
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
        """Replace the in-memory copy with what the store holds (its live state)."""
        snapshot = await self.store.load(self.flow_id)
        self._state = decode(snapshot, self.flow_id, self.store.describe())
        self._recent_fills = {}
        self._needs_reload = False

    async def _current(self) -> BotState:
        if self._needs_reload:
            await self.reload()
        return self._state

    # -- writing -----------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Collect writes; on a clean exit they become one atomic, durable change."""
        async with self._lock:
            tx = Transaction(await self._current(), self._recent_fills)
            yield tx
            await self._commit(tx)

    async def _commit(self, tx: Transaction) -> None:
        if not tx.ops:
            return
        if tx.new_fills:
            known = await self.store.get(self.flow_id, "fills", sorted(tx.new_fills))
            if known:
                raise DuplicateFill(self.flow_id, sorted(known))
        try:
            await self.store.apply(self.flow_id, Change(tx.ops, epoch=self.epoch))
        except (FencedOut, ValueError, TypeError):
            raise  # refused before anything was written: the copy is still true
        except BaseException:
            # The write may or may not have landed (a lost connection, a timeout):
            # trust only the store from here on.
            self._needs_reload = True
            raise
        for effect in tx.effects:
            effect(self._state)
        self._remember_fills(tx.new_fills)
        for event in tx.told:
            level = logging.WARNING if event.kind == "alert" else logging.INFO
            if log.isEnabledFor(level):
                log.log(level, "%s: %s", self.flow_id, event.message)

    async def claim(self, at_least: int = 0) -> int:
        """Take over the bot under a new epoch the store grants (above every one granted
        before, at least `at_least`): from now on it refuses every other instance's
        writes. The epoch held."""
        await self.fence(await self.store.claim_epoch(self.flow_id, at_least))
        return self.epoch

    async def fence(self, epoch: int) -> None:
        """Carry on as the instance holding `epoch`, which the store granted (`claim`,
        or a lease): every write carries it. `FencedOut` if the store has granted
        another since."""
        async with self._lock:
            await self.store.apply(self.flow_id, Change((), epoch=epoch))
            self.epoch = epoch
            # The instance being replaced may have written after this one loaded: from
            # here on nobody else can, so this is the state to carry on from.
            await self.reload()

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
        if await self.has_fill(fill.trade_id):
            return False
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

    async def _update_risk(self, rule: Callable[[RiskState], RiskState]) -> RiskState:
        async with self.transaction() as tx:
            risk = rule(tx.state.risk)
            if risk != tx.state.risk:
                tx.save_risk_state(risk)
        return risk

    async def update_daily_pnl(self, pnl: Decimal | float | int | str) -> RiskState:
        """Book one closed trade's realized PnL (rolls the trading day if needed). It
        does not count the trade: `count_trade` does, when the trade is taken."""
        amount = _amount(pnl, "pnl")
        today = self._today()
        return await self._update_risk(lambda r: rules.add_realized_pnl(r, amount, today))

    async def count_trade(self) -> RiskState:
        """One more trade taken today (what the daily trade limit counts)."""
        today = self._today()
        return await self._update_risk(lambda r: rules.count_trade(r, today))

    async def update_equity(self, equity: Decimal | float | int | str) -> RiskState:
        """Track peak equity and the drawdown from it."""
        amount = _amount(equity, "equity")
        return await self._update_risk(lambda r: rules.mark_equity(r, amount))

    async def trigger_circuit_breaker(self, reason: str, duration: timedelta) -> RiskState:
        """Halt new entries for `duration`; survives restarts, expires by itself."""
        until = self._clock() + duration
        log.warning("bot %s: circuit breaker until %s: %s", self.flow_id, until.isoformat(), reason)
        return await self._update_risk(lambda r: rules.trip_breaker(r, reason, until))

    async def check_circuit_breaker(self) -> str | None:
        """The breaker's reason while it is active, else None (an expired one is cleared)."""
        now = self._clock()
        risk = await self._update_risk(lambda r: rules.clear_expired_breaker(r, now))
        return risk.breaker_reason if rules.breaker_active(risk, now) else None

    async def mark_signal_processed(
        self,
        signal_id: str,
        pair: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Remember `signal_id` as processed now, by the manager's clock, and forget in
        the same write the ids that aged out.

        signalflow's call works as written, `mark_signal_processed(signal_id,
        pair=..., timestamp=...)`: `timestamp` is the signal's own time, which becomes
        the last bar time; see `Transaction.mark_signal_processed`."""
        now = self._clock()
        async with self.transaction() as tx:
            for old in rules.expired_signals(tx.state.signals, now, self._signal_retention):
                tx.forget_signal(old)
            tx.mark_signal_processed(signal_id, now, pair=pair, timestamp=timestamp)

    async def is_signal_processed(self, signal_id: str) -> bool:
        at = (await self._current()).signals.get(signal_id)
        return at is not None and at >= self._clock() - self._signal_retention

    async def set_cooldown(self, symbol: str, duration: timedelta) -> None:
        async with self.transaction() as tx:
            tx.set_cooldown(symbol, self._clock() + duration)

    async def is_on_cooldown(self, symbol: str) -> bool:
        return rules.on_cooldown((await self._current()).cooldowns, symbol, self._clock())

    async def set_last_bar_time(self, at: datetime) -> None:
        async with self.transaction() as tx:
            tx.set_last_bar_time(at)

    async def move(
        self,
        event: BotEvent,
        error: str | None = None,
        *,
        acknowledged: bool | None = None,
        clear_error: bool = False,
    ) -> BotRecord:
        """Move the bot's lifecycle status by `event` (`BOT_TRANSITIONS`); `error` is
        kept as the last error message (`clear_error`: the last one is over),
        `acknowledged` (if given) set in the same write."""
        changes: dict[str, Any] = {}
        if clear_error:
            changes["last_error"] = None
        if acknowledged is not None:
            changes["acknowledged"] = acknowledged
        if error is not None:
            changes["last_error"] = error
        async with self.transaction() as tx:
            record = tx.state.bot.move(event, self._clock(), **changes)
            tx.save_bot_record(record)
        return record

    async def heartbeat(self) -> None:
        async with self.transaction() as tx:
            tx.heartbeat(self._clock())

    async def check_stale(self, max_age: timedelta) -> bool:
        """True if the last heartbeat is older than `max_age` (a bot never seen is not)."""
        beat = (await self._current()).bot.heartbeat_at
        return beat is not None and self._clock() - beat > max_age

    async def keep_history(
        self, venue_open: Iterable[str] = (), budget: int = 4 * retention.PAGE
    ) -> int:
        """Retention's next steps, if `history_keep` is set: remove what of the history
        ended more than `history_keep` ago and recovery does not need (the rules:
        `state/retention.py`), reading at most about `budget` records; how many were
        removed. `venue_open`: the client order ids the venue lists as open.

        A caller that records the venue's fills calls this only between two complete
        reads of the fill listing (the engine: at the end of a pass), never while a
        page of fills is half recorded."""
        if self.history_keep is None:
            return 0
        open_ids = frozenset(venue_open)
        walked = (await self._current()).history_sweep
        removed = read = 0
        while read < budget:
            sweep = retention.due(walked, self._clock(), self.history_keep)
            if sweep is None:
                break
            records = await retention.read_page(self.store, self.flow_id, sweep)
            read += len(records) + 1
            async with self.transaction() as tx:
                kept = retention.Kept.of(tx.state, open_ids)  # (decided under the lock)
                page = retention.decide(sweep, records, kept, self._clock(), self.history.parse)
                walked = page.sweep
                # Where the walk got is written with what a page removes, and once at
                # the end of the call: a page that removes nothing costs no write.
                if page.removed or walked.collection is None or read >= budget:
                    tx.forget(page.collection, page.removed)
                    tx.set_history_sweep(walked)
            removed += len(page.removed)
            if page.sweep.collection is None:
                if page.sweep.removed:
                    log.info(
                        "%s: history kept for %s: %d records that ended before %s removed",
                        self.flow_id,
                        format_duration(self.history_keep),
                        page.sweep.removed,
                        f"{page.sweep.before:%Y-%m-%d %H:%M} UTC",
                    )
                break
        return removed

    # -- reading -------------------------------------------------------------------------
    async def snapshot(self) -> BotState:
        """The live state as it is durable now (its history: `history`). Treat it as
        read-only."""
        return await self._current()

    def last_known(self) -> BotState:
        """The copy as of the last write known to have landed, without asking the store
        (which may be unreachable): a write that failed since may have landed too."""
        return self._state

    async def get_positions(self) -> list[Position]:
        return list((await self._current()).positions.values())

    async def get_position(self, position_id: str) -> Position | None:
        return (await self._current()).positions.get(position_id)

    async def get_orders(self) -> list[OrderIntent]:
        """Every intent, oldest first: the live ones and the whole history's terminal
        ones, read now (for tools; the loop wants `get_pending_orders`)."""
        live = list((await self._current()).intents.values())
        every = [*live, *await self.history.orders()]
        return sorted(every, key=lambda i: (i.created_at, i.client_order_id))

    async def get_order(self, client_order_id: str) -> OrderIntent | None:
        """The intent under `client_order_id`, live or in the history."""
        live = (await self._current()).intents.get(client_order_id)
        return live if live is not None else await self.history.order(client_order_id)

    async def get_orders_by_id(self, client_order_ids: Iterable[str]) -> dict[str, OrderIntent]:
        """The intents under these ids that the bot has, live or in the history (one
        read of the history for the ids not live, none if all are)."""
        live, cids = (await self._current()).intents, list(client_order_ids)
        found = {cid: live[cid] for cid in cids if cid in live}
        missing = [cid for cid in cids if cid not in live]
        if missing:
            found.update(await self.history.orders_by_id(missing))
        return found

    async def get_pending_orders(self) -> list[OrderIntent]:
        """Every intent not yet in a terminal state (including UNKNOWN ones): the live
        state's, no read."""
        return list((await self._current()).intents.values())

    async def has_fill(self, trade_id: str) -> bool:
        """Whether the fill with this venue trade id is recorded."""
        return trade_id in self._recent_fills or await self.history.has_fill(trade_id)

    async def get_fills(self) -> list[Fill]:
        """Every fill, oldest first: the whole history, read now (for tools and checks)."""
        return await self.history.fills()

    def _remember_fills(self, trade_ids: set[str]) -> None:
        for trade_id in trade_ids:
            self._recent_fills[trade_id] = None
        while len(self._recent_fills) > RECENT_FILLS:
            del self._recent_fills[next(iter(self._recent_fills))]

    async def book_past_trades(self, trading_day: Callable[[datetime], date]) -> int:
        """Give a bot with no trades history one: its trades as its event log tells
        them (a state of layout 1, whose trades are its `trade` events), each on its
        trading day by `trading_day`, in one change. Once: a bot with a book has its
        trades recorded as they close. Returns how many were booked."""
        if (await self._current()).pnl is not None:
            return 0
        trades = []
        for event in await self.history.events():
            if event.kind == "trade" and "exit_price" in event.data and "qty" in event.data:
                try:
                    trade = Trade.model_validate(event.data)
                except ValidationError:
                    continue  # (a phantom closed out: no fill, no trade)
                trades.append(trade.evolve(exit_fill=trade.exit_fill or f"event-{event.seq}"))
        async with self.transaction() as tx:
            tx.set_pnl_book(PnlBook())
            for trade in trades:
                day = trading_day(trade.exit_time)
                tx.record_trade(trade, day, PnlSum())
        return len(trades)

    async def day_pnl(self, day: date) -> PnlSum:
        """The trades closed on trading `day` so far, added up."""
        book = (await self._current()).pnl
        if book is not None and book.day == day:
            return book.today
        return await self.history.day(day) or PnlSum()

    async def get_risk_state(self) -> RiskState:
        return (await self._current()).risk

    async def get_signal_state(self) -> SignalState:
        return (await self._current()).signal_state()

    async def get_bot_record(self) -> BotRecord:
        return (await self._current()).bot

    def _today(self) -> date:
        return self._clock().date()
