"""`botwarden account`: the venue's view of the account beside the bot's, read only."""

from __future__ import annotations

import contextlib

from botwarden.config import BotConfig
from botwarden.engine.account import AccountView, look_at_account
from botwarden.errors import BotwardenError
from botwarden.process.lock import InstanceLock, holder, lock_path, named
from botwarden.process.run import open_bot_venue
from botwarden.state.factory import read_state
from botwarden.state.records import BotState
from botwarden.venues.settings import PaperVenueSettings


async def account_of(config: BotConfig) -> AccountView:
    """Balance, positions and open orders as the venue says, beside the bot's state."""
    lock = lock_path(config)
    running = holder(lock)
    paper = isinstance(config.venue, PaperVenueSettings)
    if paper and running is not None:
        raise BotwardenError(
            f"the paper exchange of bot {config.bot_id} lives inside its process"
            f" ({named(running)}): look while the bot is stopped, or run the exchange as a process"
            " of its own (`botwarden venue serve`) and point the bot at it"
        )
    # A paper exchange is opened here, in this process: the bot must not start meanwhile.
    guard = InstanceLock(lock, config.bot_id) if paper else contextlib.nullcontext()
    with guard:
        notes = []
        if config.state.backend == "duckdb" and running is not None:
            state = BotState.empty(config.bot_id)
            notes.append("the bot's state is not read while it runs (DuckDB: one process)")
        else:
            state = await read_state(config.state, config.bot_id, config.base_dir)
        venue = open_bot_venue(config)
        try:
            await venue.connect()
            view = await look_at_account(venue, state, config.bot_id, tuple(config.symbols))
        finally:
            await venue.close()
    view.notes += notes
    return view
