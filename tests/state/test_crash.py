"""Crash consistency under kill -9, for each file backend and for Redis with AOF.

A child process (writer.py) applies numbered three-record changes and prints each
number once the store acknowledged it. The parent kills it with SIGKILL at a random
moment, then opens the store and checks:
- every acknowledged change is there (durability),
- every change is whole or absent: records 1..n all present, nothing beyond (atomicity),
- the store opens at all (no corrupt file).
The Redis server itself is also killed with SIGKILL on some trials and restarted from
its append-only file, which is the restart an operator's machine would go through.

Trials per backend: 50 in every run, 500 in the slow campaign (`make test-slow`);
BOTWARDEN_CRASH_TRIALS overrides both.

What this does not prove: SIGKILL (of the writer or of Redis) leaves the kernel's page
cache intact, so a missing fsync would go unnoticed here. That a commit is fsynced is
the backends' configuration (SQLite `synchronous=FULL`, the jsonfile's fsync of the
file and its folder, Redis `appendfsync always`), documented in docs/state.md; failing
and lying disks are the subject of the I/O fault tests.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from botwarden.torture.processes import free_port
from tests.conftest import service_missing
from tests.state.writer import last_number, make_store

WRITER = Path(__file__).with_name("writer.py")
FAST_TRIALS = int(os.environ.get("BOTWARDEN_CRASH_TRIALS", "50"))
SLOW_TRIALS = int(os.environ.get("BOTWARDEN_CRASH_TRIALS", "500"))


@dataclass
class Target:
    backend: str
    location: str
    prefix: str = "bw"
    after_kill: Callable[[int], None] = lambda trial: None


def run_until_killed(target: Target, rng: random.Random) -> int:
    """Start a writer, let it acknowledge a few changes, SIGKILL it mid-flight.
    Returns the highest change number it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(WRITER), target.backend, target.location, "--prefix", target.prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fd = child.stdout.fileno()
    wanted, acked, buffer = rng.randint(1, 25), 0, b""
    seen = 0
    deadline = time.monotonic() + 30
    try:
        while seen < wanted:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                child.kill()
                raise AssertionError(
                    f"writer stopped before the kill: {child.stderr.read().decode()[-2000:]}"
                )
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                acked, seen = int(line), seen + 1
        time.sleep(rng.uniform(0, 0.0015))  # land anywhere inside the next change
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    rest = buffer + child.stdout.read()
    complete = rest.split(b"\n")[:-1]  # a number without its newline was not acknowledged
    child.stdout.close()
    child.stderr.close()
    return max([acked, *(int(line) for line in complete)])


async def check_store(target: Target, acked: int) -> int:
    store = make_store(target.backend, target.location, target.prefix)
    await store.open()
    try:
        snapshot = await store.load("bot")
    finally:
        await store.close()
    last = last_number(snapshot)
    assert last >= acked, f"change {acked} was acknowledged, but the store holds only up to {last}"
    whole = set(range(1, last + 1))
    positions = {int(key[1:]) for key in snapshot["positions"]}
    intents = {int(key[1:]) for key in snapshot["intents"]}
    assert positions == whole, f"position records {sorted(positions ^ whole)[:5]} break atomicity"
    assert intents == whole, f"intent records {sorted(intents ^ whole)[:5]} break atomicity"
    return last


def campaign(target: Target, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    for trial in range(trials):
        acked = run_until_killed(target, rng)
        target.after_kill(trial)
        try:
            asyncio.run(check_store(target, acked))
        except AssertionError as error:
            raise AssertionError(
                f"{target.backend}, trial {trial} (seed {seed}): {error}"
            ) from None


class RedisServer:
    """A private redis-server with every write fsynced to its append-only file."""

    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            service_missing(
                "the redis-server program", "Install it (apt-get install redis-server)."
            )
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    server.kill()


def make_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")

        def restart_server_sometimes(trial: int) -> None:
            if trial % 5 == 4:  # the server dies too: only its AOF carries the state over
                server.kill()
                server.start()

        return Target("redis", server.url, after_kill=restart_server_sometimes)
    suffix = {"sqlite": "db", "duckdb": "duckdb", "jsonfile": "json"}[backend]
    return Target(backend, str(tmp_path / f"state.{suffix}"))


CRASH_BACKENDS = ["sqlite", "duckdb", "jsonfile", "redis"]


@pytest.mark.parametrize("backend", CRASH_BACKENDS)
def test_kill_9_loses_no_acknowledged_change_and_leaves_no_partial_one(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    campaign(
        make_target(backend, tmp_path, request), FAST_TRIALS, seed=zlib.crc32(backend.encode())
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", CRASH_BACKENDS)
def test_kill_9_campaign(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    seed = int(os.environ.get("BOTWARDEN_CRASH_SEED", "20261121"))
    campaign(make_target(backend, tmp_path, request), SLOW_TRIALS, seed=seed)
