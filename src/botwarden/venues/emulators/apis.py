"""The emulated APIs by name: how each one's paper exchange is kept, and its server."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (the CLI names the APIs without loading an exchange)
    from botwarden.venues.paper.venue import PaperVenue


class EmulatedApi(StrEnum):
    alpaca = "alpaca"
    binance = "binance"
    binanceusdm = "binanceusdm"


def paper_settings(api: EmulatedApi) -> dict[str, Any]:
    """What the paper exchange behind `api` needs to behave like that venue's account
    (fields of `PaperVenueSettings`): Alpaca's lists stocks and coins priced in USD
    (`BTC/USD`, in Alpaca's increments); Binance's accounts are in USDT, take client ids
    again once closed, list coins only, and short (and honour reduce-only orders) only
    on futures."""
    from botwarden.venues.settings import PaperInstrument, PaperVenueSettings

    if api is EmulatedApi.alpaca:
        stocks = {
            symbol: instrument
            for symbol, instrument in PaperVenueSettings().instruments.items()
            if "/" not in symbol
        }
        coin = {"tick": Decimal("0.01"), "qty_step": Decimal("0.000000001"), "min_notional": 1}
        return {
            "instruments": {
                **stocks,
                "BTC/USD": PaperInstrument(price=Decimal(60000), volatility=0.03, **coin),
                "ETH/USD": PaperInstrument(price=Decimal(3000), volatility=0.035, **coin),
            }
        }

    coins = {
        symbol: instrument
        for symbol, instrument in PaperVenueSettings().instruments.items()
        if symbol.endswith("/USDT")
    }
    return {
        "currency": "USDT",
        "client_ids": "binance",
        "shorting": api is EmulatedApi.binanceusdm,
        "reduce_only": api is EmulatedApi.binanceusdm,
        "instruments": coins,
    }


def create_app(api: EmulatedApi, venue: PaperVenue, key: str | None, secret: str | None) -> Any:
    if api is EmulatedApi.alpaca:
        from botwarden.venues.emulators import alpaca

        return alpaca.create_app(venue, key, secret)
    from botwarden.venues.emulators import binance

    flavour = "spot" if api is EmulatedApi.binance else "usdm"
    return binance.create_app(venue, flavour, key, secret)
