"""A backtest's run: the bot's engine, as `botwarden run` builds it, over recorded
bars, one pass as each bar opens.

Everything a run has done is in its folder: the paper book (`book.db`: the orders,
fills and cash, as an exchange keeps them) and the bot's state (`state.db`). A run
killed at any moment is started again on the same folder and goes on where the book
left off, its recovery run first as at any start; what it has traded is read back
from the book once it is done (`backtest/results.py`), never from memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from botwarden.backtest.data import History, day, read_bars
from botwarden.backtest.settings import BacktestMarket
from botwarden.config import BotConfig, load_config
from botwarden.domain.models import Bar
from botwarden.domain.timeframes import width
from botwarden.engine.runner import Runner
from botwarden.engine.settings import BotSettings
from botwarden.errors import BotwardenError, ConfigError
from botwarden.state.manager import StateManager, utc_now
from botwarden.state.sqlite import SqliteStore
from botwarden.strategies.loading import LoadedStrategy
from botwarden.venues.base import VenueError
from botwarden.venues.factory import book_settings
from botwarden.venues.paper.book import PaperBook
from botwarden.venues.paper.feed import Instrument
from botwarden.venues.paper.recorded import RecordedFeed
from botwarden.venues.paper.venue import PaperVenue
from botwarden.venues.settings import PaperVenueSettings

log = logging.getLogger(__name__)

BOOK, STATE = "book.db", "state.db"


class SteppedClock:
    """The backtest's time: where the run has got to, moved by the run alone."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Plan:
    """What one backtest runs: the config, its bars and the span it trades."""

    config: BotConfig
    history: History
    start: datetime
    end: datetime
    """Exclusive: the bars that open before it."""

    @classmethod
    def read(cls, config_path: Path, data: Path | None, start: str | None, end: str | None) -> Plan:
        """The config at `config_path` over the bars in `data` (else its
        `backtest.data`), from the day `start` to the day `end`, both included (the
        bars' whole span by default). Bars before `start` are there for the strategy
        to look back on, as a live bot looks back on the venue's."""
        require_libraries()
        config = load_config(config_path)
        config.require_markets()
        if data is None:
            if config.backtest.data is None:
                raise ConfigError(
                    f"{config_path}: no bars to backtest on: give --data FILE_OR_FOLDER (or"
                    " --data venue, for the venue's own history), or set backtest.data"
                )
            data = Path(config.backtest.data)
            if str(data) != VENUE:
                data = config.base_dir / data
        if str(data) == VENUE:
            if start is None:
                raise ConfigError("--data venue: give --from DATE, the first day to trade")
            since = day(start)
            until = day(end) + timedelta(days=1) if end is not None else utc_now()
            if end is not None and since >= until:
                raise ConfigError(f"--from {start} is not before --to {end}")
            if since >= utc_now():
                raise ConfigError(f"--from {start}: the venue has no bars from then yet")
            history = asyncio.run(_from_the_venue(config, since, until))
            return cls(config, history.between(since, until), since, until)
        history = read_bars(data, config.symbols)
        check_timeframe(config, history)
        first = min(rows[0].time for rows in history.bars.values())
        last = max(rows[-1].time for rows in history.bars.values())
        since = day(start) if start is not None else first
        until = day(end) + timedelta(days=1) if end is not None else last + timedelta(days=1)
        if start is not None and end is not None and since >= until:
            raise ConfigError(f"--from {start} is not before --to {end}")
        if since > last or until <= first:
            asked = " ".join(f"--{k} {v}" for k, v in (("from", start), ("to", end)) if v)
            raise ConfigError(
                f"{asked}: outside the bars, which run from {first:%Y-%m-%d} to {last:%Y-%m-%d}"
            )
        return cls(config, history.between(since, until), since, until)

    def passes(self) -> list[datetime]:
        """When the bot looks: as each bar of [start, end) opens (its market orders
        fill at that open), then once the last one has closed (its stops and limits are
        tried against it, its fills read, nothing decided); where market orders fill at
        the close, as each bar closes (the last pass, too, deciding nothing)."""
        size = width(self.history.timeframe)
        opens = sorted({b.time for rows in self.history.bars.values() for b in rows})
        inside = [t for t in opens if self.start <= t < self.end]
        if self.config.backtest.fill == "close":
            return [t + size for t in inside]
        return [*inside, inside[-1] + size]

    def feed(self) -> RecordedFeed:
        return RecordedFeed(
            self.history.bars,
            self.history.timeframe,
            instruments(self.config, self.history),
            self.config.backtest.fill,
        )

    def book(self, folder: Path, readonly: bool = False) -> PaperBook:
        """The run's paper book in `folder`: an account of the kind the config's paper
        venue is (another venue: the paper exchange's default), with the backtest's
        cash, fees and slippage, and client ids that are never taken twice."""
        settings, venue = self.config.backtest, self.config.venue
        paper = venue if isinstance(venue, PaperVenueSettings) else PaperVenueSettings()
        account = dataclasses.replace(
            book_settings(paper),
            starting_cash=settings.starting_cash,
            fee_rate=settings.fee_rate,
            slippage=settings.slippage,
            client_ids="alpaca",
        )
        return PaperBook(folder / BOOK, self.feed(), account, readonly)


def require_libraries() -> None:
    """The backtest's own libraries (an extra: `botwarden[backtest]`), or one line."""
    import importlib.util

    missing = [m for m in ("pandas", "empyrical", "plotly") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"backtest: {', '.join(missing)} not installed: pip install 'botwarden[backtest]'"
        )


def check_strategy(config: BotConfig, strategy: LoadedStrategy) -> None:
    """A backtest runs on the bars of one timeframe: a strategy asking for others too
    is refused before anything runs."""
    others = sorted(t for t in strategy.timeframes if t != config.strategy.timeframe)
    if others:
        raise ConfigError(
            f"{config.source}: the strategy asks for {', '.join(others)} bars beside its"
            f" {config.strategy.timeframe} bars; a backtest runs on one timeframe's bars"
        )


VENUE = "venue"
"""`--data venue`: the bars of the config's own venue (`backtest/sources.py`)."""


async def _from_the_venue(config: BotConfig, start: datetime, end: datetime) -> History:
    from botwarden.backtest.sources import venue_history
    from botwarden.process.run import open_bot_venue

    warmup = config.load_strategy().bars_needed
    try:
        history, _ = await venue_history(config, lambda: open_bot_venue(config), start, end, warmup)
    except VenueError as error:
        raise ConfigError(f"--data venue: {error}") from None
    return history


def _finest(bars: list[Bar]) -> Decimal:
    """The finest increment the prices are written to."""
    exponent = min(
        int(p.normalize().as_tuple().exponent)
        for b in bars
        for p in (b.open, b.high, b.low, b.close)
    )
    return Decimal(1).scaleb(exponent)


def instruments(config: BotConfig, history: History) -> dict[str, Instrument]:
    """Each symbol's rules: the config's `backtest.markets`, else a share's (a cent, one
    share: the bars of a stock hold sub-penny prints no order could be placed at), or a
    pair's (the finest price the bars are written to, any fraction of a coin)."""
    found = {}
    for symbol in config.symbols:
        rules = config.backtest.markets.get(symbol) or BacktestMarket()
        bars = history.bars[symbol]
        pair = "/" in symbol
        found[symbol] = Instrument(
            symbol=symbol,
            start_price=bars[0].open,
            tick=rules.tick or (_finest(bars) if pair else Decimal("0.01")),
            qty_step=rules.qty_step or (None if pair else Decimal(1)),
            min_notional=rules.min_notional,
        )
    return found


def check_timeframe(config: BotConfig, history: History) -> None:
    wanted = config.strategy.timeframe
    if wanted != history.timeframe:
        files = ", ".join(sorted({str(f) for f in history.files.values()}))
        raise ConfigError(
            f"{config.source}: strategy.timeframe is {wanted}, but the bars in {files} are"
            f" {history.timeframe} bars: set strategy.timeframe: {history.timeframe}, or give"
            f" {wanted} bars"
        )


def settings(config: BotConfig) -> BotSettings:
    """The bot's settings, as a backtest runs them: an order the paper book has not
    got is known at once not to be there (it answers every lookup exactly, with no
    lag to wait out), so the bot waits no grace before sending it again."""
    exact = config.engine.model_copy(update={"unknown_order_grace": timedelta(0)})
    return dataclasses.replace(config.bot_settings(), engine=exact)


async def run(
    plan: Plan,
    folder: Path,
    strategy: LoadedStrategy,
    each_pass: Callable[[datetime], None] | None = None,
) -> None:
    """Run the backtest in `folder`, from where its book left off (a killed run goes
    on), to the end. `each_pass`: told the time of each pass once it is done."""
    book = plan.book(folder)
    passes = plan.passes()
    reached = book.processed_until()
    if reached is not None:  # (again from the pass that was under way)
        passes = [t for t in passes if t >= reached] or passes[-1:]
    clock = SteppedClock(passes[0])
    venue = PaperVenue(book, clock)
    config = plan.config
    state = StateManager(config.bot_id, SqliteStore(folder / STATE), clock=clock)
    await state.open()
    strategy_log = logging.getLogger("botwarden.strategy")
    was_disabled, strategy_log.disabled = strategy_log.disabled, True  # (said once, below)
    try:
        runner = Runner(settings(config), state, venue, clock, None, strategy, exact_lookups=True)
        await runner.start()
        last = plan.passes()[-1]
        for at in passes:
            clock.now = at
            # The last pass reads what the last bar did and decides nothing: an order
            # decided on the last bar would fill after the data ends.
            runner.decides = at != last
            await runner.tick()
            if runner.pass_error is not None:
                raise BotwardenError(f"the backtest's pass at {at} failed: {runner.pass_error}")
            if runner.strategy_failure is not None:  # (results on a broken strategy: none)
                raise BotwardenError(
                    f"the backtest stopped at {at:%Y-%m-%d %H:%M} UTC, at the strategy's"
                    f" first failure: {runner.strategy_failure}"
                )
            if each_pass is not None:
                each_pass(at)
        await runner.stopped()
    finally:
        strategy_log.disabled = was_disabled
        await state.close()
        book.close()
