"""The bars a strategy decides on: a list of completed `Bar`s, oldest first (so every
strategy written against a plain sequence works unchanged), that also knows its
timeframe, the strategy's other timeframes (`bars.of("1d")`) and, with pandas
installed, itself as a DataFrame (`bars.frame()`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from botwarden.domain.models import Bar

if TYPE_CHECKING:
    import pandas


class Bars(list[Bar]):
    def __init__(
        self,
        bars: Iterable[Bar],
        timeframe: str,
        others: Mapping[str, list[Bar]] | None = None,
    ) -> None:
        super().__init__(bars)
        self.timeframe = timeframe
        self._others = dict(others or {})

    def of(self, timeframe: str) -> Bars:
        """The completed bars of another timeframe the strategy named in its
        `timeframes` (`{"1d": 50}`: the last 50 daily bars)."""
        if timeframe == self.timeframe:
            return self
        if timeframe not in self._others:
            named = ", ".join(self._others) or "none"
            raise KeyError(
                f"bars of {timeframe!r} were not asked for: name them in the strategy's"
                f" timeframes, e.g. timeframes = {{{timeframe!r}: 50}} (named: {named})"
            )
        return Bars(self._others[timeframe], timeframe)

    def frame(self) -> pandas.DataFrame:
        """These bars as a pandas DataFrame: columns open, high, low, close, volume (as
        floats, what indicator libraries take), indexed by the bar's open time in UTC.
        Needs pandas: `pip install 'botwarden[pandas]'`."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "bars.frame() needs pandas: pip install 'botwarden[pandas]'"
            ) from None
        columns = ("open", "high", "low", "close", "volume")
        frame = pandas.DataFrame(
            [[float(getattr(bar, name)) for name in columns] for bar in self],
            columns=list(columns),
            index=pandas.DatetimeIndex([bar.time for bar in self], name="time"),
        )
        return frame
