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
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from botwarden.config import BotConfig
from botwarden.domain import risk as rules
from botwarden.domain.markets import OrderRefused, fit_qty
from botwarden.domain.models import BotStatus, Instance, OrderSide, Topic
from botwarden.domain.orders import OrderIntent, Purpose
from botwarden.engine.ids import ClientIds
from botwarden.engine.orders import BREAKER, WAITING, Context, OrderDesk
from botwarden.engine.protection import Protector
from botwarden.engine.recovery import Recovery, RecoveryReport
from botwarden.errors import FencedOut, StateError
from botwarden.state.manager import StateManager, Transaction
from botwarden.state.records import BotState
from botwarden.strategies.base import Action, Signal, build_strategy
from botwarden.venues.base import AuthError, Venue, VenueError, VenueOrder

log = logging.getLogger(__name__)


class Notifications(Protocol):
    """Where the events an operator asked to be told of go (`botwarden.notify`)."""

    def publish(self, state: BotState) -> None:
        """Take the events of `state` not seen yet; never blocks, never raises."""


@dataclass
class Flattened:
    closed: list[str]
    """The symbols whose positions an exit was sent for."""
    still_held: list[str]
    """Positions not closed yet when the wait ended (their exits rest; the next start
    resolves them)."""
    still_open: list[str]
    """Client order ids of the bot's still not final (an exit not filled yet)."""


class Runner:
    def __init__(
        self,
        config: BotConfig,
        state: StateManager,
        venue: Venue,
        clock: Callable[[], datetime],
        notifications: Notifications | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.notifications = notifications
        self.venue = venue
        self.clock = clock
        self.strategy = build_strategy(config.strategy.name, config.strategy.params)
        self.report: RecoveryReport | None = None
        """The last completed recovery's; None until one completed."""
        self.protect_only = False
        self.ctx: Context | None = None
        self._store_failing = False
        self._resolve_requested = False
        self._wake = asyncio.Event()

    # -- start ---------------------------------------------------------------------------
    async def start(self, rebuilt_after: str | None = None) -> RecoveryReport | None:
        """Start an instance and recover; the recovery's report, or None if the venue
        or the store failed during it (each tick tries again until it completes).
        `rebuilt_after`: the bot's state was lost
        (corrupt, moved aside) and starts empty: its fills are replayed from the venue
        (positions and trades with them), whatever else the venue holds in its markets
        is adopted, and its epoch is made from the time, so that no client order id of
        the lost instances can ever be made again."""
        config, state = self.config, self.state
        previous = (await state.snapshot()).bot.instance
        epoch = (previous.epoch if previous else 0) + 1
        if rebuilt_after is not None:
            epoch = max(epoch, int(time.time()))
        await state.fence(epoch)
        instance = Instance(
            host=socket.gethostname(), pid=os.getpid(), epoch=epoch, started_at=self.clock()
        )
        async with state.transaction() as tx:
            tx.save_bot_record(
                tx.state.bot.evolve(
                    instance=instance, status=BotStatus.PENDING, last_updated_at=self.clock()
                )
            )
            tx.add_event(
                self.clock(),
                "status",
                f"starting as instance {epoch} (pid {os.getpid()})",
                {"instance": epoch},
            )
            if rebuilt_after is not None:
                tx.mark_state_lost(epoch)
        await self.venue.connect()
        ctx = Context(
            bot_id=config.bot_id,
            state=state,
            venue=self.venue,
            ids=ClientIds(config.bot_id, epoch),
            clock=self.clock,
            stop=config.stop,
            unknown_order_grace=config.engine.unknown_order_grace,
            symbols=tuple(config.symbols),
            limits=config.risk,
        )
        self.ctx = ctx
        self.desk = OrderDesk(ctx)
        self.protector = Protector(ctx, self.desk)
        self._rebuild = rebuilt_after is not None
        if rebuilt_after is not None:
            await self._recovery().note(
                f"STATE LOST: {rebuilt_after}; rebuilding from the venue: the bot's fills"
                " replayed, anything else it holds in"
                f" {', '.join(config.symbols) or 'every market'} adopted, all protected",
                kind="alert",
            )
        await self._recover()
        await self._publish()
        return self.report

    def _recovery(self, acknowledged: bool = False) -> Recovery:
        settings = self.config.state.recovery
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
        """One attempt at recovery; on success the bot runs (or needs attention)."""
        acknowledged = (await self.state.snapshot()).bot.acknowledged
        try:
            report = await self._recovery(acknowledged).run()
        except (AuthError, FencedOut):
            raise
        except (VenueError, StateError) as error:
            log.warning(
                "%s: recovery not finished (%s); trying again at the next check, no"
                " entries until then",
                self.config.bot_id,
                error,
            )
            return
        self.report = report
        self.protect_only = report.protect_only
        status = BotStatus.NEEDS_ATTENTION if report.needs_attention else BotStatus.RUNNING
        await self.state.set_status(status, acknowledged=False)

    # -- an operator's word ------------------------------------------------------------------
    def request_resolve(self) -> None:
        """An operator resolved "needs attention" (`botwarden resolve`, by SIGUSR1): acted
        on at the next step, without waiting out the pause."""
        self._resolve_requested = True
        self._wake.set()

    async def _resolve(self) -> None:
        """Take the operator's word durably, and recover again, acting this time."""
        if (await self.state.snapshot()).bot.status is not BotStatus.NEEDS_ATTENTION:
            log.info("%s: asked to resolve, but nothing needs attention", self.config.bot_id)
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
        log.warning("%s: resolved by an operator: recovering again", self.config.bot_id)
        self._resolve_requested = False
        self.report = None

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, ticks: int | None = None, pause: float = 0) -> None:
        """Tick until `stop` is set (or `ticks` ran), `pause` seconds apart."""
        done = 0
        while not stop.is_set() and (ticks is None or done < ticks):
            self._wake.clear()  # a wake-up during the tick still cuts the pause short
            await self.tick()
            done += 1
            if ticks is not None and done >= ticks:
                break  # the last pass: nothing to wait for
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:  # until the pause is over, or stop, or an operator's word
                await asyncio.wait(waits, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    async def tick(self) -> None:
        """One pass; a venue that fails to answer or a store that fails to write ends
        the pass, to be tried again at the next."""
        assert self.ctx is not None, "start() first"
        try:
            await self.state.heartbeat()
            if self._resolve_requested:
                await self._resolve()
            if self.report is None:
                await self._recover()
            elif not (self.config.state.recovery.mode == "manual" and self.report.needs_attention):
                await self._tick()  # (manual and needing attention: nothing is touched)
        except (AuthError, FencedOut):
            raise
        except VenueError as error:
            log.warning("%s: tick cut short: %s", self.config.bot_id, error)
        except StateError as error:
            if not self._store_failing:
                log.error(
                    "%s: the state store failed to write (%s): no new orders until it"
                    " works again; the stops on the venue keep protecting what is held",
                    self.config.bot_id,
                    error,
                )
            self._store_failing = True
        else:
            if self._store_failing:
                log.warning("%s: the state store works again", self.config.bot_id)
                self._store_failing = False
        await self._publish()

    async def _tick(self) -> None:
        ctx, desk = self.ctx, self.desk
        open_orders = await self._open()
        await desk.sync_fills()
        waiting = await self._waiting()
        for intent in waiting:
            await desk.resolve(intent, open_orders)
        if waiting:  # resolving may have sent orders again
            open_orders = await self._open()
        prices = await ctx.venue.last_prices(self.config.symbols)
        exposed = await self.protector.protect_all(open_orders, prices)
        if exposed and (await self.state.snapshot()).bot.status is BotStatus.RUNNING:
            await self.state.set_status(BotStatus.NEEDS_ATTENTION)
            await self._note(
                f"needs attention: {', '.join(exposed)} left without a stop by policy",
                Topic.NEEDS_ATTENTION,
            )
        await self._watch_equity()
        for symbol in self.config.symbols:
            bars = await ctx.venue.bars(
                symbol, self.config.strategy.timeframe, self.strategy.bars_needed
            )
            position = await ctx.position_in(symbol)
            signal = self.strategy.decide(symbol, bars, position)
            if signal is not None and not await self.state.is_signal_processed(signal.id):
                await self._act(signal, prices[symbol])

    async def _open(self) -> dict[str, VenueOrder]:
        return {o.client_order_id: o for o in await self.ctx.venue.open_orders()}

    async def _waiting(self) -> list[OrderIntent]:
        intents = (await self.state.snapshot()).intents.values()
        return [i for i in intents if i.status in WAITING]

    async def _watch_equity(self) -> None:
        try:
            balance = await self.ctx.venue.balance()
        except VenueError:
            self.protect_only = True
            return
        self.protect_only = self.report.protect_only = False
        now = self.clock()
        async with self.state.transaction() as tx:
            risk = rules.mark_equity(tx.state.risk, balance.equity)
            risk, reason = rules.trip_on_limits(risk, self.config.risk, now)
            if risk != tx.state.risk:
                tx.save_risk_state(risk)
            if reason is not None:
                tx.add_event(now, "alert", f"circuit breaker tripped: {reason}", BREAKER)
                log.warning("%s: circuit breaker tripped: %s", self.config.bot_id, reason)

    # -- acting on a signal -----------------------------------------------------------------
    async def _act(self, signal: Signal, price: Decimal) -> None:
        if signal.action is Action.EXIT:
            await self._exit(signal)
        else:
            await self._enter(signal, price)

    async def _skip(self, signal: Signal, why: str) -> None:
        now = self.clock()
        async with self.state.transaction() as tx:
            tx.mark_signal_processed(signal.id, now)
            tx.add_event(now, "signal", f"{signal.action} {signal.symbol} skipped: {why}")
        log.info("%s: %s %s skipped: %s", self.config.bot_id, signal.action, signal.symbol, why)

    async def _entry_refused(self, symbol: str) -> str | None:
        state = await self.state.snapshot()
        if self.protect_only:
            return "the balance cannot be read: protecting only"
        if state.bot.status is BotStatus.NEEDS_ATTENTION:
            return "the bot needs attention"
        if await self.ctx.position_in(symbol) is not None:
            return "a position is already held"
        if any(i.symbol == symbol and not i.status.is_terminal for i in state.intents.values()):
            return "an order in this symbol is still open or unresolved"
        if await self.state.is_on_cooldown(symbol):
            return f"cooling down until {state.cooldowns[symbol]:%Y-%m-%d %H:%M}"
        return rules.entry_refused(state.risk, self.config.risk, self.clock())

    async def _enter(self, signal: Signal, price: Decimal) -> None:
        why = await self._entry_refused(signal.symbol)
        if why is not None:
            await self._skip(signal, why)
            return
        sizing = self.config.order
        wanted = sizing.qty if sizing.qty is not None else sizing.notional / price
        try:
            qty = fit_qty(wanted, await self.protector.market(signal.symbol))
        except OrderRefused as error:
            await self._skip(signal, str(error))
            return
        now = self.clock()
        limits = self.config.risk

        def taken(tx: Transaction, intent: OrderIntent) -> None:
            tx.mark_signal_processed(signal.id, now)
            tx.save_risk_state(rules.record_entry(tx.state.risk, now, limits.trading_day(now)))

        side = OrderSide.BUY if signal.action is Action.ENTER_LONG else OrderSide.SELL
        log.info("%s: %s %s: %s", self.config.bot_id, signal.action, signal.symbol, signal.reason)
        await self.desk.place(
            symbol=signal.symbol, side=side, qty=qty, purpose=Purpose.ENTRY, also=taken
        )
        await self.desk.sync_fills()
        await self.protector.protect_all(await self._open(), {signal.symbol: price})

    async def _exit(self, signal: Signal) -> None:
        position = await self.ctx.position_in(signal.symbol)
        leaving = position is not None and await self.desk.closing(position)
        if position is None or leaving:
            await self._skip(signal, "nothing to exit" if position is None else "already exiting")
            return
        now = self.clock()
        log.info("%s: exit %s: %s", self.config.bot_id, signal.symbol, signal.reason)
        await self.desk.close(
            position, also=lambda tx, intent: tx.mark_signal_processed(signal.id, now)
        )
        await self.desk.sync_fills()
        await self.protector.protect_all(await self._open(), {})

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
            tx.add_event(now, "alert", f"flatten ({where}) asked by an operator")
        log.warning("%s: flattening %s, asked by an operator", self.config.bot_id, where)

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
            if not await desk.closing(position):
                await desk.close(position)
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
            if (await self.state.snapshot()).bot.status is not BotStatus.NEEDS_ATTENTION:
                await self.state.set_status(BotStatus.STOPPED)
        else:
            message = f"{type(error).__name__}: {error}"
            await self.state.set_status(BotStatus.ERROR, message)
            await self._note(f"stopped by an error: {message}", Topic.ERROR)
        await self._publish()

    async def _note(self, message: str, topic: Topic) -> None:
        async with self.state.transaction() as tx:
            tx.add_event(self.clock(), "status", message, {"notify": topic})

    async def _publish(self) -> None:
        """Hand the events written since the last time to the notifications, if any."""
        if self.notifications is None:
            return
        try:
            state = await self.state.snapshot()
        except StateError:  # the store is failing: told at a later pass
            return
        self.notifications.publish(state)
