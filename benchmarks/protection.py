"""Protection benchmark: how long a position is bare on the venue.

1. An entry: from the moment the bot knows its entry filled (the fills page that holds
   it came back) until its protection rests on the venue (the last protective
   submission came back): the stop alone, and the stop with a take-profit.
2. A trailing stop moved: from the first request that moves it until the new one rests,
   and of that, how long no stop rested (from the old one's cancel sent to the new
   one's answer; none where the venue replaces it in one request, or where the new
   one goes first).

Measured through the whole engine (a `Runner` taking one long signal), per venue:

- `paper`: the simulated exchange, called directly;
- `alpaca`: the real alpaca-py over HTTP against the Alpaca emulator;
- `binance spot` and `binance usdm`: the real ccxt over HTTP against the Binance
  emulators, with ccxt's request pacing (its `rateLimit` and each endpoint's weight, as
  a bot trades against binance.com) on and off.

    .venv/bin/python benchmarks/protection.py [--runs 7]

Prints the median and the slowest run, the venue calls, round trips (calls in flight
together count once) and HTTP requests made in that window.
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
    """Time that moves a millisecond per look (orders get distinct times): the bot's
    and the exchange's, one clock."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class OnceLong:
    """Enters long on its first pass, with its stop (trailing, when a move is measured)
    and take-profit, if given."""

    name = "once"
    bars_needed = 1

    def __init__(self, take_profit: bool, trailing: bool) -> None:
        self.entry: dict[str, Any] = {"stop": Stop.percent(2, trailing=trailing)}
        if take_profit:
            self.entry["take_profit"] = TakeProfit.percent(5)

    def decide(self, symbol: str, bars: list[Bar], position: Position | None) -> Signal | None:
        return None if position is not None else Signal.long(symbol, bars[-1], "once", **self.entry)


@dataclass
class Watched:
    """The venue the bot runs on, with the moment each of its calls came back (a
    benchmark's stopwatch, not a fake: every call goes to the venue)."""

    venue: Any
    requests: Callable[[], int]
    """HTTP requests the emulator served so far (paper: none)."""
    calls: list[Call] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.venue, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def timed(*args: Any, **kwargs: Any) -> Any:
            began, before = time.perf_counter(), self.requests()
            result = await attribute(*args, **kwargs)
            self.calls.append(
                Call(name, began, time.perf_counter(), before, self.requests(), args, result)
            )
            return result

        return timed

    @staticmethod
    def window(calls: list[Call], since: float, served: int) -> tuple[int, int, int]:
        """The venue calls, round trips (calls in flight together count once) and HTTP
        requests of `calls`, all made after `since`, when `served` requests were done."""
        trips, busy_until = 0, since
        for call in sorted(calls, key=lambda c: c.began):
            trips += call.began >= busy_until
            busy_until = max(busy_until, call.ended)
        return len(calls), trips, max(c.requests_after for c in calls) - served

    def bare_after_entry(self) -> Figures:
        """From the entry's fill known to the protection resting."""
        known = next(
            n for n, call in enumerate(self.calls) if call.name == "fills" and call.result.fills
        )
        done = max(n for n, call in enumerate(self.calls) if call.protective)
        fill = self.calls[known]
        window = self.window(self.calls[known + 1 : done + 1], fill.ended, fill.requests_after)
        return Figures(self.calls[done].ended - fill.ended, 0.0, *window)

    def moved(self, since: int) -> Figures:
        """The calls from `since` on moved a stop: from the first request that moves it
        to the new one resting, and of that, the time no stop rested (from a cancel
        sent first to the new one's answer)."""
        moving = [n for n, call in enumerate(self.calls) if n >= since and call.moves]
        first, last = self.calls[moving[0]], self.calls[moving[-1]]
        bare = last.ended - first.began if first.name == "cancel" else 0.0
        calls = self.calls[moving[0] : moving[-1] + 1]
        window = self.window(calls, first.began, first.requests_before)
        return Figures(last.ended - first.began, bare, *window)


@dataclass(frozen=True)
class Call:
    name: str
    began: float
    ended: float
    requests_before: int
    requests_after: int
    args: tuple
    result: Any

    @property
    def protective(self) -> bool:
        """A submission of a stop or a take-profit (one, a pair, or one in another's place)."""
        if self.name in ("submit_oco", "replace"):
            return True
        if self.name != "submit":
            return False
        request: OrderRequest = self.args[0]
        return request.type is OrderType.STOP or (
            request.type is OrderType.LIMIT and request.reduce_only
        )

    @property
    def moves(self) -> bool:
        return self.protective or self.name == "cancel"


@dataclass(frozen=True)
class Figures:
    seconds: float
    bare: float
    """Of `seconds`, those with no stop resting."""
    calls: int
    trips: int
    requests: int


async def one_run(
    watched: Watched, clock: Ticking, symbol: str, take_profit: bool, directory: Path, move: bool
) -> Figures | None:
    """One bot entering long; with `move`, then the price's first rise a tick later,
    which moves its trailing stop. None: the venue holds no take-profit beside a stop."""
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
    loaded = LoadedStrategy(OnceLong(take_profit, move), Origin("module", "benchmarks"))
    runner = Runner(config.bot_settings(), state, watched, clock, None, loaded)
    try:
        await runner.start()
        await runner.tick()
        if take_profit and not any(_is_target(call) for call in watched.calls):
            return None
        if not move:
            return watched.bare_after_entry()
        entered = FEED.price(symbol.split(":")[0], clock.now)
        clock.now = _first_rise(symbol.split(":")[0], clock.now, entered)
        since = len(watched.calls)
        await runner.tick()
        return watched.moved(since)
    finally:
        await watched.close()
        await state.close()


def _first_rise(symbol: str, after: datetime, above: Decimal) -> datetime:
    """The first minute after `after` at which `symbol` trades 0.5% above `above`."""
    moment = after
    while FEED.price(symbol, moment) <= above * Decimal("1.005"):
        moment += timedelta(minutes=1)
    return moment


def book(directory: Path, **settings: Any) -> PaperBook:
    return PaperBook(directory / "paper.db", FEED, BookSettings(**settings))


async def paper(directory: Path, take_profit: bool, paced: bool, move: bool) -> Figures | None:
    clock = Ticking()
    venue = PaperVenue(book(directory, replaces=paced), clock)
    return await one_run(Watched(venue, lambda: 0), clock, "SPY", take_profit, directory, move)


async def alpaca(directory: Path, take_profit: bool, paced: bool, move: bool) -> Figures | None:
    from botwarden.venues.alpaca import AlpacaVenue
    from botwarden.venues.emulators.alpaca import create_app
    from botwarden.venues.emulators.server import serving

    clock = Ticking()
    exchange = PaperVenue(book(directory), clock)
    app = create_app(exchange, "PKBENCH", "bench")
    with serving(app) as url:
        venue = AlpacaVenue("PKBENCH", "bench", base_url=url, data_url=url)
        watched = Watched(venue, lambda: sum(app.state.calls.values()))
        return await one_run(watched, clock, "SPY", take_profit, directory, move)


def binance(flavour: str) -> Callable[..., Any]:
    async def measure(
        directory: Path, take_profit: bool, paced: bool, move: bool
    ) -> Figures | None:
        from botwarden.venues.ccxt import CcxtVenue
        from botwarden.venues.emulators.binance import create_app
        from botwarden.venues.emulators.server import serving

        futures = flavour == "usdm"
        settings = {"currency": "USDT", "client_ids": "binance", "shorting": futures}
        clock = Ticking()
        exchange = PaperVenue(book(directory, reduce_only=futures, **settings), clock)
        app = create_app(exchange, flavour, "bench-key", "bench-secret")
        symbol = "BTC/USDT:USDT" if futures else "BTC/USDT"
        with serving(app) as url:
            venue = CcxtVenue(
                "binanceusdm" if futures else "binance", "bench-key", "bench-secret",
                base_url=url, symbols=[symbol], throttle=paced, host_clock=exchange.clock,
            )  # fmt: skip
            watched = Watched(venue, lambda: sum(app.state.calls.values()))
            return await one_run(watched, clock, symbol, take_profit, directory, move)

    return measure


async def measured(
    measure: Callable[..., Any], take_profit: bool, paced: bool, runs: int, move: bool
) -> tuple[float, float, float, int, int, int] | None:
    """(median s, slowest s, median bare s, venue calls, round trips, HTTP requests)
    over `runs`; None if the venue holds no take-profit beside a stop."""
    found: list[Figures] = []
    for _ in range(runs):
        directory = Path(tempfile.mkdtemp(prefix="protection-"))
        try:
            figures = await measure(directory, take_profit, paced, move)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if figures is None:
            return None
        found.append(figures)
    seconds = [f.seconds for f in found]
    usual = Counter((f.calls, f.trips, f.requests) for f in found).most_common(1)[0][0]
    return (
        statistics.median(seconds),
        max(seconds),
        statistics.median(f.bare for f in found),
        *usual,
    )


VENUES: dict[str, tuple[Callable[..., Any], dict[bool, str]]] = {
    "paper": (paper, {True: "replace", False: "no replace"}),
    "alpaca (emulator)": (alpaca, {False: "-"}),
    "binance spot (emulator)": (binance("spot"), {True: "on", False: "off"}),
    "binance usdm (emulator)": (binance("usdm"), {True: "on", False: "off"}),
}
"""Each venue's variants: ccxt's request pacing on and off; the paper exchange with and
without replacing an order in one request."""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 160))
    for move, title in (
        (False, "An entry: from its fill known to its protection resting"),
        (
            True,
            "A trailing stop moved: from the first request that moves it to the new one resting",
        ),
    ):
        table = Table(title=title, title_justify="left")
        for column in ("venue", "protection", "variant", "median ms", "slowest ms", "bare ms",
                       "venue calls", "round trips", "HTTP requests"):  # fmt: skip
            table.add_column(
                column, justify="left" if column in ("venue", "protection") else "right"
            )
        for name, (measure, variants) in VENUES.items():
            for protection in ("stop", "stop + take-profit"):
                for variant, label in variants.items():
                    if name == "paper" and not move and not variant:
                        continue  # (the entry is the same either way)
                    result = await measured(measure, protection != "stop", variant, args.runs, move)
                    if result is None:
                        table.add_row(name, protection, label, "cannot hold both", *[""] * 5)
                        continue
                    median, slowest, bare, calls, trips, requests = result
                    table.add_row(
                        name, protection, label, f"{median * 1e3:,.1f}", f"{slowest * 1e3:,.1f}",
                        f"{bare * 1e3:,.1f}", str(calls), str(trips), str(requests),
                    )  # fmt: skip
        console.print(table)
    console.print(
        "entry: the calls after the fills call that found the entry, up to the last"
        " protective submission; move: from the first request that moves the stop (a"
        " cancel, a replace, a new stop) to the last. Round trips: calls in flight together"
        " count once; the fewest possible is one. bare: no stop resting (from a cancel"
        " sent to the new stop's answer); none for a replace in one request, or a new"
        " stop placed before the old one goes. HTTP requests: those the emulator served."
    )


def _is_target(call: Call) -> bool:
    return call.name == "submit_oco" or (
        call.name == "submit" and call.args[0].type is OrderType.LIMIT and call.args[0].reduce_only
    )


if __name__ == "__main__":
    asyncio.run(main())
