"""What the server sees of the bots as it changes: one look at every bot each interval
(sooner when an action pokes it), the differences fanned out to the event stream's
subscribers, and the Prometheus view of the reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from botwarden.domain.models import BotStatus
from botwarden.process.home import known_bots
from botwarden.process.supervisor import BotReport, Supervisor
from botwarden.state.factory import StoredBot
from botwarden.state.records import document

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
"""Messages a slow subscriber may fall behind by; beyond, it misses some (the dashboard
reloads what it shows at each message anyway)."""

Message = tuple[str, dict[str, Any]]


class Watcher:
    def __init__(self, supervisor: Supervisor, interval: float = 1.0) -> None:
        self.supervisor = supervisor
        self.interval = interval
        self._subscribers: set[asyncio.Queue[Message]] = set()
        self._seen: dict[str, tuple[str, int, int | None]] = {}
        """Bot -> (its status, its next event's seq, when its market view was written)
        at the last look."""
        self._looked = False
        """A first look was taken since someone subscribed: a bot seen now is new."""
        self._poke = asyncio.Event()
        self._closed = False

    def subscribe(self) -> asyncio.Queue[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        self.poke()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        self._subscribers.discard(queue)

    def poke(self) -> None:
        """Look again now (a bot was just started, stopped or resolved)."""
        self._poke.set()

    def close(self) -> None:
        self._closed = True
        self._poke.set()

    async def run(self) -> None:
        while not self._closed:
            try:
                await self.look_once()
            except Exception:  # one bad look must not end the stream for everyone
                log.exception("watching the bots failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.interval)
            self._poke.clear()

    async def look_once(self) -> None:
        if not self._subscribers:
            self._seen.clear()  # nobody to tell: the next subscriber starts from then
            self._looked = False
            return
        looks = await asyncio.to_thread(lambda: asyncio.run(self._look_all()))
        for report, state, market in looks:
            self._compare(report, state, market)
        self._looked = True

    async def _look_all(self) -> list[tuple[BotReport, StoredBot | None, int | None]]:
        looks = []
        for bot_id in known_bots(self.supervisor.root):
            seen = self._seen.get(bot_id)  # its events since then are news
            report, stored = await self.supervisor.look(bot_id, seen[1] - 1 if seen else None)
            looks.append((report, stored, _written(self.supervisor.files(bot_id).market)))
        return looks

    def _compare(self, report: BotReport, stored: StoredBot | None, market: int | None) -> None:
        bot = report.bot_id
        before = self._seen.get(bot)
        next_seq = stored.state.ledger.next_event_seq if stored is not None else None
        if next_seq is None:
            next_seq = before[1] if before else 0
        self._seen[bot] = (report.status, next_seq, market)
        if before is None:  # first seen: what it was before is not news, unless it is new
            if self._looked:
                self._publish("bot_added", {"bot_id": bot, "status": report.status})
            return
        was, since, market_before = before
        if market != market_before:  # a pass saw the market again: prices, PnL, charts
            self._publish("market", {"bot_id": bot})
        if was != report.status:
            self._publish(
                "bot_status",
                {
                    "bot_id": bot,
                    "status": report.status,
                    "was": was,
                    "last_error": report.last_error,
                },
            )
        if stored is not None:
            for event in stored.events:
                if event.seq >= since:
                    self._publish(event.kind, {"bot_id": bot, **document(event)})

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((kind, data))


def _written(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def metrics_text(reports: list[BotReport]) -> str:
    """The reports in Prometheus' text exposition format."""
    lines: list[str] = []

    def family(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{shown}}} {value:g}")

    def each(value: Any) -> list[tuple[dict[str, str], float]]:
        return [({"bot": r.bot_id}, float(v)) for r in reports if (v := value(r)) is not None]

    family("botwarden_bot_up", "1 if a process runs the bot.", each(lambda r: r.pid is not None))
    family(
        "botwarden_bot_status",
        "1 for the status the bot is in, 0 for the others.",
        [
            ({"bot": r.bot_id, "status": s.value}, float(r.status == s.value))
            for r in reports
            for s in BotStatus
        ],
    )
    family("botwarden_positions", "Positions held.", each(lambda r: len(r.positions)))
    family(
        "botwarden_unprotected_positions",
        "Positions without a live stop on the venue (as the bot last saw).",
        each(lambda r: len(r.unprotected)),
    )
    family(
        "botwarden_open_orders",
        "Orders not final yet (resting stops included).",
        each(lambda r: r.open_orders),
    )
    family(
        "botwarden_heartbeat_age_seconds",
        "Wall-clock seconds since the bot last showed life.",
        each(lambda r: r.heartbeat_seconds),
    )
    family(
        "botwarden_uptime_seconds", "Seconds its process has run.", each(lambda r: r.uptime_seconds)
    )
    family("botwarden_pnl_today", "Realized PnL of the trading day.", each(lambda r: r.pnl_today))
    family(
        "botwarden_trades_today",
        "Trades closed in the trading day.",
        each(lambda r: r.trades_today),
    )
    family(
        "botwarden_entries_today",
        "Entries taken in the trading day.",
        each(lambda r: r.entries_today),
    )
    family(
        "botwarden_breaker_tripped",
        "1 while the circuit breaker stops new entries.",
        each(lambda r: r.breaker is not None),
    )
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
