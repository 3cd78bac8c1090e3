"""The bot's market view on disk: what its last pass saw (`engine/sight.py`), written to
`bots/<id>/market.json` for the dashboard. Written whole each pass (a temp file renamed
over the last, so a reader finds one or the other) and never synced: it is a view, seen
again at the next pass; a disk that refuses it is said once and costs the bot nothing.

Numbers are strings, at full precision, as everywhere in the API; each symbol carries
the decimal places of its market's price tick and lot step, to be shown with."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from botwarden.domain.markets import places
from botwarden.engine.sight import Seen

log = logging.getLogger(__name__)


def market_document(seen: Seen) -> dict[str, Any]:
    symbols = {}
    for symbol, price in seen.prices.items():
        rules = seen.markets.get(symbol)
        bars = seen.bars.get(symbol, [])
        symbols[symbol] = {
            "price": str(price),
            "price_places": places(rules.price_tick) if rules else None,
            "qty_places": places(rules.qty_step) if rules else None,
            "bars": {  # by column, as a chart takes them
                "time": [b.time.isoformat() for b in bars],
                "open": [str(b.open) for b in bars],
                "high": [str(b.high) for b in bars],
                "low": [str(b.low) for b in bars],
                "close": [str(b.close) for b in bars],
            },
        }
    balance = seen.balance
    return {
        "time": seen.time.isoformat(),
        "speed": seen.speed,
        "timeframe": seen.timeframe,
        "balance": None if balance is None else {k: str(v) for k, v in balance},
        "symbols": symbols,
    }


class MarketFile:
    """A `Sight` that keeps the latest view in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing: str | None = None
        with contextlib.suppress(OSError):  # (said at the first write, if it stays)
            path.parent.mkdir(parents=True, exist_ok=True)

    def saw(self, seen: Seen) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")  # (one writer: the bot's lock)
        try:
            tmp.write_text(json.dumps(market_document(seen)), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if str(error) != self._failing:
                log.warning("the market view %s cannot be written: %s", self.path, error)
            self._failing = str(error)
        else:
            self._failing = None


def read_market(path: Path) -> dict[str, Any] | None:
    """The last view written there; None if there is none (the bot never passed, or
    the file cannot be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
