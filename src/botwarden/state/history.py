"""A bot's history in its store: what it did, read by key or by range, never whole.

Terminal intents, fills and events are written in the same atomic changes as the
live state they come with (`StateManager`), but only the live state is loaded at
open. This is how they are read back: by the bot itself (is this fill known? which
intent was this?), by commands that only look, and by the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import BaseModel

from botwarden.domain.models import Event, Fill, PnlSum
from botwarden.domain.orders import OrderIntent
from botwarden.domain.positions import Trade
from botwarden.state.base import KeyRange, StateStore
from botwarden.state.records import (
    HISTORY_MODELS,
    BotState,
    M,
    event_key,
    parse_record,
    time_key,
)

_PAGE = 500
"""Records read per request when walking a long range."""


@dataclass(frozen=True)
class History:
    store: StateStore
    flow_id: str

    def _parse(self, model: type[M], collection: str, key: str, text: str) -> M:
        return parse_record(model, text, self.store.describe(), self.flow_id, collection, key)

    def parse(self, collection: str, key: str, text: str) -> BaseModel:
        """A record of the history as its collection's model (`StateError` names it if
        it is invalid)."""
        return self._parse(HISTORY_MODELS[collection], collection, key, text)

    async def order(self, client_order_id: str) -> OrderIntent | None:
        """The terminal intent under this id, if there is one."""
        return (await self.orders_by_id([client_order_id])).get(client_order_id)

    async def orders_by_id(self, client_order_ids: Sequence[str]) -> dict[str, OrderIntent]:
        """The terminal intents under these ids, those there are."""
        found = await self.store.get(self.flow_id, "past_intents", client_order_ids)
        return {
            key: self._parse(OrderIntent, "past_intents", key, text) for key, text in found.items()
        }

    async def orders(self) -> list[OrderIntent]:
        """Every terminal intent, oldest first (all of them: for tools and checks)."""
        records = await self.store.scan(self.flow_id, "past_intents")
        intents = [self._parse(OrderIntent, "past_intents", key, text) for key, text in records]
        return sorted(intents, key=lambda i: (i.created_at, i.client_order_id))

    async def holds(self, collection: str) -> bool:
        """Whether this history collection holds any record: a read of one record."""
        return bool(await self.store.scan(self.flow_id, collection, KeyRange(limit=1)))

    async def traded(self) -> bool:
        """Whether the bot has any fill or terminal intent."""
        return await self.holds("fills") or await self.holds("past_intents")

    async def has_fill(self, trade_id: str) -> bool:
        return bool(await self.store.get(self.flow_id, "fills", [trade_id]))

    async def fills(self) -> list[Fill]:
        """Every fill, oldest first (all of them: for tools and checks)."""
        records = await self.store.scan(self.flow_id, "fills")
        fills = [self._parse(Fill, "fills", key, text) for key, text in records]
        return sorted(fills, key=lambda f: (f.time, f.trade_id))

    async def events(
        self, after: int | None = None, limit: int | None = None, newest_first: bool = False
    ) -> list[Event]:
        """The events after sequence `after` (all without it), oldest first or newest
        first, at most `limit`."""
        start = "" if after is None else event_key(after + 1)
        within = KeyRange(start, limit=limit, newest_first=newest_first)
        records = await self.store.scan(self.flow_id, "events", within)
        return [self._parse(Event, "events", key, text) for key, text in records]

    async def trades(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Trade]:
        """The closed trades whose exit is in [`since`, `until`), in exit order (newest
        first if asked), at most `limit`: a key range, whatever the history holds."""
        within = KeyRange(
            time_key(since) if since else "",
            time_key(until) if until else None,
            limit=limit,
            newest_first=newest_first,
        )
        records = await self.store.scan(self.flow_id, "trades", within)
        return [self._parse(Trade, "trades", key, text) for key, text in records]

    async def day(self, day: date) -> PnlSum | None:
        """The trades closed on trading `day`, added up (None: none closed then)."""
        found = await self.store.get(self.flow_id, "trade_days", [day.isoformat()])
        text = found.get(day.isoformat())
        return None if text is None else self._parse(PnlSum, "trade_days", day.isoformat(), text)

    async def days(self, since: date | None = None) -> dict[date, PnlSum]:
        """Each trading day's trades added up, oldest first (from `since`)."""
        start = since.isoformat() if since else ""
        records = await self.store.scan(self.flow_id, "trade_days", KeyRange(start))
        return {
            date.fromisoformat(key): self._parse(PnlSum, "trade_days", key, text)
            for key, text in records
        }

    async def recent_fills(self, limit: int) -> list[Fill]:
        """The newest `limit` fills, oldest first. Fills are filed by the venue's trade
        id, which says nothing of time, so they are found through the event log's
        newest "fill" events, walked back a page at a time (or read whole, when there
        are no more than asked for)."""
        if await self.store.count(self.flow_id, "fills") <= limit:
            return await self.fills()
        trade_ids: list[str] = []
        stop: str | None = None
        while len(trade_ids) < limit:
            within = KeyRange(stop=stop, limit=_PAGE, newest_first=True)
            page = await self.store.scan(self.flow_id, "events", within)
            for key, text in page:
                event = self._parse(Event, "events", key, text)
                if event.kind == "fill" and "trade_id" in event.data:
                    trade_ids.append(str(event.data["trade_id"]))
            if len(page) < _PAGE:
                break
            stop = page[-1][0]
        found = await self.store.get(self.flow_id, "fills", trade_ids[:limit])
        fills = [self._parse(Fill, "fills", key, text) for key, text in found.items()]
        return sorted(fills, key=lambda f: (f.time, f.trade_id))


@dataclass
class WholeState(BotState):
    """A bot's live state with its whole history beside it: for the promise checks
    and tools, never for the loop (it costs what the history holds)."""

    fills: dict[str, Fill] = field(default_factory=dict)
    """Every fill by trade id, oldest first."""
    events: dict[str, Event] = field(default_factory=dict)
    """Every event by key (its sequence, zero-padded), oldest first."""

    @classmethod
    async def read(cls, state: BotState, history: History) -> WholeState:
        """`state` with `history`; `intents` then holds every intent, terminal ones too."""
        every = {**state.intents, **{i.client_order_id: i for i in await history.orders()}}
        intents = dict(sorted(every.items(), key=lambda kv: (kv[1].created_at, kv[0])))
        fills = {f.trade_id: f for f in await history.fills()}
        events = {event_key(e.seq): e for e in await history.events()}
        fields = {name: getattr(state, name) for name in state.__dataclass_fields__}
        return cls(**{**fields, "intents": intents}, fills=fills, events=events)

    @classmethod
    def live_only(cls, state: BotState) -> WholeState:
        """`state` alone, no history: enough for I2 (positions and their stops)."""
        return cls(**{name: getattr(state, name) for name in state.__dataclass_fields__})
