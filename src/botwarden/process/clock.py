"""The bot's clock as the tools outside it count it (`status`, `trades`, the API and
the dashboard): its venue's time, which for a paper exchange is the timeline its book
keeps, not the wall clock's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from botwarden.config import BotConfig
from botwarden.state.settings import resolve_path
from botwarden.venues.settings import PaperVenueSettings
from botwarden.venues.timeline import exchange_time


def bot_clock(
    config: BotConfig, wall_clock: datetime, last_seen: datetime | None = None
) -> datetime:
    """The bot's clock now: its venue's. A paper exchange (but on live prices) keeps a
    timeline of its own in its book, running fast or started in the past, that goes on
    while the bot is stopped; a book that cannot be read now gives `last_seen` (the
    bot's last heartbeat, by that clock), not the wall clock, so a look never flickers
    to another day."""
    venue = config.venue
    if not isinstance(venue, PaperVenueSettings) or venue.prices is not None:
        return wall_clock
    book = resolve_path(venue.path, config.bot_id, config.base_dir)
    return exchange_time(book, wall_clock) or last_seen or wall_clock


@dataclass(frozen=True)
class BotTime:
    now: datetime
    """By the bot's clock (`bot_clock`), or its last heartbeat by that clock if later."""
    today: date
    """Its trading day by that clock, or the last day it reached if that is later."""
    own: bool
    """Its clock is not the wall clock's (a paper exchange's timeline, a minute or more
    off): a time shown should say so."""


def bot_time(config: BotConfig, state: Any, wall_clock: datetime) -> BotTime:
    """The bot's time and trading day now, as `status`, `trades` and the API count
    them (its book read once)."""
    beat = state.bot.heartbeat_at
    clock = bot_clock(config, wall_clock, beat)
    days = [config.risk.trading_day(clock), state.risk.trading_day]
    if state.pnl is not None:
        days.append(state.pnl.day)
    now = max(clock, beat) if beat is not None else clock
    own = abs(clock - wall_clock) > timedelta(minutes=1)
    return BotTime(now, max(d for d in days if d is not None), own)
