"""Bars from the user's files: CSV (or .csv.gz) and Parquet, one symbol a file or
several in one with a `symbol` column, the usual OHLCV column names.

Checked before anything runs: a bad value is one `DataError` naming the file, the row
(as a spreadsheet numbers it: the header is row 1) and the column; the bars' own
timeframe is found from their spacing; gaps are reported, not filled.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from botwarden.domain.models import Bar
from botwarden.domain.timeframes import TIMEFRAMES
from botwarden.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")

_NAMES = {
    "time": ("time", "timestamp", "date", "datetime", "open_time", "opentime", "ts"),
    "symbol": ("symbol", "ticker"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
"""Our column -> the names it goes by (any case; spaces and underscores ignored)."""


class DataError(ConfigError):
    """Bars that cannot be backtested on: the file, row and column are named."""


@dataclass(frozen=True)
class Gap:
    symbol: str
    after: datetime
    """The last bar before the gap opened at this time."""
    resumes: datetime
    """The first bar after it."""
    missing: int
    """Bars missing between the two."""


@dataclass(frozen=True)
class History:
    bars: dict[str, list[Bar]]
    """Each symbol's bars, oldest first."""
    timeframe: str
    files: dict[str, Path]
    gaps: list[Gap]

    def between(self, start: datetime, end: datetime) -> History:
        """For a backtest of [start, end): the bars before `end` (those before `start`
        too, for a strategy to look back on), each symbol having some inside."""
        empty = sorted(
            s for s, rows in self.bars.items() if not any(start <= b.time < end for b in rows)
        )
        if empty:
            spans = "; ".join(
                f"{s} from {self.bars[s][0].time:%Y-%m-%d} to {self.bars[s][-1].time:%Y-%m-%d}"
                if self.bars[s]
                else f"no {s} at all"
                for s in empty
            )
            raise DataError(
                f"no bars between {start:%Y-%m-%d} and {end:%Y-%m-%d} for"
                f" {', '.join(empty)} (the data has {spans})"
            )
        bars = {s: [b for b in rows if b.time < end] for s, rows in self.bars.items()}
        gaps = [g for g in self.gaps if start <= g.resumes and g.after < end]
        return History(bars, self.timeframe, self.files, gaps)


def _key(name: object) -> str:
    return re.sub(r"[\s_]", "", str(name)).lower()


def _symbol_key(symbol: str) -> str:
    """`BTC/USDT` matches a file named BTC-USDT.csv, BTC_USDT.csv or BTCUSDT.csv."""
    return re.sub(r"[^A-Za-z0-9]", "", symbol.split(":")[0]).upper()


def files_in(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder of bars")
    if path.is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if p.name.lower().endswith(SUFFIXES))
    if not found:
        raise DataError(f"{path}: holds no bars ({', '.join(SUFFIXES)} files)")
    return found


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            if isinstance(frame.index, pd.DatetimeIndex) and frame.index.name is None:
                frame = frame.reset_index(names="time")  # (pandas' default: no name)
            elif not isinstance(frame.index, pd.RangeIndex):
                frame = frame.reset_index()
        else:  # (blank lines kept, for the rows to be numbered as the file's lines)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (OSError, ValueError, ImportError) as error:
        raise DataError(f"{path}: cannot read it: {error}") from None
    return frame


def _columns(path: Path, frame: pd.DataFrame) -> dict[str, str]:
    """Our column -> the file's."""
    found: dict[str, str] = {}
    keys = {_key(column): column for column in frame.columns}
    for ours, names in _NAMES.items():
        match = next((keys[n] for n in names if n in keys), None)
        if match is not None:
            found[ours] = match
    if "time" not in found and frame.columns.size and _key(frame.columns[0]) in ("", "unnamed:0"):
        found["time"] = frame.columns[0]  # (an index written without a name)
    missing = [c for c in ("time", "open", "high", "low", "close") if c not in found]
    if missing:
        named = "; ".join(f"a {c} column is called {' or '.join(_NAMES[c])}" for c in missing)
        raise DataError(
            f"{path}: no {' or '.join(missing)} column (found:"
            f" {', '.join(map(str, frame.columns))}); {named} (in any case)"
        )
    return found


def _time(value: object, where: str) -> datetime:
    import pandas as pd

    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{9,13}(\.\d+)?", text):  # epoch seconds, or milliseconds
            number = float(text)
            stamp = pd.Timestamp(number, unit="ms" if number > 1e11 else "s", tz="UTC")
        else:
            stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{where}: {text!r} is not a time") from None
    if stamp is pd.NaT:
        raise DataError(f"{where}: no time")
    # A time without a zone is taken as UTC (the docs say so).
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def _price(value: object, where: str, allow_zero: bool = False) -> Decimal:
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise DataError(f"{where}: {text!r} is not a number") from None
    if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
        raise DataError(f"{where}: {text} is not a price")
    return number


def _rows(path: Path, frame: pd.DataFrame, columns: dict[str, str]) -> Iterable[tuple[str, Bar]]:
    stem = _stem(path)
    for number, row in enumerate(frame.itertuples(index=False, name=None), start=2):
        if all(str(value).strip() == "" for value in row):
            continue  # a blank line
        values = dict(zip(frame.columns, row, strict=True))

        def at(ours: str, number: int = number) -> str:
            return f"{path}: row {number}, column {columns[ours]}"

        symbol = str(values[columns["symbol"]]).strip() if "symbol" in columns else stem
        prices = {c: _price(values[columns[c]], at(c)) for c in ("open", "high", "low", "close")}
        volume = (
            _price(values[columns["volume"]] or "0", at("volume"), allow_zero=True)
            if "volume" in columns
            else Decimal(0)
        )
        if prices["high"] < max(prices["open"], prices["close"], prices["low"]):
            raise DataError(f"{at('high')}: high {prices['high']} is below the bar's other prices")
        if prices["low"] > min(prices["open"], prices["close"]):
            raise DataError(f"{at('low')}: low {prices['low']} is above the bar's open or close")
        yield (
            symbol,
            Bar(time=_time(values[columns["time"]], at("time")), volume=volume, **prices),
        )


def _timeframe(path: Path, bars: Sequence[Bar]) -> str:
    """The timeframe whose width is the median spacing of the bars."""
    if len(bars) < 2:
        raise DataError(f"{path}: {len(bars)} bar(s): too few to backtest on")
    spacings = sorted(b.time - a.time for a, b in itertools.pairwise(bars))
    typical = spacings[len(spacings) // 2]
    for name, size in TIMEFRAMES.items():
        if typical == size:
            return name
    raise DataError(
        f"{path}: its bars are {typical} apart, which is none of the timeframes"
        f" {', '.join(TIMEFRAMES)}"
    )


def gaps_in(symbol: str, bars: Sequence[Bar], size: timedelta) -> list[Gap]:
    """Missing bars: every bar of the width's grid is expected, but for the weekends
    of a market that never trades on one, and the times of day it never trades at;
    then a run of missing bars is a gap when it is longer than one (a market holiday
    is one day, not a gap in the data)."""
    weekends = any(b.time.weekday() >= 5 for b in bars)
    times_of_day = {b.time.time() for b in bars}
    gaps = []
    for before, after in itertools.pairwise(bars):
        missing, at = 0, before.time + size
        while at < after.time:
            if (weekends or at.weekday() < 5) and at.time() in times_of_day:
                missing += 1
            at += size
        if missing > 1 or (missing == 1 and weekends):
            gaps.append(Gap(symbol, before.time, after.time, missing))
    return gaps


def read_bars(path: Path, symbols: Sequence[str]) -> History:
    """The bars of `symbols` from `path` (a file, or a folder of them), checked."""
    wanted = {_symbol_key(s): s for s in symbols}
    if len(wanted) < len(set(symbols)):
        alike = sorted(
            s for s in symbols if sum(_symbol_key(o) == _symbol_key(s) for o in symbols) > 1
        )
        raise DataError(
            f"{', '.join(alike)}: one file name would stand for each, so their bars cannot be"
            " told apart: give them in one file with a symbol column"
        )
    bars: dict[str, list[Bar]] = {}
    files: dict[str, Path] = {}
    for file in files_in(path):
        frame = _frame(file)
        columns = _columns(file, frame)
        if "symbol" not in columns and _symbol_key(_stem(file)) not in wanted:
            continue  # (another symbol's file in the folder)
        for name, bar in _rows(file, frame, columns):
            symbol = wanted.get(_symbol_key(name))
            if symbol is None:
                continue
            if files.setdefault(symbol, file) != file:
                raise DataError(f"{file}: {symbol}'s bars are in {files[symbol]} too")
            bars.setdefault(symbol, []).append(bar)
    missing = [s for s in symbols if s not in bars]
    if missing:
        raise DataError(
            f"{path}: no bars for {', '.join(missing)} (a file named after each symbol,"
            f" such as {_symbol_key(missing[0])}.csv, or a symbol column)"
        )
    timeframes = {}
    for symbol, rows in bars.items():
        rows.sort(key=lambda b: b.time)
        for a, b in itertools.pairwise(rows):
            if a.time == b.time:
                raise DataError(f"{files[symbol]}: two {symbol} bars at {a.time:%Y-%m-%d %H:%M}")
        timeframes[symbol] = _timeframe(files[symbol], rows)
    if len(set(timeframes.values())) > 1:
        told = ", ".join(f"{s} {t}" for s, t in timeframes.items())
        raise DataError(f"{path}: the symbols' bars are of different timeframes ({told})")
    timeframe = next(iter(timeframes.values()))
    size = TIMEFRAMES[timeframe]
    gaps = [gap for symbol, rows in bars.items() for gap in gaps_in(symbol, rows, size)]
    return History(bars, timeframe, files, gaps)


def day(text: str) -> datetime:
    """`2012-03-01` (or a full ISO time) as a UTC instant."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
