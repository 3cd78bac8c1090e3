"""Pure data and pure rules: no storage, no venue, no clock."""

from botwarden.domain.models import (
    BotRecord,
    BotStatus,
    Fill,
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
    "BotRecord",
    "BotStatus",
    "Fill",
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
