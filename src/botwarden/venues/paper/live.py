"""Prices for the paper exchange from a real venue's market data: paper trading on live
prices (`venue: {type: paper, prices: {from: ccxt, exchange: binance}}`).

The book fills locally, as ever; only its prices come from elsewhere. Before the paper
venue answers anything, the feed catches up with the source (`catch_up`): the 1-minute
bars completed since it last looked (the whole gap after a restart or an outage, page
by page) and each symbol's last price now. Both are kept in a file beside the book, so
the book replays what it missed on what the market did, never on a guess.

What the book fills at (docs/venues.md, "On live prices"):
- a market order: the last price the source told, sampled when the venue is asked;
- a resting stop or limit: each price sampled since the book last looked and each
  1-minute bar recorded since, in the order they happened (a bar at its end, or when it
  came if the source published it late). Where a bar and a price sampled inside it
  disagree, the bar decides, its stop first. A bar is not looked at for an order placed
  after the bar opened (its low may have come before the order).

When the source does not answer (`on_outage`):
- `refuse` (the default): the paper venue refuses every request, as a venue in an
  outage would (`Retryable`): nothing fills at a price nobody told. Once the source
  answers again its bars of the outage are read and the book replays them: a stop the
  market crossed meanwhile fills where the market crossed it.
- `last_known`: the venue goes on answering on the last prices known; once the source
  answers again, the orders that rested through the outage are tried against its
  minutes (a fill stamped when they came: the book had passed them meanwhile).
Either way the strategy's bars come from the source itself: during an outage there
are none, and the engine waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

from botwarden.domain.markets import MarketRules
from botwarden.domain.timeframes import bar_open
from botwarden.errors import BotwardenError, UntradableSymbol
from botwarden.venues.base import Ambiguous, NotFound, Retryable, Venue, VenueError
from botwarden.venues.paper.book import open_paper_file
from botwarden.venues.paper.feed import Instrument

log = logging.getLogger(__name__)

OnOutage = Literal["refuse", "last_known"]

MINUTE = timedelta(minutes=1)
MINUTE_MS = 60_000
SAMPLE_EVERY = timedelta(seconds=1)
"""Calls of one pass come within a second of each other: they share one look."""
RETRY_AFTER = timedelta(seconds=5)
"""After the source failed, calls within this long are refused without asking it."""
CLOCK_EVERY = timedelta(minutes=10)
"""How often the source's clock is read again."""
KEEP = timedelta(days=1)
"""What the book processed longer ago than this is pruned from the recording..."""
PRUNE_EVERY = timedelta(minutes=1)
"""...at most this often."""

_SCHEMA = (
    # `seen`: when the bar was recorded (a source may publish a minute's bar late: the
    # book looks at it when it came, not when it ended).
    "CREATE TABLE IF NOT EXISTS bars (symbol TEXT NOT NULL, time INTEGER NOT NULL,"
    " open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,"
    " seen INTEGER NOT NULL, PRIMARY KEY (symbol, time))",
    "CREATE INDEX IF NOT EXISTS bars_by_seen ON bars (symbol, seen)",
    # The open of the next minute wanted from the source, per symbol.
    "CREATE TABLE IF NOT EXISTS wanted (symbol TEXT PRIMARY KEY, next INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quotes (symbol TEXT NOT NULL, time INTEGER NOT NULL,"
    " price TEXT NOT NULL, PRIMARY KEY (symbol, time))",
)


def _within(now: datetime, then: datetime | None, span: timedelta) -> bool:
    """`now` is less than `span` after `then` (and not before it: a clock set back)."""
    return then is not None and timedelta(0) <= now - then < span


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class SourceClock:
    """The paper exchange's time on live prices: the host's clock plus the source's
    offset (`LiveFeed.offset`, read again now and then), plus `skew` (the clock_skew
    fault); never before a time it told already, nor before `floor` (what the book
    had processed): a reading of the offset a little off must not turn it back."""

    def __init__(
        self,
        feed: LiveFeed,
        host: Callable[[], datetime],
        floor: datetime | None,
        skew: timedelta = timedelta(0),
    ) -> None:
        self._feed, self._host, self._skew = feed, host, skew
        self._last = floor

    def __call__(self) -> datetime:
        now = self._host() + self._feed.offset + self._skew
        if not self._feed.offset_read:
            return now  # (a guess until the source's clock is read: not a floor)
        if self._last is not None and now < self._last:
            return self._last
        self._last = now
        return now


class LiveFeed:
    """A `Feed` over what a source venue told, recorded at `path`; `catch_up` brings
    it up to now. `connect` first: the symbols' rules come from the source."""

    def __init__(
        self,
        source: Venue,
        symbols: Sequence[str],
        path: Path,
        on_outage: OnOutage = "refuse",
        host: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`host`: this host's clock, which the source's is read against."""
        self.source = source
        self._host = host
        self.on_outage = on_outage
        self.path = Path(path)
        self._symbols = list(dict.fromkeys(symbols))
        self.instruments: Mapping[str, Instrument] = {}
        self.rules: dict[str, MarketRules] = {}
        self._latest: dict[str, tuple[datetime, Decimal]] = {}
        """Each symbol's newest price told: what almost every price asked for is."""
        self.offset = timedelta(0)
        """The source's clock minus the host's, as last read: the paper exchange keeps
        the source's time (a host whose clock is off is told so, as by a real venue)."""
        self.offset_read = False
        self._clock_read: datetime | None = None
        """The host's time when the source's clock was last read."""
        self._pruned: datetime | None = None
        self._looking = asyncio.Lock()
        """One look at a time: calls sent together (a pair of orders) wait for it."""
        self._looked: datetime | None = None
        self._failure: VenueError | None = None
        self._outage_since: datetime | None = None
        self._db = open_paper_file(self.path, "paper exchange prices", _SCHEMA)
        for symbol in self._symbols:
            row = self._db.execute(
                "SELECT time, price FROM quotes WHERE symbol = ? ORDER BY time DESC LIMIT 1",
                (symbol,),
            ).fetchone()
            if row is not None:
                self._latest[symbol] = (_time(row[0]), Decimal(row[1]))

    @property
    def name(self) -> str:
        return self.source.name

    # -- the source ------------------------------------------------------------------------
    async def connect(self, clock: Callable[[], datetime], since: datetime | None) -> None:
        """Connect to the source, learn the symbols' rules and its clock, and catch up
        to `clock()` (the paper exchange's time, which follows the source's): `Retryable`
        if the source cannot be reached, for nothing is known to trade on yet."""
        if not self._symbols:
            raise BotwardenError("the paper exchange on live prices needs the bot's symbols")
        await self.source.connect()
        self.rules = {symbol: await self._rules(symbol) for symbol in self._symbols}
        self._looked = self._clock_read = None
        await self.catch_up(clock, since)
        self.instruments = {
            symbol: Instrument(
                symbol=symbol,
                start_price=self._latest[symbol][1],
                tick=rules.price_tick or Decimal("0.01"),
                qty_step=rules.qty_step,
                min_notional=rules.min_notional,
            )
            for symbol, rules in self.rules.items()
        }

    async def _rules(self, symbol: str) -> MarketRules:
        try:
            return await self.source.market(symbol)
        except NotFound as error:  # (not a price source's outage: the config's mistake)
            raise UntradableSymbol(symbol, f"{self.name}, the price source", str(error)) from None

    async def close(self) -> None:
        try:
            await self.source.close()
        finally:
            self._db.close()

    async def catch_up(self, clock: Callable[[], datetime], since: datetime | None) -> datetime:
        """Record what the market did up to now, by `clock` (the paper exchange's time,
        the source's), since the last minute recorded (at first, since `since`, what
        the book has processed): the minutes completed and the last prices; returns
        that now. A source that does not answer is an outage (the module's notes); one
        that answers no (a symbol it does not list, keys it refuses) says so."""
        async with self._looking:  # (how long since the last look: by the host's clock)
            now, looking = clock(), self._host()
            if _within(looking, self._looked, RETRY_AFTER if self._failure else SAMPLE_EVERY):
                self._refuse_if_blind()
                return now
            try:
                now = await self._look(clock, since)
            except (Retryable, Ambiguous) as error:
                self._looked = looking
                self._failure = error
                if self._outage_since is None:
                    self._outage_since = now
                    log.warning("%s", self._outage_message())
                self._refuse_if_blind()
                return now
            self._looked = looking
        if self._outage_since is not None:
            log.warning(
                "the price source %s answers again (since %s it had not)",
                self.name,
                self._outage_since.isoformat(timespec="seconds"),
            )
        self._failure = self._outage_since = None
        if since is not None and not _within(now, self._pruned, PRUNE_EVERY):
            self._prune(since - KEEP)
            self._pruned = now
        return now

    async def _look(self, clock: Callable[[], datetime], since: datetime | None) -> datetime:
        if not _within(self._host(), self._clock_read, CLOCK_EVERY):  # (or the host's jumped)
            await self._read_clock()
            self._clock_read = self._host()
        now = clock()
        for symbol in self._symbols:
            await self._record_bars(symbol, now, since)
        prices = await self.source.last_prices(self._symbols)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO quotes VALUES (?, ?, ?)",
                [(symbol, _ms(now), str(price)) for symbol, price in prices.items()],
            )
        self._latest.update({symbol: (now, price) for symbol, price in prices.items()})
        return now

    async def _read_clock(self) -> None:
        reading = await self.source.read_clock()
        self.offset = reading.venue_time - reading.host_time
        self.offset_read = True

    def _outage_message(self) -> str:
        after = (
            "the paper exchange refuses every request until it does"
            if self.on_outage == "refuse"
            else "the paper exchange trades on the last prices known (on_outage: last_known)"
        )
        return f"the price source {self.name} does not answer ({self._failure}); {after}"

    def _refuse_if_blind(self) -> None:
        if self._failure is None:
            return
        if self.on_outage == "refuse" or len(self._latest) < len(self._symbols):
            raise Retryable("paper", self._outage_message())

    async def _record_bars(self, symbol: str, now: datetime, since: datetime | None) -> None:
        """The 1-minute bars completed since the last one recorded (at first, since
        what the book has processed: nothing before it matters)."""
        row = self._db.execute("SELECT next FROM wanted WHERE symbol = ?", (symbol,)).fetchone()
        if row is None:  # (from then on, every minute is wanted until it is recorded)
            row = (_ms(bar_open("1m", since or now)),)
            with self._db:
                self._db.execute("INSERT INTO wanted VALUES (?, ?)", (symbol, row[0]))
        start = _time(row[0])
        if start + MINUTE > now:
            return  # (no minute has ended since)
        bars = [b for b in await self.source.history(symbol, "1m", start, now) if b.time >= start]
        following = bars[-1].time + MINUTE if bars else start
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO bars VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (symbol, _ms(b.time), str(b.open), str(b.high), str(b.low), str(b.close),
                     _ms(now))
                    for b in bars
                ],
            )  # fmt: skip
            self._db.execute(
                "INSERT OR REPLACE INTO wanted VALUES (?, ?)", (symbol, _ms(following))
            )

    def _prune(self, before: datetime) -> None:
        with self._db:
            for table in ("bars", "quotes"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE time < ? AND time < (SELECT MAX(time) FROM"
                    f" {table} AS newest WHERE newest.symbol = {table}.symbol)",
                    (_ms(before),),
                )

    # -- the Feed the book asks --------------------------------------------------------
    def symbols(self) -> list[str]:
        return sorted(self.instruments)

    def instrument(self, symbol: str) -> Instrument:
        return self.instruments[symbol]

    def price(self, symbol: str, at: datetime) -> Decimal:
        """The newest price told by `at`: a sampled price, or a completed bar's close."""
        latest = self._latest.get(symbol)
        if latest is not None and latest[0] <= at:
            return latest[1]
        told = []
        quote = self._db.execute(
            "SELECT time, price FROM quotes WHERE symbol = ? AND time <= ?"
            " ORDER BY time DESC LIMIT 1",
            (symbol, _ms(at)),
        ).fetchone()
        if quote is not None:
            told.append(quote)
        bar = self._db.execute(
            "SELECT time + ?, close FROM bars WHERE symbol = ? AND time + ? <= ?"
            " ORDER BY time DESC LIMIT 1",
            (MINUTE_MS, symbol, MINUTE_MS, _ms(at)),
        ).fetchone()
        if bar is not None:
            told.append(bar)
        if told:
            return Decimal(max(told)[1])
        if latest is not None:  # (a moment before anything was told: the first price)
            return latest[1]
        raise Retryable("paper", f"no price of {symbol} is known yet from {self.name}")

    def first_touch(
        self,
        symbol: str,
        buy: bool,
        after: datetime,
        until: datetime,
        *,
        stop: Decimal | None = None,
        limit: Decimal | None = None,
        placed: datetime | None = None,
    ) -> tuple[Decimal, datetime] | None:
        """The minutes recorded in (`after`, `until`] (but those that began before
        `placed`), each at its end (or at `after`, one that came late), and the prices
        sampled in it outside those minutes, in time order. A price sampled inside a
        minute looked at is left to the minute's high and low, which decide with the
        stop first (they cannot say which came first). A stop reached fills at its
        price, or where the market was past it (a bar's open, a price sampled); a limit
        at its price, or at a bar's better open."""
        lo, hi = _ms(after), _ms(until)
        # (when it is stamped, when it happened, a price sampled after a bar, prices)
        events: list[tuple[int, int, int, Decimal, Decimal, Decimal]] = []
        spans: list[tuple[int, int]] = []
        for time, open_, high, low in self._db.execute(
            "SELECT time, open, high, low FROM bars WHERE symbol = ? AND seen > ?"
            " AND seen <= ? AND time >= ?",
            (symbol, lo, hi, _ms(placed) if placed else 0),
        ):
            spans.append((time, time + MINUTE_MS))
            end = time + MINUTE_MS
            events.append((max(end, lo), end, 0, Decimal(open_), Decimal(high), Decimal(low)))
        for time, price in self._db.execute(
            "SELECT time, price FROM quotes WHERE symbol = ? AND time > ? AND time <= ?",
            (symbol, lo, hi),
        ):
            if not any(begin <= time < end for begin, end in spans):
                events.append((time, time, 1, *(Decimal(price),) * 3))
        for time, _, sampled, open_, high, low in sorted(events, key=lambda e: e[:3]):
            if stop is not None and (high >= stop if buy else low <= stop):
                return (max(open_, stop) if buy else min(open_, stop)), _time(time)
            if limit is not None and (low <= limit if buy else high >= limit):
                if sampled:  # (the market went through its price to get there)
                    return limit, _time(time)
                return (min(open_, limit) if buy else max(open_, limit)), _time(time)
        return None
