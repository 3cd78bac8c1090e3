"""Errors an operator reads. Each says what went wrong, where, and what to do.

The CLI prints `str(error)` as one line and exits with `exit_code`; a traceback is
reserved for bugs.
"""

from __future__ import annotations

from pathlib import Path


class BotwardenError(Exception):
    exit_code = 1


class ConfigError(BotwardenError):
    """A config file, field or value is wrong. Exit code 2, like a usage error."""

    exit_code = 2


class StateError(BotwardenError):
    """The bot's state cannot be read or written."""


class StoreUnavailable(StateError):
    """The store cannot be reached or opened right now (server down, file locked)."""


class StateCorruptError(StateError):
    """A state file is unreadable. It has been moved aside, byte for byte, never rewritten."""

    def __init__(self, path: Path, reason: str, moved_to: Path | None) -> None:
        where = f"; moved aside, byte for byte, to {moved_to}" if moved_to else ""
        super().__init__(f"state file {path} is corrupt ({reason}){where}")
        self.path = path
        self.reason = reason
        self.moved_to = moved_to


class SchemaVersionError(StateError):
    """The state was written by a newer botwarden; reading it could lose data."""

    def __init__(self, where: str, found: int, supported: int) -> None:
        super().__init__(
            f"{where} holds state of schema version {found}, but this botwarden reads up to"
            f" version {supported}: upgrade botwarden; the state was left untouched"
        )
        self.found = found
        self.supported = supported


class FencedOut(StateError):
    """A newer instance of this bot has taken over; this one must not write or trade."""

    def __init__(self, flow_id: str, epoch: int, current: int) -> None:
        super().__init__(
            f"bot {flow_id}: write refused, this instance holds epoch {epoch} but the store"
            f" is at epoch {current} (another instance took over)"
        )
        self.flow_id = flow_id
        self.epoch = epoch
        self.current = current


class UntradableSymbol(BotwardenError):
    """A symbol the bot was told to trade is not traded on its venue."""

    def __init__(self, symbol: str, venue: str, why: str) -> None:
        super().__init__(
            f"symbol {symbol!r} cannot be traded on {venue}: {why}; fix `symbols` in the config"
        )
        self.symbol = symbol
