"""The emulated APIs by name: how each one's paper exchange is kept, and its server."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from botwarden.venues.paper.venue import PaperVenue


class EmulatedApi(StrEnum):
    alpaca = "alpaca"
    binance = "binance"
    binanceusdm = "binanceusdm"


def paper_settings(api: EmulatedApi) -> dict[str, Any]:
    """What the paper exchange behind `api` needs to behave like that venue's account
    (fields of `PaperVenueSettings`): Binance's accounts are in USDT, take client ids
    again once closed, list coins only, and short (and honour reduce-only orders) only
    on futures."""
    if api is EmulatedApi.alpaca:
        return {}
    from botwarden.config import PaperVenueSettings

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
