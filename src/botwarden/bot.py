"""Bots that keep their own loop: the lock, the recovery, the orders written ahead, the
fill sync and the stop guarantee of `botwarden run`, driven by the bot's own code.

    async with Bot.open("bot.yaml") as bot:        # lock, recovery against the venue
        await bot.enter("SPY", "long", notional=1000, stop_pct=2, take_profit_pct=4)
        await bot.exit("SPY", fraction=0.5)
        bot.positions(), bot.risk()                # what it holds, its guards
        await bot.fills()                          # what it has done (its history)
        await bot.sleep(60)                        # passes meanwhile: fills, stops

`SyncBot` is its twin for scripts that are not async. Every call that trades first
runs a pass (fills read, orders resolved, every position protected, the guards
current), then acts as a strategy's signal would, through the same guards; what
they refuse is an exception (`botwarden.errors.Refused` and its kinds), never a
smaller or a second order. The config's `strategy:` is not used: this code decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from botwarden.config import BotConfig, load_config
from botwarden.domain.markets import TimeInForce
from botwarden.domain.models import BotStatus, Fill, Position, Side, Stop, TakeProfit
from botwarden.domain.orders import IntentStatus, OrderIntent, Purpose
from botwarden.domain.risk import RiskState
from botwarden.domain.sizing import Size
from botwarden.domain.timeframes import TIMEFRAMES
from botwarden.engine.recovery import RecoveryReport
from botwarden.engine.runner import Runner
from botwarden.engine.signals import Skipped, Why
from botwarden.errors import (
    BreakerOn,
    CannotMeet,
    GuardRefused,
    NothingHeld,
    NotReady,
    Refused,
    SymbolBusy,
    VenueRefused,
)
from botwarden.process.home import DRIVEN_BY_CODE, bot_files
from botwarden.process.lock import InstanceLock, lock_path
from botwarden.process.logs import bot_log_handler
from botwarden.process.run import bot_instance, still_locked
from botwarden.strategies.bars import Bars
from botwarden.strategies.base import Signal

log = logging.getLogger(__name__)

Number = Decimal | int | str | float
T = TypeVar("T")

REFUSALS: dict[Why, type[Refused]] = {
    Why.NOT_READY: NotReady,
    Why.BUSY: SymbolBusy,
    Why.GUARD: GuardRefused,
    Why.BREAKER: BreakerOn,
    Why.CANNOT_MEET: CannotMeet,
    Why.NOT_HELD: NothingHeld,
}
NOT_TAKEN = (IntentStatus.REJECTED, IntentStatus.CANCELED)
"""An order of the call's that the venue refused, or that was never sent."""
SOURCE = "bot"
"""The name its signals go by in the event log (a strategy's go by the strategy's)."""


class Bot:
    """One bot's live instance in this process, opened by `Bot.open`."""

    def __init__(self, config: BotConfig, runner: Runner, lock: InstanceLock) -> None:
        self._config = config
        self._runner = runner
        self._lock = lock
        self._stop = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()
        """Two calls at once (two tasks) would both pass the checks before either's
        order is written ahead: one call, one pass, at a time."""
        self._last_pass = time.monotonic()
        self._ended: BaseException | None = None
        """What ended this instance in a background pass (a lost lock or state): raised
        at the next call."""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, config: str | Path | BotConfig, *, signals: bool = True, background: bool = True
    ) -> AsyncIterator[Bot]:
        """The bot of `config` (a file, or settings built in code), its lock taken
        (`AlreadyRunning` if another process has it), its state opened and its
        recovery run against the venue; stopped and unlocked at the end (what it
        holds keeps its stops on the venue). What the block raises ends the bot in
        error, saying so in its state. `signals`: False for a program that handles
        SIGTERM, SIGINT and SIGUSR1 itself (then `stop()` ends the loop).
        `background`: a pass every `engine.check_interval` while it is open, whatever
        the program awaits meanwhile (fills read, stops kept, as `botwarden run` keeps
        them); False: passes only in its calls (`SyncBot`, whose loop runs only there)."""
        path = None if isinstance(config, BotConfig) else Path(config)
        settings = config if isinstance(config, BotConfig) else load_config(config)
        settings.require_markets()
        files = bot_files(settings.bot_id)
        files.make()
        log_file = bot_log_handler(files.log)
        logger = logging.getLogger("botwarden")
        level = logger.level
        if level == logging.NOTSET:  # (what it logs at info is the log's substance)
            logger.setLevel(logging.INFO)
        logger.addHandler(log_file)
        # A bot read from a file is known to status, stop, logs and the dashboard,
        # as `botwarden run` makes it, once its lock is held and its state open.
        remember = None
        if path is not None:
            remember = lambda: files.remember(path, lock_path(settings), DRIVEN_BY_CODE)  # noqa: E731
        main = signals and threading.current_thread() is threading.main_thread()
        if main:  # `botwarden resolve` may come as the bot recovers: held until heard
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            async with bot_instance(settings, remember, decides=False) as (runner, lock):
                bot = cls(settings, runner, lock)
                await bot.tick()  # as `botwarden run` does at once: its heartbeat, its stops
                passing = asyncio.create_task(bot._keep_passing()) if background else None
                try:
                    with bot._signals_heard(main):
                        yield bot
                finally:
                    if passing is not None:
                        passing.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await passing
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
            logger.removeHandler(log_file)
            logger.setLevel(level)
            log_file.close()

    @contextlib.contextmanager
    def _signals_heard(self, main: bool) -> Iterator[None]:
        """SIGTERM and SIGINT (`botwarden stop`, Ctrl-C) ask the bot to stop: `running()`
        turns False and `sleep` returns at once, so a script's loop ends and the bot
        stops cleanly; SIGUSR1 (`botwarden resolve`) is an operator's word. Heard in
        the main thread only (elsewhere Python lets no code catch a signal); what was
        there before is put back at the end."""
        if not main:
            yield
            return
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self._stop.set,
            signal.SIGINT: self._stop.set,
            signal.SIGUSR1: self._runner.request_resolve,
        }
        before = {number: signal.getsignal(number) for number in handlers}
        for number, handler in handlers.items():
            loop.add_signal_handler(number, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        try:
            yield
        finally:
            for number, previous in before.items():
                loop.remove_signal_handler(number)
                signal.signal(number, previous if previous is not None else signal.SIG_DFL)

    # -- what it knows -------------------------------------------------------------------
    @property
    def config(self) -> BotConfig:
        return self._config

    @property
    def report(self) -> RecoveryReport | None:
        """What the last recovery found and did; None while it has not finished (the
        venue or the store failing: each pass tries again)."""
        return self._runner.report

    def status(self) -> BotStatus:
        return self._runner.state.last_known().bot.status

    def positions(self) -> list[Position]:
        """What the bot holds, as its state says (each with its stop and take-profit)."""
        return list(self._runner.state.last_known().positions.values())

    def position(self, symbol: str) -> Position | None:
        return next((p for p in self.positions() if p.symbol == symbol), None)

    async def fills(self) -> list[Fill]:
        """Every fill of the bot's orders, oldest first: read from its history, which
        the bot does not hold in memory."""
        return await self._runner.state.get_fills()

    def orders(self) -> list[OrderIntent]:
        """The bot's orders that are not done yet: resting, or their fate unresolved."""
        intents = self._runner.state.last_known().intents.values()
        return [i for i in intents if not i.status.is_terminal]

    def risk(self) -> RiskState:
        """The guards' state: the day's PnL and entries, the breaker, peak equity."""
        return self._runner.state.last_known().risk

    def running(self) -> bool:
        """False once the process was asked to stop (SIGTERM, SIGINT, or `stop()`): end
        the loop."""
        return not self._stop.is_set()

    def stop(self) -> None:
        """Ask the loop to end: `running()` turns False, `sleep` returns."""
        self._stop.set()

    async def bars(self, symbol: str, timeframe: str = "1d", limit: int = 100) -> Bars:
        """The last `limit` completed bars of `symbol` from the venue, oldest first, as a
        strategy sees them (`.frame()` for a pandas DataFrame, with the `pandas` extra).
        Fewer where the venue has fewer (a stock's daily bars skip weekends)."""
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe {timeframe!r} is not one of {', '.join(TIMEFRAMES)}")
        if limit < 1:
            raise ValueError(f"limit {limit}: ask for one bar or more")
        return Bars(await self._runner.venue.bars(symbol, timeframe, limit), timeframe, {})

    async def price(self, symbol: str) -> Decimal:
        """The last price of `symbol` on the venue."""
        return await self._runner.venue.last_price(symbol)

    # -- what it does --------------------------------------------------------------------
    async def tick(self) -> None:
        """One pass: fills read, unanswered orders resolved, every position protected
        (a stop resting on the venue, trailed, resized), the guards current. A venue
        or a store that fails cuts it short, to be tried at the next (logged, not
        raised); a lost lock or state is raised: this instance must stop."""
        async with self._one_at_a_time:
            await self._pass()

    async def _pass(self) -> None:
        if self._ended is not None:
            raise self._ended
        still_locked(self._lock)
        self._last_pass = time.monotonic()
        await self._runner.tick()

    def _due(self) -> float:
        """Seconds until the next pass is due (at or below zero: it is)."""
        every = self.config.engine.check_interval.total_seconds()
        return self._last_pass + every - time.monotonic()

    async def _pass_if_due(self) -> None:
        async with self._one_at_a_time:
            if self._due() <= 0:
                await self._pass()

    async def _keep_passing(self) -> None:
        while True:
            await asyncio.sleep(max(self._due(), 0.01))
            try:
                await self._pass_if_due()
            except Exception as error:  # this instance must stop: told at the next call
                self._ended = error
                self._stop.set()
                log.error("%s: the bot stopped passing: %s", self.config.bot_id, error)
                return

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`, with a pass each `engine.check_interval` (counted from the
        last pass, whoever made it) meanwhile: where a script would `time.sleep`, its
        fills and stops are kept. Returns at once when the process is asked to stop."""
        deadline = time.monotonic() + seconds
        while self.running() and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(min(self._due(), left), 0))
            if self.running():
                await self._pass_if_due()
        if self._ended is not None:
            raise self._ended

    async def enter(
        self,
        symbol: str,
        side: Literal["long", "short"] | Side = "long",
        *,
        qty: Number | None = None,
        notional: Number | None = None,
        equity_pct: Number | None = None,
        risk_pct: Number | None = None,
        size: Size | None = None,
        stop_pct: Number | None = None,
        stop_price: Number | None = None,
        stop_distance: Number | None = None,
        trailing: bool = False,
        stop: Stop | None = None,
        take_profit_pct: Number | None = None,
        take_profit_price: Number | None = None,
        take_profit_distance: Number | None = None,
        take_profit_r: Number | None = None,
        take_profit: TakeProfit | None = None,
        limit: Number | None = None,
        time_in_force: TimeInForce | str | None = None,
        expires_after: timedelta | None = None,
        state: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> OrderIntent:
        """Open a position: sized by one of `qty`, `notional`, `equity_pct`, `risk_pct`
        (the loss at the stop as % of equity) or `size` (else the config's `order:`);
        its stop by one of `stop_pct`, `stop_price`, `stop_distance` (`trailing`) or
        `stop` (else the config's `stop:`); a take-profit by one of
        `take_profit_pct`, `_price`, `_distance`, `_r` (a multiple of the stop's
        distance) or `take_profit`; at market, or a `limit` resting until
        `expires_after`. `state`: the position's custom state, read back as
        `position.custom` (after a restart too). Returns the entry order as it stands
        (filled, at market, usually); its stop is resting before this returns."""
        make = Signal.short if Side(side) is Side.SHORT else Signal.long
        signal = make(
            symbol,
            self._runner.clock(),
            reason,
            size=_one_of(
                "size",
                size,
                qty=(Size.units, qty),
                notional=(Size.notional, notional),
                equity_pct=(Size.equity_pct, equity_pct),
                risk_pct=(Size.risk_pct, risk_pct),
            ),
            limit=limit,
            time_in_force=time_in_force,
            expires_after=expires_after,
            stop=_stop(stop, stop_pct, stop_price, stop_distance, trailing),
            take_profit=_take_profit(
                take_profit, take_profit_pct, take_profit_price, take_profit_distance, take_profit_r
            ),
            state=state,
        )
        (entry,) = await self._act(signal, Purpose.ENTRY)
        return entry

    async def exit(
        self,
        symbol: str,
        *,
        fraction: Number | None = None,
        qty: Number | None = None,
        reason: str = "",
    ) -> list[OrderIntent]:
        """Close what the bot holds in `symbol`: all of it, or a `fraction` or a `qty`
        (rounded down to the lot step; all of it when the rest would be dust), the
        rest's stop resized. Returns the exit orders sent."""
        signal = Signal.exit(symbol, self._runner.clock(), reason, fraction=fraction, qty=qty)
        return await self._act(signal, Purpose.EXIT)

    async def update(
        self,
        symbol: str,
        *,
        stop_pct: Number | None = None,
        stop_price: Number | None = None,
        stop_distance: Number | None = None,
        trailing: bool = False,
        stop: Stop | None = None,
        take_profit_pct: Number | None = None,
        take_profit_price: Number | None = None,
        take_profit_distance: Number | None = None,
        take_profit_r: Number | None = None,
        take_profit: TakeProfit | None = None,
        state: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> Position | None:
        """The position held in `symbol` gets a new stop rule (given as `enter` takes
        one; a stop only ever tightens), a new take-profit and/or more custom state; no
        order but theirs. Returns the position as it is now: None if it closed at once
        (a take-profit the price had already reached)."""
        signal = Signal.update(
            symbol,
            self._runner.clock(),
            reason,
            stop=_stop(stop, stop_pct, stop_price, stop_distance, trailing),
            take_profit=_take_profit(
                take_profit, take_profit_pct, take_profit_price, take_profit_distance, take_profit_r
            ),
            state=state,
        )
        await self._act(signal, None)
        return self.position(symbol)

    async def _act(self, signal: Signal, purpose: Purpose | None) -> list[OrderIntent]:
        """`signal` acted on under the library's name; the orders it sent, of `purpose`."""
        signal = dataclasses.replace(signal, strategy=SOURCE)
        if signal.symbol not in self.config.symbols:
            raise CannotMeet(
                str(signal.action),
                signal.symbol,
                f"not among the bot's symbols ({', '.join(self.config.symbols)}): add it to"
                f" symbols in {self.config.source}",
            )
        async with self._one_at_a_time:
            if self._ended is not None:
                raise self._ended
            still_locked(self._lock)
            self._last_pass = time.monotonic()
            first = self._runner.state.last_known().ledger.next_order_seq
            skipped = await self._runner.act(signal)
            if isinstance(skipped, Skipped):
                refusal = REFUSALS[skipped.why]
                raise refusal(str(signal.action), signal.symbol, str(skipped))
            # The orders it made are those numbered since (live, or already done: a
            # market order filled at once is history by now).
            ids, last = self._runner.ctx.ids, self._runner.state.last_known().ledger.next_order_seq
            made = [cid for seq in range(first, last) for cid in ids.make_pair(seq)]
            intents = await self._runner.state.get_orders_by_id(made)
            sent = sorted(
                (
                    intent
                    for intent in intents.values()
                    if intent.symbol == signal.symbol and intent.purpose is purpose
                ),
                key=lambda i: (i.created_at, i.client_order_id),
            )
        for intent in sent:  # refused by the venue, or never sent (a 429, an outage)
            if intent.filled_qty == 0 and intent.status in NOT_TAKEN:
                raise VenueRefused(str(signal.action), signal.symbol, intent)
        return sent


def _stop(
    given: Stop | None,
    pct: Number | None,
    price: Number | None,
    distance: Number | None,
    trailing: bool,
) -> Stop | None:
    if trailing and pct is None and distance is None:
        raise ValueError("trailing: give stop_pct or stop_distance (a price does not trail)")
    return _one_of(
        "stop",
        given,
        stop_pct=(functools.partial(Stop.percent, trailing=trailing), pct),
        stop_price=(Stop.price, price),
        stop_distance=(functools.partial(Stop.distance, trailing=trailing), distance),
    )


def _take_profit(
    given: TakeProfit | None,
    pct: Number | None,
    price: Number | None,
    distance: Number | None,
    r: Number | None,
) -> TakeProfit | None:
    return _one_of(
        "take_profit",
        given,
        take_profit_pct=(TakeProfit.percent, pct),
        take_profit_price=(TakeProfit.price, price),
        take_profit_distance=(TakeProfit.distance, distance),
        take_profit_r=(TakeProfit.multiple, r),
    )


def _one_of(name: str, given: Any, **shortcuts: tuple[Callable[[Any], Any], Any]) -> Any:
    """The one value asked for `name`: `given` itself, or one shortcut's, built; a
    `ValueError` naming them if more than one was given."""
    chosen = {key: (make, value) for key, (make, value) in shortcuts.items() if value is not None}
    if given is not None:
        chosen[name] = (lambda same: same, given)
    if len(chosen) > 1:
        raise ValueError(f"give one of {', '.join(chosen)}, not {len(chosen)} of them")
    if not chosen:
        return None
    ((key, (make, value)),) = chosen.items()
    try:
        return make(value)
    except ValidationError as error:  # (Stop.percent(-2): one line, not pydantic's page)
        problem = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(f"{key}: {value!r}: {problem}") from None


class SyncBot:
    """`Bot` for code that is not async (a script's loop): the same methods, each run
    to its end on an event loop of its own.

        with SyncBot.open("bot.yaml") as bot:
            bot.enter("SPY", "long", notional=1000, stop_pct=2)
            bot.sleep(60)
    """

    def __init__(self, loop: asyncio.Runner, bot: Bot) -> None:
        self._loop = loop
        self._bot = bot
        self._in_call = False
        self._pending: BaseException | None = None
        """A signal's exception, held while a call runs (a call is never cut in half)."""

    @classmethod
    @contextlib.contextmanager
    def open(cls, config: str | Path | BotConfig) -> Iterator[SyncBot]:
        """As `Bot.open`, for code that is not async. SIGTERM (`botwarden stop`) and
        Ctrl-C end the script as Python's own Ctrl-C does, wherever it is (its own
        `time.sleep` included), but never halfway through one of these calls: there,
        right after it. The bot is stopped cleanly on the way out (SIGTERM: exit 0)."""
        main = threading.current_thread() is threading.main_thread()
        if main:  # `botwarden resolve` may come as the bot recovers: held until heard
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            with asyncio.Runner() as loop:
                opened = Bot.open(config, signals=False, background=False)
                bot = loop.run(opened.__aenter__())
                synced = cls(loop, bot)
                heard = synced._heard() if main else contextlib.nullcontext()
                try:
                    with heard:
                        yield synced
                except BaseException as error:
                    if not loop.run(opened.__aexit__(type(error), error, error.__traceback__)):
                        raise
                else:
                    loop.run(opened.__aexit__(None, None, None))
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})

    def running(self) -> bool:
        """As `Bot.running`."""
        self._call(asyncio.sleep(0))
        return self._bot.running()

    def _call(self, work: Awaitable[T]) -> T:
        self._in_call = True
        try:
            return self._loop.run(work)
        finally:
            self._in_call = False
            if self._pending is not None:
                pending, self._pending = self._pending, None
                raise pending

    @contextlib.contextmanager
    def _heard(self) -> Iterator[None]:
        """Python-level handlers, which run between any two lines of the script (an
        asyncio handler runs only while its loop does, and this loop runs only inside
        calls); what was there before is put back at the end."""
        wake = self._loop.get_loop().call_soon_threadsafe

        def stop(number: int, frame: object) -> None:
            wake(self._bot.stop)
            ending = SystemExit(0) if number == signal.SIGTERM else KeyboardInterrupt()
            if not self._in_call:
                raise ending
            self._pending = self._pending or ending

        def resolve(number: int, frame: object) -> None:
            wake(self._bot._runner.request_resolve)

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGUSR1: resolve}
        before = {number: signal.signal(number, handler) for number, handler in handlers.items()}
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        try:
            yield
        finally:
            for number, previous in before.items():
                signal.signal(number, previous if previous is not None else signal.SIG_DFL)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._bot, name)
        if not inspect.iscoroutinefunction(found):
            return found

        @functools.wraps(found)
        def run(*args: Any, **kwargs: Any) -> Any:
            return self._call(found(*args, **kwargs))

        return run
