"""Orders fitted to a market before they leave, or refused here: never sent to be rejected."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.markets import MarketRules, OrderRefused, TimeInForce
from botwarden.venues.rules import enforce, shape
from tests.venues.test_paper import Clock, make_venue, order

BTC = MarketRules(
    symbol="BTC/USDT",
    qty_step=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    price_tick=Decimal("0.1"),
    min_notional=Decimal("5"),
    time_in_force=frozenset({TimeInForce.GTC, TimeInForce.IOC}),
)


def test_shape_rounds_the_safe_way_and_enforce_refuses_what_does_not_fit() -> None:
    request = order(
        "c1", symbol="BTC/USDT", side="sell", type="stop", qty="0.0129",
        stop_price=Decimal("59000.07"),
    )  # fmt: skip
    shaped = shape(request, BTC, Decimal("60000"))
    assert (shaped.qty, shaped.stop_price) == (Decimal("0.012"), Decimal("59000.1"))
    enforce(shaped, BTC, Decimal("60000"))
    with pytest.raises(
        OrderRefused, match=r"qty 0\.0129 does not fit.*nearest safe value is 0\.012"
    ):
        enforce(request, BTC, Decimal("60000"))


def test_orders_that_cannot_fit_are_refused_with_the_rule() -> None:
    with pytest.raises(OrderRefused, match=r"below the minimum 0\.001"):
        shape(order("c1", symbol="BTC/USDT", qty="0.0004"), BTC, Decimal("60000"))
    with pytest.raises(OrderRefused, match=r"order value .* is below the minimum 5"):
        shape(order("c2", symbol="BTC/USDT", qty="0.001"), BTC, Decimal("3000"))
    with pytest.raises(OrderRefused, match="time in force day is not accepted here"):
        shape(order("c3", symbol="BTC/USDT", qty="1", time_in_force="day"), BTC, Decimal("1"))


async def test_the_paper_exchange_refuses_locally_what_its_market_would_reject(
    tmp_path: Path,
) -> None:
    venue = make_venue(tmp_path / "paper.db", Clock())
    with pytest.raises(OrderRefused, match="does not fit the market"):
        await venue.submit(order("c1", symbol="BTC/USDT", qty="0.0015"))  # lot step 0.001
    assert await venue.open_orders() == []
    assert (await venue.fills()).fills == []
    fitted = await venue.submit(order("c2", symbol="BTC/USDT", qty="0.002"))
    assert fitted.filled_qty == Decimal("0.002")
    venue.book.close()
