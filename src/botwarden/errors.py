"""Errors an operator reads. Each says what went wrong, where, and what to do.

The CLI prints `str(error)` as one line and exits with `exit_code`; a traceback is
reserved for bugs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
    """A state file is unreadable. A store that may write moves it aside, byte for byte;
    one opened read-only (`state show`, `status`) leaves it where it is. Never rewritten."""

    def __init__(self, path: Path, reason: str, moved_to: Path | None) -> None:
        where = f"; moved aside, byte for byte, to {moved_to}" if moved_to else "; left as it is"
        super().__init__(f"state file {path} is corrupt ({reason}){where}")
        self.path = path
        self.reason = reason
        self.moved_to = moved_to


class WrongBackend(StateError):
    """A state file is in another backend's format: a config mistake, not damage, so the
    file is never moved aside. Exit code 2, like every config error."""

    exit_code = 2

    def __init__(self, path: Path, found: str, kind: str, configured: str) -> None:
        super().__init__(
            f"state file {path} is {kind}, but the config says state.backend {configured}:"
            f" set state.backend to {found}, or give {configured} a path of its own;"
            " the file was left as it is"
        )
        self.path = path
        self.found = found
        self.configured = configured


class StateLost(StateError):
    """The state file (or its WAL) was deleted or replaced while the store had it open:
    a write since then may sit in a file nobody will read again, and the next start
    would find no state, or another one. Stop trading new; rebuild from the venue."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"state file {path} {what} while the bot had it open: changes written since are"
            " not at that path; stop the bot and start it again to rebuild its state from"
            " the venue"
        )
        self.path = path


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
        why = "another instance took over" if current > epoch else "never granted by it"
        super().__init__(
            f"bot {flow_id}: write refused, this instance holds epoch {epoch} but the store"
            f" is at epoch {current} ({why})"
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


class Refused(BotwardenError):
    """The bot did not do what its own code asked (`botwarden.Bot`): nothing was sent,
    and its event log says why too. Each kind of reason is a subclass of its own."""

    def __init__(self, action: str, symbol: str, reason: str) -> None:
        super().__init__(f"{action} {symbol} refused: {reason}")
        self.action = action
        self.symbol = symbol
        self.reason = reason


class NotReady(Refused):
    """No entries now: the bot's recovery is not finished, its balance cannot be read,
    or it needs an operator's attention (`botwarden status` says why)."""


class SymbolBusy(Refused):
    """The symbol is taken: a position is held in it already, an order in it is open
    or unresolved, or an exit is on its way. (Run again after a crash, a script's
    entry finds the position its last life opened: this is what keeps it from buying
    twice.)"""


class GuardRefused(Refused):
    """A risk guard of the config's said no (a trade limit, a symbol cooling down)."""


class BreakerOn(GuardRefused):
    """The circuit breaker is on: no entries until it ends."""


class CannotMeet(Refused):
    """What was asked cannot be had: a size the market's rules or the account cannot
    meet (never sent smaller), a short where there is none, a stop or a take-profit
    on the wrong side of the price."""


class NothingHeld(Refused):
    """Nothing is held in the symbol to exit, add to or update."""


class VenueRefused(Refused):
    """The venue refused the order, or it could not be sent (the venue did not answer
    before it was sent: a rate limit, an outage); `.order` is its intent, as stored."""

    def __init__(self, action: str, symbol: str, order: Any) -> None:
        super().__init__(action, symbol, f"{order.status}: {order.reason}")
        self.order = order
