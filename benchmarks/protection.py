"""Protection benchmark: how long an entry is bare on the venue.

From the moment the bot knows its entry filled (the fills page that holds it came
back) until its protection rests on the venue (the last protective submission came
back): the stop alone, and the stop with a take-profit. Measured through the whole
engine (a `Runner` taking one long signal), per venue:

- `paper`: the simulated exchange, called directly;
- `alpaca`: the real alpaca-py over HTTP against the Alpaca emulator;
- `binance spot` and `binance usdm`: the real ccxt over HTTP against the Binance
  emulators, with ccxt's request pacing (its `rateLimit` and each endpoint's weight, as
  a bot trades against binance.com) on and off.

    .venv/bin/python benchmarks/protection.py [--runs 7]

Prints the median and the slowest run, the venue calls and HTTP requests made in that
window, and each row against the fewest round trips it could take.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from botwarden.config import BotConfig
from botwarden.domain.models import Bar, Position, Stop, TakeProfit
from botwarden.domain.orders import OrderType
from botwarden.engine.runner import Runner
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from botwarden.strategies.base import Signal
from botwarden.strategies.loading import LoadedStrategy, Origin
from botwarden.venues.base import OrderRequest
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
FEED = RandomWalkFeed(
    {
        "SPY": Instrument("SPY", Decimal("450")),
        "BTC/USDT": Instrument("BTC/USDT", Decimal("60000"), Decimal("0.1"), Decimal("0.001")),
    },
    seed=11,
)


class Ticking:
    """Exchange time that moves a millisecond per look (orders get distinct times)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class OnceLong:
    """Enters long on its first pass, with its stop (and take-profit, if given)."""

    name = "once"
    bars_needed = 1

    def __init__(self, take_profit: bool) -> None:
        self.entry: dict[str, Any] = {"stop": Stop.percent(2)}
        if take_profit:
            self.entry["take_profit"] = TakeProfit.percent(2)

    def decide(self, symbol: str, bars: list[Bar], position: Position | None) -> Signal | None:
        return None if position is not None else Signal.long(symbol, bars[-1], "once", **self.entry)


@dataclass
class Watched:
    """The venue the bot runs on, with the moment each of its calls came back (a
    benchmark's stopwatch, not a fake: every call goes to the venue)."""

    venue: Any
    requests: Callable[[], int]
    """HTTP requests the emulator served so far (paper: none)."""
    calls: list[tuple[str, float, int, tuple, Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.venue, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def timed(*args: Any, **kwargs: Any) -> Any:
            result = await attribute(*args, **kwargs)
            self.calls.append((name, time.perf_counter(), self.requests(), args, result))
            return result

        return timed

    def bare(self) -> tuple[float, int, int]:
        """Seconds from the entry's fill known to the protection resting, and the venue
        calls and HTTP requests made in between."""
        known = next(
            n for n, (name, *_, result) in enumerate(self.calls) if name == "fills" and result.fills
        )
        protective = [
            n
            for n, (name, _, _, args, _) in enumerate(self.calls)
            if name == "submit_oco" or (name == "submit" and _protective(args[0]))
        ]
        done = protective[-1]
        seconds = self.calls[done][1] - self.calls[known][1]
        return seconds, done - known, self.calls[done][2] - self.calls[known][2]


def _protective(request: OrderRequest) -> bool:
    return request.type is OrderType.STOP or (
        request.type is OrderType.LIMIT and request.reduce_only
    )


async def one_run(venue: Any, symbol: str, take_profit: bool, directory: Path) -> Watched:
    watched = venue
    clock = Ticking()
    config = BotConfig.model_validate(
        {
            "bot_id": "bench",
            "symbols": [symbol],
            "order": {"qty": "0.01" if "BTC" in symbol else "10"},
            "strategy": {"name": "golden_cross", "timeframe": "1h"},
            "stop": {"kind": "percent", "distance": 2},
        }
    )
    state = StateManager("bench", SqliteStore(directory / "state.db"), clock=clock)
    await state.open()
    loaded = LoadedStrategy(OnceLong(take_profit), Origin("module", "benchmarks"))
    runner = Runner(config.bot_settings(), state, watched, clock, None, loaded)
    await runner.start()
    await runner.tick()
    await watched.close()
    await state.close()
    return watched


def book(directory: Path, **settings: Any) -> PaperBook:
    return PaperBook(directory / "paper.db", FEED, BookSettings(**settings))


async def paper(directory: Path, take_profit: bool, paced: bool) -> Watched:
    venue = PaperVenue(book(directory), Ticking())
    return await one_run(Watched(venue, lambda: 0), "SPY", take_profit, directory)


async def alpaca(directory: Path, take_profit: bool, paced: bool) -> Watched:
    from botwarden.venues.alpaca import AlpacaVenue
    from botwarden.venues.emulators.alpaca import create_app
    from botwarden.venues.emulators.server import serving

    exchange = PaperVenue(book(directory), Ticking())
    app = create_app(exchange, "PKBENCH", "bench")
    with serving(app) as url:
        venue = AlpacaVenue("PKBENCH", "bench", base_url=url, data_url=url)
        watched = Watched(venue, lambda: sum(app.state.calls.values()))
        return await one_run(watched, "SPY", take_profit, directory)


def binance(flavour: str) -> Callable[[Path, bool, bool], Any]:
    async def measure(directory: Path, take_profit: bool, paced: bool) -> Watched:
        from botwarden.venues.ccxt import CcxtVenue
        from botwarden.venues.emulators.binance import create_app
        from botwarden.venues.emulators.server import serving

        futures = flavour == "usdm"
        settings = {"currency": "USDT", "client_ids": "binance", "shorting": futures}
        exchange = PaperVenue(book(directory, reduce_only=futures, **settings), Ticking())
        app = create_app(exchange, flavour, "bench-key", "bench-secret")
        symbol = "BTC/USDT:USDT" if futures else "BTC/USDT"
        with serving(app) as url:
            venue = CcxtVenue(
                "binanceusdm" if futures else "binance", "bench-key", "bench-secret",
                base_url=url, symbols=[symbol], throttle=paced, host_clock=exchange.clock,
            )  # fmt: skip
            watched = Watched(venue, lambda: sum(app.state.calls.values()))
            return await one_run(watched, symbol, take_profit, directory)

    return measure


async def measured(measure: Callable[..., Any], take_profit: bool, paced: bool, runs: int):
    """(median s, slowest s, venue calls, HTTP requests) over `runs`; None if the venue
    holds no take-profit beside a stop."""
    found = []
    for _ in range(runs):
        directory = Path(tempfile.mkdtemp(prefix="protection-"))
        try:
            watched = await measure(directory, take_profit, paced)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if take_profit and not any(_is_target(call) for call in watched.calls):
            return None
        found.append(watched.bare())
    seconds = [f[0] for f in found]
    usual = Counter((f[1], f[2]) for f in found).most_common(1)[0][0]
    return statistics.median(seconds), max(seconds), *usual


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 150))
    venues: dict[str, tuple[Callable[..., Any], tuple[bool, ...]]] = {
        "paper": (paper, (False,)),
        "alpaca (emulator)": (alpaca, (False,)),
        "binance spot (emulator)": (binance("spot"), (True, False)),
        "binance usdm (emulator)": (binance("usdm"), (True, False)),
    }
    results = {}
    for name, (measure, pacings) in venues.items():
        for protection in ("stop", "stop + take-profit"):
            for paced in pacings:
                take_profit = protection != "stop"
                results[(name, protection, paced)] = await measured(
                    measure, take_profit, paced, args.runs
                )
    table = Table(
        title="Protection: from an entry's fill known to its protection resting",
        title_justify="left",
    )
    for column in ("venue", "protection", "ccxt pacing", "median ms", "slowest ms",
                   "venue calls", "HTTP requests", "x paper", "x unpaced"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("venue", "protection") else "right")
    for (name, protection, paced), result in results.items():
        pacing = ("on" if paced else "off") if len(venues[name][1]) > 1 else "-"
        if result is None:
            table.add_row(name, protection, pacing, "cannot hold both", *[""] * 5)
            continue
        median, slowest, calls, requests = result
        paper_median = results[("paper", protection, False)][0]
        unpaced = results.get((name, protection, False)) if paced else None
        table.add_row(
            name,
            protection,
            pacing,
            f"{median * 1e3:,.1f}",
            f"{slowest * 1e3:,.1f}",
            str(calls),
            str(requests),
            f"{median / paper_median:,.1f}",
            f"{median / unpaced[0]:,.1f}" if unpaced else "",
        )
    console.print(table)
    console.print(
        "venue calls: calls of the port after the fills call that found the entry, up to"
        " the last protective submission (open orders, prices, submissions); HTTP"
        " requests: those the emulator served in that window. The fewest possible is one"
        " round trip: the protection's submission(s), sent at once."
    )


def _is_target(call: tuple) -> bool:
    name, _, _, args, _ = call
    return name == "submit_oco" or (
        name == "submit" and args[0].type is OrderType.LIMIT and args[0].reduce_only
    )


if __name__ == "__main__":
    asyncio.run(main())
