"""What the engine itself is told: how big an entry is unless its signal says
(`order:`), and how often it wakes and how long it waits on an unknown order
(`engine:`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import model_validator

from botwarden.domain.models import Duration
from botwarden.domain.sizing import Size
from botwarden.settings import Settings


class SizingSettings(Settings):
    """How big each entry is, unless its signal says: a quantity (`qty`), a value in
    the account's currency (`notional`), a percentage of equity (`equity_pct`), or the
    loss at the stop as a percentage of equity (`risk_pct`). Exactly one."""

    qty: Decimal | None = None
    notional: Decimal | None = None
    equity_pct: Decimal | None = None
    risk_pct: Decimal | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SizingSettings:
        self.size  # noqa: B018 (checked: one way, a sensible amount)
        return self

    @property
    def size(self) -> Size:
        return Size.from_config(self.model_dump(exclude_none=True))


class EngineSettings(Settings):
    check_interval: Duration = timedelta(seconds=60)
    """How often the bot wakes: fills, protection, strategy."""
    unknown_order_grace: Duration = timedelta(seconds=15)
    """An order whose fate is unknown is taken as never sent only after the venue has
    said so, everywhere it can be asked, for this long (then a stop or exit is sent
    again under the same client order id; an entry is dropped)."""
