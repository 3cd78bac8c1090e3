"""Faults the paper exchange can be told to have: scripted, seeded, repeatable.

A fault plan is a list of rules. Before each call the venue asks the plan whether this
call fails, and how; the same seed and the same sequence of calls give the same
faults. A rule names its kind, the operations it hits (`submit`, `cancel`, `order`,
`open_orders`, `positions`, `fills`, `balance`, `last_price`, `bars`, `market`, or
`*`), and when: with a probability, on the n-th matching call, at most a number of
times, or inside a time window.

Written in a config or on a command line as `;`-separated rules:

    timeout_after:on=submit,p=0.2; rate_limit:p=0.05,retry_after=2;
    outage:from=2026-03-02T15:00Z,to=2026-03-02T15:05Z; stale_lookup:seconds=30

The kinds, as a client sees them:
- `error_before`: refused before anything happened (connection refused): Retryable.
- `rate_limit`: HTTP 429: Retryable, with `retry_after` seconds.
- `timeout_before`: no answer, and the request never arrived: Ambiguous.
- `timeout_after`: the order WAS accepted, the answer was lost: Ambiguous.
- `server_error`: HTTP 5xx: Ambiguous; applied or not, decided by the seed.
- `outage`: every call in the window fails: Retryable (maintenance).
- `slow`: the answer comes `seconds` late.
- `partial_fill`: a market order fills `fraction` now and the rest at the next look.
- `stale_lookup`: an order is not found by its client id for `seconds` after it was
  accepted (eventually consistent order lookups).

One more rule sets the exchange up rather than failing its calls (so it is no kind the
plan draws): `clock_skew:by=8d` runs the exchange's clock that far ahead of the host's
(behind when negative, `by=-90s`; units s, m, h, d): its trades, its server time and
its market data move with it (a lagging host before NTP syncs).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from botwarden.errors import ConfigError


class FaultKind(StrEnum):
    ERROR_BEFORE = "error_before"
    RATE_LIMIT = "rate_limit"
    TIMEOUT_BEFORE = "timeout_before"
    TIMEOUT_AFTER = "timeout_after"
    SERVER_ERROR = "server_error"
    OUTAGE = "outage"
    SLOW = "slow"
    PARTIAL_FILL = "partial_fill"
    STALE_LOOKUP = "stale_lookup"


# Kinds that decide per call; the other two shape data (fills, lookups) instead.
PER_CALL = frozenset(FaultKind) - {FaultKind.PARTIAL_FILL, FaultKind.STALE_LOOKUP}
CLOCK_SKEW = "clock_skew"
_SPAN = re.compile(r"^(-?\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


@dataclass
class FaultRule:
    kind: FaultKind
    operations: frozenset[str] = frozenset({"*"})
    probability: float = 1.0
    nth: int | None = None
    """Only the n-th matching call (1-based)."""
    times: int | None = None
    """At most this many times."""
    start: datetime | None = None
    end: datetime | None = None
    seconds: float = 0.0
    """`slow`: the delay; `stale_lookup`: how long an order stays invisible."""
    retry_after: float | None = None
    fraction: Decimal = Decimal("0.5")
    """`partial_fill`: how much fills at once."""
    seen: int = 0
    fired: int = 0

    def hits(self, operation: str) -> bool:
        return "*" in self.operations or operation in self.operations

    def in_window(self, now: datetime) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)


class FaultPlan:
    def __init__(
        self, rules: list[FaultRule], seed: int = 0, clock_skew: timedelta = timedelta(0)
    ) -> None:
        self.rules = rules
        self.clock_skew = clock_skew
        """How far the exchange's clock is to run ahead of the host's."""
        self._rng = random.Random(seed)
        self.fired: dict[FaultKind, int] = {}

    def draw(
        self, operation: str, now: datetime, kinds: frozenset[FaultKind] = PER_CALL
    ) -> FaultRule | None:
        """The fault this call suffers, if any: the first rule of `kinds` that fires.
        Every matching rule counts the call, fired or not, so `nth` means the n-th call."""
        chosen = None
        for rule in self.rules:
            if rule.kind not in kinds or not rule.hits(operation) or not rule.in_window(now):
                continue
            rule.seen += 1
            if chosen is not None:
                continue
            if rule.times is not None and rule.fired >= rule.times:
                continue
            if rule.nth is not None and rule.seen != rule.nth:
                continue
            if self._rng.random() >= rule.probability:
                continue
            rule.fired += 1
            self.fired[rule.kind] = self.fired.get(rule.kind, 0) + 1
            chosen = rule
        return chosen

    def coin(self) -> bool:
        """A seeded coin, for faults whose effect is itself uncertain (a 5xx)."""
        return self._rng.random() < 0.5

    def rule(self, kind: FaultKind) -> FaultRule | None:
        return next((r for r in self.rules if r.kind is kind), None)

    @classmethod
    def parse(cls, spec: str, seed: int = 0, where: str = "faults") -> FaultPlan:
        rules: list[FaultRule] = []
        skew = timedelta(0)
        for text in filter(None, (t.strip() for t in spec.split(";"))):
            if text.partition(":")[0].strip() == CLOCK_SKEW:
                skew = _parse_skew(text, where)
            else:
                rules.append(_parse_rule(text, where))
        return cls(rules, seed, clock_skew=skew)


def _parse_skew(text: str, where: str) -> timedelta:
    option = text.partition(":")[2].strip()
    name, _, value = option.partition("=")
    found = _SPAN.match(value.strip()) if name.strip() == "by" else None
    if not found:
        raise ConfigError(
            f"{where}: fault {CLOCK_SKEW}: {option!r}: give by= a number and a unit:"
            " by=90s, 5m, 2h, 8d (or -8d)"
        )
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def _parse_rule(text: str, where: str) -> FaultRule:
    kind_text, _, options = text.partition(":")
    try:
        kind = FaultKind(kind_text.strip())
    except ValueError:
        allowed = ", ".join([*(k.value for k in FaultKind), CLOCK_SKEW])
        raise ConfigError(
            f"{where}: unknown fault {kind_text.strip()!r}; use one of {allowed}"
        ) from None
    rule = FaultRule(kind)
    for option in filter(None, (o.strip() for o in options.split(","))):
        name, _, value = option.partition("=")
        try:
            _set_option(rule, name.strip(), value.strip())
        except (ValueError, ArithmeticError) as error:
            raise ConfigError(f"{where}: fault {kind.value}: {option!r}: {error}") from None
    return rule


def _set_option(rule: FaultRule, name: str, value: str) -> None:
    if name == "on":
        rule.operations = frozenset(v.strip() for v in value.split("|"))
    elif name == "p":
        rule.probability = float(value)
        if not 0 <= rule.probability <= 1:
            raise ValueError("a probability is between 0 and 1")
    elif name in ("nth", "times"):
        setattr(rule, name, int(value))
    elif name in ("from", "to"):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("give the time zone, like 2026-03-02T15:00Z")
        setattr(rule, "start" if name == "from" else "end", moment)
    elif name in ("seconds", "retry_after"):
        setattr(rule, name, float(value))
    elif name == "fraction":
        rule.fraction = Decimal(value)
        if not 0 < rule.fraction < 1:
            raise ValueError("a fraction is between 0 and 1, exclusive")
    else:
        raise ValueError(
            "unknown option; use on, p, nth, times, from, to, seconds, retry_after, fraction"
        )
