"""A long past for a real trial (`torture --real --history N`): the bot's closed round
trips, written on both sides before its first start.

A bot that had traded for months under an old instance (epoch 1) and stopped leaves
two records of it: the exchange's book and its own state. This writes both, as that
bot would have left them, so that every promise (checked from the venue's side) holds
over the past unchanged and a trial shows whether a bot restarted beside a long
history recovers exactly as one without:

- the book: each round trip's entry and exit, market orders sent through the book's
  own `submit` at their times in the past (filled at the price path's price then);
- the state, through its `StateManager`: the instance of epoch 1 and its "starting as
  instance" event, each order as a FILLED intent, its fill as the bot's venue adapter
  reads it from the exchange's API (the emulator's ids), the trade it closed with its
  trading day and the bot's PnL book, the fill and trade events, the ledger's order
  and event sequences, and the fills cursor the API handed out after the last fill
  (what a bot that had read them keeps). A few thousand records a change.

Written in parts, each read back through the API while its orders are the exchange's
newest (the adapters name a fill's order from listings of the newest, an older one
with a request of its own), the exchange nearly frozen meanwhile (its clock must not
run days ahead while the past is written).

`N` counts intents and fills (as benchmarks/history.py does): N / 4 round trips, one
every few hours in the bot's markets, ending a month before the trial's exchange
starts (further than its clock is ever skewed), flat. Small sizes: an entry of the
past never allows the venue more than the trial's own entries (I1).

After the trial the past must still be there as written (`not_kept`): every
record of it, or, once the state was lost and rebuilt from the venue, its fills,
trades and trading days (replayed from the venue's fills; its intents and events went
with the lost state).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from botwarden.domain.models import BotRecord, BotStatus, Fill, Instance, Side
from botwarden.domain.orders import EntryPlan, OrderIntent, OrderType, Purpose
from botwarden.domain.positions import apply_fill
from botwarden.engine.ids import ClientIds
from botwarden.state.base import HISTORY
from botwarden.torture.processes import Exchange
from botwarden.torture.real_venues import KEY, SECRET, RealVenue
from botwarden.venues.base import OrderRequest
from botwarden.venues.paper.book import PaperBook
from botwarden.venues.settings import CcxtVenueSettings

if TYPE_CHECKING:
    from botwarden.config import BotConfig
    from botwarden.state.manager import StateManager

EPOCH = 1
"""The old instance the past was traded under: the trial's first start fences above it."""
ENDS_BEFORE = timedelta(days=30)
"""The last round trip's exit, before the exchange's start (its clock is skewed by two
weeks at most)."""
EVERY = timedelta(hours=3)
"""One round trip per this much time: 10,000 records are 2,500 round trips, ten months."""
HELD = (timedelta(minutes=30), timedelta(hours=2))
NOTIONAL = Decimal(500)
"""Each past entry's value: a quarter of the trial's own (`order: {notional: 2000}`)."""
TRIPS_PER_CHANGE = 500
"""Round trips written to the state in one change: 2,000 intents and fills with their
trades, trading days and events."""
STILL = 0.001
"""The exchange's speed while the past is read back: its clock stays where it was."""
RECORDS_PER_TRIP = 4
BYTES_PER_RECORD = 4096
"""Room on a trial's tmpfs per record of its past (a record and its share of the
trades and events take about 1 KiB in the SQLite store; a damaged state kept aside
and its rebuild take as much again, twice)."""
REBUILT_FROM_THE_VENUE = ("fills", "trades", "trade_days")
"""What a state lost and rebuilt from the venue has again of the past."""


@dataclass(frozen=True)
class RoundTrip:
    symbol: str
    """As the bot names it."""
    side: Side
    entry_at: datetime
    exit_at: datetime
    entry_id: str
    exit_id: str
    qty: Decimal | None = None
    """Set when sent, from the price then."""


@dataclass
class Past:
    """What was written of the past, to find it again after the trial."""

    trips: list[RoundTrip]
    records: dict[str, dict[str, str]]
    """History collection -> key -> the record as stored."""
    seconds: float
    """How long writing it took."""

    def describe(self) -> str:
        first, last = self.trips[0], self.trips[-1]
        held = ", ".join(f"{name} {len(kept):,}" for name, kept in self.records.items())
        return (
            f"a past of {len(self.trips):,} round trips, {first.entry_at:%Y-%m-%d} to"
            f" {last.exit_at:%Y-%m-%d} ({held}), seeded in {self.seconds:.1f} s"
        )

    def orders(self) -> frozenset[str]:
        return frozenset(cid for t in self.trips for cid in (t.entry_id, t.exit_id))

    def missing(self, now: dict[str, dict[str, str]], rebuilt: bool) -> list[str]:
        """What of the past is missing from the history `now`, or other than written."""
        problems = []
        for name in REBUILT_FROM_THE_VENUE if rebuilt else HISTORY:
            held = now.get(name, {})
            missing = [key for key in self.records[name] if key not in held]
            changed = [k for k, v in self.records[name].items() if k in held and held[k] != v]
            for what, keys in (("missing", missing), ("rewritten", changed)):
                if keys:
                    problems.append(f"{name}: {len(keys):,} {what} (the first: {keys[0]})")
        return problems


def plan(
    symbols: list[str], ids: ClientIds, records: int, now: datetime, rng: random.Random
) -> list[RoundTrip]:
    """`records / 4` round trips, oldest first: their markets, sides, times and ids."""
    count = max(1, records // RECORDS_PER_TRIP)
    start = now - ENDS_BEFORE - HELD[1] - count * EVERY
    trips = []
    for n in range(count):
        entry_at = start + n * EVERY + rng.uniform(0, 1) * (EVERY - HELD[1])
        exit_at = entry_at + HELD[0] + rng.uniform(0, 1) * (HELD[1] - HELD[0])
        side, symbol = rng.choice([Side.LONG, Side.SHORT]), rng.choice(symbols)
        trips.append(
            RoundTrip(symbol, side, entry_at, exit_at, ids.make(2 * n), ids.make(2 * n + 1))
        )
    return trips


def trade_in_book(
    book: PaperBook, trips: list[RoundTrip], book_symbol: Callable[[str], str]
) -> list[RoundTrip]:
    """Each round trip's two market orders, sent to the book at their times (an exit
    only closes: reduce-only where the exchange honours it, as the bot sends one),
    sized from the price then."""
    sent = []
    for trip in trips:
        where = book_symbol(trip.symbol)
        trip = replace(trip, qty=_size(book, where, trip.entry_at))
        for cid, side, at, closing in (
            (trip.entry_id, trip.side.entry_order_side, trip.entry_at, False),
            (trip.exit_id, trip.side.exit_order_side, trip.exit_at, True),
        ):
            request = OrderRequest(
                client_order_id=cid,
                symbol=where,
                side=side,
                type=OrderType.MARKET,
                qty=trip.qty,
                reduce_only=closing,
            )
            book.submit(request, at)
        sent.append(trip)
    return sent


def _size(book: PaperBook, book_symbol: str, at: datetime) -> Decimal:
    if book_symbol not in book.feed.instruments:
        listed = ", ".join(book.feed.symbols())
        raise ValueError(f"the exchange lists no {book_symbol!r}, only {listed}")
    instrument = book.feed.instrument(book_symbol)
    step = instrument.qty_step or Decimal(1)
    lots = (NOTIONAL / book.feed.price(book_symbol, at) / step).to_integral_value(ROUND_FLOOR)
    return max(lots, Decimal(1)) * step


async def read_fills(config: BotConfig, cursor: str | None) -> tuple[dict[str, Fill], str | None]:
    """The fills the exchange's API lists after `cursor`, through the bot's own venue
    adapter (named as the bot names them), by client order id, and the cursor after
    the last."""
    from botwarden.venues.factory import open_venue

    changes: dict[str, object] = {"api_key": SecretStr(KEY), "secret_key": SecretStr(SECRET)}
    if isinstance(config.venue, CcxtVenueSettings):
        # A trial's venue clock is skewed on purpose: the bot says so, not the harness.
        changes["clock_tolerance"] = timedelta(days=365)
    settings = config.venue.model_copy(update=changes)
    venue = open_venue(settings, config.bot_id, config.base_dir, symbols=config.symbols)
    await venue.connect()
    try:
        by_order: dict[str, list[Fill]] = defaultdict(list)
        while True:
            page = await venue.fills(cursor=cursor)
            for fill in page.fills:
                by_order[fill.client_order_id].append(fill)
            cursor = page.cursor
            if not page.more:
                break
    finally:
        await venue.close()
    several = [cid for cid, fills in by_order.items() if len(fills) != 1]
    if several:
        raise ValueError(f"order {several[0]} has {len(by_order[several[0]])} fills, not one")
    return {cid: fills[0] for cid, fills in by_order.items()}, cursor


def _intent(trip: RoundTrip, fill: Fill, purpose: Purpose, at: datetime) -> OrderIntent:
    entry = purpose is Purpose.ENTRY
    bar = at.replace(minute=0, second=0, microsecond=0)
    intent = OrderIntent(
        client_order_id=fill.client_order_id,
        symbol=trip.symbol,
        side=fill.side,
        type=OrderType.MARKET,
        qty=trip.qty,
        purpose=purpose,
        position_id=None if entry else f"pos-{trip.entry_id}",
        plan=EntryPlan(signal_id=f"past:{trip.symbol}:{fill.side}:{bar.isoformat()}")
        if entry
        else None,
        created_at=at,
        updated_at=at,
    )
    sent = intent.submit(at, EPOCH).accept(at, fill.venue_order_id)
    return sent.fill(fill.time, fill.qty, fill.price, fill.venue_order_id)


async def write_instance(manager: StateManager, config: BotConfig, trips: list[RoundTrip]) -> None:
    """The instance of epoch 1 that traded the past, and its start; stopped since."""
    await manager.claim(EPOCH)  # (a new state: granted EPOCH itself)
    began, ended = trips[0].entry_at - timedelta(minutes=1), trips[-1].exit_at
    async with manager.transaction() as tx:
        instance = Instance(host="the-past", pid=1, epoch=EPOCH, started_at=began)
        tx.add_event(
            began, "status", f"starting as instance {EPOCH} (pid 1)", {"instance": EPOCH}, True
        )
        tx.set_first_order_at(trips[0].entry_at)
        tx.save_bot_record(
            BotRecord(
                bot_id=config.bot_id,
                status=BotStatus.STOPPED,
                last_run_at=began,
                last_updated_at=ended,
                heartbeat_at=ended,
                seen_at=ended,
                instance=instance,
            )
        )


async def write_trips(
    manager: StateManager,
    config: BotConfig,
    trips: list[RoundTrip],
    fills: dict[str, Fill],
    cursor: str | None,
) -> None:
    """Round trips in the bot's state (with the fills cursor after them, if given): one
    change."""
    unlisted = [cid for t in trips for cid in (t.entry_id, t.exit_id) if cid not in fills]
    if unlisted:
        raise ValueError(f"the exchange's API lists no fill of {unlisted[0]}")
    ids = ClientIds(config.bot_id, EPOCH)
    async with manager.transaction() as tx:
        for trip in trips:
            entry, exit_ = fills[trip.entry_id], fills[trip.exit_id]
            position = apply_fill(
                None, entry, bot_id=config.bot_id, new_position_id=f"pos-{trip.entry_id}"
            ).position
            trade = apply_fill(position, exit_, bot_id=config.bot_id, new_position_id="").trade
            for fill, purpose, at in (
                (entry, Purpose.ENTRY, trip.entry_at),
                (exit_, Purpose.EXIT, trip.exit_at),
            ):
                seq = tx.next_order_seq()
                if ids.make(seq) != fill.client_order_id:
                    raise ValueError(f"{fill.client_order_id} is not order number {seq}")
                tx.save_order(_intent(trip, fill, purpose, at))
                tx.record_fill(fill)
                tx.add_event(
                    fill.time,
                    "fill",
                    f"{fill.side} {fill.qty} {trip.symbol} at {fill.price} (the past)",
                    {"trade_id": fill.trade_id, "client_order_id": fill.client_order_id},
                    True,
                )
            day = config.risk.trading_day(trade.exit_time)
            tx.record_trade(trade, day, await manager.day_pnl(day))
            tx.add_event(
                trade.exit_time,
                "trade",
                f"closed {trade.qty} {trade.symbol} {trade.side}, PnL {trade.pnl:.2f}",
                trade.model_dump(mode="json"),
                True,
            )
        if cursor is not None:
            tx.set_fills_cursor(cursor)


async def read_history(manager: StateManager) -> dict[str, dict[str, str]]:
    """The bot's whole history, as stored."""
    store, flow = manager.store, manager.flow_id
    return {name: dict(await store.scan(flow, name)) for name in HISTORY}


class SeedingFailed(Exception):
    """The past could not be written: the trial fails, saying so."""


def seed(
    config_path: Path,
    venue: RealVenue,
    exchange: Exchange,
    records: int,
    rng: random.Random,
    speed: float,
) -> Past:
    """The trial's past on both sides, in parts: sent to the book (the exchange
    stopped: one process owns a book), then read back through the exchange's API
    (started nearly frozen) while they are its newest orders (`RealVenue.read_back`),
    and written to the state `TRIPS_PER_CHANGE` round trips a change. The exchange is
    left running at `speed`."""
    from botwarden.config import load_config
    from botwarden.state.manager import StateManager

    started = time.perf_counter()

    async def write() -> tuple[list[RoundTrip], dict[str, dict[str, str]]]:
        sent: list[RoundTrip] = []
        cursor = None
        async with StateManager.from_config(config.bot_id, config) as manager:
            await write_instance(manager, config, trips)
            for first in range(0, len(trips), venue.read_back):
                book = exchange.open_book()
                try:
                    part = trade_in_book(
                        book, trips[first : first + venue.read_back], venue.book_symbol
                    )
                finally:
                    book.close()
                exchange.start(STILL)
                try:
                    fills, cursor = await read_fills(config, cursor)
                finally:
                    exchange.stop()
                for at in range(0, len(part), TRIPS_PER_CHANGE):
                    last = at + TRIPS_PER_CHANGE >= len(part)  # the cursor goes with the last
                    change = part[at : at + TRIPS_PER_CHANGE]
                    await write_trips(manager, config, change, fills, cursor if last else None)
                sent += part
            return sent, await read_history(manager)

    try:
        config = load_config(config_path)
        ids = ClientIds(config.bot_id, EPOCH)
        trips = plan(config.symbols, ids, records, datetime.now(UTC), rng)
        sent, written = asyncio.run(write())
        exchange.start(speed)
    except Exception as error:
        raise SeedingFailed(
            f"seeding the trial's past of {records:,} records failed:"
            f" {type(error).__name__}: {error}"
        ) from error
    return Past(sent, written, time.perf_counter() - started)


def not_kept(config_path: Path, seeded: Past) -> tuple[list[str], bool]:
    """What of the past the bot's state does not hold as written, and whether the
    state was rebuilt from the venue (lost meanwhile)."""
    from botwarden.config import load_config
    from botwarden.state.manager import StateManager

    config = load_config(config_path)

    async def look() -> tuple[list[str], bool]:
        async with StateManager.from_config(config.bot_id, config) as manager:
            rebuilt = (await manager.snapshot()).ledger.lost_before_epoch > 0
            return seeded.missing(await read_history(manager), rebuilt), rebuilt

    return asyncio.run(look())


def disk_size(records: int) -> str:
    """A trial's tmpfs for the state (`torture/disks.py`), with room for a past of
    `records`: the state beside it, a rebuild's second copy and the WAL."""
    return f"{2 + records * BYTES_PER_RECORD // 2**20}m"
