"""Orders are shaped to the market's rules before they leave, always the safe way."""

from __future__ import annotations

from decimal import Decimal

import pytest

from botwarden.domain.markets import (
    MarketRules,
    OrderRefused,
    TimeInForce,
    check_notional,
    check_time_in_force,
    fit_price,
    fit_qty,
    places,
)
from botwarden.domain.models import OrderSide

BTC = MarketRules(
    symbol="BTC/USDT",
    qty_step=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    price_tick=Decimal("0.10"),
    min_notional=Decimal("5"),
)
ALPACA_CRYPTO = MarketRules(
    symbol="BTC/USD",
    min_notional=Decimal("1"),
    time_in_force=frozenset({TimeInForce.GTC, TimeInForce.IOC}),
)


def test_quantity_rounds_down_to_the_lot_step() -> None:
    assert fit_qty(Decimal("0.0129"), BTC) == Decimal("0.012")
    assert fit_qty(Decimal("5"), BTC) == Decimal("5.000")
    assert fit_qty(Decimal("0.37"), ALPACA_CRYPTO) == Decimal("0.37")  # no step: as is


def test_a_quantity_below_the_minimum_is_refused_with_the_rule() -> None:
    with pytest.raises(OrderRefused, match=r"BTC/USDT: quantity 0.0009 is below the minimum 0.001"):
        fit_qty(Decimal("0.0009"), BTC)


def test_prices_round_in_the_bots_favour() -> None:
    assert fit_price(Decimal("100.17"), BTC, OrderSide.BUY) == Decimal("100.10")
    assert fit_price(Decimal("100.11"), BTC, OrderSide.SELL) == Decimal("100.20")
    assert fit_price(Decimal("100.10"), BTC, OrderSide.SELL) == Decimal("100.10")


def test_a_long_positions_stop_ends_tighter_never_looser() -> None:
    # A long at 100 wants its sell stop at 97.03: the tick allows 97.00 or 97.10.
    stop = fit_price(Decimal("97.03"), BTC, OrderSide.SELL)
    assert stop == Decimal("97.10")
    # A short's buy stop at 103.07 may be 103.00 (tighter), never 103.10 (looser).
    assert fit_price(Decimal("103.07"), BTC, OrderSide.BUY) == Decimal("103.00")


def test_order_value_and_time_in_force_are_checked() -> None:
    check_notional(Decimal("0.05"), Decimal("100.1"), BTC)
    with pytest.raises(OrderRefused, match="below the minimum 5"):
        check_notional(Decimal("0.01"), Decimal("100"), BTC)
    with pytest.raises(
        OrderRefused, match="time in force day is not accepted here; use one of gtc, ioc"
    ):
        check_time_in_force(TimeInForce.DAY, ALPACA_CRYPTO)
    check_time_in_force(TimeInForce.GTC, ALPACA_CRYPTO)


@pytest.mark.parametrize(
    ("step", "written"),
    [
        ("0.01", 2),  # the paper exchange's tick; Alpaca's for US stocks
        ("1", 0),  # whole shares
        ("1E-9", 9),  # Alpaca's crypto lots (and fractional shares)
        ("0.00001", 5),  # Binance's BTCUSDT lot step
        ("0.10", 1),  # Binance's BTCUSDT tick, as it is sent: "0.10"
        ("1.000", 0),
        ("0.5", 1),
        ("0.25", 2),
        ("5", 0),
        ("1E+1", 0),
    ],
)
def test_a_step_is_written_with_its_own_places(step: str, written: int) -> None:
    assert places(Decimal(step)) == written
    assert places(None) is None
