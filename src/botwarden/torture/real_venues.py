"""The venues the real campaign trades on, each through its real SDK and an emulator
of its API: what the bot's config says, its keys, and how the emulator names fills."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from botwarden.torture.processes import Exchange
from botwarden.venues.emulators import alpaca, binance
from botwarden.venues.emulators.apis import EmulatedApi

KEY, SECRET = "torture-key", "torture-secret"
BOT_ID = "realtorture"


@dataclass(frozen=True)
class RealVenue:
    name: str
    api: EmulatedApi
    symbols: tuple[str, ...]
    keys: dict[str, str]
    """The environment the bot finds its keys in."""
    book_trade_id: Callable[[str], str]
    """The paper book's trade id for one the bot's ledger holds (for the checker)."""
    book_symbol: Callable[[str], str]
    """The paper book's name of a market the bot names (for a trial's past)."""
    read_back: int
    """Round trips of a trial's past read back through the API at once: as many as the
    adapter names from its listings of the newest orders (a fill of an older one costs
    a request of its own)."""
    skews_clock: bool
    """Whether trials on it draw a venue clock far from the host's (the ccxt adapter
    reads the venue's time; alpaca-py has no such call)."""
    held_request: str
    """The exchange's access log line (a pattern) of the request for what is held: a
    pass of a bot whose store fails begins with it."""

    def section(self, exchange: Exchange, symbols: list[str]) -> dict[str, Any]:
        """The config's `venue:` section, pointed at the emulator."""
        if self.api is EmulatedApi.alpaca:
            return {"type": "alpaca", "base_url": exchange.url, "data_url": exchange.url}
        return {
            "type": "ccxt",
            "exchange": self.api.value,
            "base_url": exchange.url,
            "symbols": symbols,
            "throttle": False,  # the emulator limits nothing: Binance's weights cost seconds
        }


ALPACA = RealVenue(
    name="alpaca",
    api=EmulatedApi.alpaca,
    symbols=("SPY", "QQQ", "AAPL"),
    keys={"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET},
    book_trade_id=alpaca.book_trade_id,
    book_symbol=str,
    read_back=2_500,  # 5,000 orders: ten listings of 500
    skews_clock=False,
    held_request=r'"GET /v2/positions[ ?]',
)
BINANCE_USDM = RealVenue(
    name="binanceusdm",
    api=EmulatedApi.binanceusdm,
    symbols=("BTC/USDT:USDT", "ETH/USDT:USDT"),
    keys={"BOTWARDEN_CCXT_API_KEY": KEY, "BOTWARDEN_CCXT_SECRET": SECRET},
    book_trade_id=binance.book_trade_id,
    book_symbol=lambda perpetual: perpetual.partition(":")[0],  # BTC/USDT:USDT: BTC/USDT
    read_back=500,  # 1,000 orders: one listing of a market's newest
    skews_clock=True,
    held_request=r'"GET /fapi/v\d/positionRisk[ ?]',
)
VENUES = (ALPACA, BINANCE_USDM)


def write_config(folder: Path, venue: RealVenue, exchange: Exchange, rng: random.Random) -> Path:
    symbols = rng.sample(venue.symbols, rng.choice([1, 2]))
    config = {
        "bot_id": BOT_ID,
        "symbols": symbols,
        "order": {"notional": 2000},
        "strategy": {
            "name": "coin_flip",
            "params": {"seed": rng.randrange(10**6), "enter": 0.5, "exit": 0.3, "short": True},
            "timeframe": "1h",
        },
        "stop": {"distance": rng.choice([1, 2]), "trailing": rng.random() < 0.5},
        "state": {"recovery": {"mode": rng.choice(["sync", "restore", "close_all"])}},
        "venue": venue.section(exchange, symbols),
        "engine": {"check_interval": "200ms", "unknown_order_grace": "1s"},
    }
    path = folder / "bot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
