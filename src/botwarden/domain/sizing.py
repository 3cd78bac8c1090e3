"""How big an entry is, and how much of a position an exit closes. Pure rules.

A size is written one of four ways (`Size.units(10)`, `Size.notional(1000)`,
`Size.equity_pct(5)`, `Size.risk_pct(1)`; in a config `{qty: 10}`, `{notional: 1000}`,
`{equity_pct: 5}`, `{risk_pct: 1}`), and `entry_qty` turns it into the quantity to
send, fitted to the market's rules, or refuses it with the reason.

Rounding, everywhere, is toward less exposure and never past what was asked:
- the quantity a mode asks for is computed with every division rounded down (28
  significant digits, `ROUND_FLOOR`), then rounded DOWN to the lot step by `fit_qty`:
  the order is at most one lot step smaller than asked, never larger;
- the checks (order value, risk at the stop, what an exit leaves) are computed exactly;
- nothing is ever made bigger to reach a minimum, nor smaller to fit the buying power:
  a size that cannot be met as asked is refused (`SizeRefused`), with the mode, the
  numbers and the rule, so a person sees why no order went out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from botwarden.domain.markets import MarketRules, OrderRefused, check_notional, fit_qty
from botwarden.domain.models import DomainModel, Side, decimal_of
from botwarden.domain.numbers import approx, plain

FINEST_QTY = Decimal("0.000000001")
"""Where a market names no lot step, quantities go to 9 decimal places (Alpaca's
fractional shares): a quantity of 28 digits is no venue's, and sums of such quantities
would round in Decimal's default context (a fill would seem to exceed its order)."""

_QUOTIENT = Context(prec=28, rounding=ROUND_FLOOR)
"""A quantity from a division: floored, so it never exceeds the exact one."""
_EXACT_DIGITS = 64
"""Enough for products and differences of venue numbers to be exact, so a check
compares the real values (28 digits could round a value just over a limit to it)."""


class SizeRefused(OrderRefused):
    """An entry or an exit refused here for its size: no order was sent."""


class SizeMode(StrEnum):
    UNITS = "units"
    """A quantity of the instrument: shares, coins, contracts."""
    NOTIONAL = "notional"
    """A value in the account's currency: units = notional / price."""
    EQUITY_PCT = "equity_pct"
    """A percentage of the account's equity: units = equity x pct/100 / price."""
    RISK_PCT = "risk_pct"
    """The loss at the stop, as a percentage of equity:
    units = equity x pct/100 / |entry - stop|."""

    @property
    def config_key(self) -> str:
        """The name a config writes it under (`qty`, as existing configs do, for units)."""
        return "qty" if self is SizeMode.UNITS else self.value

    @property
    def is_pct(self) -> bool:
        return self in (SizeMode.EQUITY_PCT, SizeMode.RISK_PCT)


_BY_CONFIG_KEY = {mode.config_key: mode for mode in SizeMode}


def _decimal(field: str, value: object) -> Decimal:
    """`value` as a finite Decimal, or a ValueError naming `field`. A float is read as
    it prints (0.1 is 0.1, not 0.1000000000000000055...): configs and strategies
    write floats, money must not carry their binary error."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{field}: {value!r} is not a number")
    try:
        number = decimal_of(value)
    except InvalidOperation:
        raise ValueError(f"{field}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{field}: {value} is not a finite number")
    return number


def _amount(mode: SizeMode, value: object) -> Decimal:
    field = mode.config_key
    amount = _decimal(field, value)
    if mode.is_pct and not 0 < amount <= 100:
        raise ValueError(
            f"{field}: {value} is not a percentage of equity: use a number above 0 and"
            " at most 100 (1 is 1%)"
        )
    if amount <= 0:
        raise ValueError(f"{field}: {value} must be above 0")
    return amount


class Size(DomainModel):
    """How big an entry is: one mode and its amount. Build it with the constructors
    (`Size.risk_pct(1)`) or from a config mapping (`Size.from_config({"qty": 1})`)."""

    mode: SizeMode
    amount: Decimal = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _in_range(self) -> Self:
        _amount(self.mode, self.amount)
        return self

    @classmethod
    def _of(cls, mode: SizeMode, amount: object) -> Self:
        # Checked before pydantic sees it, so the ValueError is one plain line.
        return cls(mode=mode, amount=_amount(mode, amount))

    @classmethod
    def units(cls, qty: Decimal | int | str | float) -> Self:
        return cls._of(SizeMode.UNITS, qty)

    @classmethod
    def notional(cls, value: Decimal | int | str | float) -> Self:
        return cls._of(SizeMode.NOTIONAL, value)

    @classmethod
    def equity_pct(cls, pct: Decimal | int | str | float) -> Self:
        return cls._of(SizeMode.EQUITY_PCT, pct)

    @classmethod
    def risk_pct(cls, pct: Decimal | int | str | float) -> Self:
        return cls._of(SizeMode.RISK_PCT, pct)

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> Self:
        """`{qty: 1}`, `{notional: 500}`, `{equity_pct: 10}` or `{risk_pct: 1}`:
        exactly one key. A ValueError names the field and what would be accepted."""
        accepted = ", ".join(_BY_CONFIG_KEY)
        if not isinstance(mapping, Mapping):
            raise ValueError(f"a size is a mapping with one of {accepted}, not {mapping!r}")
        unknown = [key for key in mapping if key not in _BY_CONFIG_KEY]
        if unknown:
            hint = " (units are written qty)" if "units" in unknown else ""
            raise ValueError(
                f"{unknown[0]}: not a way to size an entry; use one of {accepted}{hint}"
            )
        if len(mapping) != 1:
            given = ", ".join(mapping) or "none"
            raise ValueError(f"give exactly one of {accepted}; got {given}")
        [(key, value)] = mapping.items()
        return cls._of(_BY_CONFIG_KEY[key], value)

    def as_config(self) -> dict[str, Decimal]:
        """The mapping `from_config` reads back."""
        return {self.mode.config_key: self.amount}

    def __str__(self) -> str:
        suffix = "%" if self.mode.is_pct else ""
        return f"{self.mode.value} {self.amount:f}{suffix}"


def _with_a_step(rules: MarketRules) -> MarketRules:
    return rules if rules.qty_step is not None else rules.evolve(qty_step=FINEST_QTY)


def _rule(error: OrderRefused, symbol: str) -> str:
    """The market rule an `OrderRefused` names, without its symbol (said once, first)."""
    return str(error).removeprefix(f"{symbol}: ")


def _check_stop(side: Side, price: Decimal, stop_price: Decimal, symbol: str) -> None:
    if stop_price <= 0:
        raise SizeRefused(
            f"{symbol}: the stop {stop_price:f} is at or below zero: no venue takes it"
        )
    if side is Side.LONG and stop_price >= price:
        where = "below"
    elif side is Side.SHORT and stop_price <= price:
        where = "above"
    else:
        return
    raise SizeRefused(
        f"{symbol}: a {side.value}'s stop must be {where} the entry: the stop {stop_price:f}"
        f" is {'at' if stop_price == price else 'on the wrong side of'} the entry price"
        f" {price:f}"
    )


def _wanted(
    size: Size, price: Decimal, stop_price: Decimal | None, equity: Decimal, symbol: str
) -> tuple[Decimal, str]:
    """The quantity the size asks for, before the market's rules, and how it came about."""
    amount = size.amount
    if size.mode is SizeMode.UNITS:
        return amount, f"{size} is {approx(amount)} units"
    if size.mode is SizeMode.NOTIONAL:
        wanted = _QUOTIENT.divide(amount, price)
        return wanted, f"{size} at the price {price:f} is {approx(wanted)} units"
    if equity <= 0:
        raise SizeRefused(f"{symbol}: {size} of the equity {equity:f}: there is nothing to size")
    budget = equity * amount / 100
    if size.mode is SizeMode.EQUITY_PCT:
        wanted = _QUOTIENT.divide(budget, price)
        return wanted, (
            f"{size} of the equity {equity:f} is {approx(budget)}, at the price {price:f}"
            f" {approx(wanted)} units"
        )
    if stop_price is None:
        raise SizeRefused(
            f"{symbol}: {size} sizes by the loss at the stop, and the entry has no stop"
            " price: give the stop, or size by units, notional or equity_pct"
        )
    distance = abs(price - stop_price)
    wanted = _QUOTIENT.divide(budget, distance)
    return wanted, (
        f"{size} of the equity {equity:f} is {approx(budget)} at risk; the stop {stop_price:f}"
        f" is {distance:f} from the entry {price:f}, so {approx(wanted)} units"
    )


def entry_qty(
    size: Size,
    *,
    side: Side,
    price: Decimal,
    equity: Decimal,
    buying_power: Decimal,
    rules: MarketRules,
    stop_price: Decimal | None = None,
) -> Decimal:
    """The quantity to enter `side` with, at about `price`, fitted to `rules`.

    `price` is the expected fill: the order's value and the risk at the stop are
    measured from it, so slippage and fees are the caller's to leave room for (a
    buying power with headroom). `stop_price` is the stop as intended; the stop placed
    later is rounded to the tick toward the market (`fit_price`), which only makes
    the loss at it smaller. A stop given with any mode is checked to be on the
    protective side of the entry.

    Raises `SizeRefused` (an `OrderRefused`) when the size cannot be met as asked:
    below the market's minimum quantity or value, more than the buying power, risk
    without a stop, a stop at or past the entry, no equity to take a percentage of.
    """
    symbol, rules = rules.symbol, _with_a_step(rules)
    if not price.is_finite() or price <= 0:
        raise ValueError(f"{symbol}: the entry price must be above 0, not {price}")
    with localcontext(prec=_EXACT_DIGITS, rounding=ROUND_FLOOR):
        if stop_price is not None:
            _check_stop(side, price, stop_price, symbol)
        wanted, how = _wanted(size, price, stop_price, equity, symbol)
        try:
            qty = fit_qty(wanted, rules)
            check_notional(qty, price, rules)
        except OrderRefused as error:
            raise SizeRefused(f"{symbol}: {how}; {_rule(error, symbol)}") from None
        value = qty * price
        if value > buying_power:
            raise SizeRefused(
                f"{symbol}: {how}; the order's value {approx(value)} ({qty:f} at {price:f}) is"
                f" more than the buying power {plain(buying_power)},"
                f" by {approx(value - buying_power)}"
            )
        return qty


@dataclass(frozen=True)
class ExitQty:
    """How much of a position an exit closes."""

    qty: Decimal
    full: bool
    """The whole position closes."""
    why: str | None = None
    """Why an exit asked for in part closes the whole position; None when it is as asked."""


def exit_qty(
    position_size: Decimal,
    *,
    fraction: Decimal | None = None,
    qty: Decimal | None = None,
    rules: MarketRules,
    price: Decimal | None = None,
) -> ExitQty:
    """The quantity to close of a position of `position_size`: a `fraction` in (0, 1],
    or a `qty` up to the position (exactly one of them).

    A part is rounded DOWN to the lot step (never more closed than asked). If what would
    remain is dust the venue would refuse to close later (below its minimum quantity,
    or, when `price` is given, its minimum value), the whole position is closed instead,
    and `why` says so. A full exit closes the position as held, unrounded: rounding it
    would leave dust. Raises `SizeRefused` for a quantity above the position, a fraction
    outside (0, 1], or a part below the market's minimum.
    """
    symbol, rules = rules.symbol, _with_a_step(rules)
    if position_size <= 0:
        raise ValueError(f"{symbol}: no position to exit (size {position_size})")
    if (fraction is None) == (qty is None):
        raise ValueError(f"{symbol}: give exactly one of fraction or qty to exit")
    with localcontext(prec=_EXACT_DIGITS, rounding=ROUND_FLOOR):
        if fraction is not None:
            fraction = _decimal("fraction", fraction)
            if not 0 < fraction <= 1:
                raise SizeRefused(
                    f"{symbol}: an exit's fraction must be above 0 and at most 1 (all of"
                    f" it), not {fraction:f}"
                )
            wanted = position_size * fraction
            asked = f"{fraction:f} of the position {position_size:f}"
        else:
            wanted = _decimal("qty", qty)
            if not 0 < wanted <= position_size:
                raise SizeRefused(
                    f"{symbol}: an exit of {wanted:f} is not part of the position of"
                    f" {position_size:f}: give a quantity above 0 and at most the position"
                )
            asked = f"{wanted:f} of the position {position_size:f}"
        if wanted >= position_size:
            return ExitQty(qty=position_size, full=True)
        try:
            part = fit_qty(wanted, rules)
            if price is not None:
                check_notional(part, price, rules)
        except OrderRefused as error:
            raise SizeRefused(
                f"{symbol}: a partial exit of {asked} is too small:"
                f" {_rule(error, symbol)}; close more, or all of it"
            ) from None
        left = position_size - part
        dust = _dust(left, rules, price)
        if dust is None:
            return ExitQty(qty=part, full=False)
        return ExitQty(
            qty=position_size,
            full=True,
            why=(
                f"{symbol}: closing all {position_size:f} instead of {part:f} (asked"
                f" {asked}): the {left:f} left would be {dust}, and the venue would refuse"
                " to close it later"
            ),
        )


def _dust(left: Decimal, rules: MarketRules, price: Decimal | None) -> str | None:
    """What is wrong with `left` as a position of its own, or None if it can be closed."""
    try:
        fit_qty(left, rules)
    except OrderRefused:
        minimum = rules.min_qty or rules.qty_step
        return f"below the minimum quantity {minimum:f}"
    minimum_value = rules.min_notional
    if price is not None and minimum_value is not None and left * price < minimum_value:
        worth = approx(left * price)
        return f"worth {worth} at {price:f}, below the minimum value {minimum_value:f}"
    return None
