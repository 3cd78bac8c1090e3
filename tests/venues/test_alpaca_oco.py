"""A stop and a take-profit as one Alpaca OCO, through the real alpaca-py against the
emulator: the take-profit is the parent (under the engine's id for it), the stop its
leg (Alpaca names it at random; the adapter tells it by `pair_stop_id`). Whatever is
asked of the adapter, the paper book behind the emulator says what really rests and
what filled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")

from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from botwarden.domain.orders import OrderType
from botwarden.venues.base import (
    Ambiguous,
    NotFound,
    OrderRequest,
    OrderState,
    Rejected,
    pair_take_profit_id,
)
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.venue import PaperVenue
from tests.support.alpaca import adapter, client, start
from tests.venues.test_paper import FEED, T0, Clock, first_time_price, order

STOP = "golden-1-000002"
TARGET = pair_take_profit_id(STOP)
CENT = Decimal("0.01")


@dataclass
class World:
    venue: Any
    """botwarden's adapter."""
    exchange: PaperVenue
    """The paper exchange behind the emulator: the truth."""
    clock: Clock
    url: str

    def pair(
        self, stop: str, target: str, qty: str = "10", stop_id: str = STOP
    ) -> tuple[OrderRequest, OrderRequest]:
        """A long's stop and take-profit at `stop` and `target` times the price now."""
        price = FEED.price("SPY", self.clock.now)
        legs = (
            (stop_id, {"type": "stop", "stop_price": (price * Decimal(stop)).quantize(CENT)}),
            (
                pair_take_profit_id(stop_id),
                {"type": "limit", "limit_price": (price * Decimal(target)).quantize(CENT)},
            ),
        )
        first, second = (order(cid, side="sell", qty=qty, **prices) for cid, prices in legs)
        return first, second

    def filled_on_the_book(self) -> dict[str, Decimal]:
        """Client order id at the paper book -> what filled of it."""
        return {o.client_order_id: o.filled_qty for o in self.exchange.book.all_orders()}

    def resting_on_the_book(self) -> list[str]:
        return [o.type.value for o in self.exchange.book.open_orders()]


@asynccontextmanager
async def opened(tmp_path: Path, faults: str = "") -> AsyncIterator[World]:
    """The adapter on the emulator, holding 10 SPY bought at T0."""
    clock = Clock()
    exchange, app = start(tmp_path, faults, clock)
    with serving(app) as url:
        venue = adapter(url)
        await venue.connect()
        await venue.submit(order("golden-1-000001", qty="10"))  # the position to protect
        yield World(venue, exchange, clock, url)
        await venue.close()
    exchange.book.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with opened(tmp_path) as opened_world:
        yield opened_world


async def test_the_pair_goes_as_one_oco_and_both_legs_carry_the_engines_ids(world) -> None:
    assert world.venue.capabilities.oco
    stop, target = world.pair("0.95", "1.05")
    placed = await world.venue.submit_oco(stop, target)
    assert [(o.client_order_id, o.type, o.oco_with) for o in placed] == [
        (STOP, OrderType.STOP, TARGET),
        (TARGET, OrderType.LIMIT, STOP),
    ]
    assert [(o.stop_price, o.limit_price) for o in placed] == [
        (stop.stop_price, None),
        (None, target.limit_price),
    ]
    # At Alpaca: one OCO, the parent under the take-profit's id, its leg under a random one.
    parent = client(world.url).get_order_by_client_id(TARGET)
    assert parent.order_class is OrderClass.OCO and parent.legs is None, "no legs unless nested"
    [leg] = client(world.url).get_order_by_id(parent.id, _nested()).legs
    assert leg.client_order_id != STOP and leg.status.value == "held"
    assert sorted(world.resting_on_the_book()) == ["limit", "stop"]


def _nested() -> Any:
    from alpaca.trading.requests import GetOrderByIdRequest

    return GetOrderByIdRequest(nested=True)


async def test_open_orders_see_the_held_leg_that_a_plain_listing_misses(world) -> None:
    await world.venue.submit_oco(*world.pair("0.95", "1.05"))
    plain = client(world.url).get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert [o.client_order_id for o in plain] == [TARGET], "the emulator hides the held leg"
    restarted = adapter(world.url)  # knows nothing of what was sent
    await restarted.connect()
    listed = {o.client_order_id: o for o in await restarted.open_orders()}
    assert set(listed) == {STOP, TARGET}
    assert (listed[STOP].oco_with, listed[STOP].state) == (TARGET, OrderState.OPEN)
    assert (await restarted.order(STOP, "SPY")).venue_order_id == listed[STOP].venue_order_id
    await restarted.close()


async def test_canceling_the_stop_leg_takes_the_pair(world) -> None:
    await world.venue.submit_oco(*world.pair("0.95", "1.05"))
    canceled = await world.venue.cancel(STOP, "SPY")
    assert (canceled.client_order_id, canceled.state) == (STOP, OrderState.CANCELED)
    assert (await world.venue.order(TARGET, "SPY")).state is OrderState.CANCELED
    assert world.resting_on_the_book() == []
    assert await world.venue.open_orders() == []


async def test_a_stop_that_fires_cancels_the_take_profit_and_its_fill_names_the_stop(
    tmp_path: Path,
) -> None:
    async with opened(tmp_path) as world:
        stop, _ = pair = world.pair("0.997", "1.10")
        await world.venue.submit_oco(*pair)
        world.clock.now = first_time_price("SPY", T0, lambda p: p <= stop.stop_price)
        assert (await world.venue.order(STOP, "SPY")).state is OrderState.FILLED
        assert (await world.venue.order(TARGET, "SPY")).state is OrderState.CANCELED
        restarted = adapter(world.url)  # a fill is named even by an adapter that sent nothing
        await restarted.connect()
        fills = (await restarted.fills()).fills
        assert [(f.client_order_id, f.side.value) for f in fills] == [
            ("golden-1-000001", "buy"),
            (STOP, "sell"),
        ]
        await restarted.close()
        filled = world.filled_on_the_book()
        assert sorted(filled.values()) == [0, 10, 10], "the entry and one leg: never both"


async def test_a_take_profit_reached_cancels_the_stop(tmp_path: Path) -> None:
    async with opened(tmp_path) as world:
        _, target = pair = world.pair("0.90", "1.003")
        await world.venue.submit_oco(*pair)
        world.clock.now = first_time_price("SPY", T0, lambda p: p >= target.limit_price)
        assert (await world.venue.order(TARGET, "SPY")).state is OrderState.FILLED
        assert (await world.venue.order(STOP, "SPY")).state is OrderState.CANCELED
        fills = (await world.venue.fills()).fills
        assert [f.client_order_id for f in fills] == ["golden-1-000001", TARGET]
        assert world.exchange.book.positions() == []
        assert sorted(world.filled_on_the_book().values()) == [0, 10, 10]


async def test_a_lost_answer_is_found_by_both_ids_and_never_sent_twice(tmp_path: Path) -> None:
    async with opened(tmp_path, "timeout_after:on=submit,nth=2") as world:
        with pytest.raises(Ambiguous):
            await world.venue.submit_oco(*world.pair("0.95", "1.05"))
        found = [await world.venue.order(cid, "SPY") for cid in (STOP, TARGET)]
        assert [(o.state, o.oco_with) for o in found] == [
            (OrderState.OPEN, TARGET),
            (OrderState.OPEN, STOP),
        ]
        assert sorted(world.resting_on_the_book()) == ["limit", "stop"], "one OCO"


async def test_an_oco_never_sent_is_not_found_by_either_id(world) -> None:
    for cid in (STOP, TARGET):
        with pytest.raises(NotFound):
            await world.venue.order(cid, "SPY")


async def test_alpaca_refuses_a_fractional_pair_and_the_adapter_a_crypto_one(world) -> None:
    with pytest.raises(Rejected, match="fractional orders must be simple orders") as refused:
        await world.venue.submit_oco(*world.pair("0.95", "1.05", qty="2.5"))
    assert refused.value.code == "42210000"
    assert world.resting_on_the_book() == []
    coin = [r.model_copy(update={"symbol": "BTC/USDT"}) for r in world.pair("0.95", "1.05")]
    with pytest.raises(Rejected, match="crypto orders are simple only"):
        await world.venue.submit_oco(*coin)


async def test_a_pair_not_named_after_its_stop_is_refused_before_sending(world) -> None:
    stop, target = world.pair("0.95", "1.05")
    with pytest.raises(Rejected, match="not named after its stop"):
        await world.venue.submit_oco(stop, target.model_copy(update={"client_order_id": "tp-1"}))
    assert world.resting_on_the_book() == []


async def test_a_second_exit_beside_the_pair_is_refused_as_alpaca_refuses_it(world) -> None:
    await world.venue.submit_oco(*world.pair("0.95", "1.05"))
    with pytest.raises(Rejected, match="insufficient qty available") as refused:
        await world.venue.submit(order("golden-1-000003", side="sell", qty="10"))
    assert refused.value.code == "40310000"


def test_the_emulator_answers_an_oco_it_cannot_take_as_alpaca_does(tmp_path: Path) -> None:
    exchange, app = start(tmp_path)
    with serving(app) as url:
        trading = client(url)
        price = float(FEED.price("SPY", T0))

        def oco(stop: float, target: float, qty: float = 10) -> Any:
            return LimitOrderRequest(
                symbol="SPY", qty=qty, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
                limit_price=target, order_class=OrderClass.OCO,
                take_profit=TakeProfitRequest(limit_price=target),
                stop_loss=StopLossRequest(stop_price=stop),
            )  # fmt: skip

        refusals = {
            "stop above the take-profit": oco(price * 0.9, price * 0.85),
            "a fraction": oco(price * 0.9, price * 1.1, qty=0.5),
        }
        for why, request in refusals.items():
            with pytest.raises(APIError) as refused:
                trading.submit_order(request)
            assert (refused.value.status_code, refused.value.code) == (422, 42210000), why
        assert exchange.book.all_orders() == []
    exchange.book.close()


def test_a_coin_among_the_symbols_leaves_the_account_without_oco() -> None:
    assert adapter("http://127.0.0.1:9", symbols=["SPY"]).capabilities.oco
    assert not adapter("http://127.0.0.1:9", symbols=["SPY", "BTC/USD"]).capabilities.oco
