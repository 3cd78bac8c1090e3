"""What the engine is told: how big an entry is unless its signal says (`order:`),
how often it wakes and how long it waits on an unknown order (`engine:`), and all of
one bot's (`BotSettings`), which the runner takes instead of the file-shaped config."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import model_validator

from botwarden.domain.models import Duration, TakeProfit
from botwarden.domain.positions import StopPolicy
from botwarden.domain.risk import RiskLimits
from botwarden.domain.sizing import Size
from botwarden.errors import ConfigError
from botwarden.settings import Settings
from botwarden.state.settings import RecoverySettings
from botwarden.strategies.settings import StrategySettings

if TYPE_CHECKING:
    from botwarden.strategies.loading import LoadedStrategy


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


@dataclass(frozen=True)
class BotSettings:
    """What the engine is told of one bot: its markets, how it sizes, stops and guards
    them, how it recovers, its pace and its strategy. A bot's config without where its
    state, venue and notifications live (`BotConfig.bot_settings()`), or built in
    code from the same typed parts."""

    bot_id: str
    symbols: tuple[str, ...]
    strategy: StrategySettings = field(default_factory=StrategySettings)
    size: Size = field(default_factory=lambda: Size.units(1))
    """An entry's size when its signal gives none (the config's `order:`)."""
    stop: StopPolicy = field(default_factory=StopPolicy)
    take_profit: TakeProfit | None = None
    risk: RiskLimits = field(default_factory=RiskLimits)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    base_dir: Path = field(default_factory=Path.cwd)
    """Where relative paths start (a strategy's file): the config file's folder."""
    source: str = "config"
    """What an error names as where the settings came from: the config file."""

    def require_markets(self) -> None:
        """A bot about to trade must name its markets: with none it would run, doing
        nothing, and say nothing."""
        if not self.symbols:
            raise ConfigError(
                f"{self.source}: symbols: empty: the bot would trade nothing; name the"
                " markets it trades, as its venue names them, e.g. symbols: [SPY]"
            )

    def load_strategy(self) -> LoadedStrategy:
        """The strategy named, imported and built with its params (a user's code runs
        here). `StrategyLoadError`: one line naming the source, the strategy and the
        cause."""
        from botwarden.strategies.loading import StrategyLoadError, load_strategy

        try:
            return load_strategy(self.strategy, self.base_dir)
        except StrategyLoadError as error:
            raise StrategyLoadError(f"{self.source}: {error}") from None
