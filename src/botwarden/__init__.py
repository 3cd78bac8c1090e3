"""botwarden: a crash-safe runtime for trading bots.

What a user builds on is here, and in `botwarden.testing` for a strategy's tests (a
module of its own, imported only by them); everything else is internal and may
change. A strategy is any class with `name`, `bars_needed` and
`decide(symbol, bars, position) -> Signal | None` (docs/strategies.md); a bot that
keeps its own loop opens a `Bot` (or a `SyncBot`) instead (docs/library.md).

The names are imported when first used, so that `import botwarden` (and every CLI
command) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AlreadyRunning": "botwarden.process.lock",
    "Bot": "botwarden.bot",
    "SyncBot": "botwarden.bot",
    "OrderIntent": "botwarden.domain.orders",
    "RiskState": "botwarden.domain.risk",
    "Refused": "botwarden.errors",
    "NotReady": "botwarden.errors",
    "SymbolBusy": "botwarden.errors",
    "GuardRefused": "botwarden.errors",
    "BreakerOn": "botwarden.errors",
    "CannotMeet": "botwarden.errors",
    "NothingHeld": "botwarden.errors",
    "VenueRefused": "botwarden.errors",
    "Action": "botwarden.strategies.base",
    "Signal": "botwarden.strategies.base",
    "Strategy": "botwarden.strategies.base",
    "Bar": "botwarden.domain.models",
    "Bars": "botwarden.strategies.bars",
    "Fill": "botwarden.domain.models",
    "Position": "botwarden.domain.models",
    "Size": "botwarden.domain.sizing",
    "Stop": "botwarden.domain.models",
    "Trade": "botwarden.domain.positions",
    "StrategyFailed": "botwarden.strategies.loading",
    "StrategyLoadError": "botwarden.strategies.loading",
    "TakeProfit": "botwarden.domain.models",
}

__all__ = [
    "Action",
    "AlreadyRunning",
    "Bar",
    "Bars",
    "Bot",
    "BreakerOn",
    "CannotMeet",
    "Fill",
    "GuardRefused",
    "NotReady",
    "NothingHeld",
    "OrderIntent",
    "Position",
    "Refused",
    "RiskState",
    "Signal",
    "Size",
    "Stop",
    "Strategy",
    "StrategyFailed",
    "StrategyLoadError",
    "SymbolBusy",
    "SyncBot",
    "TakeProfit",
    "Trade",
    "VenueRefused",
    "__version__",
]

if TYPE_CHECKING:
    from botwarden.bot import Bot, SyncBot
    from botwarden.domain.models import Bar, Fill, Position, Stop, TakeProfit
    from botwarden.domain.orders import OrderIntent
    from botwarden.domain.positions import Trade
    from botwarden.domain.risk import RiskState
    from botwarden.domain.sizing import Size
    from botwarden.errors import (
        BreakerOn,
        CannotMeet,
        GuardRefused,
        NothingHeld,
        NotReady,
        Refused,
        SymbolBusy,
        VenueRefused,
    )
    from botwarden.process.lock import AlreadyRunning
    from botwarden.strategies.bars import Bars
    from botwarden.strategies.base import Action, Signal, Strategy
    from botwarden.strategies.loading import StrategyFailed, StrategyLoadError


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # once found, an attribute like any other
        return value
    raise AttributeError(f"module 'botwarden' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
