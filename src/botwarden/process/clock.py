"""The bot's clock as the tools outside it count it (`status`, `trades`, the API and
the dashboard): its venue's time, which for a paper exchange is the timeline its book
keeps, not the wall clock's."""

from __future__ import annotations

from datetime import date, datetime
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


def bot_today(config: BotConfig, state: Any, wall_clock: datetime) -> date:
    """The bot's trading day now, by its clock (`bot_clock`), or the last day it
    reached if that is later."""
    now = bot_clock(config, wall_clock, state.bot.heartbeat_at)
    days = [config.risk.trading_day(now), state.risk.trading_day]
    if state.pnl is not None:
        days.append(state.pnl.day)
    return max(d for d in days if d is not None)


def bot_now(config: BotConfig, state: Any, wall_clock: datetime) -> datetime:
    """The bot's clock (`bot_clock`), or its last heartbeat by that clock if later."""
    beat = state.bot.heartbeat_at
    now = bot_clock(config, wall_clock, beat)
    return max(now, beat) if beat is not None else now
