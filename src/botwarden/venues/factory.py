"""Build the configured venue. SDKs are imported only for the venue chosen."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from botwarden.errors import ConfigError
from botwarden.state.settings import resolve_path
from botwarden.venues.base import Venue
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import AcceleratedClock, PaperVenue, utc_now
from botwarden.venues.retry import READS, RetryPolicy
from botwarden.venues.settings import (
    AlpacaPrices,
    AlpacaVenueSettings,
    CcxtPrices,
    CcxtVenueSettings,
    KeyedVenueSettings,
    PaperVenueSettings,
    PriceSource,
    VenueSettings,
)

log = logging.getLogger(__name__)


def paper_book(settings: PaperVenueSettings, path: Path, readonly: bool = False) -> PaperBook:
    """The paper exchange's book at `path`, with the prices and rules `settings` give
    (`readonly`: looked at from outside the process that trades on it)."""
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
    return PaperBook(path, feed, book_settings(settings), readonly)


def book_settings(settings: PaperVenueSettings) -> BookSettings:
    """The paper exchange's account, as its config section says."""
    return BookSettings(
        currency=settings.currency,
        starting_cash=settings.starting_cash,
        fee_rate=settings.fee_rate,
        slippage=settings.slippage,
        client_ids=settings.client_ids,
        shorting=settings.shorting,
        reduce_only=settings.reduce_only,
        replaces=settings.replaces,
    )


PRICE_READS = RetryPolicy(attempts=2, deadline=5.0, retry_on=READS.retry_on)
"""A price source that does not answer soon is an outage of the paper exchange: the
engine tries again at its own pace, not the source's retries at every call."""


def open_paper_venue(
    settings: PaperVenueSettings,
    flow_id: str,
    base_dir: Path,
    clock: Callable[[], datetime] = utc_now,
    symbols: Sequence[str] = (),
) -> PaperVenue:
    """`symbols`: the bot's markets (on live prices, the ones priced)."""
    path = resolve_path(settings.path, flow_id, base_dir)
    faults = FaultPlan.parse(settings.faults, seed=settings.fault_seed)
    if settings.prices is not None:
        from botwarden.venues.paper.live import LiveFeed, SourceClock

        live = LiveFeed(
            open_price_source(settings.prices, base_dir, symbols, clock),
            symbols,
            path.with_name(f"{path.stem}.prices.db"),
            settings.prices.on_outage,
            host=clock,
        )
        book = PaperBook(path, live, book_settings(settings))
        source_time = SourceClock(live, clock, book.processed_until(), faults.clock_skew)
        return PaperVenue(book, source_time, faults, host_clock=clock, live=live)
    book = paper_book(settings, path)
    # Anchored even at speed 1: a book that once ran faster keeps its timeline.
    exchange_clock = AcceleratedClock(
        book, settings.speed, real=clock, start=settings.start, skew=faults.clock_skew
    )
    return PaperVenue(book, exchange_clock, faults, host_clock=clock)


def open_price_source(
    prices: PriceSource,
    base_dir: Path,
    symbols: Sequence[str],
    clock: Callable[[], datetime] = utc_now,
) -> Venue:
    """The venue whose market data a paper exchange on live prices trades on (`clock`:
    the host's, which the source's is read against)."""
    if isinstance(prices, AlpacaPrices):
        return open_alpaca_venue(prices, base_dir, symbols, reads=PRICE_READS, host_clock=clock)
    assert isinstance(prices, CcxtPrices)
    from botwarden.venues.ccxt import CcxtVenue

    return CcxtVenue(  # (public data: no keys, never those in the environment)
        _known_exchange(prices.exchange, "venue.prices.exchange"),
        "",
        "",
        base_url=prices.base_url,
        options=prices.options,
        timeout=prices.timeout.total_seconds(),
        reads=PRICE_READS,
        clock_tolerance=prices.clock_tolerance,
        throttle=prices.throttle,
        host_clock=clock,
    )


def read_secrets_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (`#` comments, an optional `export `, optional quotes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the secrets file: {error.strerror}") from None
    if path.stat().st_mode & 0o077:
        log.warning("%s holds API keys and other users can read it: chmod 600 %s", path, path)
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip().removeprefix("export ").strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip().isidentifier():
            raise ConfigError(f"{path}: line {number}: expected NAME=value")
        found[name.strip()] = value.strip().strip("'\"")
    return found


def credentials(
    settings: KeyedVenueSettings, names: tuple[str, str], base_dir: Path
) -> tuple[str, str]:
    """The venue's key and secret: from its config section (where a key stored through
    the API was put when the bot started), else the environment variables `names`, else
    its secrets file. Missing ones are a `ConfigError`."""
    written = (settings.api_key, settings.secret_key)
    if all(written):
        return written[0].get_secret_value(), written[1].get_secret_value()
    sources: list[dict[str, str] | os._Environ[str]] = [os.environ]
    if settings.secrets_file:
        sources.append(read_secrets_file(resolve_path(settings.secrets_file, "", base_dir)))
    key, secret = (next((s[name] for s in sources if s.get(name)), None) for name in names)
    if not key or not secret:
        where = " or in secrets_file" if settings.secrets_file else ""
        raise ConfigError(
            f"venue {settings.type}: no API keys; set {names[0]} and {names[1]} in the"
            f" environment{where} (or api_key and secret_key in the venue section)"
        )
    return key, secret


def open_alpaca_venue(
    settings: AlpacaVenueSettings,
    base_dir: Path,
    symbols: Sequence[str] = (),
    reads: RetryPolicy = READS,
    host_clock: Callable[[], datetime] = utc_now,
) -> Venue:
    """`symbols`: the bot's markets, which decide what the account can hold (no
    take-profit beside a stop where a coin is traded: Alpaca's crypto orders are
    simple only)."""
    from botwarden.venues.alpaca import AlpacaVenue

    key, secret = credentials(settings, ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"), base_dir)
    return AlpacaVenue(
        key,
        secret,
        paper=settings.paper,
        base_url=settings.base_url,
        data_url=settings.data_url,
        timeout=settings.timeout.total_seconds(),
        reads=reads,
        symbols=symbols,
        host_clock=host_clock,
    )


def open_ccxt_venue(
    settings: CcxtVenueSettings, base_dir: Path, symbols: Sequence[str] = ()
) -> Venue:
    """`symbols`: the bot's markets, where fills are looked for besides
    `venue.symbols` (Binance lists fills one market at a time: a stop that filled while
    the bot was down, in a market only the bot's `symbols` named, was never found)."""
    from botwarden.venues.ccxt import CcxtVenue

    key, secret = credentials(
        settings, ("BOTWARDEN_CCXT_API_KEY", "BOTWARDEN_CCXT_SECRET"), base_dir
    )
    return CcxtVenue(
        _known_exchange(settings.exchange, "venue.exchange"),
        key,
        secret,
        base_url=settings.base_url,
        symbols=list(dict.fromkeys([*settings.symbols, *symbols])),
        options=settings.options,
        timeout=settings.timeout.total_seconds(),
        clock_tolerance=settings.clock_tolerance,
        throttle=settings.throttle,
    )


def _known_exchange(exchange: str, field: str) -> str:
    from botwarden.venues.ccxt import known_exchanges

    known = known_exchanges()
    if exchange not in known:
        close = difflib.get_close_matches(exchange, known, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"{field}: ccxt knows no exchange {exchange!r}{hint}")
    return exchange


def open_venue(
    settings: VenueSettings,
    flow_id: str,
    base_dir: Path,
    clock: Callable[[], datetime] = utc_now,
    symbols: Sequence[str] = (),
) -> Venue:
    """The venue a bot's config names (not connected yet: `await venue.connect()`);
    `symbols`: the markets the bot trades there."""
    if isinstance(settings, AlpacaVenueSettings):
        return open_alpaca_venue(settings, base_dir, symbols)
    if isinstance(settings, CcxtVenueSettings):
        return open_ccxt_venue(settings, base_dir, symbols)
    return open_paper_venue(settings, flow_id, base_dir, clock, symbols)
