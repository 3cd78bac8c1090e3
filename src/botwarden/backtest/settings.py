"""The `backtest:` section of a bot's config: the market a backtest trades in."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from botwarden.settings import Settings


class BacktestMarket(Settings):
    """One symbol's rules, where the data cannot tell them."""

    tick: Decimal | None = Field(default=None, gt=0)
    """The price increment (default: a cent for a symbol without a `/`; for a pair such
    as BTC/USDT, the finest increment its bars are written to)."""
    qty_step: Decimal | None = Field(default=None, gt=0)
    """The quantity increment (default: 1 share for a symbol without a `/`, none for a
    pair such as BTC/USDT: any fraction)."""
    min_notional: Decimal | None = Field(default=None, ge=0)


class BacktestSettings(Settings):
    fill: Literal["next_open", "close"] = "next_open"
    """Where a market order fills: at the open of the bar after the one it was decided
    on (the default), or at that bar's close."""
    starting_cash: Decimal = Field(default=Decimal(100000), gt=0)
    fee_rate: Decimal = Field(default=Decimal(0), ge=0, lt=1)
    """Charged on every fill's value: 0.0005 is 5 basis points."""
    slippage: Decimal = Field(default=Decimal(0), ge=0, lt=1)
    """Market and stop fills pay this fraction of the price: 0.0005 is 5 bps."""
    data: str | None = None
    """The bars when `--data` is not given: a file or a folder, relative to the config
    file's folder."""
    markets: dict[str, BacktestMarket] = Field(default_factory=dict)
