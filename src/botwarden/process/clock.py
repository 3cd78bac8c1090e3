"""The bot's clock as the tools outside it count it (`status`, `trades`, the API and
the dashboard): its venue's time, which for a paper exchange is the timeline its book
keeps, not the wall clock's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from botwarden.config import BotConfig
from botwarden.venues.factory import exchange_now


def bot_clock(config: BotConfig, wall_clock: datetime) -> datetime:
    """The bot's clock now: its venue's (a paper exchange keeps a timeline of its own,
    running fast or started in the past, and moves on while the bot is stopped), as
    its status, its "today" and its "7d ago" count it."""
    return exchange_now(config.venue, config.bot_id, config.base_dir, wall_clock)


def bot_today(config: BotConfig, state: Any, wall_clock: datetime) -> date:
    """The bot's trading day now, by its clock (`bot_clock`), or the last day it
    reached if that is later."""
    days = [config.risk.trading_day(bot_clock(config, wall_clock)), state.risk.trading_day]
    if state.pnl is not None:
        days.append(state.pnl.day)
    return max(d for d in days if d is not None)


def bot_now(config: BotConfig, state: Any, wall_clock: datetime) -> datetime:
    """The bot's clock (`bot_clock`), or its last heartbeat by that clock if later."""
    now = bot_clock(config, wall_clock)
    beat = state.bot.heartbeat_at
    return max(now, beat) if beat is not None else now
