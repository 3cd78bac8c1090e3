"""Venue benchmark: what recovery costs to ask, and how fast the paper engine trades.

For an account holding 1, 100 and 1,000 positions (each with a resting stop), it
measures the calls and the wall time needed to fetch positions, open orders and fills
(what recovery asks after a crash), and the paper engine's order throughput.

    .venv/bin/python benchmarks/venues.py [--sizes 1,100,1000]

The Alpaca and ccxt adapters join this table when their emulators land (step 2).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from botwarden.venues.base import OrderRequest
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def make_venue(directory: Path, symbols: int) -> PaperVenue:
    feed = RandomWalkFeed(
        {f"S{i:04d}": Instrument(f"S{i:04d}", Decimal("100")) for i in range(symbols)}, seed=3
    )
    settings = BookSettings(starting_cash=Decimal("1000000000"))
    return PaperVenue(PaperBook(directory / f"paper-{symbols}.db", feed, settings), lambda: NOW)


async def timed(call) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def measure(directory: Path, held: int) -> dict[str, float]:
    venue = make_venue(directory, held)
    entries, stops = [], []
    for i in range(held):
        symbol = f"S{i:04d}"
        entry = OrderRequest(
            client_order_id=f"e{i}", symbol=symbol, side="buy", type="market", qty=Decimal(1)
        )
        entries.append(await timed(venue.submit(entry)))
        price = await venue.last_price(symbol)
        stop = OrderRequest(
            client_order_id=f"s{i}",
            symbol=symbol,
            side="sell",
            type="stop",
            qty=Decimal(1),
            stop_price=(price * Decimal("0.9")).quantize(Decimal("0.01")),
        )
        stops.append(await timed(venue.submit(stop)))
    reads = {
        "positions": min([await timed(venue.positions()) for _ in range(5)]),
        "open orders": min([await timed(venue.open_orders()) for _ in range(5)]),
        "fills": min([await timed(venue.fills()) for _ in range(5)]),
    }
    assert len(await venue.positions()) == held
    assert len(await venue.open_orders()) == held
    venue.book.close()
    return {
        **reads,
        "market order ms": statistics.median(entries) * 1e3,
        "stop order ms": statistics.median(stops) * 1e3,
        "orders per s": 1 / statistics.mean(entries + stops),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 110))
    directory = Path(tempfile.mkdtemp(prefix="venues-"))
    try:
        table = Table(
            title="Paper venue: recovery reads and order throughput", title_justify="left"
        )
        for column in ("held", "calls", "positions ms", "open orders ms", "fills ms",
                       "market order ms", "stop order ms", "orders/s"):  # fmt: skip
            table.add_column(column, justify="right")
        for held in (int(size) for size in args.sizes.split(",")):
            result = await measure(directory, held)
            table.add_row(
                f"{held:,}",
                "3",
                f"{result['positions'] * 1e3:.2f}",
                f"{result['open orders'] * 1e3:.2f}",
                f"{result['fills'] * 1e3:.2f}",
                f"{result['market order ms']:.3f}",
                f"{result['stop order ms']:.3f}",
                f"{result['orders per s']:,.0f}",
            )
        console.print(table)
        console.print(
            "calls: to fetch positions, open orders and fills, one bulk call each whatever the"
            " account holds; read times are the best of 5; order times the median."
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
