"""Orders made to fit a market's rules, and refused here when they cannot be.

`shape` is for whoever decides an order (the engine, before it writes the intent): it
rounds the quantity down to the lot step and prices to the tick in the bot's favour.
`enforce` is for the adapters, right before sending, when the intent is already
stored and must not change: an order that does not fit exactly is refused locally
(`OrderRefused`), never sent to be rejected.
"""

from __future__ import annotations

from decimal import Decimal

from botwarden.domain.markets import (
    MarketRules,
    OrderRefused,
    check_notional,
    check_time_in_force,
    fit_price,
    fit_qty,
)
from botwarden.venues.base import OrderRequest


def shape(request: OrderRequest, rules: MarketRules, price: Decimal | None) -> OrderRequest:
    """`request` fitted to `rules`; `price` (the last price) values a market order."""
    check_time_in_force(request.time_in_force, rules)
    changes: dict[str, object] = {"qty": fit_qty(request.qty, rules)}
    for field in ("limit_price", "stop_price"):
        value = getattr(request, field)
        if value is not None:
            changes[field] = fit_price(value, rules, request.side)
    shaped = request.evolve(**changes)
    reference = shaped.limit_price or shaped.stop_price or price
    if reference is not None:
        check_notional(shaped.qty, reference, rules)
    return shaped


def enforce(request: OrderRequest, rules: MarketRules, price: Decimal | None) -> None:
    """Refuse `request` unless it already fits `rules` exactly."""
    shaped = shape(request, rules, price)
    for field in ("qty", "limit_price", "stop_price"):
        asked, allowed = getattr(request, field), getattr(shaped, field)
        if asked != allowed:
            raise OrderRefused(
                f"{request.symbol}: {field.replace('_', ' ')} {asked} does not fit the market"
                f" (lot step {rules.qty_step}, tick {rules.price_tick}); the nearest safe"
                f" value is {allowed}"
            )
