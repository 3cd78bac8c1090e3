"""Retention: a bot's history kept as long as `state.history.keep` says, and never
anything recovery needs, whatever its age.

What is kept whatever its age:
- the live state: open positions, intents not yet terminal, the ledger, the risk
  state (retention reads them, it never writes them);
- the orders of what is still live: a live intent, an open position's entry, stop
  and take-profit, an order the venue still lists as open (recovery looks each of
  these up by its client order id), and the terminal intents of an open position;
- every fill the venue's fill listing has not been read past: a fill is removed only
  once the ledger holds a fills cursor, and only between two reads of the listing
  (`StateManager.keep_history` is called after one completed), so a fill the venue
  could report again is still there to be recognized (promise I3).

The rest goes once it ended more than `keep` ago: a terminal intent by its last
update, a fill by its time, a trade by its exit, a trading day two days after its
date, an event by its time. The event log is in the order it was written: its walk stops at the
first event that is still kept, so an event stamped by a venue clock that ran fast
keeps the ones after it a little longer, never the other way round.

A round walks each history collection once, one page per atomic write: the page's
removals and how far the walk got (`meta/history_sweep`) in the same change. A crash
loses at most a page's walk, which the next round does again. Each call does at most
`budget` records, so a first round over a million records is spread over many passes
of the loop instead of stalling one. A round is due a day after the last one ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botwarden.state.base import KeyRange, Records, StateStore
from botwarden.state.records import BotState, HistorySweep, time_key

ROUND = ("past_intents", "fills", "events", "trades", "trade_days")
"""The collections a round walks, in this order."""

EVERY_ROUND = timedelta(days=1)
"""How long after a round ended the next is due."""

PAGE = 500
"""Records read, and at most removed, per write."""

DAY_MARGIN = timedelta(days=2)

Parse = Callable[[str, str, str], Any]
"""(collection, key, JSON text) -> the record as its model."""


@dataclass(frozen=True)
class Kept:
    """What the history keeps whatever its age, as the live state says."""

    orders: frozenset[str]
    """Client order ids of live intents, open positions' orders and the venue's open
    orders."""
    positions: frozenset[str]
    """Ids of the open positions."""
    fills_read: bool
    """The ledger holds a fills cursor: a fill before it cannot be reported again."""

    @classmethod
    def of(cls, state: BotState, venue_open: Iterable[str] = ()) -> Kept:
        orders = set(state.intents) | set(venue_open)
        for position in state.positions.values():
            orders.add(position.id.removeprefix("pos-"))  # (its entry's client order id)
            orders.update(
                cid
                for cid in (position.stop_client_order_id, position.take_profit_client_order_id)
                if cid
            )
        return cls(
            frozenset(orders), frozenset(state.positions), state.ledger.fills_cursor is not None
        )


def last_day(before: datetime) -> str:
    """The newest trading day retention removes: two days before `before`'s date, since
    a trading day in the bot's zone (or starting late) may end a day after UTC's."""
    return (before - DAY_MARGIN).date().isoformat()


def removable(collection: str, key: str, record: Any, before: datetime, kept: Kept) -> bool:
    """Whether retention may remove this history record (a trade or a day: None, its
    key says it): it ended before `before` and recovery does not need it."""
    if collection == "past_intents":
        return (
            record.updated_at < before
            and key not in kept.orders
            and record.position_id not in kept.positions
        )
    if collection == "fills":
        return (
            kept.fills_read and record.time < before and record.client_order_id not in kept.orders
        )
    if collection == "events":
        return record.time < before
    if collection == "trades":
        return key < time_key(before)
    if collection == "trade_days":
        return key < last_day(before)
    raise ValueError(f"retention does not walk {collection!r}")


def _range(collection: str, after: str, before: datetime) -> KeyRange:
    """The next page of `collection` after key `after` (the walk reads `after` again:
    a range starts at a key, inclusive, and no key is the next one after it)."""
    stop = {"trades": time_key(before), "trade_days": last_day(before)}.get(collection)
    return KeyRange(after, stop, limit=PAGE + 1)


@dataclass(frozen=True)
class Page:
    """One page of a round's walk: what it removes and where the walk goes on."""

    collection: str
    removed: list[str]
    """Keys of `collection` it removes."""
    sweep: HistorySweep


async def read_page(store: StateStore, flow_id: str, sweep: HistorySweep) -> Records:
    """The records of the page after `sweep`'s place."""
    collection = sweep.collection
    assert collection is not None, "a round that is over has no next page"
    records = await store.scan(flow_id, collection, _range(collection, sweep.after, sweep.before))
    if records and records[0][0] == sweep.after:
        records = records[1:]
    return records[:PAGE]


def decide(sweep: HistorySweep, records: Records, kept: Kept, now: datetime, parse: Parse) -> Page:
    """What of a page read by `read_page` goes, and where the walk goes on. `parse`
    reads a record as its model, or raises `StateError` naming it."""
    collection = sweep.collection
    assert collection is not None, "a round that is over has no next page"
    removed: list[str] = []
    ended = len(records) < PAGE
    by_key = collection in ("trades", "trade_days")
    for key, text in records:
        record = None if by_key else parse(collection, key, text)
        if removable(collection, key, record, sweep.before, kept):
            removed.append(key)
        elif collection == "events":
            ended = True  # (the log's order: the first event kept ends its walk)
            break
    count = sweep.removed + len(removed)
    if not ended:
        return Page(collection, removed, sweep.evolve(after=records[-1][0], removed=count))
    following = ROUND.index(collection) + 1
    if following < len(ROUND):
        return Page(
            collection, removed, sweep.evolve(collection=ROUND[following], after="", removed=count)
        )
    return Page(
        collection, removed, sweep.evolve(collection=None, after="", removed=count, done_at=now)
    )


def due(sweep: HistorySweep | None, now: datetime, keep: timedelta) -> HistorySweep | None:
    """The round to go on with now: the one under way, a new one a day after the last
    ended (or at once if none ran, or if the clock went back past it), or None."""
    if sweep is not None and sweep.collection is not None:
        return sweep
    done_at = sweep.done_at if sweep is not None else None
    if done_at is not None and done_at <= now < done_at + EVERY_ROUND:
        return None
    return HistorySweep(before=now - keep, collection=ROUND[0], done_at=done_at)
