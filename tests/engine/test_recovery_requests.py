"""What a restart asks Binance, through the real ccxt over HTTP to the emulators: open
orders and stops listed account-wide (one request each, however many markets), fills
read once per start, and on USD-M only in the markets the account-wide witnesses (its
income history, its positions) say something happened in. Whatever is skipped, every
fill of the bot's at the venue ends in its ledger: checked from the exchange's book."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.models import OrderSide
from botwarden.domain.orders import OrderType, Purpose
from botwarden.venues.emulators.binance import Flavour
from tests.support.binance import CALM, VOLATILE, binance_markets, hold

pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")

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
        state = await runner.state.snapshot()
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
        state = await runner.state.snapshot()
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
        state = await runner.state.snapshot()
        assert world.promises_broken(runner, state) == []  # I2 and I3, from the book
        assert world.symbol(VOLATILE) in {p.symbol for p in state.positions.values()}
        assert world.calls["GET /fapi/v1/userTrades"] == 1, "only the market that traded"
