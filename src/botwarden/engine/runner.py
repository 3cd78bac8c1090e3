"""The bot: recovery, then the loop, until told to stop.

    start:  a new lease epoch (the store fences out any older instance), status
            pending, the venue connected, recovery; then running (or needs attention).
            A venue or a store that fails during recovery leaves the bot pending:
            each tick tries the recovery again, and nothing else, until it completes
    tick:   heartbeat · the venue's open orders · new fills · unresolved orders ·
            every stop checked · equity and the breaker · for each symbol: completed
            bars, the strategy, the guards, and the order (its intent, the processed
            signal and the day's counters are one write)
    stop:   the current tick finishes, the state is saved, status stopped

Nothing here needs a graceful exit to be safe: every step is written before the next
one starts, and a SIGKILL at any point is what recovery is for.

A store that fails to write (a full disk, a lost server) cuts the tick short, like a
venue that fails to answer: an order is only sent once its intent is durable, so no
new position is opened, the stops already resting on the venue keep protecting what
is held, and the next tick starts from what the store really holds (a write that
failed may or may not have landed). The bot carries on by itself once writes succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from botwarden.domain import risk as rules
from botwarden.domain.models import Bar, BotEvent, BotStatus, Instance, Position, Topic
from botwarden.domain.orders import OrderIntent, Purpose
from botwarden.domain.timeframes import bar_open
from botwarden.engine.deadline import StrategyCalls
from botwarden.engine.ids import ClientIds
from botwarden.engine.leased import LeasedVenue
from botwarden.engine.orders import BREAKER, WAITING, Context, OrderDesk
from botwarden.engine.outage import OutageGuard
from botwarden.engine.protection import Protector
from botwarden.engine.recovery import Recovery, RecoveryReport
from botwarden.engine.settings import BotSettings
from botwarden.engine.sight import CHART_BARS, Seen, Sight
from botwarden.engine.signals import Permit, Skipped, Trader, Why, take_profits_refused
from botwarden.errors import (
    ConfigError,
    FencedOut,
    StateError,
    StateLost,
    StoreUnavailable,
    UntradableSymbol,
)
from botwarden.state.lease import HostLeases, LeaseExpired, Tenure
from botwarden.state.manager import StateManager
from botwarden.state.records import BotState
from botwarden.state.settings import LeaseSettings
from botwarden.strategies.bars import Bars
from botwarden.strategies.base import Signal
from botwarden.strategies.loading import LoadedStrategy, StrategyFailed
from botwarden.venues.base import (
    AuthError,
    Balance,
    ClockReading,
    NotFound,
    Rejected,
    Venue,
    VenueError,
    VenueOrder,
    timeframe_width,
)

log = logging.getLogger(__name__)
told = logging.getLogger("botwarden.strategy")
"""The strategy's failures, with where in its code (a backtest says them itself)."""
decisions = logging.getLogger("botwarden.decisions")
"""A line a pass for each symbol, what the strategy made of it (`run --quiet`: none)."""

MAX_RETRY_PAUSE = 60.0
"""Seconds: the longest wait between two recovery attempts of a pending bot."""


class Notifications(Protocol):
    """Where the events an operator asked to be told of go (`botwarden.notify`)."""

    def publish(self, state: BotState) -> None:
        """Take the events of `state` not seen yet; never blocks, never raises."""

    def announce(self, topic: Topic, text: str) -> None:
        """Tell of something the state cannot hold yet (the store failing); never
        blocks, never raises."""


@dataclass
class Flattened:
    closed: list[str]
    """The symbols whose positions an exit was sent for."""
    still_held: list[str]
    """Positions not closed yet when the wait ended (their exits rest; the next start
    resolves them)."""
    still_open: list[str]
    """Client order ids of the bot's still not final (an exit not filled yet)."""


def require_fit(settings: BotSettings, venue: Venue) -> None:
    """`ConfigError` if the bot's settings ask what its venue cannot do (checked before
    anything is opened, and by every runner)."""
    settings.require_markets()
    refused = take_profits_refused(venue) if settings.take_profit is not None else None
    if refused:
        raise ConfigError(f"{settings.source}: take_profit: {refused}; or remove take_profit")


class Runner:
    guard_without_store = True
    """False only to break the engine on purpose: the simulator's own test proves its
    checker finds a position left bare while the store cannot write."""

    def __init__(
        self,
        settings: BotSettings,
        state: StateManager,
        venue: Venue,
        clock: Callable[[], datetime],
        notifications: Notifications | None = None,
        strategy: LoadedStrategy | None = None,
        decides: bool = True,
        exact_lookups: bool = False,
        tenure: Tenure | None = None,
    ) -> None:
        """`decides`: False for a bot whose own code decides (`botwarden.bot`): its
        passes read fills, resolve and protect, and ask no strategy; its signals come
        through `act`. `exact_lookups`: the venue answers every lookup exactly and at
        once, with no lag (a backtest's paper book): an entry written ahead that it has
        not got was never sent, and goes at once under its own id, as the pass that
        wrote it would have sent it (see `OrderDesk.resolve`); elsewhere it is dropped.
        `tenure`: this instance's hold on the bot's lease (acquired by the process,
        which keeps it renewed); without one, an epoch claimed from the store at start.
        Nothing leaves for the venue without it (`LeasedVenue`)."""
        require_fit(settings, venue)
        self.tenure = tenure or Tenure(
            HostLeases(state.store), settings.bot_id, LeaseSettings().ttl.total_seconds()
        )
        self.settings = settings
        self.state = state
        self.notifications = notifications
        self.venue = venue
        self.clock = clock
        self._strategy = strategy
        self._calls: StrategyCalls | None = None
        self.decides = decides
        self.exact_lookups = exact_lookups
        self.speed = 1.0
        """How fast the bot's clock runs (a paper exchange's may run fast): told with times."""
        self.pass_error: Exception | None = None
        """What cut the last pass short (a venue that did not answer, a store that did
        not write); None: it ran to its end."""
        self._balance: Balance | None = None
        self.sight: Sight | None = None
        """Told what each pass saw of the market (for the dashboard); None: nobody looks."""
        self._bars_seen: dict[str, list[Bar]] = {}
        """Each symbol's newest bars, for the sight's chart (`CHART_BARS` of them)."""
        self._chart_gaps: set[str] = set()
        """Symbols whose chart's bars stopped short of the newest: the next pass asks for
        a chart's worth (otherwise a pass asks only for what the strategy needs)."""
        self._bars_due: datetime | None = None
        """When a bot whose own code decides next fetches its chart's bars."""
        self._sight_failed: str | None = None
        """What the sight last raised, while it keeps raising it (said once)."""
        self._hook_failures: list[StrategyFailed] = []
        """What the hooks raised after this pass's decisions: told at the next."""
        self._told: set[tuple[str, str | None, str]] = set()
        """The strategy failures told of while it keeps failing: each once."""
        self._start_due = False
        self._strategy_failure: str | None = None
        """What the strategy's last failure said, while it keeps failing: no entries."""
        self.report: RecoveryReport | None = None
        """The last completed recovery's; None until one completed."""
        self.protect_only = False
        self.ctx: Context | None = None
        self._store_failing = False
        self._unwritten: list[tuple[datetime, str]] = []
        """What the outage guard did while the store failed: events to write."""
        self._connected = False
        self._history_checked = False
        self._fresh = False
        self._failed_attempts = 0
        self._resolve_requested = False
        self._retention_stopped: str | None = None
        """What stopped retention, while it does (said once)."""
        self._wake = asyncio.Event()

    @property
    def strategy(self) -> LoadedStrategy:
        """The strategy given, or the config's, loaded when first asked for (a runner
        that only flattens never asks)."""
        if self._strategy is None:
            self._strategy = self.settings.load_strategy()
        return self._strategy

    # -- start ---------------------------------------------------------------------------
    async def start(self, rebuilt_after: str | None = None) -> RecoveryReport | None:
        """Start an instance and recover; the recovery's report, or None if the venue
        or the store failed during it (each tick tries again until it completes).
        `rebuilt_after`: the bot's state was lost
        (corrupt, moved aside) and starts empty: its fills are replayed from the venue
        (positions and trades with them), whatever else the venue holds in its markets
        is adopted, and its epoch is made from the time, so that no client order id of
        the lost instances can ever be made again."""
        try:
            return await self._start(rebuilt_after)
        except StateLost as error:  # (deleted as the bot started)
            await self._state_lost(error)
            raise

    async def _start(self, rebuilt_after: str | None) -> RecoveryReport | None:
        settings, state = self.settings, self.state
        # Granted by the store, above every epoch it granted (an instance may have
        # claimed one and died before its record said so); a lost state's from the time.
        # First: from here on nobody else writes, and `fence` reloads what they did.
        lost_at = int(time.time()) if rebuilt_after is not None else 0
        if self.tenure.epoch == 0 or lost_at:  # (acquired again by its holder)
            await self.tenure.acquire(at_least=lost_at)
        epoch = self.tenure.epoch
        await state.fence(epoch)
        stored = await state.snapshot()
        # Nothing of the bot's trading: a new bot, or a lost state (looked for at the
        # venue until the bot has an order; an instance record alone proves nothing, an
        # instance may have died while it looked). The ledger says it too once the bot
        # ordered: retention may have removed every terminal intent and fill.
        ordered = stored.ledger.next_order_seq > 0 or stored.ledger.fills_cursor is not None
        self._fresh = not (
            stored.intents or stored.positions or ordered or await state.history.traded()
        )
        if (await state.snapshot()).pnl is None:  # a state of layout 1, or a new bot
            booked = await state.book_past_trades(settings.risk.trading_day)
            if booked:
                log.info("%s: %d trades booked from its event log", settings.bot_id, booked)
        instance = Instance(
            host=socket.gethostname(), pid=os.getpid(), epoch=epoch, started_at=self.clock()
        )
        async with state.transaction() as tx:
            tx.save_bot_record(tx.state.bot.move(BotEvent.START, self.clock(), instance=instance))
            tx.add_event(
                self.clock(),
                "status",
                f"starting as instance {epoch} (pid {os.getpid()})",
                {"instance": epoch},
            )
            if rebuilt_after is not None:
                tx.mark_state_lost(epoch)
        ctx = Context(
            bot_id=settings.bot_id,
            state=state,
            venue=LeasedVenue(self.venue, self.tenure),  # type: ignore[arg-type]
            ids=ClientIds(settings.bot_id, epoch),
            clock=self.clock,
            stop=settings.stop,
            unknown_order_grace=settings.engine.unknown_order_grace,
            symbols=tuple(settings.symbols),
            limits=settings.risk,
            take_profit=settings.take_profit,
            timeframe=(
                settings.strategy.timeframe
                if self.exact_lookups and self.decides and self._strategy is not None
                else None
            ),
        )
        self.ctx = ctx
        self.desk = OrderDesk(ctx)
        self.protector = Protector(ctx, self.desk)
        self.trader = Trader(ctx, self.desk, self.protector, settings.size)
        self.guard = OutageGuard(ctx, self.protector)
        # A rebuild goes on until the venue's fills are all replayed (an instance may
        # die halfway through): the lost state is marked, its fill cursor not yet set.
        ledger = stored.ledger
        self._rebuild = rebuilt_after is not None or (
            ledger.lost_before_epoch > 0 and ledger.fills_cursor is None
        )
        if rebuilt_after is not None:
            await self._recovery().note(
                f"STATE LOST: {rebuilt_after}; rebuilding from the venue: the bot's fills"
                " replayed, anything else it holds in"
                f" {', '.join(settings.symbols) or 'every market'} adopted, all protected",
                kind="alert",
            )
        await self._start_day()  # before recovery's fills could roll the day unsaid
        await self._recover()
        await self._publish()
        return self.report

    def _recovery(self, acknowledged: bool = False) -> Recovery:
        settings = self.settings.recovery
        if self._rebuild:
            settings = settings.model_copy(update={"orphan_positions": "adopt"})
        return Recovery(
            self.ctx,
            self.desk,
            self.protector,
            settings,
            rebuild=self._rebuild,
            acknowledged=acknowledged,
        )

    async def _recover(self) -> None:
        """One attempt at recovery (connecting to the venue first, if it is not yet);
        on success the bot runs (or needs attention). A venue or a store that fails
        leaves the bot pending, saying why, and the next attempt comes sooner than a
        check interval (`retry_pause`)."""
        acknowledged = (await self.state.snapshot()).bot.acknowledged
        try:
            if not self._connected:
                await self.venue.connect()
                self._connected = True
                await self._check_symbols()
                await self._check_clock()
            if not self._history_checked:
                await self._epoch_above_the_venue()
                self._history_checked = True
            report = await self._recovery(acknowledged).run()
        except (AuthError, FencedOut, UntradableSymbol, StateLost):
            raise  # (not to be tried again)
        except (VenueError, StateError) as error:
            self._failed_attempts += 1
            why = f"recovery not finished: {error}; trying again in {self.retry_pause():.0f} s"
            log.warning("%s: %s, no entries until then", self.settings.bot_id, why)
            with contextlib.suppress(StateError):  # the store may be what fails
                await self.state.move(BotEvent.RETRY, why)
            return
        finally:
            self.desk.forget_read_ahead()  # (for this attempt only: fills go on coming)
        self._failed_attempts = 0
        self._start_due = True  # the strategy's on_start, at its next pass
        self.report = report
        with contextlib.suppress(VenueError):  # (a limit entry that expired while down)
            await self.trader.cancel_stale_entries(await self._open())
        self.protect_only = report.protect_only
        outcome = BotEvent.ATTENTION if report.needs_attention else BotEvent.RECOVER
        await self.state.move(outcome, acknowledged=False, clear_error=True)

    async def _epoch_above_the_venue(self) -> None:
        """No instance may make a client order id the venue has seen: the epoch goes
        above every epoch in the bot's ids at the venue, in its open orders and in the
        fills the state has not recorded yet (all of them for a state that is empty or
        being rebuilt). That covers an older copy of the state put back (a backup, a
        file replaced), whose own epoch the venue has already seen. An empty state
        whose venue shows the bot's history is a lost state: rebuilt from the venue."""
        ids, venue = self.ctx.ids, self.venue
        everything = self._fresh or self._rebuild
        ledger = (await self.state.snapshot()).ledger
        seen = [o.client_order_id for o in await venue.open_orders() if ids.owns(o.client_order_id)]
        if everything or ledger.fills_cursor is not None:
            cursor = None if everything else ledger.fills_cursor
            # Read once for the epochs and kept: recovery records these same fills.
            seen += [cid for cid in await self.desk.read_ahead(cursor) if ids.owns(cid)]
        if not seen:
            return  # a new bot: the venue knows nothing of it
        highest = max(ClientIds.epoch_of(cid) for cid in seen)
        lost = self._fresh and not self._rebuild
        if highest < ids.epoch and not lost:
            return
        epoch = await self.tenure.acquire(
            at_least=max(highest + 1, int(time.time()) if lost else 0)
        )
        await self.state.fence(epoch)
        self.ctx.ids = ClientIds(self.settings.bot_id, epoch)
        now = self.clock()
        why = "" if everything else " (an older copy of the state put back?)"
        async with self.state.transaction() as tx:
            bot = tx.state.bot
            instance = bot.instance.evolve(epoch=epoch) if bot.instance else None
            tx.save_bot_record(bot.evolve(instance=instance, last_updated_at=now))
            tx.add_event(
                now,
                "status" if everything else "alert",
                f"instance epoch raised to {epoch}: the venue holds client order ids of the"
                f" bot's up to epoch {highest}{why}",
                {"instance": epoch},
            )
            # Either way, orders of the lives before this one may be unknown to the
            # state (an older copy knows nothing of what came after it).
            tx.mark_state_lost(epoch)
        if lost:
            self._rebuild = True
            await self._recovery().note(
                f"STATE LOST: the state holds nothing of this bot, yet the venue has"
                f" {len(seen)} of its orders and fills (an emptied or replaced state file?);"
                " rebuilding from the venue: the bot's fills replayed, its stops kept, all"
                " protected",
                kind="alert",
            )

    def retry_pause(self) -> float:
        """Seconds until the next recovery attempt after a failed one: 1, 2, 4 ... 60."""
        return min(2.0 ** max(self._failed_attempts - 1, 0), MAX_RETRY_PAUSE)

    async def _check_clock(self) -> None:
        """A venue whose clock is far from this host's is told of (an event, an alert):
        the bot looks for fills by the venue's own time, but an operator should know."""
        told = await self.venue.read_clock()
        # Against the bot's own clock: a paper exchange's is the bot's, whatever its
        # start and speed; a real venue's is set against the host's.
        reading = ClockReading(told.venue_time, self.clock(), told.tolerance)
        if reading.skewed:
            async with self.state.transaction() as tx:
                tx.add_event(
                    self.clock(),
                    "alert",
                    f"{reading.describe(self.venue.name)}: fills are looked for by the venue's"
                    " time; set this host's clock (NTP)",
                    {"clock_offset_seconds": reading.offset.total_seconds()},
                )

    async def _check_symbols(self) -> None:
        """Every symbol of the config must be one the venue trades: a bot told to trade
        what it cannot is in error, saying which and why, not running idle."""
        for symbol in self.settings.symbols:
            try:
                await self.protector.market(symbol)
            except (Rejected, NotFound) as error:
                raise UntradableSymbol(symbol, self.venue.name, str(error)) from None

    # -- an operator's word ------------------------------------------------------------------
    def request_resolve(self) -> None:
        """An operator resolved "needs attention" (`botwarden resolve`, by SIGUSR1): acted
        on at the next step, without waiting out the pause."""
        self._resolve_requested = True
        self._wake.set()

    async def _resolve(self) -> None:
        """Take the operator's word durably, and recover again, acting this time."""
        if (await self.state.snapshot()).bot.status is not BotStatus.NEEDS_ATTENTION:
            log.info("%s: asked to resolve, but nothing needs attention", self.settings.bot_id)
            self._resolve_requested = False
            return
        now = self.clock()
        async with self.state.transaction() as tx:
            tx.save_bot_record(tx.state.bot.evolve(acknowledged=True, last_updated_at=now))
            tx.add_event(
                now,
                "status",
                "needs attention: resolved by an operator; recovering again, acting on what"
                " the venue says",
                {"resolved_by": "operator"},
            )
        log.warning("%s: resolved by an operator: recovering again", self.settings.bot_id)
        self._resolve_requested = False
        self.report = None

    # -- the loop ----------------------------------------------------------------------------
    async def run(
        self,
        stop: asyncio.Event,
        ticks: int | None = None,
        pause: float = 0,
        speed: float = 1.0,
        each_pass: Callable[[], None] | None = None,
    ) -> None:
        """Tick until `stop` is set (or `ticks` ran), `pause` seconds apart; sooner while
        recovery is retrying, and at the start of each trading day. `speed`: how many
        of the bot's clock's seconds pass in one second (a paper exchange's clock may
        run fast). `each_pass`: called before every pass (the process checks its lock);
        what it raises ends the run."""
        self.speed = speed
        done = 0
        while not stop.is_set():
            self._wake.clear()  # a wake-up during the tick still cuts the pause short
            if each_pass is not None:
                each_pass()
            await self.tick()
            done += 1
            if ticks is not None and done >= ticks:
                return  # no pause after the last tick
            wait = pause
            if self.report is None:
                wait = min(wait, self.retry_pause())
            next_day = self.settings.risk.next_day_start(self.clock())
            wait = min(wait, max((next_day - self.clock()).total_seconds(), 0) / speed)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:  # until the pause is over, or stop, or an operator's word
                await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    async def tick(self) -> None:
        """One pass; a venue that fails to answer or a store that fails to write ends
        the pass, to be tried again at the next."""
        assert self.ctx is not None, "start() first"
        self.pass_error = None
        try:
            self.tenure.require()  # (no pass at all without the lease: see `_no_lease`)
            await self._write_down_the_outage()
            await self._start_day()
            await self._beat()
            if self._resolve_requested:
                await self._resolve()
            if self.report is None:
                await self._recover()
            elif not self._frozen():
                await self._tick()
        except (AuthError, FencedOut, UntradableSymbol):
            raise
        except StateLost as error:
            await self._state_lost(error)
            raise
        except LeaseExpired as error:
            self._no_lease(error)
        except VenueError as error:
            self.pass_error = error
            log.warning("%s: tick cut short: %s", self.settings.bot_id, error)
        except StateError as error:
            self.pass_error = error
            if not self._store_failing:
                log.error(
                    "%s: the state store failed to write (%s): no new orders until it"
                    " works again; every position the bot holds keeps a stop on the venue"
                    " (guard stops where one is missing)",
                    self.settings.bot_id,
                    error,
                )
            self._store_failing = True
            await self._guard_without_store()
        else:
            if self._store_failing:
                log.warning("%s: the state store works again", self.settings.bot_id)
                self._store_failing = False
        await self._publish()

    def _no_lease(self, error: LeaseExpired) -> None:
        """The lease is not renewed (its store slow or out of reach): another instance
        may be granted it soon, so this one does nothing, not even guard a stop, until
        it is renewed; the stops resting on the venue go on protecting."""
        self.pass_error = error
        if not self._store_failing:
            log.error("%s: %s", self.settings.bot_id, error)
        self._store_failing = True

    def _frozen(self) -> bool:
        """Manual recovery found something for an operator: nothing is touched."""
        needs_attention = self.report is not None and self.report.needs_attention
        return self.settings.recovery.mode == "manual" and needs_attention

    async def _state_lost(self, error: StateLost) -> None:
        """Gone for good (deleted, replaced), at start or in a pass: every position keeps
        a stop, then the bot stops; its next start finds no state and rebuilds it from
        the venue."""
        log.error("%s: STATE LOST: %s", self.settings.bot_id, error)
        await self._guard_without_store()
        if self.notifications is not None:
            self.notifications.announce(Topic.ERROR, f"STATE LOST: {error}")

    async def _guard_without_store(self) -> None:
        """The store cannot write: the stop guarantee goes on without it (see
        `engine/outage.py`), and the operator is told of every guard at once."""
        if self.report is None or not self.guard_without_store:
            return  # not recovered yet: nothing is known to guard
        if not self.tenure.may_send:
            return  # (another instance may hold the bot by now: see `_no_lease`)
        try:
            known = await self.state.snapshot()
        except StateError:  # cannot even read: the last copy known
            known = self.state.last_known()
        try:
            done = await self.guard.protect(known)
        except VenueError as error:
            log.warning("%s: guarding without the store cut short: %s", self.settings.bot_id, error)
            return
        for line in done:
            log.error("%s: %s", self.settings.bot_id, line)
            self._unwritten.append((self.clock(), line))
            if self.notifications is not None:
                self.notifications.announce(Topic.UNPROTECTED, line)

    async def _write_down_the_outage(self) -> None:
        """The store writes again: what the guard did meanwhile goes in the event log, and
        the guards sent become intents like any other order (adopted as their
        positions' stops, resolved if unanswered)."""
        if not self._unwritten and not self.guard.unwritten:
            return
        # A guard may have ended meanwhile (found by its fill): its intent is history.
        known = await self.state.get_orders_by_id(self.guard.unwritten)
        async with self.state.transaction() as tx:
            for at, line in self._unwritten:
                tx.add_event(at, "alert", f"while the store failed: {line}", {"outage": True})
            for cid, intent in self.guard.unwritten.items():
                if cid not in known:
                    tx.save_order(intent)
        self._unwritten.clear()
        self.guard.unwritten.clear()

    async def _start_day(self) -> None:
        """The daily reset, at the first step on or after `day_starts_at`, whether or
        not the bot trades: the day's counters start again, a breaker tripped by the
        daily loss ends (it lasts until the day starts), a running bot's last error is
        cleared, and the last day's figures are an event (and a notification). Once
        per day across restarts: the new day is stored in the same write as its event."""
        now = self.clock()
        today = self.settings.risk.trading_day(now)
        known = (await self.state.snapshot()).risk.trading_day
        if known is not None and known >= today:
            return
        async with self.state.transaction() as tx:
            last = tx.state.risk
            risk = rules.clear_expired_breaker(rules.roll_day(last, today), now)
            tx.save_risk_state(risk)
            if last.trading_day is None:
                return  # the bot's first day: nothing to reset
            bot = tx.state.bot
            if bot.status is BotStatus.RUNNING and bot.last_error is not None:
                tx.save_bot_record(bot.evolve(last_error=None, last_updated_at=now))
            lifted = last.breaker_until is not None and risk.breaker_until is None
            message = (
                f"trading day {today} began: {last.trading_day} closed with realized PnL"
                f" {last.daily_pnl:.2f}, entries taken: {last.daily_trade_count}; daily"
                " counters reset"
                + (f"; the breaker ({last.breaker_reason}) ended" if lifted else "")
            )
            day = {"notify": Topic.DAY, "trading_day": str(today)}
            tx.add_event(now, "day", message, day, logged=True)
        log.info("%s: %s", self.settings.bot_id, message)

    async def _tick(self) -> None:
        ctx, desk = self.ctx, self.desk
        sent_before = desk.sent_filling
        open_orders = await self._open()
        await desk.sync_fills()
        waiting = await self._waiting()
        for intent in waiting:
            await desk.resolve(intent, open_orders)
        if waiting:  # resolving may have sent orders again
            open_orders = await self._open()
        if await self.trader.cancel_stale_entries(open_orders):
            open_orders = await self._open()
        prices = await ctx.venue.last_prices(self.settings.symbols)
        exposed = await self.protector.protect_all(open_orders, prices)
        status = (await self.state.snapshot()).bot.status
        if exposed and status in (BotStatus.RUNNING, BotStatus.ERROR):
            await self.state.move(BotEvent.ATTENTION)
            await self._note(
                f"needs attention: {', '.join(exposed)} left without a stop by policy",
                Topic.NEEDS_ATTENTION,
            )
        if self.decides:
            await self._strategy_pass(prices)
        if desk.sent_filling != sent_before:  # (a close, say, since the last read)
            await desk.sync_fills()  # the pass ends knowing what its orders did
        # Between two reads of the fills, every fill recorded is behind the cursor.
        await self._keep_history(open_orders)
        if self.sight is not None:
            await self._show(prices)

    async def _show(self, prices: dict[str, Decimal]) -> None:
        """What the pass saw, to whoever watches. A bot whose own code decides asks
        for no bars of its own: its chart's are fetched here, once a bar."""
        symbols, timeframe = self.settings.symbols, self.settings.strategy.timeframe
        now = self.clock()
        if not self.decides and (self._bars_due is None or now >= self._bars_due):
            with contextlib.suppress(VenueError):  # a chart is not worth a pass
                bar = timeframe_width(self.venue.name, timeframe)
                self._bars_due = bar_open(timeframe, now) + bar  # (once the next bar is out)
                for symbol in symbols:
                    bars = await self.ctx.venue.bars(symbol, timeframe, CHART_BARS)
                    self._bars_seen[symbol] = list(bars)
        markets = {}
        for symbol in symbols:
            with contextlib.suppress(VenueError):
                markets[symbol] = await self.protector.market(symbol)  # (kept once read)
        balance = None if self.protect_only else self._balance
        seen = Seen(now, self.speed, timeframe, prices, self._bars_seen, markets, balance)
        try:
            self.sight.saw(seen)
        except Exception as error:  # (its own failures it says itself: a bug of its own)
            if repr(error) != self._sight_failed:
                log.exception("%s: the market view failed; trading goes on", self.settings.bot_id)
            self._sight_failed = repr(error)
        else:
            self._sight_failed = None

    async def _keep_history(self, open_orders: dict[str, VenueOrder]) -> None:
        """Retention's step of the pass. A record it cannot read stops it, said once,
        and trading goes on (the history only grows meanwhile); a store that fails or
        is lost is the pass's to handle, as anywhere."""
        try:
            await self.state.keep_history(open_orders)
        except (StoreUnavailable, StateLost, FencedOut):
            raise
        except StateError as error:
            if str(error) != self._retention_stopped:
                log.warning("%s: history retention stopped: %s", self.settings.bot_id, error)
            self._retention_stopped = str(error)
        else:
            self._retention_stopped = None

    async def _strategy_pass(self, prices: dict[str, Decimal]) -> None:
        """The strategy told of what happened, asked about every symbol, and its
        signals acted on."""
        failures = [*self._hook_failures, *await self._tell_strategy()]
        self._hook_failures = []
        signals = []
        asked_all = True
        for symbol in self.settings.symbols:  # every symbol decided before any is acted on
            try:
                signal, bars = await self._decide(symbol)
            except StrategyFailed as failure:
                failures.append(failure)
                continue
            signals.append(signal)
            asked_all &= len(bars) >= self.strategy.bars_needed
            if signal is None and decisions.isEnabledFor(logging.INFO):  # (a signal: told)
                decisions.info("%s: %s", self.settings.bot_id, self._nothing(symbol, bars))
        await self._strategy_checked(failures, asked_all)  # (failing: no entries this pass)
        for signal in signals:
            if signal is not None and not await self.state.is_signal_processed(signal.id):
                permit = Permit(
                    balance=None if self.protect_only else self._balance,
                    failing=self._strategy_failure,
                )
                await self.trader.act(signal, prices[signal.symbol], permit)
                self._hook_failures += await self._tell_strategy()

    async def act(self, signal: Signal) -> Skipped | None:
        """A signal from the bot's own code, acted on as a strategy's would be: after a
        pass (fills read, orders resolved, every position protected, the balance and
        the guards current), at the symbol's last price; why not, if it was not. The
        pass's failure (the venue, the store) is raised: nothing is decided on what is
        not known."""
        await self.tick()
        if self.pass_error is not None:
            raise self.pass_error
        if self.report is None:
            status = (await self.state.snapshot()).bot
            return Skipped(Why.NOT_READY, f"recovery not finished: {status.last_error}")
        if self._frozen():
            return Skipped(
                Why.NOT_READY,
                "the bot needs attention and its recovery mode is manual: nothing is touched"
                " until an operator resolves it (botwarden resolve)",
            )
        price = (await self.venue.last_prices([signal.symbol]))[signal.symbol]
        permit = Permit(balance=None if self.protect_only else self._balance)
        return await self.trader.act(signal, price, permit)

    async def _decide(self, symbol: str) -> tuple[Signal | None, Bars]:
        """What the strategy says of `symbol` now, and the bars it said it on (fewer
        than it needs, and nothing held: it was not asked)."""
        venue, strategy, main = self.ctx.venue, self.strategy, self.settings.strategy.timeframe
        others = {
            timeframe: await venue.bars(symbol, timeframe, needed)
            for timeframe, needed in strategy.timeframes.items()
            if timeframe != main
        }
        needed = strategy.bars_needed
        charting = self.sight is not None
        whole = charting and self._chart_short(symbol, main, needed)
        wanted = max(needed, CHART_BARS) if whole else needed
        recent = list(await venue.bars(symbol, main, wanted))
        if charting:
            self._chart(symbol, recent, timeframe_width(venue.name, main), whole)
        bars = Bars(recent[max(0, len(recent) - needed) :], main, others)
        held = _copy(await self.ctx.position_in(symbol))
        if len(bars) < strategy.bars_needed and held is None:
            # Not asked for an entry before it has the bars it said it needs; holding a
            # position, it is asked with the bars there are (its exit never waits).
            return None, bars
        signal = await self._strategy_calls().call(
            "decide", lambda: strategy.decide(symbol, bars, held)
        )
        return signal, bars

    def _chart_short(self, symbol: str, timeframe: str, needed: int) -> bool:
        """The chart of `symbol` wants a chart's worth of bars: it has none, a gap was
        found, or the `needed` newest would not reach back to its last."""
        kept = self._bars_seen.get(symbol)
        if not kept or symbol in self._chart_gaps:
            return True
        bar = timeframe_width(self.venue.name, timeframe)
        return kept[-1].time + bar * (needed + 1) < bar_open(timeframe, self.clock())

    def _chart(self, symbol: str, recent: list[Bar], bar: timedelta, whole: bool) -> None:
        """The chart's bars of `symbol`: `recent`, a chart's worth if `whole`, else the
        newest merged in. Passes further apart than the bars the strategy asks for
        leave a gap: the next pass asks for a chart's worth."""
        if whole:
            self._bars_seen[symbol] = recent[-CHART_BARS:]
            self._chart_gaps.discard(symbol)
            return
        kept = self._bars_seen[symbol]
        if kept and recent and recent[0].time > kept[-1].time + bar:
            self._chart_gaps.add(symbol)
        merged = {b.time: b for b in kept} | {b.time: b for b in recent}
        self._bars_seen[symbol] = [merged[t] for t in sorted(merged)][-CHART_BARS:]

    def _nothing(self, symbol: str, bars: Bars) -> str:
        """One line for a person watching a pass that gave `symbol` no signal: why not
        yet, or on what bar. (A signal tells of itself, and of what became of it.)"""
        needed = self.strategy.bars_needed
        if len(bars) < needed:
            return f"{symbol}: waiting for bars: {len(bars)} of the {needed} the strategy needs"
        last = bars[-1]
        clock = "UTC" if self.speed == 1 else f"UTC on the exchange's clock, {self.speed:g}x"
        return (
            f"{symbol}: no signal on the {bars.timeframe} bar of {last.time:%Y-%m-%d %H:%M}"
            f" {clock} (close {last.close})"
        )

    def _strategy_calls(self) -> StrategyCalls:
        if self._calls is None:
            limit = self.settings.strategy.time_limit
            seconds = None if limit is None else limit.total_seconds()
            self._calls = StrategyCalls(self.strategy.name, seconds)
        return self._calls

    async def _tell_strategy(self) -> list[StrategyFailed]:
        """The strategy's optional hooks: every fill recorded since it was last told
        (`on_fill`, then `on_close` with the trade it closed, if it closed one), then,
        once after each recovery, `on_start` with the positions held, by symbol.
        Told once, while the process lives (a fill recorded just before a crash is
        not told again: what a strategy must not lose belongs in a position's custom
        state). What the hooks raise is returned."""
        failures = []
        recorded, self.desk.recorded = self.desk.recorded, []
        calls: list[tuple[str, tuple]] = []
        for done in recorded:
            calls.append(("on_fill", (done.fill, _copy(done.position))))
            if done.trade is not None:
                calls.append(("on_close", (done.trade,)))
        if self._start_due:
            self._start_due = False
            held = (await self.state.snapshot()).positions.values()
            calls.append(("on_start", ({p.symbol: _copy(p) for p in held},)))
        for name, args in calls:
            try:
                await self._strategy_calls().call(
                    name, functools.partial(self.strategy.hook, name, *args)
                )
            except StrategyFailed as failure:
                failures.append(failure)
        return failures

    @property
    def strategy_failure(self) -> str | None:
        """What the strategy's last failure was, while it has not decided again."""
        return self._strategy_failure

    async def _strategy_checked(
        self, failures: list[StrategyFailed], asked_all: bool = True
    ) -> None:
        """A strategy that raised (or answered nonsense) puts the bot in error, told once
        per failure (the same call, line and kind of error is not told again while it
        keeps failing), and takes no entries until it decides again; everything else
        goes on (fills, stops, exits it still signals), so nothing is left unprotected
        and nothing restarts in a loop. The first pass it decides for every symbol
        again, the bot runs again, and acts on what it decided."""
        bot = (await self.state.snapshot()).bot
        now = self.clock()
        if failures:
            self._strategy_failure = str(failures[0])
            fresh = [f for f in failures if _failure_key(f) not in self._told]
            self._told.update(map(_failure_key, failures))
            stale_status = bot.status not in (BotStatus.ERROR, BotStatus.NEEDS_ATTENTION)
            if not fresh and not stale_status:
                return
            async with self.state.transaction() as tx:
                if bot.status is not BotStatus.NEEDS_ATTENTION:  # (an operator's first)
                    record = tx.state.bot.move(
                        BotEvent.STRATEGY_FAIL, now, last_error=self._strategy_failure
                    )
                    tx.save_bot_record(record)
                for failure in fresh:
                    told.error("%s: %s%s", self.settings.bot_id, failure, failure.traceback())
                    tx.add_event(
                        now,
                        "alert",
                        f"{failure}; no new entries until it decides again, every position"
                        " stays protected",
                        {"notify": Topic.ERROR, "strategy": self.strategy.name},
                        logged=True,
                    )
            return
        if self._strategy_failure is None or not asked_all:
            return  # (decided again only once asked about every symbol)
        self._strategy_failure = None
        self._told.clear()
        async with self.state.transaction() as tx:
            if tx.state.bot.status is BotStatus.ERROR:
                tx.save_bot_record(tx.state.bot.move(BotEvent.DECIDE_AGAIN, now, last_error=None))
            tx.add_event(now, "status", f"strategy {self.strategy.name} decides again")

    async def _open(self) -> dict[str, VenueOrder]:
        return {o.client_order_id: o for o in await self.ctx.venue.open_orders()}

    async def _waiting(self) -> list[OrderIntent]:
        intents = (await self.state.snapshot()).intents.values()
        return [i for i in intents if i.status in WAITING]

    async def _beat(self) -> None:
        """The heartbeat, in one write with the equity of a pass that will trade (the
        drawdown watched, what entries are sized against). Before the pass sends or
        cancels anything: an instance fenced out learns it here (promise I4)."""
        balance = None
        if self.report is not None and not self._frozen():
            try:
                balance = await self.ctx.venue.balance()
            except VenueError:
                self.protect_only = True
            else:
                self._balance = balance
                self.protect_only = self.report.protect_only = False
        now = self.clock()
        async with self.state.transaction() as tx:
            tx.heartbeat(now)
            if balance is None:
                return
            risk = rules.mark_equity(tx.state.risk, balance.equity)
            risk, reason = rules.trip_on_limits(risk, self.settings.risk, now)
            if risk != tx.state.risk:
                tx.save_risk_state(risk)
            if reason is not None:
                tx.add_event(
                    now, "alert", f"circuit breaker tripped: {reason}", BREAKER, logged=True
                )
                log.warning("%s: circuit breaker tripped: %s", self.settings.bot_id, reason)

    # -- an operator's emergency -------------------------------------------------------------
    async def flatten(self, symbol: str | None = None, wait: float = 30.0) -> Flattened:
        """Cancel the bot's orders and close its positions at market (in `symbol` only,
        if given), each exit written ahead and recorded like any other. Entries are
        canceled first (none may fill behind the exits), then the positions closed,
        then, once their fills came, whatever still rests (their stops)."""
        assert self.ctx is not None, "start() first"
        desk = self.desk
        now = self.clock()
        where = symbol or "every market"
        async with self.state.transaction() as tx:
            tx.add_event(now, "alert", f"flatten ({where}) asked by an operator", logged=True)
        log.warning("%s: flattening %s, asked by an operator", self.settings.bot_id, where)

        def mine(intent: OrderIntent) -> bool:
            return not intent.status.is_terminal and symbol in (None, intent.symbol)

        intents = (await self.state.snapshot()).intents.values()
        for intent in [i for i in intents if mine(i) and i.purpose is Purpose.ENTRY]:
            await desk.cancel(intent.client_order_id, intent.symbol)
        positions = [
            p
            for p in (await self.state.snapshot()).positions.values()
            if symbol in (None, p.symbol)
        ]
        for position in positions:
            left = position.size - await desk.exiting(position)  # (a part may be on its way)
            if left > 0:
                await desk.close(position, qty=left if left < position.size else None)
        deadline = time.monotonic() + wait
        while True:
            await desk.sync_fills()
            held = (await self.state.snapshot()).positions.keys() & {p.id for p in positions}
            if not held or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        intents = (await self.state.snapshot()).intents.values()
        for intent in [i for i in intents if mine(i) and i.purpose is not Purpose.EXIT]:
            await desk.cancel(intent.client_order_id, intent.symbol)
        state = await self.state.snapshot()
        left = [p.symbol for p in state.positions.values() if symbol in (None, p.symbol)]
        open_left = [i.client_order_id for i in state.intents.values() if mine(i)]
        return Flattened([p.symbol for p in positions], left, open_left)

    # -- stop ----------------------------------------------------------------------------------
    async def stopped(self, error: BaseException | None = None) -> None:
        """Record how the run ended: stopped, or error with its message. A bot that needs
        attention still does once stopped: only an operator clears that."""
        if error is None:
            await self.state.move(BotEvent.STOP)  # (needs attention, it still does)
        else:
            message = f"{type(error).__name__}: {error}"
            await self.state.move(BotEvent.FAIL, message)
            await self._note(f"stopped by an error: {message}", Topic.ERROR, logged=True)
        await self._publish()

    async def _note(self, message: str, topic: Topic, logged: bool = False) -> None:
        """A status event; `logged`: its caller says it in the log already."""
        async with self.state.transaction() as tx:
            tx.add_event(self.clock(), "status", message, {"notify": topic}, logged=logged)

    async def _publish(self) -> None:
        """Hand the events written since the last time to the notifications, if any."""
        if self.notifications is None:
            return
        try:
            next_seq = (await self.state.snapshot()).ledger.next_event_seq
            since = self.notifications.news_since(next_seq)
            news = await self.state.history.events(after=since - 1) if since < next_seq else []
        except StateError:  # the store is failing: told at a later pass
            return
        self.notifications.publish(news, next_seq)


def _failure_key(failure: StrategyFailed) -> tuple[str, str | None, str]:
    """What makes two failures the same one: the call, the line, the kind of error (not
    the message, which may carry a value that changes every pass)."""
    return failure.call, failure.where, failure.problem.partition(":")[0]


def _copy(position: Position | None) -> Position | None:
    """What a strategy is shown of a position: a copy, so that nothing it does to it
    (its custom state changed in place) reaches the engine's state; what it wants kept
    it says in a signal. Its two dicts are copied deep: every other field is immutable
    (frozen models, decimals, strings, times), and copying them too cost the
    simulator 4% of its time."""
    if position is None:
        return None
    mutable = {
        "custom": copy.deepcopy(position.custom),
        "metadata": copy.deepcopy(position.metadata),
    }
    return position.model_copy(update=mutable)
