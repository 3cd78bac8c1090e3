"""History growth: what a bot's past costs it, per durable backend, in one run.

    .venv/bin/python benchmarks/history.py                       # sqlite to 1M, the rest to 100k
    .venv/bin/python benchmarks/history.py --quick               # 0 and 10k, every backend
    .venv/bin/python benchmarks/history.py --backends sqlite --sizes 0,1000000

For a bot with 0, 10k, 100k and 1M records of history (half terminal intents, half
fills: what a year of hourly trailing stops on ten symbols leaves), beside a live state
of one position and its resting stop, measured in a fresh process each time, so the
figures are what a restart pays:

- open: `StateManager` opened (the store's checks, the live state loaded), in ms;
- RSS after the open, and the process's peak, in MB (Python itself is ~20 MB);
- one durable change (`save_position`), the median of 200, in ms;
- `botwarden run --ticks 1` from exec to exit, on sqlite (the paper exchange);
- the store's size.

The targets (issue 14): open, RSS and the change flat in the history (at 1M within 1.5x
of an empty bot), and `run --ticks 1` under 1 s at 1M on sqlite. jsonfile rewrites its
whole file, history included, at every change: it is built to 100k at most.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from botwarden.domain.models import Fill, Ledger, OrderSide, Position, Side
from botwarden.domain.orders import OrderIntent, OrderType, Purpose
from botwarden.state.base import Change, Put
from botwarden.state.factory import open_store
from botwarden.state.manager import StateManager
from botwarden.state.records import LEDGER, document
from botwarden.state.settings import StateSettings

BOT = "hist"
T0 = datetime(2025, 12, 1, tzinfo=UTC)
REDIS, POSTGRES = "redis://127.0.0.1:6379/0", "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH = 5_000
CHANGES = 200
JSONFILE_MAX = 100_000


def settings_for(backend: str, where: Path, tag: str) -> dict[str, Any]:
    if backend == "redis":
        return {"backend": "redis", "redis": {"url": REDIS, "key_prefix": tag}}
    if backend == "postgres":
        return {"backend": "postgres", "postgres": {"dsn": POSTGRES, "schema": tag}}
    suffix = {"sqlite": "db", "duckdb": "duckdb", "jsonfile": "json"}[backend]
    return {"backend": backend, backend: {"path": str(where / f"{BOT}.{suffix}")}}


def _intent(n: int) -> OrderIntent:
    at = T0 + timedelta(minutes=n)
    intent = OrderIntent(
        client_order_id=f"hist-ab12-1-{n}",
        symbol=f"SYM{n % 10}",
        side=OrderSide.SELL,
        type=OrderType.STOP,
        qty=Decimal(10),
        stop_price=Decimal("101.25"),
        purpose=Purpose.STOP,
        position_id=f"pos-{n % 10}",
        created_at=at,
        updated_at=at,
    )
    done = intent.submit(at, 1).accept(at, f"V{n}")
    return done.cancel(at) if n % 2 else done.fill(at, Decimal(10), Decimal("101.2"), f"V{n}")


def _fill(n: int) -> Fill:
    return Fill(
        trade_id=f"T{n:09d}",
        client_order_id=f"hist-ab12-1-{n}",
        venue_order_id=f"V{n}",
        symbol=f"SYM{n % 10}",
        side=OrderSide.SELL,
        qty=Decimal(10),
        price=Decimal("101.2"),
        fee=Decimal("0.05"),
        time=T0 + timedelta(minutes=n),
    )


def _position(n: int = 0, bot: str = BOT) -> Position:
    return Position(
        id="pos-live",
        bot_id=bot,
        symbol="SPY",
        side=Side.LONG,
        size=Decimal(10 + n % 7),
        entry_price=Decimal(100),
        entry_time=T0,
        stop_price=Decimal(98),
    )


async def build(
    settings: dict[str, Any], size: int, bot: str = BOT, base_dir: Path | None = None
) -> None:
    """`size` records of history and a small live state of bot `bot`, written straight
    to the store in large changes (building is not what is measured; benchmarks/api.py
    builds its bots with it too)."""
    store = open_store(StateSettings.model_validate(settings), bot, base_dir or Path.cwd())
    await store.open()
    try:
        ledger = Ledger(next_order_seq=size, first_order_at=T0, fills_cursor="0")
        live = [
            Put("positions", "pos-live", document(_position(bot=bot))),
            Put("meta", LEDGER, document(ledger)),
        ]
        await store.apply(bot, Change(live, epoch=1))
        for ops in _history(size):
            await store.apply(bot, Change(ops, epoch=1))
    finally:
        await store.close()


@functools.cache
def _history(size: int) -> list[list[Put]]:
    """The history's records in changes of `BATCH`: the same for every bot (no record
    of it names its bot), so made once for many."""
    ops = []
    for n in range(size // 2):
        ops.append(Put("past_intents", f"hist-ab12-1-{n}", document(_intent(n))))
        ops.append(Put("fills", f"T{n:09d}", document(_fill(n))))
    return [ops[at : at + BATCH] for at in range(0, len(ops), BATCH)]


def _memory_mb() -> tuple[float, float]:
    """(resident now, peak) of this process, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def child(settings: dict[str, Any]) -> dict[str, float]:
    """Measured in a process of its own: open, memory, one durable change."""
    started = time.perf_counter()
    manager = StateManager.from_config(BOT, settings, base_dir=Path.cwd())
    await manager.open()
    opened = time.perf_counter() - started
    rss, peak = _memory_mb()
    await manager.fence(2)
    times = []
    for n in range(CHANGES):
        begin = time.perf_counter()
        await manager.save_position(_position(n))
        times.append(time.perf_counter() - begin)
    await manager.close()
    return {
        "open_ms": opened * 1000,
        "rss_mb": rss,
        "peak_mb": peak,
        "change_ms": statistics.median(times) * 1000,
    }


def measure(settings: dict[str, Any]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(settings)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_ticks(settings: dict[str, Any], where: Path) -> float:
    """`botwarden run --ticks 1` on the built state, exec to exit, in seconds."""
    config = where / "bot.yaml"
    config.write_text(
        json.dumps(
            {
                "bot_id": BOT,
                "symbols": ["SPY"],
                "order": {"qty": 1},
                "strategy": {"name": "golden_cross"},
                "state": settings,
                "venue": {"type": "paper"},
                "engine": {"check_interval": "1s"},
            }
        )
    )
    botwarden = Path(sys.executable).with_name("botwarden")
    env = {**os.environ, "BOTWARDEN_HOME": str(where / "home")}
    started = time.perf_counter()
    subprocess.run(
        [str(botwarden), "run", str(config), "--ticks", "1"],
        capture_output=True,
        check=True,
        env=env,
    )
    return time.perf_counter() - started


def store_size(backend: str, settings: dict[str, Any]) -> str:
    if backend in ("sqlite", "duckdb", "jsonfile"):
        path = Path(settings[backend]["path"])
        total = sum(
            p.stat().st_size
            for p in path.parent.iterdir()
            if p.name.startswith(path.name) and p.is_file()
        )
        return f"{total / 2**20:,.1f} MB"
    if backend == "postgres":
        import psycopg

        schema = settings["postgres"]["schema"]
        with psycopg.connect(POSTGRES) as conn:
            size = sum(
                conn.execute(f"SELECT pg_total_relation_size('{schema}.{table}')").fetchone()[0]
                for table in ("botwarden_records", "botwarden_history")
            )
        return f"{size / 2**20:,.1f} MB"
    import redis

    client = redis.Redis.from_url(REDIS)
    prefix = settings["redis"]["key_prefix"]
    used = sum(client.memory_usage(k) or 0 for k in client.scan_iter(f"{prefix}:*"))
    client.close()
    return f"{used / 2**20:,.1f} MB"


def drop(backend: str, settings: dict[str, Any]) -> None:
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"{settings['redis']['key_prefix']}:*"):
            client.delete(key)
        client.close()
    elif backend == "postgres":
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {settings['postgres']['schema']} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,duckdb,jsonfile,redis,postgres")
    parser.add_argument("--sizes", help="history sizes (default: 0,10k,100k; 1M on sqlite)")
    parser.add_argument("--quick", action="store_true", help="0 and 10k only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(json.loads(args.child)))))
        return
    console = Console(width=120)
    table = Table(title="History growth (a fresh process per row)", title_justify="left")
    for column in ("backend", "history", "open ms", "RSS MB", "peak MB", "change ms"):
        table.add_column(column, justify="right")
    table.add_column("run --ticks 1 s", justify="right")
    table.add_column("store", justify="right")
    for backend in args.backends.split(","):
        if args.sizes:
            sizes = [int(s) for s in args.sizes.split(",")]
        elif args.quick:
            sizes = [0, 10_000]
        else:
            sizes = [0, 10_000, 100_000] + ([1_000_000] if backend == "sqlite" else [])
        baseline = None
        for size in sizes:
            if backend == "jsonfile" and size > JSONFILE_MAX:
                continue
            where = Path(tempfile.mkdtemp(prefix="bw-history-"))
            settings = settings_for(backend, where, f"bwhist_{uuid.uuid4().hex[:10]}")
            try:
                started = time.perf_counter()
                asyncio.run(build(settings, size))
                built = time.perf_counter() - started
                figures = measure(settings)
                ticks = f"{run_ticks(settings, where):.2f}" if backend == "sqlite" else "-"
                baseline = baseline or figures
                ratio = figures["open_ms"] / baseline["open_ms"]
                table.add_row(
                    backend,
                    f"{size:,}",
                    f"{figures['open_ms']:.1f} ({ratio:.2f}x)",
                    f"{figures['rss_mb']:.0f}",
                    f"{figures['peak_mb']:.0f}",
                    f"{figures['change_ms']:.3f}",
                    ticks,
                    store_size(backend, settings),
                )
                console.print(f"{backend} {size:,}: built in {built:.1f} s", style="dim")
            finally:
                drop(backend, settings)
                shutil.rmtree(where, ignore_errors=True)
    console.print(table)


if __name__ == "__main__":
    main()
