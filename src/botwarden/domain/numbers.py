"""Numbers as a person reads them: a quantity or a price exact and without exponent or
trailing zeros (`10`, not `10.000000000`; `0.00001`, not `1E-5`), money to the cent."""

from __future__ import annotations

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
