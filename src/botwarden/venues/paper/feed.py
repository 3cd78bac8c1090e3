"""Prices for the paper exchange: what a feed answers (`Feed`), and the embedded
default's, a seeded random walk as a function of time (`RandomWalkFeed`).

The price of a symbol at any instant is computed from (seed, symbol, time) alone, so
the exchange needs no stored price history and no running process: after a restart,
or a bot that was down for an hour, the exchange replays the path it missed (and the
stops it should have triggered) exactly. It works the same under the real clock, an
accelerated one, or a simulated one.

How: each day has an anchor (log) price, a smooth deterministic function of the day
(two slow waves and a little per-day noise), so any day is reached in O(1). Within a
day the path is a Brownian bridge from one day's anchor to the next, drawn from an
RNG seeded by (seed, symbol, day), at `step` resolution. Days are generated on demand
and a few are cached.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Protocol

from botwarden.domain.models import Bar
from botwarden.domain.timeframes import last_completed_bar_open, width

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Instrument:
    symbol: str
    start_price: Decimal
    tick: Decimal = Decimal("0.01")
    qty_step: Decimal | None = None
    """None: fractional quantities of any size."""
    min_notional: Decimal | None = None
    daily_volatility: float = 0.015


class Feed(Protocol):
    """Where the paper exchange's book takes its prices: what it fills at and what its
    venue quotes. Every answer is a function of its arguments: a book that comes back
    after a crash, or that looks at an hour it missed, asks again and is told the same.
    (The bars the venue serves come from the feed where it has its own, a random walk
    or a recording; a live feed's from its source.)"""

    instruments: Mapping[str, Instrument]

    def symbols(self) -> list[str]: ...

    def instrument(self, symbol: str) -> Instrument:
        """KeyError: a symbol the feed does not price."""
        ...

    def price(self, symbol: str, at: datetime) -> Decimal:
        """What a market order at `at` fills at, before slippage."""
        ...

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
        """Where and when the prices of (`after`, `until`] first reached a buy (or
        sell) stop at `stop`, or a limit at `limit`: the price it fills at (past a
        stop's price after a gap) and the time; None if they never did. `placed`: when
        the order was placed (a bar that began before it says nothing of its prices
        after it)."""
        ...


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


class RandomWalkFeed:
    """Deterministic OHLC prices for a set of instruments."""

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        seed: int = 7,
        step: timedelta = timedelta(minutes=5),
    ) -> None:
        if DAY % step:
            raise ValueError(f"the step {step} must divide a day")
        self.instruments = dict(instruments)
        self.seed = seed
        self.step = step
        self._steps_per_day = DAY // step
        # A few days for every instrument: a book of a thousand symbols prices them all
        # on every look, and regenerating a day costs ~0.5 ms.
        self._day_path = lru_cache(maxsize=max(64, 4 * len(self.instruments)))(self._generate_day)
        # A bar never changes once its time is past, and a strategy asks for the same
        # hundred bars again at every check: each is computed once.
        self.ohlc = lru_cache(maxsize=max(4096, 256 * len(self.instruments)))(self._ohlc)
        # A step's price is asked again and again (by every resting order the book
        # walks over, by every call of a tick): each is turned into a Decimal once.
        self.price_at_step = lru_cache(maxsize=max(4096, 4 * len(self.instruments)))(
            self._price_at_step
        )

    def symbols(self) -> list[str]:
        return sorted(self.instruments)

    def instrument(self, symbol: str) -> Instrument:
        return self.instruments[symbol]  # KeyError: unknown symbol, the caller says so

    # -- the path ----------------------------------------------------------------------
    def _anchor(self, symbol: str, day: int) -> float:
        """The log price at the start of `day`, relative to the start price."""
        volatility = self.instruments[symbol].daily_volatility
        phase = (_seed(self.seed, symbol, "phase") % 1000) / 1000 * 2 * math.pi
        noise = random.Random(_seed(self.seed, symbol, "anchor", day)).gauss(0, volatility)
        return (
            4 * volatility * math.sin(2 * math.pi * day / 97 + phase)
            + 2 * volatility * math.sin(2 * math.pi * day / 23 + 2 * phase)
            + noise
        )

    def _generate_day(self, symbol: str, day: int) -> tuple[float, ...]:
        """Log prices at every step of `day` (steps_per_day + 1 points, both ends)."""
        n = self._steps_per_day
        start, end = self._anchor(symbol, day), self._anchor(symbol, day + 1)
        rng = random.Random(_seed(self.seed, symbol, "day", day))
        sigma = self.instruments[symbol].daily_volatility / math.sqrt(n)
        walk = [0.0]
        for _ in range(n):
            walk.append(walk[-1] + rng.gauss(0, sigma))
        # Bridge: bend the free walk so it ends exactly on the next day's anchor.
        return tuple(start + w + (end - start - walk[-1]) * i / n for i, w in enumerate(walk))

    def _log_price(self, symbol: str, index: int) -> float:
        day, offset = divmod(index, self._steps_per_day)
        return self._day_path(symbol, day)[offset]

    def _to_price(self, symbol: str, log_price: float) -> Decimal:
        instrument = self.instruments[symbol]
        raw = instrument.start_price * Decimal(repr(math.exp(log_price)))
        return max(instrument.tick, raw.quantize(instrument.tick, rounding=ROUND_HALF_EVEN))

    def step_index(self, at: datetime) -> int:
        return (at - EPOCH) // self.step

    def step_time(self, index: int) -> datetime:
        return EPOCH + index * self.step

    # -- what the exchange asks ----------------------------------------------------------
    def price(self, symbol: str, at: datetime) -> Decimal:
        """The last traded price at `at`: the path's value at the last step boundary."""
        return self.price_at_step(symbol, self.step_index(at))

    def _price_at_step(self, symbol: str, index: int) -> Decimal:
        return self._to_price(symbol, self._log_price(symbol, index))

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
        """The path walked step by step: a stop fills where the path is when it crosses
        (beyond the stop after a gap), a limit at its price. (Every step after `after`
        is after `placed`: the book looked when the order was placed.)"""
        for index in range(self.step_index(after) + 1, self.step_index(until) + 1):
            price = self.price_at_step(symbol, index)
            if stop is not None and (price >= stop if buy else price <= stop):
                return price, self.step_time(index)
            if limit is not None and (price <= limit if buy else price >= limit):
                return limit, self.step_time(index)
        return None

    def bars(self, symbol: str, timeframe: str, at: datetime, limit: int) -> list[Bar]:
        """Aligned as the real venues align theirs (`domain/timeframes.py`): a 4h bar
        spans four 1h bars, a week runs from Monday."""
        size, newest = width(timeframe), last_completed_bar_open(timeframe, at)
        bars = []
        for n in range(limit - 1, -1, -1):
            start = newest - n * size
            open_, high, low, close = self.ohlc(symbol, start, start + size)
            bars.append(Bar(time=start, open=open_, high=high, low=low, close=close, volume=0))
        return bars

    def _ohlc(self, symbol: str, start: datetime, end: datetime) -> tuple[Decimal, ...]:
        """Open, high, low, close of the bar from `start` to `end` (its closing price is
        the path's value at `end`)."""
        first, last = self.step_index(start), self.step_index(end)
        points = [self._log_price(symbol, i) for i in range(first, last + 1)]
        to_price = self._to_price
        return (
            to_price(symbol, points[0]),
            to_price(symbol, max(points)),
            to_price(symbol, min(points)),
            to_price(symbol, points[-1]),
        )
