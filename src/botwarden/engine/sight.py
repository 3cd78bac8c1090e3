"""What a pass saw of the market, for people to look at: each symbol's recent bars and
last price, its market's precision, the account's balance. Not state: nothing is
decided on it, and a view lost is seen again at the next pass. The runner hands it to
whatever watches (the process writes it beside the bot's other runtime files, where the
dashboard reads it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from botwarden.domain.markets import MarketRules
from botwarden.domain.models import Bar
from botwarden.venues.base import Balance

CHART_BARS = 200
"""Bars of each symbol a watched pass asks for (in the call it makes for the strategy's
own bars, so a watched bot makes no more calls than one nobody watches)."""


@dataclass(frozen=True)
class Seen:
    time: datetime
    """The bot's clock at the pass (a paper exchange's may run fast: `speed`)."""
    speed: float
    timeframe: str
    prices: Mapping[str, Decimal]
    bars: Mapping[str, Sequence[Bar]]
    """The newest completed bars of each symbol, oldest first."""
    markets: Mapping[str, MarketRules]
    balance: Balance | None
    """None while the venue has not told it (or the bot only protects)."""


class Sight(Protocol):
    def saw(self, seen: Seen) -> None:
        """Told at the end of every pass that read the market. Must not raise."""
