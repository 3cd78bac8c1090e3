"""Build the configured venue. SDKs are imported only for the venue chosen."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from botwarden.config import (
    AlpacaVenueSettings,
    PaperVenueSettings,
    VenueSettings,
    resolve_path,
)
from botwarden.errors import ConfigError
from botwarden.venues.base import Venue
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


def open_alpaca_venue(settings: AlpacaVenueSettings) -> Venue:
    from botwarden.venues.alpaca import AlpacaVenue

    key = (
        settings.api_key.get_secret_value()
        if settings.api_key
        else os.environ.get("ALPACA_API_KEY")
    )
    secret = (
        settings.secret_key.get_secret_value()
        if settings.secret_key
        else os.environ.get("ALPACA_SECRET_KEY")
    )
    if not key or not secret:
        raise ConfigError(
            "venue alpaca: no API keys; set ALPACA_API_KEY and ALPACA_SECRET_KEY in the"
            " environment (or api_key and secret_key in the venue section)"
        )
    return AlpacaVenue(
        key,
        secret,
        paper=settings.paper,
        base_url=settings.base_url,
        data_url=settings.data_url,
        timeout=settings.timeout.total_seconds(),
    )


def open_venue(
    settings: VenueSettings,
    flow_id: str,
    base_dir: Path,
    clock: Callable[[], datetime] = utc_now,
) -> Venue:
    """The venue a bot's config names (not connected yet: `await venue.connect()`)."""
    if isinstance(settings, AlpacaVenueSettings):
        return open_alpaca_venue(settings)
    return open_paper_venue(settings, flow_id, base_dir, clock)
