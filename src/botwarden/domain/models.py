"""The bot's durable facts as plain, immutable data.

Nothing here does I/O or reads a clock: every time comes in as an argument. Money and
quantities are `Decimal` (a venue's prices and lot sizes are decimal; floats drift),
and every timestamp is timezone-aware and normalised to UTC on the way in.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)


def _to_utc(value: datetime) -> datetime:
    # (UTC already, the most common case by far: as it is, which is what astimezone gives)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A datetime that must carry a timezone; stored and compared in UTC."""

Qty = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
Price = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
Amount = Annotated[Decimal, Field(allow_inf_nan=False)]


class DomainModel(BaseModel):
    """Frozen, strict about unknown fields: a typo in a stored record is an error.

    A NaN or infinity (say in `metadata`) is kept as such when dumped, so the store's
    encoder refuses it loudly instead of pydantic's default quietly writing null.
    Only keys are interned when parsing: values (ids, prices) rarely repeat, and
    caching them made loading 10,000 positions ~15% slower."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_inf_nan="constants", cache_strings="keys"
    )

    def evolve(self, **changes: Any) -> Self:
        """A copy with `changes`, validated like any new object. (pydantic's
        `model_copy` skips validation: a naive time or an infinite PnL would pass, be
        stored, and make the state unloadable at the next start.)"""
        return self.model_validate({**self.model_dump(), **changes})


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `15m`, `24h`, `7d`, `1h30m`, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION_PART.findall(text)
        if parts and _DURATION_PART.sub("", text).strip() == "":
            return timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))
    raise ValueError(f"bad duration {value!r}: use a number and a unit, like 90s, 15m, 24h or 7d")


def format_duration(value: timedelta) -> str:
    """The way a config writes it (`1h30m`), so a dumped config loads again."""
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m"):
        whole, seconds = divmod(seconds, _DURATION_UNITS[unit])
        if whole:
            parts.append(f"{whole:.0f}{unit}")
    if seconds:
        parts.append(f"{seconds:g}s")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A length of time written `90s`, `15m`, `24h`, `7d`, `1h30m`, or in seconds."""


class Side(StrEnum):
    """The direction of a position."""

    LONG = "long"
    SHORT = "short"

    @property
    def entry_order_side(self) -> OrderSide:
        return OrderSide.BUY if self is Side.LONG else OrderSide.SELL

    @property
    def exit_order_side(self) -> OrderSide:
        return OrderSide.SELL if self is Side.LONG else OrderSide.BUY


class OrderSide(StrEnum):
    """The direction of an order or a fill."""

    BUY = "buy"
    SELL = "sell"


class Stop(DomainModel):
    """A position's own stop, as its strategy asked for it at the entry (or later),
    instead of the config's `stop:` policy: `Stop.price(95)`, `Stop.percent(2)`,
    `Stop.distance(1.5, trailing=True)`. Like every stop, it only ever tightens."""

    kind: Literal["price", "percent", "distance"]
    """At `value`; `value` percent from the entry (or the best price, when trailing);
    `value` price units from it."""
    value: Price
    trailing: bool = False
    """Follow the best price since entry (percent and distance stops)."""

    @model_validator(mode="after")
    def _trails_a_distance(self) -> Self:
        if self.trailing and self.kind == "price":
            raise ValueError("a stop at a price cannot trail; give a percent or a distance")
        if self.kind == "percent" and self.value >= 100:
            raise ValueError(f"a stop {self.value}% away would be at or below zero for a long")
        return self

    @classmethod
    def price(cls, value: Decimal | int | str | float) -> Stop:
        return cls(kind="price", value=decimal_of(value))

    @classmethod
    def percent(cls, value: Decimal | int | str | float, *, trailing: bool = False) -> Stop:
        return cls(kind="percent", value=decimal_of(value), trailing=trailing)

    @classmethod
    def distance(cls, value: Decimal | int | str | float, *, trailing: bool = False) -> Stop:
        return cls(kind="distance", value=decimal_of(value), trailing=trailing)

    def price_from(self, reference: Decimal, side: Side) -> Decimal:
        """The stop for a position of `side` whose reference (entry or best) price is
        `reference`."""
        if self.kind == "price":
            return self.value
        gap = reference * self.value / 100 if self.kind == "percent" else self.value
        return reference - gap if side is Side.LONG else reference + gap

    def __str__(self) -> str:
        shown = {"price": "at {}", "percent": "{}%", "distance": "{} away"}
        return shown[self.kind].format(f"{self.value:f}") + (" trailing" if self.trailing else "")


class TakeProfit(DomainModel):
    """Where a position's take-profit goes: `TakeProfit.price(110)`,
    `TakeProfit.percent(4)` or `.distance(3)` from the entry, or `.multiple(2)` of the
    stop's distance (2R). It rests on the venue beside the stop, and at most one of the
    two ever closes the position."""

    kind: Literal["price", "percent", "distance", "multiple"]
    value: Price

    @classmethod
    def price(cls, value: Decimal | int | str | float) -> TakeProfit:
        return cls(kind="price", value=decimal_of(value))

    @classmethod
    def percent(cls, value: Decimal | int | str | float) -> TakeProfit:
        return cls(kind="percent", value=decimal_of(value))

    @classmethod
    def distance(cls, value: Decimal | int | str | float) -> TakeProfit:
        return cls(kind="distance", value=decimal_of(value))

    @classmethod
    def multiple(cls, value: Decimal | int | str | float) -> TakeProfit:
        return cls(kind="multiple", value=decimal_of(value))

    @classmethod
    def from_config(cls, value: Any) -> Any:
        """A config writes `take_profit: {percent: 4}` (or price, distance, multiple):
        exactly one way. Anything else is left to validation to refuse."""
        kinds = ("price", "percent", "distance", "multiple")
        hint = "(percent: 4 is 4% from the entry; multiple: 2 is twice the stop's distance)"
        if isinstance(value, TakeProfit) or value is None:
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{value!r} is not a take-profit: write {{percent: 4}} {hint}")
        if "kind" in value:  # as it was dumped
            return value
        given = [key for key in value if key in kinds]
        if len(value) != 1 or len(given) != 1:
            got = ", ".join(map(str, value)) or "none"
            raise ValueError(f"give exactly one of {', '.join(kinds)} {hint}; got {got}")
        amount = value[given[0]]
        try:
            number = decimal_of(amount)
        except (InvalidOperation, TypeError, ValueError):
            number = None
        if isinstance(amount, bool) or number is None or not number.is_finite():
            raise ValueError(f"{given[0]}: {amount!r} is not a number")
        if number <= 0:
            raise ValueError(f"{given[0]}: {amount} must be above 0")
        return {"kind": given[0], "value": amount}

    def price_from(self, entry: Decimal, side: Side, stop: Decimal | None) -> Decimal | None:
        """The take-profit of a position of `side` entered at `entry` whose stop is
        `stop`; None for a multiple of a stop it does not have."""
        if self.kind == "price":
            return self.value
        if self.kind == "multiple":
            if stop is None:
                return None
            gap = abs(entry - stop) * self.value
        else:
            gap = entry * self.value / 100 if self.kind == "percent" else self.value
        return entry + gap if side is Side.LONG else entry - gap

    def __str__(self) -> str:
        shown = {"price": "at {}", "percent": "{}%", "distance": "{} away", "multiple": "{}R"}
        return shown[self.kind].format(f"{self.value:f}")


def decimal_of(value: Decimal | int | str | float) -> Decimal:
    """A number as a Decimal, a float as it prints (0.1 is 0.1, not 0.1000000000000000055):
    strategies and configs write floats, money must not carry their binary error."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


class Position(DomainModel):
    """What the bot holds in one symbol, and how it is protected."""

    id: str
    bot_id: str
    symbol: str
    side: Side
    size: Qty
    entry_price: Price
    entry_time: UtcDatetime
    stop_price: Price | None = None
    stop_client_order_id: str | None = None
    stop_venue_order_id: str | None = None
    take_profit: Price | None = None
    best_price: Price | None = None
    """Best price seen since entry (highest for a long, lowest for a short): trailing stops."""
    realized_pnl: Amount = Decimal(0)
    """What the parts of it closed so far made (a position taken out in parts)."""
    entry_fees: Amount = Decimal(0)
    """The fees of the fills that opened and grew it, less the share of the parts
    closed: each closed part's trade carries its share."""
    stop_rule: Stop | None = None
    """Its strategy's own stop; None: the config's `stop:` policy."""
    take_profit_rule: TakeProfit | None = None
    """Its take-profit, its strategy's or the config's; None: none."""
    take_profit_client_order_id: str | None = None
    """The take-profit order resting for it (`take_profit` is its price)."""
    custom: dict[str, Any] = Field(default_factory=dict)
    """What its strategy keeps with it (a trail's stage, a grid level): set by signals,
    read back in `decide`, durable with the position across restarts."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The engine's own notes on it (an alert already given)."""


class Bar(DomainModel):
    time: UtcDatetime
    """When the bar opened."""
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Amount


class Fill(DomainModel):
    """One execution reported by the venue; `trade_id` is the venue's, unique per venue."""

    trade_id: str
    client_order_id: str
    venue_order_id: str | None = None
    """The venue's id of the order: where client order ids may be reused (Binance,
    once the first order closed), the only way to tell which order filled."""
    symbol: str
    side: OrderSide
    qty: Qty
    price: Price
    fee: Amount = Decimal(0)
    fee_currency: str | None = None
    time: UtcDatetime


class PnlSum(DomainModel):
    """Closed trades added up: how many, how many made money, their PnL and fees."""

    trades: int = Field(default=0, ge=0)
    wins: int = Field(default=0, ge=0)
    pnl: Amount = Decimal(0)
    fees: Amount = Decimal(0)

    def plus(self, pnl: Decimal, fees: Decimal) -> PnlSum:
        return self.evolve(
            trades=self.trades + 1,
            wins=self.wins + (pnl > 0),
            pnl=self.pnl + pnl,
            fees=self.fees + fees,
        )

    def __add__(self, other: PnlSum) -> PnlSum:
        return PnlSum(
            trades=self.trades + other.trades,
            wins=self.wins + other.wins,
            pnl=self.pnl + other.pnl,
            fees=self.fees + other.fees,
        )


class PnlBook(DomainModel):
    """Every closed trade so far, added up, and the latest trading day's on its own:
    what all-time and today's PnL read without a look at the history."""

    total: PnlSum = Field(default_factory=PnlSum)
    day: date | None = None
    """The latest trading day a trade closed on."""
    today: PnlSum = Field(default_factory=PnlSum)
    """That day's trades."""


class RiskState(DomainModel):
    """The counters the risk guards read; they survive restarts so a crash resets nothing."""

    trading_day: date | None = None
    daily_pnl: Amount = Decimal(0)
    daily_trade_count: int = Field(default=0, ge=0)
    consecutive_losses: int = Field(default=0, ge=0)
    peak_equity: Amount | None = None
    drawdown: Amount = Decimal(0)
    """Fraction below peak equity: 0.1 is 10% down from the peak."""
    breaker_until: UtcDatetime | None = None
    breaker_reason: str | None = None
    recent_entries: list[UtcDatetime] = Field(default_factory=list)
    """When the entries of the last hour were taken: the trade-frequency limit."""
    limit_alerts: dict[str, UtcDatetime] = Field(default_factory=dict)
    """A trade-frequency limit an operator was told refused entries, and until when
    (its window): told once per window, however many signals it refuses."""


class SignalState(DomainModel):
    """What the strategy already acted on: processed signal ids, cooldowns, the last bar."""

    processed: dict[str, UtcDatetime] = Field(default_factory=dict)
    """Signal id -> when it was processed, oldest first. Pruned by age, never by count."""
    cooldowns: dict[str, UtcDatetime] = Field(default_factory=dict)
    """Symbol -> until when no new entry is taken on it."""
    last_bar_time: UtcDatetime | None = None


class Ledger(DomainModel):
    """The engine's durable counters, written in the same change as what they number."""

    next_order_seq: int = Field(default=0, ge=0)
    """The sequence part of the next client order id."""
    next_event_seq: int = Field(default=0, ge=0)
    fills_cursor: str | None = None
    """Where the venue's fill listing was last read up to."""
    lost_before_epoch: int = Field(default=0, ge=0)
    """The state was lost and rebuilt from the venue by this instance: the orders of the
    instances before it have no intents here."""
    first_order_at: UtcDatetime | None = None
    """When the bot's first order was written: where its fills can begin, while the
    fills cursor has none yet (set by the first fill listing that needs it)."""


class Event(DomainModel):
    """One line of the bot's event log: what it decided or saw, and why."""

    seq: int = Field(ge=0)
    time: UtcDatetime
    kind: str
    """`fill`, `trade`, `stop_placed`, `recovery`, `alert`, `status`, ..."""
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
    """What the event is about (ids, the trade); `notify` names its `Topic`, if an
    operator may want to be told."""


class Topic(StrEnum):
    """What an operator can ask to be told of (`notify.on` in a bot's config)."""

    ERROR = "error"
    """The bot stopped by an error, or could not start."""
    BREAKER = "breaker"
    """The circuit breaker tripped: no new entries for a while."""
    UNPROTECTED = "unprotected"
    """A position is without its stop (refused by the venue, or too far past it)."""
    NEEDS_ATTENTION = "needs_attention"
    """An operator must look."""
    FILL = "fill"
    """Any fill of the bot's orders."""
    LIMIT = "limit"
    """A trade-frequency limit refused an entry (told once per window of the limit)."""
    DAY = "day"
    """A trading day began: the last day's PnL and trades; the daily counters reset."""


class BotStatus(StrEnum):
    """Where a bot is in its life; moved only through `BOT_TRANSITIONS`."""

    STANDBY = "standby"
    """An instance waits for the bot's lease, held elsewhere, to take over."""
    PENDING = "pending"
    """An instance holds the lease and recovers (or retries recovery)."""
    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"
    NEEDS_ATTENTION = "needs_attention"
    """An operator must look (`botwarden resolve`)."""


class BotEvent(StrEnum):
    """What moves a bot's status (`BOT_TRANSITIONS`)."""

    STAND_BY = "stand by"
    """An instance waits for the lease."""
    START = "start"
    """An instance was granted the lease and begins its recovery."""
    RETRY = "retry"
    """Recovery did not finish (the venue or the store failed): tried again."""
    RECOVER = "recover"
    """Recovery finished, nothing for an operator."""
    ATTENTION = "ask for attention"
    """Recovery, or a pass, found what an operator must decide."""
    STRATEGY_FAIL = "fail in the strategy"
    """The strategy raised or answered nonsense: no entries until it decides again."""
    DECIDE_AGAIN = "decide again"
    """The strategy decided for every symbol again."""
    STOP = "stop"
    FAIL = "fail"
    """The instance could not start, or ended by an error."""
    RESOLVE = "resolve"
    """An operator resolved a stopped bot's "needs attention"."""


_B, _V = BotStatus, BotEvent
BOT_TRANSITIONS: dict[tuple[BotStatus, BotEvent], BotStatus] = {
    **{(status, _V.START): _B.PENDING for status in _B},
    **{(status, _V.FAIL): _B.ERROR for status in _B},
    **{(status, _V.STAND_BY): _B.STANDBY for status in (_B.STOPPED, _B.ERROR, _B.STANDBY)},
    **{(status, _V.RETRY): _B.PENDING for status in (_B.PENDING, _B.NEEDS_ATTENTION)},
    **{(status, _V.RECOVER): _B.RUNNING for status in (_B.PENDING, _B.NEEDS_ATTENTION)},
    **{
        (status, _V.ATTENTION): _B.NEEDS_ATTENTION
        for status in (_B.PENDING, _B.RUNNING, _B.ERROR, _B.NEEDS_ATTENTION)
    },
    **{(status, _V.STRATEGY_FAIL): _B.ERROR for status in (_B.PENDING, _B.RUNNING, _B.ERROR)},
    (_B.ERROR, _V.DECIDE_AGAIN): _B.RUNNING,
    **{
        (status, _V.STOP): _B.STOPPED
        for status in (_B.STANDBY, _B.PENDING, _B.RUNNING, _B.ERROR, _B.STOPPED)
    },
    # Only an operator clears "needs attention": stopped, the bot still needs it.
    (_B.NEEDS_ATTENTION, _V.STOP): _B.NEEDS_ATTENTION,
    (_B.NEEDS_ATTENTION, _V.RESOLVE): _B.STOPPED,
}
"""Every move of a bot's status: (status, event) -> status. Anything else is a bug
(`IllegalBotTransition`); the suite walks every pair."""


class IllegalBotTransition(ValueError):
    def __init__(self, bot_id: str, status: BotStatus, event: BotEvent) -> None:
        super().__init__(f"bot {bot_id}: cannot {event.value} from {status.value}")


def next_bot_status(status: BotStatus, event: BotEvent, bot_id: str = "?") -> BotStatus:
    """The status after `event`, or `IllegalBotTransition` if the table has no such move."""
    try:
        return BOT_TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalBotTransition(bot_id, status, event) from None


class Instance(DomainModel):
    """The process that runs (or last ran) the bot. `epoch` is its fencing token."""

    host: str
    pid: int
    epoch: int = Field(ge=0)
    started_at: UtcDatetime


class BotRecord(DomainModel):
    bot_id: str
    status: BotStatus = BotStatus.PENDING
    last_run_at: UtcDatetime | None = None
    last_error: str | None = None
    last_updated_at: UtcDatetime | None = None
    heartbeat_at: UtcDatetime | None = None
    seen_at: UtcDatetime | None = None
    """The last heartbeat by the wall clock: how long ago the process showed life
    (`heartbeat_at` is by the bot's own clock, which a paper exchange may run faster)."""
    acknowledged: bool = False
    """An operator resolved the bot's "needs attention" (`botwarden resolve`): its next
    recovery acts on what it finds (manual mode reconciles as sync, a stale state is
    accepted), then this is cleared. What is still wrong (an orphan left for an
    operator, a position too far past its stop) asks for attention again."""
    instance: Instance | None = None

    def move(self, event: BotEvent, now: datetime, **changes: Any) -> BotRecord:
        """The record after `event` at `now`, with `changes` (`IllegalBotTransition` if
        the status may not move so). Running again stamps `last_run_at`."""
        status = next_bot_status(self.status, event, self.bot_id)
        if status is BotStatus.RUNNING:
            changes.setdefault("last_run_at", now)
        return self.evolve(status=status, last_updated_at=now, **changes)
