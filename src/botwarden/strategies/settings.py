"""How a bot's config names its strategy: `strategy: {name | path, params, timeframe}`.

Beside the strategies' code, as each layer keeps its own settings; `config.py` only
composes them. Naming is checked here (a file path's shape, a name's); the code named
is imported only when a bot is about to trade (`botwarden.strategies.loading`), so a
command that only looks at a bot (`status`, the dashboard) never runs a user's code.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from botwarden.domain.models import Duration
from botwarden.domain.timeframes import TIMEFRAMES

DEFAULT_STRATEGY = "golden_cross"

BUILTIN_STRATEGIES: dict[str, str] = {
    "golden_cross": "botwarden.strategies.golden_cross:GoldenCross",
    "coin_flip": "botwarden.strategies.coin_flip:CoinFlip",
}
"""The strategies that come with botwarden, by name, and their classes; a package's
entry point of the same name does not replace one of these."""

_MODULE_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_PLAIN_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")
_CLASS_NAME = re.compile(r"^[A-Za-z_]\w*$")


class StrategySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    """A strategy that comes with botwarden (`golden_cross`, the default, `coin_flip`),
    one a package registers (entry point group `botwarden.strategies`), or a class to import as
    `package.module:Class` (an installed package, or one in the config's folder)."""
    path: str | None = None
    """Or a Python file, relative to the config's folder: `strategies/rsi.py:Rsi`
    (`:Rsi` may be left out when the file defines one strategy class)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The strategy's own settings, given to it as keyword arguments
    (golden_cross: `{fast: 40, slow: 100}`)."""
    timeframe: str = "1h"
    """The bars the strategy sees (completed ones only): 1m, 5m, 15m, 1h, 4h, 1d, 1w."""
    time_limit: Duration | None = Field(default=timedelta(seconds=30), gt=timedelta(0))
    """How long one call of the strategy (`decide`, a hook) may take: past it, it is a
    failure like a raise (no entries; stops and fills go on), left to finish in the
    background. None: no limit (a hang then stops the whole bot)."""

    @field_validator("timeframe")
    @classmethod
    def _supported(cls, timeframe: str) -> str:
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"{timeframe!r} is not one of {', '.join(TIMEFRAMES)}")
        return timeframe

    @model_validator(mode="after")
    def _named_once(self) -> Self:
        if self.path is not None:
            if self.name is not None:
                raise ValueError("give name (a strategy to import) or path (a file), not both")
            file, cls = split_path(self.path)
            if not file.endswith(".py"):
                raise ValueError(
                    f"path: {self.path!r} is not a Python file; write it as"
                    " strategies/my_strategy.py:MyStrategy"
                )
            if cls is not None and not _CLASS_NAME.match(cls):
                raise ValueError(f"path: {cls!r} is not a class name (after the ':')")
        elif ":" in self.spec:
            if not _MODULE_PATH.match(self.spec):
                raise ValueError(
                    f"name: {self.spec!r} is not an importable class; write it as"
                    " package.module:Class"
                )
        elif not _PLAIN_NAME.match(self.spec):
            raise ValueError(
                f"name: {self.spec!r} is not a strategy name; `botwarden strategies` lists"
                " the ones available"
            )
        return self

    @property
    def kind(self) -> Literal["file", "module", "named"]:
        if self.path is not None:
            return "file"
        return "module" if ":" in self.spec else "named"

    @property
    def spec(self) -> str:
        """How the config names it (the file, or the name), as a person would quote it."""
        return self.path or self.name or DEFAULT_STRATEGY


def split_path(path: str) -> tuple[str, str | None]:
    """`strategies/rsi.py:Rsi` as the file and the class (None: not named)."""
    file, colon, cls = path.rpartition(":")
    return (file, cls) if colon else (path, None)
