"""Binance emulators (spot or USD-M) over a paper exchange of several markets, and bots
run against them through the real ccxt over HTTP: the world of the tests that count
what a start asks the venue. Everything a test checks is read from the exchange's own
book or the emulator's count of requests, never from the bot's state alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from botwarden.config import BotConfig
from botwarden.engine.checks import check_promises
from botwarden.engine.runner import Runner
from botwarden.venues.emulators.binance import Flavour, book_trade_id, create_app
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue
from botwarden.venues.retry import RetryPolicy
from tests.engine.harness import CONFIG, started
from tests.venues.test_paper import Clock

KEY, SECRET = "bench-key", "not-a-real-secret"
QUICK = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, deadline=5)
VOLATILE = "V/USDT"
"""A market whose price swings far within hours (30% a day): its stop or its limit is
crossed soon. The others barely move, and their orders are never reached."""
CALM = ("A/USDT", "B/USDT", "C/USDT", "D/USDT", "E/USDT")


def feed() -> RandomWalkFeed:
    return RandomWalkFeed(
        {
            market: Instrument(
                market,
                Decimal("100"),
                Decimal("0.01"),
                Decimal("0.001"),
                daily_volatility=0.3 if market == VOLATILE else 0.0005,
            )
            for market in (VOLATILE, *CALM)
        },
        seed=5,
    )


@dataclass
class Binance:
    flavour: Flavour
    tmp_path: Path
    url: str
    exchange: PaperVenue
    calls: Any
    """The emulator's `METHOD /path` -> requests served."""
    clock: Clock
    markets: list[str]
    """The bot's markets, in the paper book's names."""
    runners: list[Runner] = field(default_factory=list)

    def symbol(self, market: str) -> str:
        """ccxt's name of a market of the book's."""
        return f"{market}:USDT" if self.flavour == "usdm" else market

    def adapter(self) -> Any:
        from botwarden.venues.ccxt import CcxtVenue

        return CcxtVenue(
            "binanceusdm" if self.flavour == "usdm" else "binance",
            KEY,
            SECRET,
            base_url=self.url,
            symbols=[self.symbol(m) for m in self.markets],
            timeout=2.0,
            reads=QUICK,
            cancels=QUICK,
            throttle=False,
            host_clock=self.clock,
        )

    async def runner(self) -> Runner:
        """A new instance on the same state and exchange: a restart, recovery run."""
        config = BotConfig.model_validate(
            {
                **CONFIG,
                "symbols": [self.symbol(m) for m in self.markets],
                "order": {"qty": "1"},
                "stop": {"distance": 2},
            }
        )
        runner = await started(config, self.tmp_path / "state.db", self.adapter(), self.clock)
        self.runners.append(runner)
        return runner

    async def crash(self, runner: Runner) -> None:
        """The instance dies: nothing of its own runs, its connections go."""
        await runner.venue.close()
        await runner.state.close()
        self.runners.remove(runner)

    async def until(self, filled: int, days: int = 14) -> None:
        """Move the exchange's time on, five minutes at a time (the price moves little
        past what it crossed), until `filled` fills in all are in its book."""
        for _ in range(days * 24 * 12):
            if len(self.exchange.book.fills()) >= filled:
                return
            self.clock.now += timedelta(minutes=5)
            await self.exchange.positions()  # (the exchange catches up with its time)
        raise AssertionError(f"never {filled} fills: {self.exchange.book.fills()}")

    def promises_broken(self, runner: Runner, state: Any) -> list:
        """I1-I6 from the exchange's book (its trade ids are the emulator's, mapped)."""
        book = self.exchange.book
        return check_promises(state, book, runner.ctx.ids, book_trade_id=book_trade_id)

    async def close(self) -> None:
        for runner in self.runners:
            await runner.venue.close()
            await runner.state.close()


@asynccontextmanager
async def binance_markets(
    tmp_path: Path, flavour: Flavour, markets: list[str], fee_rate: str = "0"
) -> AsyncIterator[Binance]:
    """A Binance emulator over a paper exchange listing the calm markets and the
    volatile one, kept as Binance keeps accounts (USDT, client ids unique among open
    orders; on futures, shorting and reduce-only orders), charging `fee_rate`."""
    pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
    futures = flavour == "usdm"
    settings = BookSettings(
        currency="USDT",
        starting_cash=Decimal("1000000"),
        client_ids="binance",
        shorting=futures,
        reduce_only=futures,
        fee_rate=Decimal(fee_rate),
    )
    clock = Clock()
    exchange = PaperVenue(PaperBook(tmp_path / f"binance-{flavour}.db", feed(), settings), clock)
    app = create_app(exchange, flavour, KEY, SECRET)
    with serving(app) as url:
        world = Binance(flavour, tmp_path, url, exchange, app.state.calls, clock, markets)
        try:
            yield world
        finally:
            await world.close()
    exchange.book.close()
