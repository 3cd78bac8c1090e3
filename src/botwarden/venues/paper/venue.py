"""`paper`: the simulated exchange behind the `Venue` port, the embedded default.

Before answering anything, the venue brings its book up to the present (`advance`), so
every answer reflects the price path up to now, whether the clock is real, accelerated
or simulated.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from botwarden.domain.markets import MarketRules
from botwarden.venues.base import (
    Balance,
    Bar,
    Capabilities,
    FillPage,
    NotFound,
    OrderRequest,
    VenueOrder,
    VenuePosition,
)
from botwarden.venues.paper.book import PaperBook
from botwarden.venues.paper.feed import EPOCH

TIMEFRAMES = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}


def utc_now() -> datetime:
    return datetime.now(UTC)


class PaperVenue:
    name = "paper"

    def __init__(self, book: PaperBook, clock: Callable[[], datetime] = utc_now) -> None:
        self.book = book
        self._clock = clock
        self.capabilities = Capabilities(
            shorting=book.settings.shorting,
            stop_orders=True,
            client_ids="unique" if book.settings.client_ids == "alpaca" else "unique_while_open",
            closed_order_lookup=True,
            bulk=frozenset({"positions", "open_orders", "fills"}),
        )

    def _now(self) -> datetime:
        now = self._clock()
        self.book.advance(now)
        return now

    def _known(self, symbol: str) -> None:
        if symbol not in self.book.feed.instruments:
            raise NotFound(self.name, f"unknown symbol {symbol!r}")

    async def connect(self) -> None:
        self._now()

    async def close(self) -> None:
        self.book.close()

    async def balance(self) -> Balance:
        return self.book.balance(self._now())

    async def positions(self) -> list[VenuePosition]:
        self._now()
        return self.book.positions()

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        self._now()
        return self.book.open_orders(symbol)

    async def order(self, client_order_id: str, symbol: str) -> VenueOrder:
        self._now()
        order = self.book.order(client_order_id)
        if order.symbol != symbol:
            raise NotFound(self.name, f"no {symbol} order with client order id {client_order_id!r}")
        return order

    async def fills(self, since: datetime | None = None, cursor: str | None = None) -> FillPage:
        self._now()
        rows = self.book.fills(after_seq=int(cursor) if cursor else 0, since=since)
        return FillPage(
            fills=[fill for _, fill in rows], cursor=str(rows[-1][0]) if rows else cursor
        )

    async def submit(self, request: OrderRequest) -> VenueOrder:
        return self.book.submit(request, self._now())

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        now = self._now()
        await self.order(client_order_id, symbol)
        return self.book.cancel(client_order_id, now)

    async def last_price(self, symbol: str) -> Decimal:
        self._known(symbol)
        return self.book.feed.price(symbol, self._now())

    async def bars(self, symbol: str, timeframe: str, limit: int) -> list[Bar]:
        """The last `limit` completed bars, oldest first."""
        self._known(symbol)
        if timeframe not in TIMEFRAMES:
            raise NotFound(
                self.name, f"timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
            )
        width = TIMEFRAMES[timeframe]
        now = self._now()
        last_close = EPOCH + ((now - EPOCH) // width) * width
        bars = []
        for n in range(limit, 0, -1):
            start = last_close - n * width
            open_, high, low, close = self.book.feed.ohlc(symbol, start, start + width)
            bars.append(Bar(time=start, open=open_, high=high, low=low, close=close, volume=0))
        return bars

    async def market(self, symbol: str) -> MarketRules:
        self._known(symbol)
        instrument = self.book.feed.instrument(symbol)
        return MarketRules(
            symbol=symbol,
            qty_step=instrument.qty_step,
            min_qty=instrument.qty_step,
            price_tick=instrument.tick,
            min_notional=instrument.min_notional,
            shortable=self.book.settings.shorting,
        )
