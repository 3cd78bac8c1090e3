"""Benchmark of the state backends against the disk's own fsync floor, in one run.

    .venv/bin/python benchmarks/state_store.py                 # every backend, full counts
    .venv/bin/python benchmarks/state_store.py --quick         # smoke run, small counts
    .venv/bin/python benchmarks/state_store.py --backends sqlite,postgres --samples 500

What it measures, per backend, through `StateManager` (so the numbers include what a
bot pays, not only the store):

1. the disk floor: a ~200-byte record appended to a file, then fsync (and fdatasync),
   in the same directory the file backends use;
2. one durable change: `save_position` of a position whose content differs each time,
   as a ratio of the floor of 1. and of the same floor sampled between its changes
   (the disk of a shared machine drifts: pairing the samples keeps the ratio honest);
3. one composite change: `record_fill` with the position and the intent it changed;
4. loading N positions (10,000 by default) into a freshly opened manager;
5. `save_position` while the bot holds 1, 100 and N positions.

A server that cannot be reached is skipped with the reason. Missing a target is
reported, never an error: the exit status is non-zero only if the benchmark crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import math
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from botwarden.domain.models import Fill, OrderSide, Position, Side
from botwarden.domain.orders import IntentStatus, OrderIntent, OrderType, Purpose
from botwarden.errors import StoreUnavailable
from botwarden.state.manager import StateManager

ALL_BACKENDS = ("memory", "sqlite", "duckdb", "jsonfile", "redis", "postgres")
SLOW_BACKENDS = frozenset({"duckdb", "jsonfile"})
"""Backends measured with fewer single-change samples unless `--samples` is given."""
FILE_BACKENDS = frozenset({"sqlite", "duckdb", "jsonfile"})
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_TMP_PARENT = Path("benchmarks/.tmp")
TARGET_POSITIONS = 10_000
BATCH = 1000
"""Positions per transaction when filling a flow."""
JSONFILE_BIG = 1000
"""From this many positions held, jsonfile gets `jsonfile_big_samples` updates."""
PAIR_CHUNK = 50
"""Single changes between two rounds of paired floor samples (as many of each)."""
RECORD = b"x" * 199 + b"\n"
"""The disk floor's record: about the size of one encoded position."""
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)

Call = Callable[[], Awaitable[object]]


# -- counts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    samples: int
    slow_samples: int
    positions: int
    held_samples: int
    jsonfile_big_samples: int
    load_repeats: int
    warmup: int
    floor_samples: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        quick = args.quick
        samples = args.samples or (50 if quick else 1000)
        return cls(
            samples=samples,
            slow_samples=args.samples or (50 if quick else 200),
            positions=args.positions or (1000 if quick else TARGET_POSITIONS),
            held_samples=30 if quick else 300,
            jsonfile_big_samples=10 if quick else 20,
            load_repeats=3 if quick else 5,
            warmup=5 if quick else 20,
            floor_samples=max(samples, 200),
        )

    @property
    def held_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({1, 100, self.positions}))

    def single_samples(self, backend: str) -> int:
        return self.slow_samples if backend in SLOW_BACKENDS else self.samples

    def held_update_samples(self, backend: str, held: int) -> int:
        if backend == "jsonfile" and held >= JSONFILE_BIG:
            return self.jsonfile_big_samples  # every change rewrites the whole file
        return self.held_samples


# -- measurements ------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (which need not be sorted)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Series:
    """Latencies (seconds) of operations run one after another."""

    latencies: list[float]

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def rate(self) -> float:
        """Operations per second, back to back."""
        return self.count / sum(self.latencies)


async def measure(
    make_call: Callable[[int], Call],
    count: int,
    warmup: int,
    between: Callable[[], object] | None = None,
) -> Series:
    """Time `count` calls, after `warmup` untimed ones. Arguments are built untimed, and
    `between` (if any) runs untimed before every PAIR_CHUNK timed calls."""
    gc.collect()
    latencies: list[float] = []
    for index in range(warmup + count):
        if between is not None and index >= warmup and (index - warmup) % PAIR_CHUNK == 0:
            between()
        call = make_call(index)
        start = time.perf_counter()
        await call()
        took = time.perf_counter() - start
        if index >= warmup:
            latencies.append(took)
    return Series(latencies)


class SyncedFile:
    """A file written RECORD by RECORD, each write followed by `sync`: appended, or
    over the same bytes (the block then exists and is synced before timing starts)."""

    def __init__(self, path: Path, sync: Callable[[int], None], append: bool) -> None:
        self.path = path
        self._sync = sync
        self._append = append
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
        self._fd = os.open(path, flags, 0o600)
        if not append:
            os.write(self._fd, RECORD)
            os.fsync(self._fd)

    def sample(self, count: int) -> list[float]:
        latencies = []
        for _ in range(count):
            start = time.perf_counter()
            if self._append:
                os.write(self._fd, RECORD)
            else:
                os.pwrite(self._fd, RECORD, 0)
            self._sync(self._fd)
            latencies.append(time.perf_counter() - start)
        return latencies

    def close(self) -> None:
        os.close(self._fd)
        self.path.unlink()


def disk_floor(directory: Path, count: int, sync: Callable[[int], None], append: bool) -> Series:
    name = f"floor-{sync.__name__}-{'append' if append else 'overwrite'}.log"
    synced = SyncedFile(directory / name, sync, append)
    try:
        return Series(synced.sample(count))
    finally:
        synced.close()


# -- the documents -----------------------------------------------------------------------


def make_position(bot_id: str, index: int, version: int = 0) -> Position:
    """Position `index`; `version` changes its content (SQLite skips identical rows)."""
    base = Decimal(100 + index % 400)
    return Position(
        id=f"pos-{index:05d}",
        bot_id=bot_id,
        symbol=f"SYM{index:05d}",
        side=Side.LONG,
        size=Decimal(10 + index % 7),
        entry_price=base,
        entry_time=T0 + timedelta(minutes=index),
        stop_price=base * Decimal("0.95"),
        stop_client_order_id=f"stop-{index:05d}",
        take_profit=base * Decimal("1.10"),
        best_price=base + Decimal(version) / 100,
        metadata={"strategy": "golden_cross", "timeframe": "1d"},
    )


def make_fill(index: int) -> Fill:
    return Fill(
        trade_id=f"trade-{index:07d}",
        client_order_id="entry-00000",
        symbol="SYM00000",
        side=OrderSide.BUY,
        qty=Decimal(1),
        price=Decimal("100.25"),
        fee=Decimal("0.01"),
        fee_currency="USD",
        time=T0 + timedelta(seconds=index),
    )


def make_intent(index: int) -> OrderIntent:
    """The entry order after its `index + 1`-th fill."""
    return OrderIntent(
        client_order_id="entry-00000",
        symbol="SYM00000",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        qty=Decimal(10**9),
        purpose=Purpose.ENTRY,
        limit_price=Decimal("100.50"),
        position_id="pos-00000",
        status=IntentStatus.PARTIALLY_FILLED,
        venue_order_id="venue-1",
        filled_qty=Decimal(index + 1),
        avg_price=Decimal("100.25"),
        created_at=T0,
        updated_at=T0 + timedelta(seconds=index),
    )


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    positions: int
    fill_seconds: float
    """Writing them, in transactions of BATCH positions."""
    open_seconds: list[float]
    """Opening a fresh manager (connect, checks, and its own first load)."""
    reload_seconds: list[float]


@dataclass
class BackendResult:
    backend: str
    single: Series | None = None
    paired_floor: Series | None = None
    """Append + fsync, sampled between chunks of `single` (same disk conditions)."""
    composite: Series | None = None
    held: dict[int, Series] = field(default_factory=dict)
    load: LoadResult | None = None
    seconds: float = 0.0


@dataclass
class Environment:
    """Where the stores live for this run, and how to reach the servers."""

    run_dir: Path
    redis_url: str
    postgres_dsn: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def redis_prefix(self) -> str:
        return f"bwbench-{self.tag}"

    @property
    def postgres_schema(self) -> str:
        return f"bwbench_{self.tag}"

    def state_config(self, backend: str) -> dict[str, Any]:
        """A `state:` section; every flow of a file backend gets its own file."""
        folder = self.run_dir / backend
        return {
            "backend": backend,
            "sqlite": {"path": str(folder / "{flow_id}.db")},
            "duckdb": {"path": str(folder / "{flow_id}.duckdb")},
            "jsonfile": {"path": str(folder / "{flow_id}.json")},
            "redis": {"url": self.redis_url, "key_prefix": self.redis_prefix},
            "postgres": {"dsn": self.postgres_dsn, "schema": self.postgres_schema},
        }

    async def open_manager(
        self, backend: str, flow_id: str, same_store_as: StateManager | None = None
    ) -> StateManager:
        """An opened manager. A memory store lives in its manager, so a "fresh" memory
        manager is built over the store of `same_store_as`."""
        if backend == "memory" and same_store_as is not None:
            manager = StateManager(flow_id, same_store_as.store)
        else:
            manager = StateManager.from_config(flow_id, self.state_config(backend))
        await manager.open()
        return manager


# -- the scenarios -----------------------------------------------------------------------


async def fill_flow(manager: StateManager, count: int) -> float:
    """Save `count` positions in transactions of BATCH; the seconds it took."""
    start = time.perf_counter()
    for first in range(0, count, BATCH):
        batch = [make_position(manager.flow_id, i) for i in range(first, min(count, first + BATCH))]
        async with manager.transaction() as tx:
            for position in batch:
                tx.save_position(position)
    return time.perf_counter() - start


async def bench_single(env: Environment, plan: Plan, backend: str) -> tuple[Series, Series]:
    """The changes, and the append + fsync floor sampled in between them (paired)."""
    manager = await env.open_manager(backend, "bench-single")
    floor = SyncedFile(env.run_dir / f"paired-floor-{backend}.log", os.fsync, append=True)
    paired: list[float] = []
    try:

        def make_call(index: int) -> Call:
            return partial(manager.save_position, make_position(manager.flow_id, 0, index))

        def sample_floor() -> None:
            paired.extend(floor.sample(PAIR_CHUNK))

        count = plan.single_samples(backend)
        series = await measure(make_call, count, plan.warmup, between=sample_floor)
    finally:
        floor.close()
        await manager.close()
    return series, Series(paired)


async def bench_composite(env: Environment, plan: Plan, backend: str) -> Series:
    manager = await env.open_manager(backend, "bench-composite")
    try:

        def make_call(index: int) -> Call:
            position = make_position(manager.flow_id, 0, index)
            return partial(
                recorded, manager, make_fill(index), position=position, intent=make_intent(index)
            )

        return await measure(make_call, plan.single_samples(backend), plan.warmup)
    finally:
        await manager.close()


async def recorded(manager: StateManager, fill: Fill, **changed: Any) -> None:
    if not await manager.record_fill(fill, **changed):
        raise RuntimeError(f"fill {fill.trade_id} was refused as a duplicate")


async def bench_load(
    env: Environment, plan: Plan, backend: str, writer: StateManager, fill_seconds: float
) -> tuple[LoadResult, StateManager]:
    """Open fresh managers on the flow `writer` filled; returns the last one, open."""
    flow_id, expected = writer.flow_id, plan.positions
    if backend != "memory":
        await writer.close()  # the store a fresh manager opens must hold it all durably
    opens: list[float] = []
    reloads: list[float] = []
    manager: StateManager | None = None
    for _ in range(plan.load_repeats):
        if manager is not None:
            await manager.close()
        gc.collect()
        start = time.perf_counter()
        manager = await env.open_manager(backend, flow_id, same_store_as=writer)
        opens.append(time.perf_counter() - start)
        gc.collect()  # not the garbage of the load `open` just did
        start = time.perf_counter()
        await manager.reload()
        reloads.append(time.perf_counter() - start)
        found = len(await manager.get_positions())
        if found != expected:
            await manager.close()
            raise RuntimeError(f"{backend}: loaded {found} positions, expected {expected}")
    assert manager is not None
    return LoadResult(expected, fill_seconds, opens, reloads), manager


async def bench_held(
    env: Environment, plan: Plan, backend: str, held: int
) -> tuple[Series, LoadResult | None]:
    """`save_position` of one of `held` positions; loading them too for the largest."""
    manager = await env.open_manager(backend, f"bench-held-{held}")
    load: LoadResult | None = None
    try:
        fill_seconds = await fill_flow(manager, held)
        if held == plan.positions:
            load, manager = await bench_load(env, plan, backend, manager, fill_seconds)

        def make_call(index: int) -> Call:
            position = make_position(manager.flow_id, index % held, index + 1)
            return partial(manager.save_position, position)

        samples = plan.held_update_samples(backend, held)
        series = await measure(make_call, samples, min(plan.warmup, samples))
    finally:
        await manager.close()
    return series, load


async def bench_backend(env: Environment, plan: Plan, backend: str) -> BackendResult:
    result = BackendResult(backend)
    start = time.perf_counter()
    result.single, result.paired_floor = await bench_single(env, plan, backend)
    result.composite = await bench_composite(env, plan, backend)
    for held in plan.held_sizes:
        result.held[held], load = await bench_held(env, plan, backend, held)
        result.load = load or result.load
    result.seconds = time.perf_counter() - start
    return result


async def probe(env: Environment, backend: str) -> str | None:
    """Why `backend` cannot be used here, or None if it opens."""
    try:
        manager = await env.open_manager(backend, "bench-probe")
    except (StoreUnavailable, OSError) as error:
        return str(error) or type(error).__name__
    await manager.close()
    return None


# -- machine and server facts ------------------------------------------------------------


def filesystem_of(directory: Path) -> str:
    try:
        lines = subprocess.run(
            ["df", "-T", str(directory)], capture_output=True, text=True, check=True, timeout=10
        ).stdout.splitlines()
        device, fs_type, *_, mount = lines[-1].split()
        return f"{fs_type} ({device} on {mount})"
    except (OSError, subprocess.SubprocessError, ValueError):
        stat = os.statvfs(directory)
        free = stat.f_bavail * stat.f_frsize / 2**30
        return f"unknown type (statvfs: block {stat.f_bsize} B, {free:.1f} GiB free)"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_facts(directory: Path) -> list[tuple[str, str]]:
    try:
        import duckdb

        duckdb_version = duckdb.__version__
    except ImportError:
        duckdb_version = "not installed"
    return [
        ("date", datetime.now().astimezone().isoformat(timespec="seconds")),
        ("host", f"{platform.node()} ({platform.platform()})"),
        ("CPUs", f"{os.cpu_count()} x {cpu_model()}"),
        ("Python", sys.version.split()[0]),
        ("SQLite", sqlite3.sqlite_version),
        ("DuckDB", duckdb_version),
        ("directory", str(directory.resolve())),
        ("filesystem", filesystem_of(directory)),
    ]


@dataclass(frozen=True)
class ServerFacts:
    text: str
    caveat: str | None = None
    """Why the server's "durable" writes are not fsynced, if they are not."""


async def redis_facts(url: str) -> ServerFacts:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.from_url(url, decode_responses=True, socket_timeout=5)
    try:
        info = await client.info("server")
        config = await client.config_get("append*")
    finally:
        await client.aclose()
    persistence = f"appendonly={config.get('appendonly')} appendfsync={config.get('appendfsync')}"
    fsynced = config.get("appendonly") == "yes" and config.get("appendfsync") == "always"
    caveat = None if fsynced else f"server does not fsync: {persistence}"
    return ServerFacts(f"{info.get('redis_version')}, {persistence}", caveat)


async def postgres_facts(dsn: str) -> ServerFacts:
    import psycopg

    settings: dict[str, str] = {}
    async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=5) as conn:
        for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method"):
            cursor = await conn.execute(f"SHOW {name}")
            settings[name] = (await cursor.fetchone())[0]
    fsynced = settings["fsync"] == "on" and settings["synchronous_commit"] != "off"
    caveat = None if fsynced else "server does not fsync at commit"
    return ServerFacts(", ".join(f"{k}={v}" for k, v in settings.items()), caveat)


async def server_facts(env: Environment, backends: Sequence[str]) -> dict[str, ServerFacts]:
    sources = {
        "redis": partial(redis_facts, env.redis_url),
        "postgres": partial(postgres_facts, env.postgres_dsn),
    }
    facts = {}
    for backend, source in sources.items():
        if backend in backends:
            try:
                facts[backend] = await source()
            except Exception as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                facts[backend] = ServerFacts(f"unreachable ({type(error).__name__}: {reason})")
    return facts


# -- clean-up ----------------------------------------------------------------------------


async def drop_redis_keys(url: str, prefix: str) -> int:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.from_url(url, socket_timeout=10)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for first in range(0, len(keys), 1000):
            await client.delete(*keys[first : first + 1000])
    finally:
        await client.aclose()
    return len(keys)


def drop_postgres_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


async def clean_up(console: Console, env: Environment, used: Sequence[str]) -> None:
    if "redis" in used:
        try:
            count = await drop_redis_keys(env.redis_url, env.redis_prefix)
            console.print(f"[dim]redis: deleted {count} keys under {env.redis_prefix}:*[/]")
        except Exception as error:
            console.print(f"[red]redis: could not delete {env.redis_prefix}:* ({error})[/]")
    if "postgres" in used:
        try:
            drop_postgres_schema(env.postgres_dsn, env.postgres_schema)
            console.print(f"[dim]postgres: dropped schema {env.postgres_schema}[/]")
        except Exception as error:
            console.print(f"[red]postgres: could not drop {env.postgres_schema} ({error})[/]")


@contextlib.contextmanager
def run_directory(parent: Path) -> Iterator[Path]:
    """A fresh folder inside `parent`, removed (with `parent`, if it was created here
    and is left empty) at the end."""
    created = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="state-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                parent.rmdir()


# -- the report --------------------------------------------------------------------------


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def per_second(rate: float) -> str:
    return f"{rate:,.0f}"


def latency_cells(series: Series) -> list[str]:
    """samples, p50 ms, p99 ms, per second: the columns every latency table starts with."""
    return [str(series.count), ms(series.p50), ms(series.p99), per_second(series.rate)]


def fact_table(title: str, facts: Sequence[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in facts:
        table.add_row(name, value)
    return table


def floor_table(floors: dict[str, Series]) -> Table:
    table = Table(title="1. Disk floor (same directory as the file backends)", title_justify="left")
    for name in ("operation", "samples", "p50 ms", "p99 ms", "ops/s"):
        table.add_column(name, justify="left" if name == "operation" else "right")
    for name, series in floors.items():
        table.add_row(name, *latency_cells(series))
    return table


def single_table(results: Sequence[BackendResult], floor: Series, caveats: dict[str, str]) -> Table:
    table = Table(
        title="2. Durable single change: save_position (new content each time)",
        caption_justify="left",
        title_justify="left",
    )
    columns = ("samples", "p50 ms", "p99 ms", "changes/s", "x floor (1.)", "paired floor/s")
    table.add_column("backend")
    for name in (*columns, "x paired floor"):
        table.add_column(name, justify="right")
    notes = [
        f"x floor (1.): rate / the append + fsync rate of table 1 ({per_second(floor.rate)}/s);"
        " paired: the same floor sampled in the same directory between every"
        f" {PAIR_CHUNK} changes of the backend, so both see the same disk"
    ]
    for result in results:
        series, paired = result.single, result.paired_floor
        if series is None or paired is None:
            continue
        mark = ""
        if result.backend == "memory":
            mark = " (not durable)"
        elif result.backend in caveats:
            mark = " *"
            notes.append(f"* {result.backend}: {caveats[result.backend]}")
        table.add_row(
            result.backend,
            *latency_cells(series),
            f"{series.rate / floor.rate:.2f}",
            per_second(paired.rate),
            f"{series.rate / paired.rate:.2f}{mark}",
        )
    table.caption = "\n".join(notes)
    return table


def composite_table(results: Sequence[BackendResult]) -> Table:
    table = Table(
        title="3. Composite change: record_fill + position + intent, one atomic write",
        title_justify="left",
    )
    for name in ("backend", "samples", "p50 ms", "p99 ms", "changes/s", "p50 / single p50"):
        table.add_column(name, justify="left" if name == "backend" else "right")
    for result in results:
        series, single = result.composite, result.single
        if series is None or single is None:
            continue
        table.add_row(
            result.backend,
            *latency_cells(series),
            f"{series.p50 / single.p50:.2f}",
        )
    return table


def load_table(results: Sequence[BackendResult], plan: Plan) -> Table:
    table = Table(
        title=f"4. Loading {plan.positions:,} positions (median of {plan.load_repeats})",
        title_justify="left",
    )
    columns = ("backend", f"write ({BATCH:,}/tx) s", "open fresh ms", "reload ms", "reload min ms")
    for name in columns:
        table.add_column(name, justify="left" if name == "backend" else "right")
    for result in results:
        load = result.load
        if load is None:
            continue
        table.add_row(
            result.backend,
            f"{load.fill_seconds:.2f}",
            ms(median(load.open_seconds)),
            ms(median(load.reload_seconds)),
            ms(min(load.reload_seconds)),
        )
    return table


def held_table(results: Sequence[BackendResult], plan: Plan) -> Table:
    table = Table(
        title="5. save_position latency (ms) with positions already held", title_justify="left"
    )
    table.add_column("backend")
    for held in plan.held_sizes:
        table.add_column(f"{held:,} held p50", justify="right")
        table.add_column("p99", justify="right")
    table.add_column("samples", justify="right")
    for result in results:
        cells = [result.backend]
        for held in plan.held_sizes:
            series = result.held.get(held)
            cells += [ms(series.p50), ms(series.p99)] if series else ["-", "-"]
        cells.append(
            "/".join(str(result.held[h].count) for h in plan.held_sizes if h in result.held)
        )
        table.add_row(*cells)
    return table


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Target:
    text: str
    measured: str
    verdict: str


def verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]MISS[/]"


def targets(results: dict[str, BackendResult], floor: Series, plan: Plan) -> list[Target]:
    rows: list[Target] = []
    sqlite = results.get("sqlite")
    text = "sqlite durable single change rate >= 0.7 x fsync floor rate"
    if sqlite and sqlite.single and sqlite.paired_floor:
        rate, paired = sqlite.single.rate, sqlite.paired_floor.rate
        measured = (
            f"{rate / paired:.2f} x paired ({per_second(rate)} vs {per_second(paired)}/s);"
            f" {rate / floor.rate:.2f} x table 1"
        )
        rows.append(Target(text, measured, verdict(rate / paired >= 0.7)))
    else:
        rows.append(Target(text, "-", "not measured"))
    full_size = plan.positions == TARGET_POSITIONS
    size_note = "" if full_size else f"n/a ({plan.positions:,} held)"
    for backend, limit_ms in (("sqlite", 1), ("redis", 2), ("postgres", 2), ("duckdb", 3)):
        text = f"{backend} save_position p50 with {TARGET_POSITIONS:,} held < {limit_ms} ms"
        series = results[backend].held.get(plan.positions) if backend in results else None
        if series is None:
            rows.append(Target(text, "-", "not measured"))
            continue
        measured = f"p50 {ms(series.p50)} ms (p99 {ms(series.p99)})"
        rows.append(Target(text, measured, size_note or verdict(series.p50 * 1000 < limit_ms)))
    text = f"sqlite loading {TARGET_POSITIONS:,} positions (reload) < 100 ms"
    load = sqlite.load if sqlite else None
    if load is None:
        rows.append(Target(text, "-", "not measured"))
    else:
        seconds = median(load.reload_seconds)
        measured = f"{ms(seconds)} ms (open + load {ms(median(load.open_seconds))} ms)"
        rows.append(Target(text, measured, size_note or verdict(seconds < 0.1)))
    return rows


def target_table(rows: Sequence[Target]) -> Table:
    table = Table(title="Targets", title_justify="left")
    table.add_column("target", no_wrap=True)
    table.add_column("measured")
    table.add_column("verdict")
    for row in rows:
        table.add_row(row.text, row.measured, row.verdict)
    return table


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help=f"comma list among {','.join(ALL_BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        help="single/composite change samples per backend (default 1000; 200 for duckdb"
        " and jsonfile; 50 with --quick)",
    )
    parser.add_argument(
        "--positions", type=int, help=f"positions to load and hold (default {TARGET_POSITIONS})"
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_TMP_PARENT,
        help="a fresh folder is made (and removed) in here for the files"
        f" (default {DEFAULT_TMP_PARENT})",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--postgres-dsn", default=DEFAULT_POSTGRES_DSN)
    args = parser.parse_args(argv)
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(args.backends) - set(ALL_BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; use {','.join(ALL_BACKENDS)}")
    for name in ("samples", "positions"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def measure_floor(directory: Path, count: int) -> dict[str, Series]:
    return {
        "append 200 B + fsync": disk_floor(directory, count, os.fsync, append=True),
        "append 200 B + fdatasync": disk_floor(directory, count, os.fdatasync, append=True),
        "overwrite 200 B in place + fdatasync (reference)": disk_floor(
            directory, count, os.fdatasync, append=False
        ),
    }


async def run(console: Console, args: argparse.Namespace, run_dir: Path) -> None:
    plan = Plan.from_args(args)
    env = Environment(run_dir, args.redis_url, args.postgres_dsn)
    console.print(fact_table("Machine", machine_facts(run_dir)))
    servers = await server_facts(env, args.backends)
    if servers:
        console.print(fact_table("Servers", [(name, f.text) for name, f in servers.items()]))

    usable: list[str] = []
    results: dict[str, BackendResult] = {}
    try:
        for backend in args.backends:
            reason = await probe(env, backend)
            if reason is None:
                usable.append(backend)
            else:
                console.print(f"[yellow]{backend} skipped: {reason}[/]")
        describe_plan(console, plan, usable)

        floors = measure_floor(run_dir, plan.floor_samples)
        console.print(floor_table(floors))
        for backend in usable:
            results[backend] = await bench_backend(env, plan, backend)
            console.print(f"[dim]{backend}: measured in {results[backend].seconds:.1f} s[/]")
    finally:
        await clean_up(console, env, usable)

    caveats = {name: f.caveat for name, f in servers.items() if f.caveat}
    report(console, plan, list(results.values()), floors["append 200 B + fsync"], caveats)


def describe_plan(console: Console, plan: Plan, backends: Sequence[str]) -> None:
    slow = sorted(SLOW_BACKENDS & set(backends))
    single = f"single and composite changes: {plan.samples} samples per backend"
    if slow and plan.slow_samples != plan.samples:
        single += f" ({plan.slow_samples} for {' and '.join(slow)}, which are slower)"
    held = f"held positions: {', '.join(f'{n:,}' for n in plan.held_sizes)};"
    held += f" {plan.held_samples} updates each"
    if "jsonfile" in backends:
        held += (
            f" ({plan.jsonfile_big_samples} for jsonfile from {JSONFILE_BIG:,} held:"
            " each change rewrites its whole file)"
        )
    lines = [
        f"backends: {', '.join(backends) or 'none'}",
        f"{single}, after {plan.warmup} untimed warm-up changes",
        held,
        f"loading: {plan.positions:,} positions written {BATCH:,} per transaction, then a fresh"
        f" manager opened {plan.load_repeats} times; gc.collect() before each timed reload",
        "latency = one awaited StateManager call; changes/s = 1 / mean latency;"
        " p99 is nearest-rank (the maximum below 100 samples)",
    ]
    for line in lines:
        console.print(f"[dim]{line}[/]")


def report(
    console: Console,
    plan: Plan,
    results: list[BackendResult],
    floor: Series,
    caveats: dict[str, str],
) -> None:
    console.print(single_table(results, floor, caveats))
    console.print(composite_table(results))
    console.print(load_table(results, plan))
    console.print(held_table(results, plan))
    console.print(target_table(targets({r.backend: r for r in results}, floor, plan)))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("botwarden.state.memory", "botwarden.state.redis"):
        logging.getLogger(name).setLevel(logging.ERROR)
    console = Console(width=None if sys.stdout.isatty() else 120)
    with run_directory(args.dir) as run_dir:
        asyncio.run(run(console, args, run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
