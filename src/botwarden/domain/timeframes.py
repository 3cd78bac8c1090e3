"""The bar timeframes botwarden supports, and where their bars open.

The one place that names them: the paper exchange, every venue adapter and every
emulator take their names and widths from here, and their "unknown timeframe" messages
list `TIMEFRAMES`.

Bars are aligned as the real venues align them, in UTC:
- minutes, hours and days on UTC midnight, so 4h bars open at 00, 04, 08 ... UTC:
  Binance interprets kline intervals in UTC unless its `timeZone` parameter says
  otherwise, and Alpaca's 4Hour bars start on multiples of 4 hours;
- weeks on Monday 00:00 UTC: the sample kline in Binance's spot API documentation
  opens on Monday 2017-07-03 00:00 UTC and closes 2017-07-09 23:59:59.999. Alpaca's
  crypto bars are UTC-aligned too (its daily ones moved from Chicago midnight to UTC
  midnight in 2025); its stock daily bars open at New York midnight instead.

Pure functions of their arguments: no clock is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

TIMEFRAMES: Mapping[str, timedelta] = MappingProxyType(
    {
        "1m": timedelta(minutes=1),
        "5m": timedelta(minutes=5),
        "15m": timedelta(minutes=15),
        "1h": timedelta(hours=1),
        "4h": timedelta(hours=4),
        "1d": timedelta(days=1),
        "1w": timedelta(weeks=1),
    }
)
"""Name -> width, narrowest first."""

_ALIGNMENT = datetime(1970, 1, 5, tzinfo=UTC)
"""A Monday, 00:00 UTC. Every width above divides a week, so counting whole widths
from here puts days on UTC midnight, 4h bars on 00/04/08... UTC and weeks on Mondays."""


class UnknownTimeframe(ValueError):
    """A timeframe botwarden does not support; the message lists those it does."""

    def __init__(self, timeframe: str) -> None:
        super().__init__(f"timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}")
        self.timeframe = timeframe


def width(timeframe: str) -> timedelta:
    """How long one bar of `timeframe` lasts (`UnknownTimeframe` if it is not supported)."""
    if timeframe not in TIMEFRAMES:
        raise UnknownTimeframe(timeframe)
    return TIMEFRAMES[timeframe]


def bar_open(timeframe: str, at: datetime) -> datetime:
    """When the bar of `timeframe` that contains the instant `at` opened, in UTC.

    A bar covers [open, open + width): an instant on a boundary opens the next bar."""
    if at.tzinfo is None:
        raise ValueError(f"{at} has no time zone: bars are aligned on UTC instants")
    size = width(timeframe)
    return _ALIGNMENT + ((at - _ALIGNMENT) // size) * size


def last_completed_bar_open(timeframe: str, at: datetime) -> datetime:
    """When the newest bar of `timeframe` that had closed by `at` opened: the one before
    the bar still forming at `at` (a bar closing exactly at `at` counts as closed)."""
    return bar_open(timeframe, at) - width(timeframe)
