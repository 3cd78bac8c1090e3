"""Bots that keep their own loop: the lock, the recovery, the orders written ahead, the
fill sync and the stop guarantee of `botwarden run`, driven by the bot's own code.

    async with Bot.open("bot.yaml") as bot:        # lock, recovery against the venue
        await bot.enter("SPY", "long", notional=1000, stop_pct=2, take_profit_pct=4)
        await bot.exit("SPY", fraction=0.5)
        bot.positions(), bot.fills(), bot.risk()   # what it holds and has done
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
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from botwarden.config import BotConfig, load_config
from botwarden.domain.markets import TimeInForce
from botwarden.domain.models import BotStatus, Fill, Position, Side, Stop, TakeProfit
from botwarden.domain.orders import OrderIntent, Purpose
from botwarden.domain.risk import RiskState
from botwarden.domain.sizing import Size
from botwarden.domain.timeframes import TIMEFRAMES
from botwarden.engine.recovery import RecoveryReport
from botwarden.engine.runner import Runner
from botwarden.engine.signals import Skipped, Why
from botwarden.errors import (
    BreakerOn,
    CannotSize,
    GuardRefused,
    NothingHeld,
    NotReady,
    Refused,
    SymbolBusy,
)
from botwarden.process.home import bot_files
from botwarden.process.lock import InstanceLock
from botwarden.process.logs import bot_log_handler
from botwarden.process.run import bot_instance, lock_path, still_locked
from botwarden.strategies.bars import Bars
from botwarden.strategies.base import Signal

log = logging.getLogger(__name__)

Number = Decimal | int | str | float

REFUSALS: dict[Why, type[Refused]] = {
    Why.NOT_READY: NotReady,
    Why.BUSY: SymbolBusy,
    Why.GUARD: GuardRefused,
    Why.BREAKER: BreakerOn,
    Why.SIZE: CannotSize,
    Why.NOT_HELD: NothingHeld,
}
SOURCE = "bot"
"""The name its signals go by in the event log (a strategy's go by the strategy's)."""


class Bot:
    """One bot's live instance in this process, opened by `Bot.open`."""

    def __init__(self, config: BotConfig, runner: Runner, lock: InstanceLock) -> None:
        self._config = config
        self._runner = runner
        self._lock = lock
        self._stop = asyncio.Event()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: str | Path | BotConfig) -> AsyncIterator[Bot]:
        """The bot of `config` (a file, or settings built in code), its lock taken
        (`AlreadyRunning` if another process has it), its state opened and its
        recovery run against the venue; stopped and unlocked at the end (what it
        holds keeps its stops on the venue). What the block raises ends the bot in
        error, saying so in its state."""
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
            remember = lambda: files.remember(path, lock_path(settings), "code")  # noqa: E731
        try:
            async with bot_instance(settings, remember, decides=False) as (runner, lock):
                bot = cls(settings, runner, lock)
                await bot.tick()  # as `botwarden run` does at once: its heartbeat, its stops
                with bot._signals_heard():
                    yield bot
        finally:
            logger.removeHandler(log_file)
            logger.setLevel(level)
            log_file.close()

    @contextlib.contextmanager
    def _signals_heard(self) -> Iterator[None]:
        """SIGTERM and SIGINT (`botwarden stop`, Ctrl-C) ask the bot to stop: `running()`
        turns False and `sleep` returns at once, so a script's loop ends and the bot
        stops cleanly; SIGUSR1 (`botwarden resolve`) is an operator's word. Heard in
        the main thread only (elsewhere Python lets no code catch a signal)."""
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self._stop.set,
            signal.SIGINT: self._stop.set,
            signal.SIGUSR1: self._runner.request_resolve,
        }
        heard = []
        if threading.current_thread() is threading.main_thread():
            for number, handler in handlers.items():
                loop.add_signal_handler(number, handler)
                heard.append(number)
        try:
            yield
        finally:
            for number in heard:
                loop.remove_signal_handler(number)

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

    def fills(self) -> list[Fill]:
        """Every fill of the bot's orders, oldest first."""
        return list(self._runner.state.last_known().fills.values())

    def orders(self) -> list[OrderIntent]:
        """The bot's orders that are not done yet: resting, or their fate unresolved."""
        intents = self._runner.state.last_known().intents.values()
        return [i for i in intents if not i.status.is_terminal]

    def risk(self) -> RiskState:
        """The guards' state: the day's PnL and entries, the breaker, peak equity."""
        return self._runner.state.last_known().risk

    def running(self) -> bool:
        """False once the process was asked to stop (SIGTERM, SIGINT): end the loop."""
        return not self._stop.is_set()

    async def bars(self, symbol: str, timeframe: str = "1d", limit: int = 100) -> Bars:
        """The last `limit` bars of `symbol` from the venue, oldest first, the one still
        forming last (`.frame()` for a pandas DataFrame, with the `pandas` extra)."""
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe {timeframe!r} is not one of {', '.join(TIMEFRAMES)}")
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
        still_locked(self._lock)
        await self._runner.tick()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`, passing every `engine.check_interval` meanwhile: where a
        script would `time.sleep`, its fills and stops are kept. Returns at once when
        the process is asked to stop."""
        deadline = time.monotonic() + seconds
        every = self.config.engine.check_interval.total_seconds()
        while self.running() and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=min(every, left))
            if self.running():
                await self.tick()

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
            stop=_one_of(
                "stop",
                stop,
                stop_pct=(functools.partial(Stop.percent, trailing=trailing), stop_pct),
                stop_price=(Stop.price, stop_price),
                stop_distance=(functools.partial(Stop.distance, trailing=trailing), stop_distance),
            ),
            take_profit=_one_of(
                "take_profit",
                take_profit,
                take_profit_pct=(TakeProfit.percent, take_profit_pct),
                take_profit_price=(TakeProfit.price, take_profit_price),
                take_profit_distance=(TakeProfit.distance, take_profit_distance),
                take_profit_r=(TakeProfit.multiple, take_profit_r),
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
        stop: Stop | None = None,
        take_profit: TakeProfit | None = None,
        state: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> Position:
        """The position held in `symbol` gets a new stop rule (a stop only ever
        tightens), a new take-profit and/or more custom state; no order but theirs.
        Returns the position as it is now."""
        at = self._runner.clock()
        signal = Signal.update(symbol, at, reason, stop=stop, take_profit=take_profit, state=state)
        await self._act(signal, None)
        held = self.position(symbol)
        assert held is not None, "updated, so held"
        return held

    async def _act(self, signal: Signal, purpose: Purpose | None) -> list[OrderIntent]:
        """`signal` acted on under the library's name; the orders it sent, of `purpose`."""
        signal = dataclasses.replace(signal, strategy=SOURCE)
        still_locked(self._lock)
        before = set(self._runner.state.last_known().intents)
        skipped = await self._runner.act(signal)
        if isinstance(skipped, Skipped):
            refusal = REFUSALS[skipped.why]
            raise refusal(str(signal.action), signal.symbol, str(skipped))
        intents = self._runner.state.last_known().intents
        return [
            intent
            for cid, intent in intents.items()
            if cid not in before and intent.symbol == signal.symbol and intent.purpose is purpose
        ]


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
    ((make, value),) = chosen.values()
    return make(value)


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

    @classmethod
    @contextlib.contextmanager
    def open(cls, config: str | Path | BotConfig) -> Iterator[SyncBot]:
        """As `Bot.open`, for code that is not async."""
        with asyncio.Runner() as loop:
            opened = Bot.open(config)
            bot = loop.run(opened.__aenter__())
            try:
                yield cls(loop, bot)
            except BaseException as error:
                if not loop.run(opened.__aexit__(type(error), error, error.__traceback__)):
                    raise
            else:
                loop.run(opened.__aexit__(None, None, None))

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._bot, name)
        if not asyncio.iscoroutinefunction(found):
            return found

        @functools.wraps(found)
        def run(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run(found(*args, **kwargs))

        return run
