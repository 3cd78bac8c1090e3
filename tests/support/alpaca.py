"""The Alpaca emulator over a paper exchange, and alpaca-py and botwarden's adapter
pointed at it: the world the Alpaca tests share. alpaca-py is imported only when a
client or an adapter is made (the test modules require it first)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from botwarden.venues.emulators.alpaca import create_app
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.feed import RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue
from botwarden.venues.retry import RetryPolicy
from tests.venues.test_paper import FEED, Clock

KEY, SECRET = "PKTEST", "not-a-real-secret"
QUICK = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, deadline=5)


def start(
    tmp_path: Path, faults: str = "", clock: Clock | None = None, feed: RandomWalkFeed = FEED
) -> tuple[PaperVenue, Any]:
    """A paper exchange (its book in `tmp_path`) and an Alpaca emulator app over it."""
    venue = PaperVenue(
        PaperBook(tmp_path / "alpaca.db", feed, BookSettings()),
        clock or Clock(),
        FaultPlan.parse(faults),
    )
    return venue, create_app(venue, KEY, SECRET)


def client(url: str, key: str = KEY) -> Any:
    """alpaca-py's TradingClient on the emulator at `url`."""
    from alpaca.trading.client import TradingClient

    trading = TradingClient(key, SECRET, url_override=url)
    # alpaca-py retries 429 and 504 by itself, three times with 3 s sleeps, and its
    # TradingClient offers no argument to stop it: the attribute is the only switch.
    trading._retry = 0
    return trading


def adapter(url: str, key: str = KEY, timeout: float = 2.0, **settings: Any) -> Any:
    """botwarden's Alpaca adapter on the emulator at `url` (not connected yet)."""
    from botwarden.venues.alpaca import AlpacaVenue

    return AlpacaVenue(
        key,
        SECRET,
        base_url=url,
        data_url=url,
        timeout=timeout,
        reads=QUICK,
        cancels=QUICK,
        **settings,
    )


@asynccontextmanager
async def emulated_alpaca(tmp_path: Path, faults: str = "") -> AsyncIterator[tuple[Any, Clock]]:
    """The adapter, connected to an Alpaca emulator over a paper exchange with `faults`,
    and the exchange's clock."""
    clock = Clock()
    exchange, app = start(tmp_path, faults, clock)
    with serving(app) as url:
        venue = adapter(url)
        await venue.connect()
        yield venue, clock
        await venue.close()
    exchange.book.close()
