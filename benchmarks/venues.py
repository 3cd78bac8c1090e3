"""Venue benchmark: what recovery costs to ask, and how fast orders go through.

For an account holding 1, 100 and 1,000 positions (each with a resting stop), it
measures the calls and the wall time needed to fetch positions, open orders and fills
(what recovery asks after a crash), and the paper engine's order throughput.

    .venv/bin/python benchmarks/venues.py [--sizes 1,100,1000]

Measured for the paper exchange called directly, the alpaca adapter (real alpaca-py
over HTTP) against the Alpaca emulator, and the ccxt adapter (real ccxt over HTTP)
against the Binance spot and USD-M emulators (ccxt's own request pacing off: it would
measure Binance's rate limits, not the adapter).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from botwarden.venues.base import OrderRequest, Venue
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


class Ticking:
    """Exchange time that moves a millisecond per look: orders get distinct times, as
    they do at a real venue (Alpaca pages its order lists by submission time)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def symbols(count: int, quote: str = "") -> list[str]:
    return [f"S{i:04d}{quote}" for i in range(count)]


def make_paper(directory: Path, count: int, name: str, **settings: Any) -> PaperVenue:
    """A paper exchange listing `count` symbols (`S0000`, or `S0000/USDT` for Binance)."""
    quote = "/USDT" if settings.get("currency") == "USDT" else ""
    feed = RandomWalkFeed({s: Instrument(s, Decimal("100")) for s in symbols(count, quote)}, seed=3)
    book = BookSettings(starting_cash=Decimal("1000000000"), **settings)
    return PaperVenue(PaperBook(directory / f"{name}-{count}.db", feed, book), Ticking())


async def timed(call) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def trade(venue: Venue, traded: list[str]) -> tuple[list[float], list[float]]:
    """One position per symbol, each with its resting stop."""
    entries, stops = [], []
    for i, symbol in enumerate(traded):
        entry = OrderRequest(
            client_order_id=f"e{i}", symbol=symbol, side="buy", type="market", qty=Decimal(1)
        )
        entries.append(await timed(venue.submit(entry)))
        stop = OrderRequest(
            client_order_id=f"s{i}",
            symbol=symbol,
            side="sell",
            type="stop",
            qty=Decimal(1),
            stop_price=Decimal("50"),
        )
        stops.append(await timed(venue.submit(stop)))
    return entries, stops


async def all_fills(venue: Venue) -> int:
    """Every fill, page after page, as recovery reads them."""
    count, cursor = 0, None
    while True:
        page = await venue.fills(cursor=cursor)
        count, cursor = count + len(page.fills), page.cursor
        if not page.more:
            return count


async def recovery_reads(venue: Venue, held: int, calls: Callable[[], Counter]) -> dict[str, Any]:
    """What a restarted bot asks: positions, open orders, fills; time and calls each."""
    result: dict[str, Any] = {}
    for kind, read, expected in (
        ("positions", venue.positions, held),
        ("open orders", venue.open_orders, held),
        ("fills", lambda: all_fills(venue), held),
    ):
        calls().clear()
        started = time.perf_counter()
        found = await read()
        result[f"{kind} ms"] = (time.perf_counter() - started) * 1e3
        result[f"{kind} calls"] = sum(calls().values()) or 1
        size = found if isinstance(found, int) else len(found)
        assert size == expected, f"{kind}: {size} != {expected}"
    return result


async def measure_paper(directory: Path, held: int) -> dict[str, Any]:
    venue = make_paper(directory, held, "paper")
    entries, stops = await trade(venue, symbols(held))
    result = await recovery_reads(venue, held, Counter)
    venue.book.close()
    return {**result, **order_times(entries, stops)}


async def measure_alpaca(directory: Path, held: int) -> dict[str, Any]:
    from botwarden.venues.alpaca import AlpacaVenue
    from botwarden.venues.emulators.alpaca import create_app
    from botwarden.venues.emulators.server import serving

    exchange = make_paper(directory, held, "alpaca")
    app = create_app(exchange, "PKBENCH", "bench")
    with serving(app) as url:
        trader = AlpacaVenue("PKBENCH", "bench", base_url=url, data_url=url)
        await trader.connect()
        entries, stops = await trade(trader, symbols(held))
        await trader.close()
        restarted = AlpacaVenue("PKBENCH", "bench", base_url=url, data_url=url)
        await restarted.connect()
        result = await recovery_reads(restarted, held, lambda: app.state.calls)
        await restarted.close()
    exchange.book.close()
    return {**result, **order_times(entries, stops)}


def ccxt_measure(flavour: str) -> Callable[[Path, int], Any]:
    async def measure(directory: Path, held: int) -> dict[str, Any]:
        from botwarden.venues.ccxt import CcxtVenue
        from botwarden.venues.emulators.binance import create_app
        from botwarden.venues.emulators.server import serving

        exchange = make_paper(
            directory, held, flavour, currency="USDT", client_ids="binance",
            shorting=flavour == "usdm",
        )  # fmt: skip
        app = create_app(exchange, flavour, "bench-key", "bench-secret")
        traded = symbols(held, "/USDT" if flavour == "spot" else "/USDT:USDT")
        exchange_id = "binance" if flavour == "spot" else "binanceusdm"
        with serving(app) as url:

            def adapter() -> CcxtVenue:
                return CcxtVenue(
                    exchange_id, "bench-key", "bench-secret", base_url=url, symbols=traded,
                    throttle=False,
                )  # fmt: skip

            trader = adapter()
            await trader.connect()
            entries, stops = await trade(trader, traded)
            await trader.close()
            restarted = adapter()
            await restarted.connect()
            result = await recovery_reads(restarted, held, lambda: app.state.calls)
            await restarted.close()
        exchange.book.close()
        return {**result, **order_times(entries, stops)}

    return measure


def order_times(entries: list[float], stops: list[float]) -> dict[str, float]:
    return {
        "market order ms": statistics.median(entries) * 1e3,
        "stop order ms": statistics.median(stops) * 1e3,
        "orders per s": 1 / statistics.mean(entries + stops),
    }


READS = ("positions", "open orders", "fills")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--paper-only", action="store_true", help="skip the emulators")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 110))
    directory = Path(tempfile.mkdtemp(prefix="venues-"))
    try:
        table = Table(title="Venues: recovery reads and order throughput", title_justify="left")
        columns = ["venue", "held", *(f"{kind} ms (calls)" for kind in READS)]
        for column in [*columns, "market order ms", "stop order ms", "orders/s"]:
            table.add_column(column, justify="left" if column == "venue" else "right")
        measures = {"paper": measure_paper}
        if not args.paper_only:
            measures["alpaca (emulator)"] = measure_alpaca
            measures["ccxt binance spot (emulator)"] = ccxt_measure("spot")
            measures["ccxt binanceusdm (emulator)"] = ccxt_measure("usdm")
        for name, measure in measures.items():
            for held in (int(size) for size in args.sizes.split(",")):
                r = await measure(directory, held)
                table.add_row(
                    name,
                    f"{held:,}",
                    *(f"{r[f'{kind} ms']:.1f} ({r[f'{kind} calls']})" for kind in READS),
                    f"{r['market order ms']:.3f}",
                    f"{r['stop order ms']:.3f}",
                    f"{r['orders per s']:,.0f}",
                )
        console.print(table)
        console.print(
            "calls: requests a restarted bot needs to read everything (paper: one method"
            " call each; emulators: HTTP requests, counted there; Binance lists trades one"
            " market at a time). Order times are the median of the orders that built the"
            " account."
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
