"""What a restart asks Binance, through the real ccxt over HTTP to the emulators: open
orders and stops listed account-wide (one request each, however many markets), and
fills read once per start. Every promise is checked from the exchange's book."""

from __future__ import annotations

from pathlib import Path

import pytest

from botwarden.venues.emulators.binance import Flavour
from tests.support.binance import CALM, binance_markets, hold

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


@pytest.mark.parametrize("flavour", ["spot"])
async def test_a_restart_lists_open_orders_in_bulk_and_reads_fills_once(
    tmp_path: Path, flavour: Flavour
) -> None:
    one = await restart_requests(tmp_path, flavour, 1)
    five = await restart_requests(tmp_path, flavour, 5)
    for listing in LISTINGS[flavour]:
        assert five[listing] == one[listing], f"{listing} grows with the markets"
    assert five[TRADES[flavour]] == 5  # trades are per market: each read once
