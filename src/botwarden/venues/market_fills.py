"""Fills where a venue lists trades one market at a time (Binance): the cursor, and
which markets a look must read.

Where only per-market reads exist, a look reads every market the bot trades, each from
the last trade seen there. On Binance USD-M, two account-wide witnesses, one request
each, say which markets may hold a trade not seen yet, and only those are read:
- the income history (`GET /fapi/v1/income`): an entry for every trade that paid a fee
  (COMMISSION) and for every one that closed some of a position at a profit or loss
  (REALIZED_PNL), naming the market and the trade id;
- the positions (`GET /fapi/v3/positionRisk`): a trade that moved a position shows
  there even if it paid no fee and realised nothing (an opening fill at a zero maker
  fee), which the income need not show.
A market is read if no look has read it yet, if its position is not what it was at the
last look, or if the income names a trade there newer than the last one seen. Every
market is read when the income cannot vouch: no last look to start from (the first
search, a cursor of an older version), a last look more than `INCOME_WINDOW` ago, or an
income listing that fills its page. What both witnesses miss is a round trip that paid
no fee, realised nothing and left the position as it was, all between two looks
(docs/venues.md says why that is accepted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

INCOME_KINDS = ("COMMISSION", "REALIZED_PNL")
INCOME_PAGE = 1000
"""Binance's largest page of income entries: a full one means there may be more."""
INCOME_WINDOW = timedelta(days=7)
"""How far back the income is trusted to reach (Binance keeps three months; a week is
as far as it answers trades for): a last look further back reads every market."""
INCOME_MARGIN = timedelta(minutes=10)
"""A look asks the income from this long before the last look: an entry written late,
or a clock reading a little off, is still seen. (What it finds twice, the trade ids
tell.)"""
WITNESS_CALLS = 1 + len(INCOME_KINDS)
"""Requests the witnesses cost (asked at once): with no more markets than this,
reading each market costs no more requests."""
REWRITE_AFTER = timedelta(days=1)
"""A look that found nothing new keeps the stored cursor (nothing to write), unless
its last look is older than this: the income a restart asks for stays short."""


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


@dataclass(frozen=True)
class FillCursor:
    """How far the fills were read: the engine stores it, opaque, and hands it back."""

    last_trade: dict[str, int]
    """Per market, the id of the last trade seen there (0: read, none seen yet)."""
    looked_at: int | None = None
    """The venue's time (ms) of the last look the witnesses vouched for: every trade
    before it in these markets is seen."""
    held: dict[str, str] = field(default_factory=dict)
    """The positions at that look: market -> signed size."""

    @classmethod
    def parse(cls, text: str | None) -> FillCursor:
        data = json.loads(text) if text else {}
        if "trades" not in data:  # markets and their last trade ids only
            return cls({market: int(trade) for market, trade in data.items()})
        return cls(data["trades"], data.get("looked_at"), data.get("held", {}))

    def dump(self) -> str:
        if self.looked_at is None:  # (the older form, which every version reads)
            return json.dumps({m: t for m, t in self.last_trade.items() if t}, sort_keys=True)
        return json.dumps(
            {"trades": self.last_trade, "looked_at": self.looked_at, "held": self.held},
            sort_keys=True,
        )


@dataclass(frozen=True)
class Witnessed:
    """What the account-wide witnesses said at one look."""

    looked_at: int
    """The venue's time (ms) when they were asked."""
    held: dict[str, str]
    income: list[dict] | None
    """The income entries since the last look; None if they cannot vouch."""

    def markets_to_read(
        self, markets: Sequence[str], known: FillCursor, market_of: Callable[[str], str | None]
    ) -> list[str]:
        """The markets that may hold a trade not seen yet (`market_of`: the unified
        symbol of Binance's, None for one not listed)."""
        if self.income is None:
            return list(markets)
        named = set()
        for entry in self.income:
            market = market_of(str(entry.get("symbol") or ""))
            trade = str(entry.get("tradeId") or "")
            if market and (not trade.isdigit() or int(trade) > known.last_trade.get(market, 0)):
                named.add(market)
        return [
            m
            for m in markets
            if m not in known.last_trade or m in named or self.held.get(m) != known.held.get(m)
        ]

    def cursor(self, stored: FillCursor, last_trade: dict[str, int]) -> FillCursor | None:
        """The cursor after this look; None: keep the stored one (nothing new, and its
        last look recent enough)."""
        if (
            last_trade == stored.last_trade
            and self.held == stored.held
            and stored.looked_at is not None
            and self.looked_at - stored.looked_at < _ms(REWRITE_AFTER)
        ):
            return None
        return FillCursor(last_trade, self.looked_at, self.held)


def income_window(known: FillCursor, now: int) -> tuple[int, int] | None:
    """(startTime, endTime) to ask the income for, or None if it cannot vouch."""
    if known.looked_at is None or now - known.looked_at > _ms(INCOME_WINDOW):
        return None
    return known.looked_at - _ms(INCOME_MARGIN), now


def vouching(pages: Iterable[list[dict]]) -> list[dict] | None:
    """The entries of the income pages, or None if one was full (there may be more)."""
    pages = list(pages)
    if any(len(page) >= INCOME_PAGE for page in pages):
        return None
    return [entry for page in pages for entry in page]
