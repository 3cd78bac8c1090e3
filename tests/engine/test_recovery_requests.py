"""What a restart asks the venue, through the real SDKs over HTTP to the emulators: on
Binance, open orders and stops listed account-wide (one request each, however many
markets), fills read once per start, and on USD-M only in the markets the
account-wide witnesses (its income history, its positions) say something happened in;
on Alpaca, orders and assets listed in bulk. Whatever is skipped, every fill of the
bot's at the venue ends in its ledger: checked from the exchange's book."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.config import BotConfig
from botwarden.domain.models import OrderSide
from botwarden.domain.orders import OrderType, Purpose
from botwarden.engine.checks import check_promises
from botwarden.venues.emulators.alpaca import book_trade_id as alpaca_trade_id
from botwarden.venues.emulators.binance import Flavour
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from tests.conftest import whole
from tests.engine.harness import CONFIG, started
from tests.support.alpaca import adapter, start
from tests.support.binance import CALM, VOLATILE, binance_markets
from tests.support.positions import hold
from tests.venues.test_paper import Clock

LISTINGS: dict[Flavour, tuple[str, ...]] = {
    "usdm": ("GET /fapi/v1/openOrders", "GET /fapi/v1/openAlgoOrders"),
    "spot": ("GET /api/v3/openOrders",),
}
TRADES: dict[Flavour, str] = {"usdm": "GET /fapi/v1/userTrades", "spot": "GET /api/v3/myTrades"}


async def restart_requests(tmp_path: Path, flavour: Flavour, held: int) -> dict[str, int]:
    """The requests of a restart of a bot holding a position (and its stop) in each of
    `held` calm markets, nothing having happened while it was down."""
    markets = list(CALM[:held])
    async with binance_markets(tmp_path / str(held), flavour, markets) as world:
        first = await world.runner()
        await hold(first, [world.symbol(m) for m in markets])
        await world.crash(first)
        world.calls.clear()
        runner = await world.runner()
        state = await whole(runner.state)
        assert len(state.positions) == held
        assert world.promises_broken(runner, state) == []
        return dict(world.calls)


@pytest.mark.parametrize("flavour", ["usdm", "spot"])
async def test_a_restart_lists_open_orders_in_bulk_and_reads_fills_once(
    tmp_path: Path, flavour: Flavour
) -> None:
    one = await restart_requests(tmp_path, flavour, 1)
    five = await restart_requests(tmp_path, flavour, 5)
    for listing in LISTINGS[flavour]:
        assert five[listing] == one[listing], f"{listing} grows with the markets"
    if flavour == "spot":  # trades are per market, and no witness says where: each once
        assert five[TRADES[flavour]] == 5
    else:  # nothing traded while down: the income and the positions say so
        assert five.get(TRADES[flavour], 0) == 0
        assert five["GET /fapi/v1/income"] == 2  # (one per kind of entry, once)
        assert one[TRADES[flavour]] == 1  # (one market: reading it costs less)


async def test_a_stop_filled_while_down_is_recorded_reading_only_its_market(
    tmp_path: Path,
) -> None:
    markets = [*CALM[:4], VOLATILE]
    async with binance_markets(tmp_path, "usdm", markets) as world:
        first = await world.runner()
        await hold(first, [world.symbol(m) for m in markets])
        await world.crash(first)
        await world.until(filled=len(markets) + 1)  # the volatile market's stop fired
        [(_, stop_fill)] = world.exchange.book.fills()[len(markets) :]
        assert stop_fill.symbol == VOLATILE and stop_fill.side is OrderSide.SELL
        world.calls.clear()

        runner = await world.runner()
        state = await whole(runner.state)
        assert world.promises_broken(runner, state) == []  # I3: the stop's fill is there
        assert {p.symbol for p in state.positions.values()} == {world.symbol(m) for m in CALM[:4]}
        assert world.calls["GET /fapi/v1/userTrades"] == 1, "only the market that traded"


async def test_an_entry_filled_while_down_at_no_fee_is_found_by_its_position(
    tmp_path: Path,
) -> None:
    """A fill that pays no fee and realises nothing leaves no income entry: the
    position it opened is what shows it."""
    markets = [*CALM[:4], VOLATILE]
    async with binance_markets(tmp_path, "usdm", markets, fee_rate="0") as world:
        first = await world.runner()
        await hold(first, [world.symbol(m) for m in CALM[:4]])
        price = await first.venue.last_price(world.symbol(VOLATILE))
        await first.desk.place(
            symbol=world.symbol(VOLATILE),
            side=OrderSide.BUY,
            qty=Decimal(1),
            purpose=Purpose.ENTRY,
            type=OrderType.LIMIT,
            limit_price=(price * Decimal("0.97")).quantize(Decimal("0.01")),
        )
        await world.crash(first)
        await world.until(filled=5)  # the limit entry filled
        world.calls.clear()

        runner = await world.runner()
        state = await whole(runner.state)
        assert world.promises_broken(runner, state) == []  # I2 and I3, from the book
        assert world.symbol(VOLATILE) in {p.symbol for p in state.positions.values()}
        assert world.calls["GET /fapi/v1/userTrades"] == 1, "only the market that traded"


STOCKS = [f"S{n:02d}" for n in range(12)]


async def alpaca_restart_requests(tmp_path: Path, held: int) -> dict[str, int]:
    """The requests of a restart of a bot trading `held` stocks, a position and its
    stop in each, nothing having happened while it was down."""
    pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")
    markets = STOCKS[:held]
    calm = {s: Instrument(s, Decimal("100"), daily_volatility=0.0005) for s in STOCKS}
    clock = Clock()
    exchange, app = start(tmp_path / str(held), clock=clock, feed=RandomWalkFeed(calm, seed=5))
    config = BotConfig.model_validate(
        {**CONFIG, "symbols": markets, "order": {"qty": 1}, "stop": {"distance": 2}}
    )
    state_path = tmp_path / str(held) / "state.db"
    with serving(app) as url:
        first = await started(config, state_path, adapter(url, symbols=markets), clock)
        await hold(first, markets)
        await first.venue.close()
        await first.state.close()
        app.state.calls.clear()
        runner = await started(config, state_path, adapter(url, symbols=markets), clock)
        state = await whole(runner.state)
        assert len(state.positions) == held
        book = exchange.book
        assert check_promises(state, book, runner.ctx.ids, book_trade_id=alpaca_trade_id) == []
        await runner.venue.close()
        await runner.state.close()
    exchange.book.close()
    return dict(app.state.calls)


async def test_an_alpaca_restart_lists_orders_and_assets_in_bulk(tmp_path: Path) -> None:
    few = await alpaca_restart_requests(tmp_path, 2)
    many = await alpaca_restart_requests(tmp_path, len(STOCKS))
    assert many["GET /v2/orders"] == few["GET /v2/orders"]
    assert many["GET /v2/account/activities/FILL"] == 1  # account-wide, read once
    one_by_one = [what for what in many if what.startswith("GET /v2/assets/")]
    assert one_by_one == [] and many["GET /v2/assets"] == 1
