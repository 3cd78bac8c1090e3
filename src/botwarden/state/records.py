"""How one bot's domain objects map onto the store's collections, both ways.

Live (loaded at open, what recovery and the loop need):
    positions/<position id>     Position
    intents/<client order id>   OrderIntent not yet terminal
    signals/<signal id>         {"at": time processed}
    cooldowns/<symbol>          {"until": time}
    meta/bot                    BotRecord
    meta/ledger                 Ledger (order, event and trade sequences, the fills cursor)
    meta/risk                   RiskState
    meta/last_bar               {"at": time of the last processed bar}
    meta/pnl                    PnlBook (every closed trade added up, and today's)
    meta/history_sweep          HistorySweep (how far retention has walked the history)

History (read by key or by range, never loaded at open):
    past_intents/<client order id>  OrderIntent, terminal (moved here by the write
                                    that made it so)
    fills/<venue trade id>          Fill
    trades/<exit time>:<fill id>    Trade, closed (by exit time, UTC, fixed width)
    trade_days/<YYYY-MM-DD>         PnlSum of the trades closed on that trading day
    events/<seq, 12 digits>         Event

Every record is validated on the way in, so a hand-edited or foreign record is
reported with its collection, key and field instead of surfacing later as a wrong
number in a trading decision.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from botwarden.domain.models import (
    BotRecord,
    DomainModel,
    Event,
    Fill,
    Ledger,
    PnlBook,
    PnlSum,
    Position,
    RiskState,
    SignalState,
    UtcDatetime,
)
from botwarden.domain.orders import OrderIntent
from botwarden.domain.positions import Trade
from botwarden.errors import StateError
from botwarden.state.base import Encoded, Snapshot

M = TypeVar("M", bound=BaseModel)

BOT, RISK, LAST_BAR, LEDGER, PNL = "bot", "risk", "last_bar", "ledger", "pnl"
SWEEP = "history_sweep"
"""Keys of the singletons in the `meta` collection."""


class Stamp(DomainModel):
    """The document of a processed signal or of the last bar: when it happened."""

    at: UtcDatetime


class Until(DomainModel):
    """The document of a cooldown: until when it lasts."""

    until: UtcDatetime


class HistorySweep(DomainModel):
    """How far retention (`state.history.keep`) has walked the bot's history: a round
    walks each history collection once, a page per write, from where it stopped."""

    before: UtcDatetime
    """This round removes what ended before this time."""
    collection: str | None = None
    """The collection being walked; None: the round is over."""
    after: str = ""
    """The last key walked in it."""
    removed: int = Field(default=0, ge=0)
    """Records this round has removed so far."""
    done_at: UtcDatetime | None = None
    """When the last round ended (the next one is due a day later)."""


def document(model: BaseModel) -> dict[str, Any]:
    """A domain object as a JSON-able document (decimals as strings, times ISO 8601)."""
    return model.model_dump(mode="json")


def stored(model: BaseModel) -> Mapping[str, Any]:
    """`document(model)` as a change puts it: its JSON text made at once. A float NaN
    or infinity (in metadata, say) takes the long way, for `encode` to refuse it (a
    model that would dump one as null, too)."""
    if model.model_config.get("ser_json_inf_nan") != "constants":
        return document(model)
    text = model.model_dump_json()
    if "NaN" in text or "Infinity" in text:  # (or a string holding the word: either way)
        return document(model)
    return Encoded(text)


@dataclass
class BotState:
    """Everything one bot holds, as domain objects."""

    bot: BotRecord
    positions: dict[str, Position] = field(default_factory=dict)
    intents: dict[str, OrderIntent] = field(default_factory=dict)
    """The intents not yet terminal, oldest first; terminal ones are history."""
    signals: dict[str, datetime] = field(default_factory=dict)
    """Processed signal id -> when, oldest first (pruning by age reads only the front)."""
    cooldowns: dict[str, datetime] = field(default_factory=dict)
    risk: RiskState = field(default_factory=RiskState)
    last_bar: datetime | None = None
    ledger: Ledger = field(default_factory=Ledger)
    pnl: PnlBook | None = None
    """Every closed trade added up; None until the bot has a trades history (a state
    of layout 1: built from its trade events at its next start)."""
    history_sweep: HistorySweep | None = None
    """Where retention's walk of the history is; None: it never walked it."""

    @classmethod
    def empty(cls, flow_id: str) -> BotState:
        return cls(bot=BotRecord(bot_id=flow_id))

    def signal_state(self) -> SignalState:
        return SignalState(
            processed=dict(self.signals),
            cooldowns=dict(self.cooldowns),
            last_bar_time=self.last_bar,
        )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Decoding 10,000 positions allocates ~100,000 objects, none in a cycle; letting the
    cyclic collector scan them over and over as they appear made loading take 75 to
    130 ms instead of a steady 72 (benchmarks/state_store.py). Reference counting
    still frees everything; the collector resumes right after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def decode(snapshot: Snapshot, flow_id: str, where: str) -> BotState:
    """Domain objects from a store snapshot; `StateError` names any invalid record."""
    with _cyclic_gc_paused():
        return _decode(snapshot, flow_id, where)


def _invalid(
    where: str, flow_id: str, collection: str, key: str, error: ValidationError
) -> StateError:
    problem = error.errors()[0]
    at = ".".join(str(part) for part in problem["loc"]) or "(document)"
    return StateError(
        f"{where}: bot {flow_id}: record {collection}/{key} is invalid at {at}: {problem['msg']}"
    )


def parse_record(
    model: type[M], text: str, where: str, flow_id: str, collection: str, key: str
) -> M:
    """One record read from the history; `StateError` names it if it is invalid or
    filed under a key other than its id."""
    try:
        record = model.model_validate_json(text)
    except ValidationError as error:
        raise _invalid(where, flow_id, collection, key, error) from None
    id_field = _ID_FIELDS.get(collection)
    if id_field is not None and getattr(record, id_field) != key:
        raise _misfiled(where, flow_id, collection, key, id_field, getattr(record, id_field))
    return record


def _misfiled(
    where: str, flow_id: str, collection: str, key: str, id_field: str, found: object
) -> StateError:
    return StateError(
        f"{where}: bot {flow_id}: record {collection}/{key} holds {id_field} {found!r};"
        " the key must equal it"
    )


_ID_FIELDS = {
    "positions": "id",
    "intents": "client_order_id",
    "past_intents": "client_order_id",
    "fills": "trade_id",
}
"""The field each collection's records are filed under."""

HISTORY_MODELS: dict[str, type[BaseModel]] = {
    "past_intents": OrderIntent,
    "fills": Fill,
    "trades": Trade,
    "trade_days": PnlSum,
    "events": Event,
}
"""The model of each history collection's records."""


def _decode(snapshot: Snapshot, flow_id: str, where: str) -> BotState:
    def invalid(collection: str, key: str, error: ValidationError) -> StateError:
        return _invalid(where, flow_id, collection, key, error)

    def parse_all(model: type[M], collection: str, id_field: str | None = None) -> dict[str, M]:
        # One comprehension for the hot path (10,000 positions); the failing record is
        # looked for only once something failed.
        records = snapshot[collection]
        try:
            parsed = {key: model.model_validate_json(text) for key, text in records.items()}
        except ValidationError:
            for key, text in records.items():
                try:
                    model.model_validate_json(text)
                except ValidationError as error:
                    raise invalid(collection, key, error) from None
            raise
        if id_field is not None:
            # A record filed under another key would be a second copy of the same
            # position or order the moment the bot saves it again.
            for key, record in parsed.items():
                if getattr(record, id_field) != key:
                    found = getattr(record, id_field)
                    raise _misfiled(where, flow_id, collection, key, id_field, found)
        return parsed

    def parse_meta(model: type[M], key: str) -> M | None:
        text = snapshot["meta"].get(key)
        if text is None:
            return None
        try:
            return model.model_validate_json(text)
        except ValidationError as error:
            raise invalid("meta", key, error) from None

    def in_order(records: dict[str, M], when: Callable[[M], object]) -> dict[str, M]:
        # One order whatever the backend's (a Redis hash has its own): oldest first,
        # ties by key, as the bot made them. The engine walks these in this order, so a
        # bot does the same things on every store.
        return dict(sorted(records.items(), key=lambda item: (when(item[1]), item[0])))

    positions = parse_all(Position, "positions", "id")
    # A store of layout 1 read by a command that only looks (it is upgraded by the
    # first writer) still holds its terminal intents here: they are history.
    intents = {
        key: intent
        for key, intent in parse_all(OrderIntent, "intents", "client_order_id").items()
        if not intent.status.is_terminal
    }
    signals = parse_all(Stamp, "signals")
    last_bar = parse_meta(Stamp, LAST_BAR)
    return BotState(
        bot=parse_meta(BotRecord, BOT) or BotRecord(bot_id=flow_id),
        positions=_owned(in_order(positions, lambda p: p.entry_time), flow_id, where),
        intents=in_order(intents, lambda i: i.created_at),
        signals={key: stamp.at for key, stamp in in_order(signals, lambda s: s.at).items()},
        cooldowns={
            key: until.until for key, until in sorted(parse_all(Until, "cooldowns").items())
        },
        risk=parse_meta(RiskState, RISK) or RiskState(),
        last_bar=last_bar.at if last_bar else None,
        ledger=parse_meta(Ledger, LEDGER) or Ledger(),
        pnl=parse_meta(PnlBook, PNL),
        history_sweep=parse_meta(HistorySweep, SWEEP),
    )


def event_key(seq: int) -> str:
    return f"{seq:012d}"


def time_key(at: datetime) -> str:
    """A time as a key that sorts as time does (UTC, fixed width, to the microsecond;
    the year padded by hand: `%Y` is not below 1000)."""
    at = at.astimezone(UTC)
    return f"{at.year:04d}{at:%m%dT%H%M%S.%f}Z"


def trade_key(trade: Trade) -> str:
    return f"{time_key(trade.exit_time)}:{trade.exit_fill}"


def _owned(positions: dict[str, Position], flow_id: str, where: str) -> dict[str, Position]:
    for key, position in positions.items():
        if position.bot_id != flow_id:
            raise StateError(
                f"{where}: bot {flow_id}: record positions/{key} belongs to bot {position.bot_id!r}"
            )
    return positions
