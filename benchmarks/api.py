"""The control API: what `GET /api/v1/bots` and a watching dashboard cost `serve`.

    .venv/bin/python benchmarks/api.py                        # 10 and 100 bots, 0 and 10k
    .venv/bin/python benchmarks/api.py --bots 10 --history 10000 --seconds 10
    .venv/bin/python benchmarks/api.py --baseline /tmp/main-src   # another checkout's src/

A home of 10 or 100 stopped bots on sqlite, each with 0 or 10k records of history
(half terminal intents, half fills, as benchmarks/history.py builds them) and an event
per fill, one position and its record; then a real `botwarden serve` process over it,
and a client as the dashboard is one:

- first GET: `GET /api/v1/bots` once, the server just started (nothing read yet);
- GET: its median over the rest of the run, while the event stream is open (the
  server looks at every bot each second for it) and the client asks once a second;
- CPU: `serve`'s CPU time (all its threads, from /proc/PID/stat) over `--seconds`,
  as a share of one core: with the stream open alone (the dashboard idle: no bot
  changed, nothing to redraw), and with the stream open and a GET each second.

With `--baseline SRC`, each home is served by that source tree too (`PYTHONPATH`), in
the same run, and the ratios are the baseline's figures over this tree's. The targets
(issue 14): GET under 200 ms for 100 bots of 10k history, `serve` under 10% of a core
while a dashboard watches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

from botwarden.domain.models import BotRecord, BotStatus, Event, Instance, Ledger
from botwarden.process.supervisor import Supervisor
from botwarden.state.base import Change, Put
from botwarden.state.factory import open_store
from botwarden.state.records import BOT, LEDGER, document, event_key
from botwarden.state.settings import StateSettings
from botwarden.torture.processes import free_port
from history import T0, build  # (the history benchmark's builder: one way to fill a store)

SRC = Path(__file__).resolve().parents[1] / "src"
TICKS = os.sysconf("SC_CLK_TCK")


def config_of(bot_id: str, where: Path) -> dict[str, Any]:
    state = {"backend": "sqlite", "sqlite": {"path": str(where / "state" / "{flow_id}.db")}}
    return {
        "bot_id": bot_id,
        "symbols": ["SPY"],
        "order": {"qty": 1},
        "strategy": {"name": "golden_cross"},
        "state": state,
        "venue": {"type": "paper"},
    }


async def record_and_events(config: dict[str, Any], bot_id: str, history: int) -> None:
    """The bot's record (it ran once and stopped) and an event per fill, as a bot that
    traded has them; its lock file, as a bot that ran leaves it."""
    store = open_store(StateSettings.model_validate(config["state"]), bot_id, Path.cwd())
    await store.open()
    try:
        instance = Instance(host="bench", pid=1, epoch=1, started_at=T0)
        record = BotRecord(
            bot_id=bot_id, status=BotStatus.STOPPED, last_run_at=T0, instance=instance
        )
        fills = history // 2
        ledger = Ledger(
            next_order_seq=history, first_order_at=T0, fills_cursor="0", next_event_seq=fills
        )
        ops = [Put("meta", BOT, document(record)), Put("meta", LEDGER, document(ledger))]
        ops += _fill_events(fills)
        await store.apply(bot_id, Change(ops, epoch=1))
    finally:
        await store.close()


@functools.cache
def _fill_events(fills: int) -> list[Put]:
    """An event per fill, the same for every bot (none names its bot): made once."""
    events = (
        Event(
            seq=n,
            time=T0 + timedelta(minutes=n),
            kind="fill",
            message=f"filled SELL 10 SYM{n % 10} at 101.2",
            data={"trade_id": f"T{n:09d}"},
        )
        for n in range(fills)
    )
    return [Put("events", event_key(e.seq), document(e)) for e in events]


def make_home(where: Path, bots: int, history: int) -> Path:
    home = where / "home"
    supervisor = Supervisor(home)
    for i in range(bots):
        bot_id = f"bench{i:03d}"
        config = config_of(bot_id, where)
        path = where / "configs" / f"{bot_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config))
        asyncio.run(build(config["state"], history, bot_id, where))
        asyncio.run(record_and_events(config, bot_id, history))
        (where / "state" / f"{bot_id}.lock").touch()
        supervisor.register(path)
    return home


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


@dataclass
class Figures:
    first_ms: float
    get_ms: float
    idle_cpu: float
    polled_cpu: float


class Served:
    """A `botwarden serve` process over `home`, running the code in `src`."""

    def __init__(self, home: Path, src: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BOTWARDEN_HOME": str(home), "PYTHONPATH": str(src)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botwarden", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"serve did not come up ({src})")
            time.sleep(0.1)
        token = (home / "api-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=600)
        self._streaming = threading.Event()

    def get_bots(self) -> float:
        began = time.perf_counter()
        answer = self.client.get("/api/v1/bots")
        answer.raise_for_status()
        return (time.perf_counter() - began) * 1000

    def watch(self) -> threading.Thread:
        """The dashboard's event stream, open until `close`."""

        def read() -> None:
            with (
                contextlib.suppress(httpx.TransportError),  # (the server stopped)
                self.client.stream("GET", "/api/v1/events/stream") as stream,
            ):
                for _ in stream.iter_lines():
                    if self._streaming.is_set():
                        return

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._streaming.set()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.client.close()


def measure(home: Path, src: Path, seconds: float) -> Figures:
    served = Served(home, src)
    try:
        first = served.get_bots()
        served.watch()
        time.sleep(2)  # the watcher's first look at every bot (what is not news)
        pid = served.process.pid
        began, used = time.monotonic(), cpu_seconds(pid)
        time.sleep(seconds)
        idle = (cpu_seconds(pid) - used) / (time.monotonic() - began)
        began, used, gets = time.monotonic(), cpu_seconds(pid), []
        while not gets or time.monotonic() - began < seconds:
            asked = time.monotonic()
            gets.append(served.get_bots())
            time.sleep(max(0.0, 1 - (time.monotonic() - asked)))  # once a second
        polled = (cpu_seconds(pid) - used) / (time.monotonic() - began)
        return Figures(first, statistics.median(gets), idle, polled)
    finally:
        served.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", default="10,100")
    parser.add_argument("--history", default="0,10000")
    parser.add_argument("--seconds", type=float, default=20, help="each CPU measurement")
    parser.add_argument("--baseline", type=Path, help="another checkout's src/, served too")
    args = parser.parse_args()
    console = Console(width=140)
    trees = [("this", SRC)] + ([("baseline", args.baseline)] if args.baseline else [])
    table = Table(title="Control API (a fresh `serve` per row)", title_justify="left")
    for column in ("code", "bots", "history", "first GET ms", "GET ms", "CPU idle", "CPU polled"):
        table.add_column(column, justify="left" if column == "code" else "right")
    for bots in (int(n) for n in args.bots.split(",")):
        for history in (int(n) for n in args.history.split(",")):
            where = Path(tempfile.mkdtemp(prefix="bw-api-"))
            try:
                began = time.perf_counter()
                home = make_home(where, bots, history)
                built = time.perf_counter() - began
                console.print(f"{bots} bots x {history:,}: built in {built:.1f} s", style="dim")
                figures = {name: measure(home, src, args.seconds) for name, src in trees}
            finally:
                shutil.rmtree(where, ignore_errors=True)
            for name, f in figures.items():
                table.add_row(
                    name,
                    str(bots),
                    f"{history:,}",
                    f"{f.first_ms:,.0f}",
                    f"{f.get_ms:,.1f}",
                    f"{f.idle_cpu:.1%}",
                    f"{f.polled_cpu:.1%}",
                )
            if args.baseline:
                ours, theirs = figures["this"], figures["baseline"]
                table.add_row(
                    "baseline / this",
                    "",
                    "",
                    f"{theirs.first_ms / ours.first_ms:,.1f}x",
                    f"{theirs.get_ms / ours.get_ms:,.1f}x",
                    f"{theirs.idle_cpu / max(ours.idle_cpu, 1e-9):,.1f}x",
                    f"{theirs.polled_cpu / max(ours.polled_cpu, 1e-9):,.1f}x",
                    end_section=True,
                )
    console.print(table)


if __name__ == "__main__":
    main()
