"""Numbers as a person reads them: a quantity or a price exact and without exponent or
trailing zeros (`10`, not `10.000000000`; `0.00001`, not `1E-5`), money to the cent,
lengths of time in the largest units that say them (`3h 5m`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal


def plain(value: Decimal) -> str:
    """Exact, with no exponent and no trailing zeros."""
    return f"{value.normalize():f}"


def approx(value: Decimal) -> str:
    """Exact when short, else about ten significant digits (`~0.0001234567891`)."""
    value = value.normalize()
    if len(value.as_tuple().digits) <= 12:
        return f"{value:f}"
    return f"~{value.quantize(Decimal(1).scaleb(value.adjusted() - 9)).normalize():f}"


def money(value: Decimal) -> str:
    """To the cent (an amount of cash, a PnL): `0.00`, never `0E-11`."""
    return f"{value:.2f}"


def span(seconds: float) -> str:
    """A length of time as a person reads it: `45s`, `12m`, `3h 5m`, `2d 4h`."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def age(then: datetime | None, now: datetime) -> str:
    """How long ago, by the wall clock; a time ahead of it (a paper exchange running
    fast keeps its own time) as the time itself."""
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return f"{then:%Y-%m-%d %H:%M} (the exchange's time)"
    return f"{span(seconds)} ago"
