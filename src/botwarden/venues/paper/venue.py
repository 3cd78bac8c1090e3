"""`paper`: the simulated exchange behind the `Venue` port, the embedded default.

Before answering anything, the venue brings its book up to the present (`advance`), so
every answer reflects the price path up to now, whether the clock is real, accelerated
or simulated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from botwarden.domain.markets import MarketRules
from botwarden.venues.base import (
    Ambiguous,
    Balance,
    Bar,
    Capabilities,
    ClockReading,
    FillPage,
    NotFound,
    OrderRequest,
    Retryable,
    VenueOrder,
    VenuePosition,
    timeframe_width,
)
from botwarden.venues.paper.book import PaperBook
from botwarden.venues.paper.faults import FaultKind, FaultPlan
from botwarden.venues.paper.live import LiveFeed
from botwarden.venues.rules import enforce

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


class AcceleratedClock:
    """Exchange time running `speed` times faster than the wall clock, from an anchor kept
    in the book: a restart (or a bot down for a minute) finds the exchange `speed`
    minutes further on, as a real exchange would have moved on without it.

    `skew` sets the exchange's clock that far off the host's on top (the `clock_skew`
    fault). It is not kept in the book: taking it away turns the exchange's clock back,
    and the book then waits for its time to catch up (use a fresh book instead)."""

    def __init__(
        self,
        book: PaperBook,
        speed: float,
        real: Callable[[], datetime] = utc_now,
        start: datetime | None = None,
        skew: timedelta = timedelta(0),
    ) -> None:
        self.speed = speed
        self.skew = skew
        self._real = real
        self._venue_anchor, self._real_anchor = book.clock_anchor(speed, real(), start, skew)

    def __call__(self) -> datetime:
        return self._venue_anchor + (self._real() - self._real_anchor) * self.speed + self.skew


class PaperVenue:
    name = "paper"

    def __init__(
        self,
        book: PaperBook,
        clock: Callable[[], datetime] = utc_now,
        faults: FaultPlan | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        host_clock: Callable[[], datetime] = utc_now,
        live: LiveFeed | None = None,
    ) -> None:
        """`live`: the book's feed when it takes live prices from a real venue (then
        the bars this venue serves are the source's)."""
        self.book = book
        self.live = live
        self.faults = faults or FaultPlan([])
        self.clock = clock
        """The exchange's time: the wall clock, an accelerated one, or a test's."""
        self._sleep = sleep
        """How a `slow` answer waits (a simulation moves its clock instead)."""
        self._host_clock = host_clock
        """The host's clock, which the exchange's may run ahead of (accelerated, skewed)."""
        self.capabilities = Capabilities(
            shorting=book.settings.shorting,
            stop_orders=True,
            client_ids="unique" if book.settings.client_ids == "alpaca" else "unique_while_open",
            closed_order_lookup=True,
            bulk=frozenset({"positions", "open_orders", "fills"}),
            reduce_only=book.settings.reduce_only,
            oco=True,
            replaces=book.settings.replaces,
        )

    async def _call(self, operation: str, effect: Callable[[datetime], T]) -> T:
        """Bring the book up to now and run `effect`, suffering whatever fault the plan
        has drawn for this call, before or after the effect."""
        now = self.clock()
        fault = self.faults.draw(operation, now)
        kind = fault.kind if fault else None
        injected = f"{operation}: injected {kind}"
        if kind in (FaultKind.ERROR_BEFORE, FaultKind.OUTAGE):
            raise Retryable(self.name, f"{injected}: the venue did not take the request")
        if kind is FaultKind.RATE_LIMIT:
            raise Retryable(self.name, f"{injected}: 429", retry_after=fault.retry_after)
        if kind is FaultKind.TIMEOUT_BEFORE or (
            kind is FaultKind.SERVER_ERROR and self.faults.coin()
        ):
            raise Ambiguous(self.name, f"{injected}: no answer")
        if self.live is not None:  # (its clock is the source's: read again, maybe)
            now = await self.live.catch_up(self.clock, self.book.processed_until())
        self.book.advance(now)
        result = effect(now)
        if kind in (FaultKind.TIMEOUT_AFTER, FaultKind.SERVER_ERROR):
            raise Ambiguous(self.name, f"{injected}: no answer")
        if kind is FaultKind.SLOW:  # done at once, answered late
            await self._sleep(fault.seconds)
        return result

    def _known(self, symbol: str) -> None:
        if symbol not in self.book.feed.instruments:
            raise NotFound(self.name, f"unknown symbol {symbol!r}")

    async def connect(self) -> None:
        if self.live is not None:
            await self.live.connect(self.clock, self.book.processed_until())
        self.book.advance(self.clock())

    async def close(self) -> None:
        if self.live is not None:
            await self.live.close()
        self.book.close()

    async def read_clock(self) -> ClockReading:
        return ClockReading(venue_time=self.clock(), host_time=self._host_clock())

    async def balance(self) -> Balance:
        return await self._call("balance", self.book.balance)

    async def positions(self) -> list[VenuePosition]:
        return await self._call("positions", lambda now: self.book.positions())

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return await self._call("open_orders", lambda now: self.book.open_orders(symbol))

    async def order(self, client_order_id: str, symbol: str | None) -> VenueOrder:
        """The order with this client order id (in `symbol`, if given: Binance asks for
        it, Alpaca does not)."""
        return await self._call("order", lambda now: self._lookup(client_order_id, symbol, now))

    async def all_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Every order (in `symbol`), oldest first: the emulators list closed orders
        from here."""
        return await self._call("open_orders", lambda now: self.book.all_orders(symbol))

    async def order_by_venue_id(self, venue_order_id: str) -> VenueOrder:
        return await self._call("order", lambda now: self.book.order_by_venue_id(venue_order_id))

    def _lookup(self, client_order_id: str, symbol: str | None, now: datetime) -> VenueOrder:
        """An order by client order id, as a lookup sees it: a fresh order may be hidden
        by a `stale_lookup` fault (only lookups are: cancels and fills are not)."""
        order = self._find(client_order_id, symbol)
        stale = self.faults.draw("order", now, kinds=frozenset({FaultKind.STALE_LOOKUP}))
        if stale is not None and (now - order.created_at).total_seconds() < stale.seconds:
            raise NotFound(self.name, f"no {symbol} order with client order id {client_order_id!r}")
        return order

    def _find(self, client_order_id: str, symbol: str | None) -> VenueOrder:
        order = self.book.order(client_order_id)
        if symbol is not None and order.symbol != symbol:
            raise NotFound(self.name, f"no {symbol} order with client order id {client_order_id!r}")
        return order

    async def fills(self, since: datetime | None = None, cursor: str | None = None) -> FillPage:
        def page(now: datetime) -> FillPage:
            rows = self.book.fills(after_seq=int(cursor) if cursor else 0, since=since)
            last = str(rows[-1][0]) if rows else cursor
            return FillPage(fills=[fill for _, fill in rows], cursor=last)

        return await self._call("fills", page)

    async def submit(self, request: OrderRequest) -> VenueOrder:
        if request.symbol in self.book.feed.instruments:  # an unknown one: the venue says so
            price = self.book.feed.price(request.symbol, self.clock())
            enforce(request, await self.market(request.symbol), price)

        def accept(now: datetime) -> VenueOrder:
            partial = self.faults.draw("submit", now, kinds=frozenset({FaultKind.PARTIAL_FILL}))
            return self.book.submit(request, now, partial.fraction if partial else None)

        return await self._call("submit", accept)

    async def submit_oco(self, stop: OrderRequest, take_profit: OrderRequest) -> list[VenueOrder]:
        if stop.symbol in self.book.feed.instruments:
            price = self.book.feed.price(stop.symbol, self.clock())
            rules = await self.market(stop.symbol)
            enforce(stop, rules, price)
            enforce(take_profit, rules, price)
        return await self._call("submit", lambda now: self.book.submit_oco(stop, take_profit, now))

    async def replace(
        self, old: OrderRequest, new: OrderRequest, venue_order_id: str | None = None
    ) -> VenueOrder:
        if new.symbol in self.book.feed.instruments:
            price = self.book.feed.price(new.symbol, self.clock())
            enforce(new, await self.market(new.symbol), price)

        def replace(now: datetime) -> VenueOrder:
            self._find(old.client_order_id, new.symbol)
            return self.book.replace(old.client_order_id, new, now)

        return await self._call("submit", replace)

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        def cancel(now: datetime) -> VenueOrder:
            self._find(client_order_id, symbol)
            return self.book.cancel(client_order_id, now)

        return await self._call("cancel", cancel)

    async def last_price(self, symbol: str) -> Decimal:
        return (await self.last_prices([symbol]))[symbol]

    async def last_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        for symbol in symbols:
            self._known(symbol)
        return await self._call(
            "last_price", lambda now: {s: self.book.feed.price(s, now) for s in symbols}
        )

    async def bars(self, symbol: str, timeframe: str, limit: int) -> list[Bar]:
        """The last `limit` completed bars, oldest first, as the feed has them."""
        self._known(symbol)
        timeframe_width(self.name, timeframe)  # (one the venue does not serve: it says so)
        if self.live is not None:
            await self._call("bars", lambda now: None)  # (its faults; the prices up to now)
            return await self.live.source.bars(symbol, timeframe, limit)
        return await self._call(
            "bars", lambda now: self.book.feed.bars(symbol, timeframe, now, limit)
        )

    async def history(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Bar]:
        self._known(symbol)
        size = timeframe_width(self.name, timeframe)
        if self.live is not None:
            await self._call("bars", lambda now: None)
            return await self.live.source.history(symbol, timeframe, start, end)

        def read(now: datetime) -> list[Bar]:
            until = min(now, end + size)
            count = max(0, (until - start) // size + 1)
            bars = self.book.feed.bars(symbol, timeframe, until, count)
            return [b for b in bars if start <= b.time < end]

        return await self._call("bars", read)

    async def market(self, symbol: str) -> MarketRules:
        self._known(symbol)
        if self.live is not None:  # the source's own rules, but for shorting
            return self.live.rules[symbol].evolve(shortable=self.book.settings.shorting)
        instrument = self.book.feed.instrument(symbol)
        return MarketRules(
            symbol=symbol,
            qty_step=instrument.qty_step,
            min_qty=instrument.qty_step,
            price_tick=instrument.tick,
            min_notional=instrument.min_notional,
            shortable=self.book.settings.shorting,
        )
