"""Market rules, and shaping an order to fit them before it leaves.

Venues reject an order whose quantity is not a multiple of the lot step, whose price is
off the tick, or whose value is under the minimum; a rejected stop-loss is a position
without protection. So every order is made to fit here first: quantities and prices
are rounded the safe way, or the order is refused locally with a message saying which
rule and by how much. Pure functions; the rules come from the venue.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from pydantic import Field

from botwarden.domain.models import DomainModel, OrderSide
from botwarden.domain.numbers import approx, plain
from botwarden.errors import BotwardenError


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class MarketRules(DomainModel):
    """What one venue accepts for one symbol."""

    symbol: str
    qty_step: Decimal | None = Field(default=None, gt=0)
    """Quantities must be whole multiples of this (Binance's LOT_SIZE stepSize)."""
    min_qty: Decimal | None = Field(default=None, ge=0)
    price_tick: Decimal | None = Field(default=None, gt=0)
    min_notional: Decimal | None = Field(default=None, ge=0)
    """Quantity x price must reach this (Alpaca: $1 for fractional and crypto orders)."""
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    shortable: bool = True


def places(step: Decimal | None) -> int | None:
    """The decimal places a step is written with (0.01: 2, 1E-8: 8, 5: 0), to show a
    price or a quantity as its market does; None where the market sets no step."""
    if step is None:
        return None
    return max(0, -int(step.normalize().as_tuple().exponent))


class OrderRefused(BotwardenError):
    """Refused here, before it was sent: it would break the market's rules."""


def _round(value: Decimal, step: Decimal | None, up: bool) -> Decimal:
    if step is None:
        return value
    units = (value / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    fitted = (units * step).quantize(step)
    # (no trailing zeros: 10 shares of a 1e-9 step read 10, not 10.000000000)
    return (
        fitted.quantize(Decimal(1)) if fitted == fitted.to_integral_value() else fitted.normalize()
    )


def fit_qty(qty: Decimal, rules: MarketRules) -> Decimal:
    """Round DOWN to the lot step: never more exposure than asked for."""
    fitted = _round(qty, rules.qty_step, up=False)
    if fitted <= 0 or (rules.min_qty is not None and fitted < rules.min_qty):
        minimum = rules.min_qty or rules.qty_step
        raise OrderRefused(
            f"{rules.symbol}: quantity {approx(qty)} is below the minimum"
            f" {plain(minimum) if minimum else minimum} (lot step {rules.qty_step})"
        )
    return fitted


def fit_price(price: Decimal, rules: MarketRules, side: OrderSide) -> Decimal:
    """Round to the tick in the direction that can only help the bot: sells up, buys down.

    For a limit order that means never paying more or selling for less than asked. For
    a protective stop it means toward the market (a long's sell stop sits below the
    price and rounds up, a short's buy stop above it and rounds down): the stop may end
    a tick tighter than asked, never a tick looser.
    """
    return _round(price, rules.price_tick, up=side is OrderSide.SELL)


def check_notional(qty: Decimal, price: Decimal, rules: MarketRules) -> None:
    if rules.min_notional is not None and qty * price < rules.min_notional:
        raise OrderRefused(
            f"{rules.symbol}: order value {plain(qty * price)} is below the minimum"
            f" {plain(rules.min_notional)} ({plain(qty)} at {plain(price)})"
        )


def check_time_in_force(time_in_force: TimeInForce, rules: MarketRules) -> None:
    if time_in_force not in rules.time_in_force:
        allowed = ", ".join(sorted(t.value for t in rules.time_in_force))
        raise OrderRefused(
            f"{rules.symbol}: time in force {time_in_force.value} is not accepted here;"
            f" use one of {allowed}"
        )
