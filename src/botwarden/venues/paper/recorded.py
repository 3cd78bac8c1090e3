"""Prices for the paper exchange from recorded bars: a backtest's market.

The book fills at what the bars say, and only at that (the fill model, in
docs/backtesting.md):
- a market order decided when a bar opens fills at that bar's open (`next_open`,
  the default), or at the close of the bar just completed (`close`);
- a resting stop or limit is tried against each bar once the bar is complete: a sell
  stop is reached when the bar's low is at or below it and fills at its price, or at
  the open when the bar opened beyond it (a gap); a limit likewise, at its price or
  the better open. Where a bar reaches both a stop and a limit, the book fills the
  stop first (`PaperBook.advance`): a bar's high and low do not say which came first.
A fill is stamped with the time its bar opened.

Times between bars (a weekend, a gap in the data) have no trading: the price there
is the last bar's close, and nothing is reached until the next bar.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal

from botwarden.domain.models import Bar
from botwarden.domain.timeframes import width
from botwarden.venues.paper.feed import Instrument

FillAt = Literal["next_open", "close"]


class RecordedFeed:
    """The bars of one timeframe for each symbol, oldest first, as a `Feed`."""

    def __init__(
        self,
        bars: Mapping[str, Sequence[Bar]],
        timeframe: str,
        instruments: Mapping[str, Instrument],
        fill: FillAt = "next_open",
    ) -> None:
        missing = sorted(set(instruments) - set(bars)) or sorted(
            s for s, b in bars.items() if not b
        )
        if missing:
            raise ValueError(f"no bars for {', '.join(missing)}")
        self.instruments = dict(instruments)
        self.timeframe = timeframe
        self.width = width(timeframe)
        self.fill = fill
        self._bars = {symbol: list(bars[symbol]) for symbol in instruments}
        self._opens = {symbol: [b.time for b in rows] for symbol, rows in self._bars.items()}

    def symbols(self) -> list[str]:
        return sorted(self.instruments)

    def instrument(self, symbol: str) -> Instrument:
        return self.instruments[symbol]

    def first_bar(self, symbol: str) -> Bar:
        return self._bars[symbol][0]

    def last_bar(self, symbol: str) -> Bar:
        return self._bars[symbol][-1]

    def _completed(self, symbol: str, at: datetime) -> int:
        """How many of `symbol`'s bars had closed by `at`."""
        return bisect.bisect_right(self._opens[symbol], at - self.width)

    def price(self, symbol: str, at: datetime) -> Decimal:
        bars, done = self._bars[symbol], self._completed(symbol, at)
        forming = done < len(bars) and bars[done].time <= at
        if self.fill == "next_open" and forming:
            return bars[done].open  # (as it opens; inside it, the last price known)
        if done == 0:
            return bars[0].open  # before any bar closed: the first one's open
        return bars[done - 1].close

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
        """Each bar that completed in (`after`, `until`], oldest first, but one that
        opened before `placed` (a backtest places its orders as a bar opens)."""
        bars = self._bars[symbol]
        for bar in bars[self._completed(symbol, after) : self._completed(symbol, until)]:
            if placed is not None and bar.time < placed:
                continue
            if stop is not None and (bar.high >= stop if buy else bar.low <= stop):
                return (max(bar.open, stop) if buy else min(bar.open, stop)), bar.time
            if limit is not None and (bar.low <= limit if buy else bar.high >= limit):
                return (min(bar.open, limit) if buy else max(bar.open, limit)), bar.time
        return None

    def bars(self, symbol: str, timeframe: str, at: datetime, limit: int) -> list[Bar]:
        if timeframe != self.timeframe:
            raise ValueError(
                f"the bars recorded are {self.timeframe} bars, not {timeframe}"
            )  # (the backtest checks this before it starts)
        done = self._completed(symbol, at)
        return self._bars[symbol][max(0, done - limit) : done]
