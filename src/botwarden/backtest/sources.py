"""Bars from the venue's own history (`--data venue`): the config's venue asked for
every bar of the span (alpaca-py's historical bars, ccxt's `fetch_ohlcv`, page by
page), and kept in `$BOTWARDEN_HOME/cache/bars/`, so that a second run of the same
span (or of a part of it) reads no network.

A cache file holds one symbol's bars of one timeframe at one venue (its host too: an
emulator's bars are never taken for the real venue's), with the span it covers
beside it. A span asked for that is not inside it is fetched whole, from the earlier
of the two starts to the later of the two ends, and replaces it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from botwarden.backtest.data import History, gaps_in
from botwarden.config import BotConfig
from botwarden.domain.models import Bar
from botwarden.domain.timeframes import width
from botwarden.process.home import botwarden_home
from botwarden.venues.base import Venue
from botwarden.venues.settings import AlpacaVenueSettings, CcxtVenueSettings, PaperVenueSettings

COLUMNS = ("time", "open", "high", "low", "close", "volume")


def venue_key(config: BotConfig) -> str:
    """A folder name for the venue and host the config names (a paper exchange on live
    prices: its source's)."""
    venue = config.venue
    if isinstance(venue, PaperVenueSettings) and venue.prices is not None:
        venue = venue.prices
    if isinstance(venue, CcxtVenueSettings):
        name, where = f"ccxt-{venue.exchange}", venue.base_url or ""
    elif isinstance(venue, AlpacaVenueSettings):
        name, where = "alpaca", venue.data_url or venue.base_url or ""
    else:
        name, where = f"paper-seed{venue.seed}", ""
    digest = hashlib.sha256(where.encode()).hexdigest()[:8]
    return f"{name}-{digest}" if where else name


class BarCache:
    """One folder of cached bars: `SYMBOL-TIMEFRAME.csv` and its `.json` span."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, symbol: str, timeframe: str) -> tuple[Path, Path]:
        stem = f"{symbol.replace('/', '-').replace(':', '_')}-{timeframe}"
        return self.folder / f"{stem}.csv", self.folder / f"{stem}.json"

    def span(self, symbol: str, timeframe: str) -> tuple[datetime, datetime] | None:
        _, meta = self._paths(symbol, timeframe)
        try:
            told = json.loads(meta.read_text())
            return datetime.fromisoformat(told["start"]), datetime.fromisoformat(told["end"])
        except (OSError, ValueError, KeyError):
            return None  # none yet, or unreadable: fetched again

    def read(self, symbol: str, timeframe: str) -> list[Bar]:
        data, _ = self._paths(symbol, timeframe)
        with data.open(newline="") as rows:
            return [
                Bar(
                    time=datetime.fromisoformat(row["time"]),
                    **{c: Decimal(row[c]) for c in COLUMNS[1:]},
                )
                for row in csv.DictReader(rows)
            ]

    def write(
        self, symbol: str, timeframe: str, bars: Sequence[Bar], start: datetime, end: datetime
    ) -> Path:
        """The bars and their span, each file replaced whole (a crash leaves the old
        pair or the new one; a span without its bars is read as none)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data, meta = self._paths(symbol, timeframe)
        for path, text in (
            (data, _csv(bars)),
            (meta, json.dumps({"start": start.isoformat(), "end": end.isoformat()})),
        ):
            scratch = path.with_suffix(path.suffix + ".tmp")
            scratch.write_text(text)
            os.replace(scratch, path)
        return data

    def file(self, symbol: str, timeframe: str) -> Path:
        return self._paths(symbol, timeframe)[0]


def _csv(bars: Sequence[Bar]) -> str:
    lines = [",".join(COLUMNS)]
    lines += [f"{b.time.isoformat()},{b.open},{b.high},{b.low},{b.close},{b.volume}" for b in bars]
    return "\n".join(lines) + "\n"


async def venue_history(
    config: BotConfig,
    open_venue: Callable[[], Venue],
    start: datetime,
    end: datetime,
    warmup: int,
) -> tuple[History, int]:
    """The bars of the config's symbols and strategy timeframe in [start, end), and
    `warmup` bars' worth of time before `start` for the strategy to look back on; and
    how many requests for bars it took (0: every bar came from the cache, and the venue
    was never opened)."""
    timeframe = config.strategy.timeframe
    size = width(timeframe)
    # (Nights, weekends and holidays: a stock's N bars take longer than N widths.)
    since = start - size * warmup * (1 if all("/" in s for s in config.symbols) else 2)
    cache = BarCache(botwarden_home() / "cache" / "bars" / venue_key(config))
    wanted = []
    for symbol in config.symbols:
        covered = cache.span(symbol, timeframe)
        if covered is None or not (covered[0] <= since and end <= covered[1]):
            wanted.append((symbol, covered))
    if wanted:
        venue = open_venue()
        try:
            await venue.connect()
            for symbol, covered in wanted:
                first = since if covered is None else min(since, covered[0])
                last = end if covered is None else max(end, covered[1])
                now = (await venue.read_clock()).venue_time
                fetched = await venue.history(symbol, timeframe, first, last)
                cache.write(symbol, timeframe, fetched, first, min(last, now - size))
        finally:
            await venue.close()
    bars = {
        symbol: [b for b in cache.read(symbol, timeframe) if since <= b.time < end]
        for symbol in config.symbols
    }
    files = {symbol: cache.file(symbol, timeframe) for symbol in config.symbols}
    gaps = [g for symbol, rows in bars.items() for g in gaps_in(symbol, rows, size)]
    return History(bars, timeframe, files, gaps), len(wanted)
