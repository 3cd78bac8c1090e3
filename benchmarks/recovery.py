"""Recovery benchmark: from a start to "every position verified protected, running".

    .venv/bin/python -m benchmarks.recovery [--sizes 0,100,1000] [--venues paper,alpaca,usdm,spot]

For a bot holding 0, 100 and 1,000 positions (one per symbol, each with its stop on
the venue), a new instance starts on the same state and the same exchange, as after a
crash: it opens its state, fences the older instance out, connects, and recovers
(balance, orders without an answer, fills, positions, every stop checked). Measured:
the wall time of that start and the venue calls it made, on the paper exchange called
directly, through the alpaca adapter (real alpaca-py over HTTP) against the Alpaca
emulator, and through the ccxt adapter (real ccxt over HTTP) against the Binance USD-M
and spot emulators; "fill reads" are the calls among them that list trades. Also the
cost of getting to a running bot at all: `import botwarden.cli`, and
`botwarden --version` as a process.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.venues import Ticking
from rich.console import Console
from rich.table import Table
from tests.support.positions import hold

from botwarden.config import BotConfig
from botwarden.engine.runner import Runner
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue


class Counted:
    """A venue whose calls are counted, by method. (`market` is not counted: every
    adapter answers it from what it loaded at connect, without a request.)"""

    def __init__(self, venue: Any) -> None:
        self._venue = venue
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._venue, name)
        if not callable(target) or name in ("connect", "close", "market"):
            return target

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await target(*args, **kwargs)

        return counted


FILL_READS = frozenset(
    {"GET /fapi/v1/userTrades", "GET /api/v3/myTrades", "GET /v2/account/activities/FILL"}
)
"""The requests that list trades: per market on Binance, account-wide on Alpaca."""


def paper(directory: Path, symbols: list[str], quote: str = "", **book: Any) -> PaperVenue:
    feed = RandomWalkFeed({s: Instrument(s, Decimal("100")) for s in symbols}, seed=3)
    settings = BookSettings(starting_cash=Decimal("1000000000"), currency=quote or "USD", **book)
    return PaperVenue(PaperBook(directory / "paper.db", feed, settings), Ticking())


def config(symbols: list[str]) -> BotConfig:
    return BotConfig.model_validate(
        {"bot_id": "bench", "symbols": symbols, "order": {"qty": 1}, "stop": {"distance": 20}}
    )


async def restart(
    directory: Path, symbols: list[str], venue: Any, clock: Callable[[], Any]
) -> tuple[float, Runner]:
    started = time.perf_counter()
    state = StateManager("bench", SqliteStore(directory / "state.db"), clock=clock)
    await state.open()
    runner = Runner(config(symbols).bot_settings(), state, venue, clock)
    await runner.start()
    return time.perf_counter() - started, runner


async def measure_paper(directory: Path, held: int) -> dict[str, Any]:
    symbols = [f"S{i:04d}" for i in range(max(held, 1))]
    exchange = paper(directory, symbols)
    _, first = await restart(directory, symbols, exchange, exchange.clock)
    await hold(first, symbols[:held])
    await first.state.close()
    counted = Counted(exchange)
    seconds, runner = await restart(directory, symbols, counted, exchange.clock)
    protected = len((await runner.state.snapshot()).positions)
    await runner.state.close()
    exchange.book.close()
    calls = counted.calls
    return {
        "seconds": seconds,
        "calls": sum(calls.values()),
        "fill reads": calls["fills"],
        "protected": protected,
    }


async def measure_served(
    directory: Path,
    symbols: list[str],
    exchange: PaperVenue,
    app: Any,
    adapter: Callable[[str], Any],
    held: int,
) -> dict[str, Any]:
    """A venue served over HTTP by an emulator: the crashed instance's positions made
    through one adapter, the restart measured through a new one (a new process: no
    cache), its requests counted by the emulator."""
    from botwarden.venues.emulators.server import serving

    with serving(app) as url:
        _, first = await restart(directory, symbols, adapter(url), exchange.clock)
        await hold(first, symbols[:held])
        await first.state.close()
        await first.venue.close()
        app.state.calls.clear()
        venue = adapter(url)
        seconds, runner = await restart(directory, symbols, venue, exchange.clock)
        calls = dict(app.state.calls)
        protected = len((await runner.state.snapshot()).positions)
        await runner.state.close()
        await venue.close()
    exchange.book.close()
    return {
        "seconds": seconds,
        "calls": sum(calls.values()),
        "fill reads": sum(n for what, n in calls.items() if what in FILL_READS),
        "protected": protected,
    }


async def measure_alpaca(directory: Path, held: int) -> dict[str, Any]:
    from botwarden.venues.alpaca import AlpacaVenue
    from botwarden.venues.emulators.alpaca import create_app

    symbols = [f"S{i:04d}" for i in range(max(held, 1))]
    exchange = paper(directory, symbols)

    def adapter(url: str) -> AlpacaVenue:
        return AlpacaVenue("k", "s", base_url=url, data_url=url, symbols=symbols)

    app = create_app(exchange, "k", "s")
    return await measure_served(directory, symbols, exchange, app, adapter, held)


async def measure_binance(directory: Path, held: int, flavour: str) -> dict[str, Any]:
    from botwarden.venues.ccxt import CcxtVenue
    from botwarden.venues.emulators.binance import create_app

    book_symbols = [f"S{i:04d}/USDT" for i in range(max(held, 1))]
    futures = flavour == "usdm"
    symbols = [f"{s}:USDT" for s in book_symbols] if futures else book_symbols
    exchange = paper(
        directory,
        book_symbols,
        quote="USDT",
        client_ids="binance",
        shorting=futures,
        reduce_only=futures,
    )
    name = "binanceusdm" if futures else "binance"

    def adapter(url: str) -> CcxtVenue:
        return CcxtVenue(name, "k", "s", base_url=url, symbols=symbols, throttle=False)

    app = create_app(exchange, flavour, "k", "s")
    return await measure_served(directory, symbols, exchange, app, adapter, held)


async def measure_usdm(directory: Path, held: int) -> dict[str, Any]:
    return await measure_binance(directory, held, "usdm")


async def measure_spot(directory: Path, held: int) -> dict[str, Any]:
    return await measure_binance(directory, held, "spot")


def startup_costs(samples: int = 5) -> tuple[float, float]:
    """Median seconds to `import botwarden.cli`, and to run `botwarden --version`."""
    imports, versions = [], []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import botwarden.cli"], check=True)
        imports.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "botwarden", "--version"], check=True, capture_output=True
        )
        versions.append(time.perf_counter() - started)
    return statistics.median(imports), statistics.median(versions)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,100,1000")
    parser.add_argument("--venues", default="paper,alpaca,usdm,spot")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 100))
    table = Table(
        title="Recovery: start to every position verified protected", title_justify="left"
    )
    columns = ("venue", "positions", "start ms", "venue calls", "fill reads", "protected")
    for column in columns:
        table.add_column(column, justify="left" if column == "venue" else "right")
    venues = {
        "paper": ("paper", measure_paper),
        "alpaca": ("alpaca (emulator)", measure_alpaca),
        "usdm": ("ccxt binanceusdm (emulator)", measure_usdm),
        "spot": ("ccxt binance spot (emulator)", measure_spot),
    }
    for key in args.venues.split(","):
        name, measure = venues[key]
        for held in (int(size) for size in args.sizes.split(",")):
            directory = Path(tempfile.mkdtemp(prefix="recovery-"))
            try:
                r = await measure(directory, held)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            table.add_row(
                name,
                f"{held:,}",
                f"{r['seconds'] * 1e3:.0f}",
                str(r["calls"]),
                str(r["fill reads"]),
                str(r["protected"]),
            )
    console.print(table)
    imported, version = startup_costs()
    console.print(
        f"import botwarden.cli: {imported * 1e3:.0f} ms (process included);"
        f" botwarden --version: {version * 1e3:.0f} ms. Python alone:"
        f" {python_alone() * 1e3:.0f} ms."
    )


def python_alone(samples: int = 5) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == "__main__":
    asyncio.run(main())
