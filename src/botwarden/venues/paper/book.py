"""The paper exchange's book: accounts, orders, fills and matching, kept in SQLite.

Every operation is one transaction, written before it answers, so an exchange that
lives in a bot's process and dies with it (kill -9) comes back exactly as it was: an
order it accepted is there to be found by its client order id, as at a real venue.

Time only moves forward: `advance(now)` replays the price path since the book last
looked and fills whatever resting order the path crossed (a stop that triggered while
the bot was down fills when anyone next asks, at the price where the path crossed).

Prices come from the feed; the book never stores them. Money is `Decimal` throughout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Literal

from botwarden.domain.markets import TimeInForce
from botwarden.domain.models import Fill, OrderSide, Side
from botwarden.domain.orders import OrderType
from botwarden.errors import BotwardenError
from botwarden.venues.base import (
    Balance,
    DuplicateOrder,
    NotFound,
    OrderRequest,
    OrderState,
    Rejected,
    VenueOrder,
    VenuePosition,
)
from botwarden.venues.paper.feed import Feed
from botwarden.venues.timeline import anchor_text, parse_anchor

ClientIds = Literal["alpaca", "binance"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, qty TEXT NOT NULL,"
    " avg_price TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS orders (venue_order_id TEXT PRIMARY KEY,"
    " client_order_id TEXT NOT NULL, seq INTEGER NOT NULL, final INTEGER NOT NULL,"
    " doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS orders_by_client_id ON orders (client_order_id, seq)",
    "CREATE TABLE IF NOT EXISTS fills (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL)",
)


def open_paper_file(
    path: Path, what: str, schema: Sequence[str | tuple[str, tuple[str, ...]]]
) -> sqlite3.Connection:
    """One of the paper exchange's own SQLite files (its book, its recorded prices),
    made with `schema` (statements, or statements and their parameters) if new.
    NORMAL in WAL mode survives a process crash (what a simulated exchange must
    survive) without paying an fsync per order."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for statement in schema:
            db.execute(*((statement,) if isinstance(statement, str) else statement))
    except (OSError, sqlite3.Error) as error:  # a folder it may not write, say
        raise BotwardenError(
            f"{what} {path}: cannot open it ({error}): the bot must be able to write in"
            f" {path.parent}"
        ) from None
    return db


@dataclass(frozen=True)
class BookSettings:
    currency: str = "USD"
    starting_cash: Decimal = Decimal("100000")
    fee_rate: Decimal = Decimal("0")
    """Charged on every fill's value (0.0005 is 5 basis points)."""
    slippage: Decimal = Decimal("0")
    """Market and stop fills pay this fraction of the price (0.0005 is 5 bps)."""
    client_ids: ClientIds = "alpaca"
    shorting: bool = True
    """False for a spot account: a sell beyond what is held is rejected."""
    reduce_only: bool = False
    """Honour reduce-only orders, as futures venues do: one fills at most what is held
    the other way, and what it cannot fill is canceled. False: like a stock broker,
    an order is an order, flag or not."""
    replaces: bool = True
    """An order can be replaced by another in one request (as on Alpaca and Binance
    spot): the engine moves a stop that way where reduce-only is not honoured. False:
    like an exchange without, where a stop is moved by canceling it first."""


class PaperBook:
    NAME = "paper"

    def __init__(
        self, path: Path, feed: Feed, settings: BookSettings, readonly: bool = False
    ) -> None:
        """`readonly`: another process's book, looked at while it trades (the torture
        harness, from the venue's side); any write fails, and nothing is cached."""
        self.path = Path(path)
        self.feed = feed
        self.settings = settings
        self.readonly = readonly
        self._open: dict[str, VenueOrder] | None = None
        self._staged: dict[str, VenueOrder] = {}
        self._processed: datetime | None = None
        """How far `advance` has got, once known (one process owns a book)."""
        if readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            return
        cash = ("INSERT OR IGNORE INTO meta VALUES ('cash', ?)", (str(settings.starting_cash),))
        self._db = open_paper_file(self.path, "paper exchange book", (*_SCHEMA, cash))

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Several reads that see the book as it was at one instant (a reader in another
        process could otherwise see a position before its stop fired, the stop after)."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def clock_anchor(
        self,
        speed: float,
        real_now: datetime,
        start: datetime | None = None,
        skew: timedelta = timedelta(0),
    ) -> tuple[datetime, datetime]:
        """The (exchange time, wall time) pair a clock running at `speed` counts from;
        a new book's exchange time starts at `start` (default: the wall clock).

        Kept in the book with its speed, so the exchange's timeline survives restarts;
        a restart at another speed re-anchors where the old timeline had got to, and
        never before the last moment the book processed: exchange time never runs back.
        The anchor is kept without the clock's `skew` (the times the book processed
        include it).
        """
        stored = self._meta("clock_anchor")
        if stored is not None:
            venue, real, kept_speed = parse_anchor(stored)
            if kept_speed == speed:
                return venue, real
            venue_now = venue + (real_now - real) * kept_speed
        else:
            venue_now = start or real_now
        processed = self._meta("processed_until")
        if processed is not None:
            venue_now = max(venue_now, datetime.fromisoformat(processed) - skew)
        self._set_meta("clock_anchor", anchor_text(venue_now, real_now, speed))
        return venue_now, real_now

    # -- small persistence helpers --------------------------------------------------------
    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _next(self, counter: str) -> int:
        value = int(self._meta(counter, "0")) + 1
        self._set_meta(counter, str(value))
        return value

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction; the in-memory open orders follow only once it committed."""
        self._db.execute("BEGIN IMMEDIATE")
        self._staged: dict[str, VenueOrder] = {}
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        open_orders = self._open_orders()
        for venue_id, order in self._staged.items():
            if order.state.is_final:
                open_orders.pop(venue_id, None)
            else:
                open_orders[venue_id] = order

    def _open_orders(self) -> dict[str, VenueOrder]:
        """Open orders, oldest first, kept in memory: every operation consults them, and
        decoding them from the file each time made an order cost grow with their count.
        (One process owns a book: the bot it lives in, or the emulator serving it; a
        reader's copy would go stale.)"""
        if self._open is None or self.readonly:
            self._open = {o.venue_order_id: o for o in self._orders("final = 0")}
        return self._open

    def _open_now(self) -> dict[str, VenueOrder]:
        """The open orders as the transaction under way has them so far."""
        current = {**self._open_orders(), **self._staged}
        return {venue_id: o for venue_id, o in current.items() if not o.state.is_final}

    def _save_order(self, order: VenueOrder, seq: int | None = None) -> None:
        if seq is None:
            seq = self._db.execute(
                "SELECT seq FROM orders WHERE venue_order_id = ?", (order.venue_order_id,)
            ).fetchone()[0]
        self._db.execute(
            "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?)",
            (
                order.venue_order_id,
                order.client_order_id,
                seq,
                int(order.state.is_final),
                order.model_dump_json(),
            ),
        )
        self._staged[order.venue_order_id] = order

    def _orders(self, where: str, params: tuple = ()) -> list[VenueOrder]:
        rows = self._db.execute(f"SELECT doc FROM orders WHERE {where} ORDER BY seq", params)
        return [VenueOrder.model_validate_json(doc) for (doc,) in rows]

    def _position(self, symbol: str) -> tuple[Decimal, Decimal]:
        row = self._db.execute(
            "SELECT qty, avg_price FROM positions WHERE symbol = ?", (symbol,)
        ).fetchone()
        return (Decimal(row[0]), Decimal(row[1])) if row else (Decimal(0), Decimal(0))

    # -- reads ---------------------------------------------------------------------------
    def cash(self) -> Decimal:
        return Decimal(self._meta("cash"))

    def balance(self, now: datetime) -> Balance:
        cash = self.cash()
        held = self.positions()
        exposure = sum((self._signed(p) * self.feed.price(p.symbol, now) for p in held), Decimal(0))
        equity = cash + exposure
        return Balance(
            currency=self.settings.currency,
            cash=cash,
            equity=equity,
            buying_power=cash - self._reserved(now),
        )

    @staticmethod
    def _signed(position: VenuePosition) -> Decimal:
        return position.qty if position.side is Side.LONG else -position.qty

    def positions(self) -> list[VenuePosition]:
        rows = self._db.execute("SELECT symbol, qty, avg_price FROM positions ORDER BY symbol")
        return [
            VenuePosition(
                symbol=symbol,
                side=Side.LONG if Decimal(qty) > 0 else Side.SHORT,
                qty=abs(Decimal(qty)),
                avg_entry_price=Decimal(avg),
            )
            for symbol, qty, avg in rows
        ]

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        orders = list(self._open_orders().values())
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def all_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        if symbol is None:
            return self._orders("1 = 1")
        return self._orders("json_extract(doc, '$.symbol') = ?", (symbol,))

    def order_by_venue_id(self, venue_order_id: str) -> VenueOrder:
        orders = self._orders("venue_order_id = ?", (venue_order_id,))
        if not orders:
            raise NotFound(self.NAME, f"no order {venue_order_id!r}")
        return orders[0]

    def order(self, client_order_id: str) -> VenueOrder:
        """The newest order with this client order id, open or closed."""
        orders = self._orders("client_order_id = ?", (client_order_id,))
        if not orders:
            raise NotFound(self.NAME, f"no order with client order id {client_order_id!r}")
        return orders[-1]

    def fills(self, after_seq: int = 0, since: datetime | None = None) -> list[tuple[int, Fill]]:
        rows = self._db.execute(
            "SELECT seq, doc FROM fills WHERE seq > ? ORDER BY seq", (after_seq,)
        )
        fills = [(seq, Fill.model_validate_json(doc)) for seq, doc in rows]
        return [(seq, f) for seq, f in fills if since is None or f.time >= since]

    # -- writes ----------------------------------------------------------------------------
    def submit(
        self, request: OrderRequest, now: datetime, fill_fraction: Decimal | None = None
    ) -> VenueOrder:
        """Accept (and, if marketable, fill) an order. With `fill_fraction`, a market
        order fills only that part now and the rest when the book next advances."""
        self._check_symbol(request.symbol)
        with self._transaction():
            order = self._accept(request, now, fill_fraction)
        return order

    def submit_oco(
        self, stop: OrderRequest, take_profit: OrderRequest, now: datetime
    ) -> list[VenueOrder]:
        """Accept a stop and a take-profit as one one-cancels-other pair (as Alpaca's
        OCO and Binance's order lists): both exits of one position, for one quantity;
        the stop first. The two claim the position once: never both fill in full."""
        problem = _not_a_pair(stop, take_profit)
        if problem is not None:
            raise Rejected(self.NAME, f"not an OCO pair: {problem}", code="bad_oco")
        self._check_symbol(stop.symbol)
        with self._transaction():
            self._check_client_id(take_profit.client_order_id)
            first = self._accept(stop, now, None, oco_with=take_profit.client_order_id)
            second = self._accept(
                take_profit, now, None, oco_with=stop.client_order_id, claimed=True
            )
        return [self.order(first.client_order_id), second]

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.feed.instruments:
            known = ", ".join(self.feed.symbols())
            raise Rejected(self.NAME, f"unknown symbol {symbol!r}; this exchange lists {known}")

    def _accept(
        self,
        request: OrderRequest,
        now: datetime,
        fill_fraction: Decimal | None,
        oco_with: str | None = None,
        claimed: bool = False,
    ) -> VenueOrder:
        """`oco_with`: the other leg of its pair; `claimed`: what it sells is claimed by
        that leg already (an OCO pair claims the position once)."""
        self._check_client_id(request.client_order_id)
        price = self.feed.price(request.symbol, now)
        if request.type is OrderType.STOP:
            self._check_stop_side(request, price)
        if not claimed:
            self._check_funds(request, price, now)
        seq = self._next("order_seq")
        order = VenueOrder(
            client_order_id=request.client_order_id,
            venue_order_id=f"P{seq:08d}",
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            qty=request.qty,
            state=OrderState.OPEN,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            time_in_force=request.time_in_force,
            created_at=now,
            updated_at=now,
            reduce_only=request.reduce_only and self.settings.reduce_only,
            oco_with=oco_with,
        )
        self._save_order(order, seq)
        marketable = request.type is OrderType.MARKET or (
            request.type is OrderType.LIMIT
            and (
                (request.side is OrderSide.BUY and price <= request.limit_price)
                or (request.side is OrderSide.SELL and price >= request.limit_price)
            )
        )
        if marketable:
            fill_price = (
                price if request.type is OrderType.LIMIT else self._slipped(price, request.side)
            )
            if request.time_in_force is TimeInForce.FOK:
                fill_fraction = None  # fill or kill: never a part
            qty = min(self._first_part(request, fill_fraction), self._reducible(order))
            order = self._fill_or_cancel(order, qty, fill_price, now)
        immediate = request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        if immediate and order.state is not OrderState.FILLED:
            # Immediate or cancel: what did not fill at once is canceled. (DAY orders
            # rest like GTC ones: the paper exchange has no trading sessions.)
            order = order.evolve(
                state=OrderState.CANCELED,
                updated_at=now,
                reason=f"{request.time_in_force.value}: not filled at once",
            )
            self._save_order(order)
        return order

    def _reducible(self, order: VenueOrder) -> Decimal:
        """How much of `order` may fill: what is left of it, or for a reduce-only
        order, no more than is held the other way."""
        left = order.qty - order.filled_qty
        if not order.reduce_only:
            return left
        held, _ = self._position(order.symbol)
        other_way = held if order.side is OrderSide.SELL else -held
        return max(Decimal(0), min(left, other_way))

    def _fill_or_cancel(
        self, order: VenueOrder, qty: Decimal, price: Decimal, now: datetime
    ) -> VenueOrder:
        """Fill `qty` of `order`; a reduce-only order that can fill no more than that
        has the rest canceled (it may never open or grow a position)."""
        if qty > 0:
            order = self._fill(order, qty, price, now)
        done = order.state is OrderState.FILLED
        if order.reduce_only and not done and not self._reducible(order):
            order = order.evolve(
                state=OrderState.CANCELED, updated_at=now, reason="reduce-only: nothing to reduce"
            )
            self._save_order(order)
        return order

    def _first_part(self, request: OrderRequest, fraction: Decimal | None) -> Decimal:
        if fraction is None or request.type is not OrderType.MARKET:
            return request.qty
        step = self.feed.instrument(request.symbol).qty_step or Decimal("0.00000001")
        part = (request.qty * fraction / step).to_integral_value(rounding=ROUND_FLOOR) * step
        return part if 0 < part < request.qty else request.qty

    def _check_client_id(self, client_order_id: str) -> None:
        """Alpaca: a client order id is used once, ever. Binance: once among open orders
        (a second order with the id of a filled one is accepted, and doubles up)."""
        clause = "client_order_id = ?" + (
            " AND final = 0" if self.settings.client_ids == "binance" else ""
        )
        if self._db.execute(f"SELECT 1 FROM orders WHERE {clause}", (client_order_id,)).fetchone():
            raise DuplicateOrder(
                self.NAME,
                f"duplicate client order id {client_order_id!r}",
                code="duplicate_client_id",
            )

    def _check_stop_side(self, request: OrderRequest, price: Decimal) -> None:
        wrong = (request.side is OrderSide.SELL and request.stop_price >= price) or (
            request.side is OrderSide.BUY and request.stop_price <= price
        )
        if wrong:
            where = "below" if request.side is OrderSide.SELL else "above"
            raise Rejected(
                self.NAME,
                f"a {request.side.value} stop must be {where} the price: stop"
                f" {request.stop_price}, {request.symbol} trades at {price}",
                code="stop_wrong_side",
            )

    def _check_funds(self, request: OrderRequest, price: Decimal, now: datetime) -> None:
        """What open orders already claim is not available again (as Alpaca's
        `qty_available` and Binance's locked balances): a spot account cannot sell the
        same shares twice, and no account can spend the same cash twice."""
        open_orders = list(self._open_now().values())

        def claimed(side: OrderSide, symbol: str | None = None) -> list[VenueOrder]:
            return [o for o in open_orders if o.side is side and symbol in (None, o.symbol)]

        if request.side is OrderSide.SELL:
            if self.settings.shorting:
                return
            held, _ = self._position(request.symbol)
            selling = claimed(OrderSide.SELL, request.symbol)
            pairs = {o.client_order_id for o in selling}
            once = [o for o in selling if o.oco_with not in pairs or o.type is OrderType.STOP]
            available = held - sum((o.qty - o.filled_qty for o in once), Decimal(0))
            if request.qty > available:
                raise Rejected(
                    self.NAME,
                    f"insufficient {request.symbol}: selling {request.qty}, holding {held},"
                    f" of which {available} is not already on sale",
                    code="insufficient_balance",
                )
            return
        if self._covers_a_short(request.symbol, request.qty):
            return  # buying back what is held short takes no cash beyond the margin held
        fee = 1 + self.settings.fee_rate
        cost = request.qty * (request.limit_price or request.stop_price or price) * fee
        available = self.cash() - self._reserved(now)
        if cost > available:
            raise Rejected(
                self.NAME,
                f"insufficient funds: {request.qty} {request.symbol} costs {cost:.2f},"
                f" {available:.2f} is available",
                code="insufficient_funds",
            )

    def _covers_a_short(self, symbol: str, qty: Decimal) -> bool:
        held, _ = self._position(symbol)
        return held < 0 and qty <= -held

    def _reserved(self, now: datetime) -> Decimal:
        """The cash open buy orders claim (not those buying back a short), as a venue's
        buying power leaves it out: the same cash is never spent twice."""
        fee = 1 + self.settings.fee_rate
        return sum(
            (
                (o.qty - o.filled_qty)
                * (o.limit_price or o.stop_price or self.feed.price(o.symbol, now))
                * fee
                for o in self._open_orders().values()
                if o.side is OrderSide.BUY and not self._covers_a_short(o.symbol, o.qty)
            ),
            Decimal(0),
        )

    def _slipped(self, price: Decimal, side: OrderSide) -> Decimal:
        tick = Decimal("0.00000001")
        factor = 1 + self.settings.slippage if side is OrderSide.BUY else 1 - self.settings.slippage
        return (price * factor).quantize(tick).normalize()

    def _fill(self, order: VenueOrder, qty: Decimal, price: Decimal, now: datetime) -> VenueOrder:
        """Execute `qty` of `order` at `price`: fill record, cash, position, order state."""
        seq = self._next("trade_seq")
        fee = (qty * price * self.settings.fee_rate).quantize(Decimal("0.00000001")).normalize()
        fill = Fill(
            trade_id=f"T{seq:08d}",
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_currency=self.settings.currency,
            time=now,
        )
        self._db.execute("INSERT INTO fills VALUES (?, ?)", (seq, fill.model_dump_json()))
        signed = qty if order.side is OrderSide.BUY else -qty
        self._set_meta("cash", str(self.cash() - signed * price - fee))
        self._move_position(order.symbol, signed, price)
        filled = order.filled_qty + qty
        average = ((order.avg_price or 0) * order.filled_qty + price * qty) / filled
        order = order.evolve(
            filled_qty=filled,
            avg_price=average,
            state=OrderState.FILLED if filled == order.qty else OrderState.PARTIALLY_FILLED,
            updated_at=now,
        )
        self._save_order(order)
        if order.oco_with is not None:
            self._shrink_other_leg(order, now)
        return order

    def _shrink_other_leg(self, order: VenueOrder, now: datetime) -> None:
        """A leg of a pair filled: the other is cut to what is left of this one, and
        canceled once nothing is (as Alpaca adjusts a bracket's stop to what is left
        when its take-profit fills in part)."""
        other = next(
            (o for o in self._open_now().values() if o.client_order_id == order.oco_with), None
        )
        if other is None:
            return
        left = order.qty - order.filled_qty
        if left <= 0:
            other = other.evolve(
                state=OrderState.CANCELED,
                updated_at=now,
                reason=f"oco: {order.client_order_id} filled",
            )
        else:
            other = other.evolve(qty=other.filled_qty + left, updated_at=now)
        self._save_order(other)

    def _move_position(self, symbol: str, signed_qty: Decimal, price: Decimal) -> None:
        held, average = self._position(symbol)
        new = held + signed_qty
        if new == 0:
            self._db.execute("DELETE FROM positions WHERE symbol = ?", (symbol,))
            return
        if held == 0 or (held > 0) != (new > 0):
            average = price  # opened, or flipped through zero: a fresh entry
        elif (held > 0) == (signed_qty > 0):
            average = (held * average + signed_qty * price) / new  # added to it
        self._db.execute(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)", (symbol, str(new), str(average))
        )

    def cancel(self, client_order_id: str, now: datetime) -> VenueOrder:
        with self._transaction():
            order = self._cancel(client_order_id, now)
        return order

    def replace(self, client_order_id: str, request: OrderRequest, now: datetime) -> VenueOrder:
        """Cancel an open order and accept `request` in its place, as one change (as
        Alpaca's replace and Binance's cancel-replace): refused if the old one is not
        open any more, and a refused new one leaves the old one open. An order of a
        pair is not replaced (its pair would go with it)."""
        self._check_symbol(request.symbol)
        if not self.settings.replaces:
            raise Rejected(self.NAME, "this exchange replaces no orders", code="no_replace")
        with self._transaction():
            old = self._cancel(client_order_id, now, f"replaced by {request.client_order_id}")
            if old.oco_with is not None:
                raise Rejected(self.NAME, "an order of a pair is not replaced", code="bad_oco")
            order = self._accept(request, now, None)
        return order

    def _cancel(self, client_order_id: str, now: datetime, reason: str | None = None) -> VenueOrder:
        open_ = [o for o in self._open_orders().values() if o.client_order_id == client_order_id]
        if not open_:
            self.order(client_order_id)  # NotFound if it never existed
            raise Rejected(self.NAME, f"order {client_order_id!r} is not open", code="not_open")
        order = open_[-1].evolve(state=OrderState.CANCELED, updated_at=now, reason=reason)
        self._save_order(order)
        for other in list(self._open_now().values()):  # a pair goes together
            if order.oco_with is not None and other.client_order_id == order.oco_with:
                canceled = other.evolve(
                    state=OrderState.CANCELED,
                    updated_at=now,
                    reason=f"oco: {client_order_id} canceled",
                )
                self._save_order(canceled)
        return order

    def processed_until(self) -> datetime | None:
        """How far the book has replayed its prices: the last time anyone asked it."""
        last = self._meta("processed_until")
        return None if last is None else datetime.fromisoformat(last)

    def advance(self, now: datetime) -> list[VenueOrder]:
        """Fill every resting order the price path crossed since the last call.
        Returns the orders that filled."""
        if self._processed is not None and now <= self._processed:
            return []  # nothing has happened since: every call of a tick asks at one instant
        with self._transaction():
            last = self._meta("processed_until")
            filled = []
            if last is not None and datetime.fromisoformat(last) < now:
                # Every crossing first, then applied in the order they happened, as the
                # exchange would have while nobody was looking.
                crossings = []
                for seq, order in enumerate(self._open_orders().values()):
                    crossed = self._crossing(order, datetime.fromisoformat(last), now)
                    if crossed is not None:
                        price, at = crossed
                        crossings.append((at, seq, order, price))
                # At one instant, stops before limits: a bar's high and low cannot tell
                # which came first, and a stop first is what a position would rather not.
                for at, _, order, price in sorted(
                    crossings, key=lambda c: (c[0], c[2].type is not OrderType.STOP, c[1])
                ):
                    # As it is now: an earlier fill may have shrunk or canceled it (the
                    # other leg of its pair filled first).
                    current = self._open_now().get(order.venue_order_id)
                    if current is not None:
                        filled.append(self._fill_resting(current, price, at))
            if last is None or datetime.fromisoformat(last) < now:
                self._set_meta("processed_until", now.isoformat())
            reached = max(now, datetime.fromisoformat(last)) if last else now
        self._processed = reached
        return filled

    def _fill_resting(self, order: VenueOrder, price: Decimal, at: datetime) -> VenueOrder:
        """Fill what is left of a resting order (of a reduce-only one, what is still
        held), unless the account can no longer pay for it (then it is rejected, as a
        venue would, never left to overdraw)."""
        qty = self._reducible(order)
        held, _ = self._position(order.symbol)
        if order.side is OrderSide.BUY:
            short = qty * price * (1 + self.settings.fee_rate) - self.cash()
            covering = self._covers_a_short(order.symbol, qty)
            problem = (
                f"insufficient funds at fill: short by {short:.2f}"
                if short > 0 and not covering
                else None
            )
        else:
            problem = (
                f"insufficient {order.symbol} at fill: selling {qty}, holding {held}"
                if not self.settings.shorting and qty > held
                else None
            )
        if problem:
            rejected = order.evolve(state=OrderState.REJECTED, updated_at=at, reason=problem)
            self._save_order(rejected)
            return rejected
        return self._fill_or_cancel(order, qty, price, at)

    def _crossing(
        self, order: VenueOrder, after: datetime, until: datetime
    ) -> tuple[Decimal, datetime] | None:
        """The price and time at which the path first met `order`, if it did."""
        buy = order.side is OrderSide.BUY
        if order.type is OrderType.MARKET:  # the rest of a partly filled market order
            return self._slipped(self.feed.price(order.symbol, until), order.side), until
        if order.type is OrderType.STOP:
            touched = self.feed.first_touch(
                order.symbol, buy, after, until, stop=order.stop_price, placed=order.created_at
            )
            # A stop becomes a market order: it pays the slippage a market order does.
            return touched and (self._slipped(touched[0], order.side), touched[1])
        return self.feed.first_touch(
            order.symbol, buy, after, until, limit=order.limit_price, placed=order.created_at
        )


def _not_a_pair(stop: OrderRequest, take_profit: OrderRequest) -> str | None:
    if stop.type is not OrderType.STOP or take_profit.type is not OrderType.LIMIT:
        return "a stop and a limit (the take-profit), in that order"
    if (stop.symbol, stop.side, stop.qty) != (
        take_profit.symbol,
        take_profit.side,
        take_profit.qty,
    ):
        return "both legs close the same quantity of the same symbol"
    if stop.client_order_id == take_profit.client_order_id:
        return "each leg has its own client order id"
    return None
