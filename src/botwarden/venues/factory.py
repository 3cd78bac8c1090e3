"""Build the configured venue. SDKs are imported only for the venue chosen."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from botwarden.config import PaperVenueSettings, resolve_path
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import AcceleratedClock, PaperVenue, utc_now


def open_paper_venue(
    settings: PaperVenueSettings,
    flow_id: str,
    base_dir: Path,
    clock: Callable[[], datetime] = utc_now,
) -> PaperVenue:
    feed = RandomWalkFeed(
        {
            symbol: Instrument(
                symbol=symbol,
                start_price=spec.price,
                tick=spec.tick,
                qty_step=spec.qty_step,
                min_notional=spec.min_notional,
                daily_volatility=spec.volatility,
            )
            for symbol, spec in settings.instruments.items()
        },
        seed=settings.seed,
    )
    book = PaperBook(
        resolve_path(settings.path, flow_id, base_dir),
        feed,
        BookSettings(
            currency=settings.currency,
            starting_cash=settings.starting_cash,
            fee_rate=settings.fee_rate,
            slippage=settings.slippage,
            client_ids=settings.client_ids,
            shorting=settings.shorting,
        ),
    )
    # Anchored even at speed 1: a book that once ran faster keeps its timeline.
    exchange_clock = AcceleratedClock(book, settings.speed, real=clock)
    return PaperVenue(
        book, exchange_clock, FaultPlan.parse(settings.faults, seed=settings.fault_seed)
    )
