"""Pure data and pure rules: no storage, no venue, no clock."""

from botwarden.domain.models import (
    BotEvent,
    BotRecord,
    BotStatus,
    Fill,
    IllegalBotTransition,
    Instance,
    OrderSide,
    Position,
    RiskState,
    Side,
    SignalState,
)
from botwarden.domain.orders import (
    IllegalTransition,
    IntentEvent,
    IntentStatus,
    OrderIntent,
    OrderType,
    Purpose,
)

__all__ = [
    "BotEvent",
    "BotRecord",
    "BotStatus",
    "Fill",
    "IllegalBotTransition",
    "IllegalTransition",
    "Instance",
    "IntentEvent",
    "IntentStatus",
    "OrderIntent",
    "OrderSide",
    "OrderType",
    "Position",
    "Purpose",
    "RiskState",
    "Side",
    "SignalState",
]
