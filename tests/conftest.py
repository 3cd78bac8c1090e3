"""Shared fixtures: every backend, against the real thing.

Redis and PostgreSQL tests talk to real servers (127.0.0.1:6379 and :5432 unless
BOTWARDEN_TEST_REDIS_URL / BOTWARDEN_TEST_POSTGRES_DSN say otherwise). Under CI
(`CI=true`) a server that cannot be reached FAILS the test; on a developer's machine
the test is skipped with a message saying how to enable it.
"""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from botwarden.state.base import StateStore
from botwarden.state.factory import open_store
from botwarden.state.history import History, WholeState
from botwarden.state.manager import StateManager
from botwarden.state.records import decode
from botwarden.state.settings import StateSettings

BACKENDS = ("memory", "sqlite", "duckdb", "jsonfile", "redis", "postgres")
FILE_BACKENDS = ("sqlite", "duckdb", "jsonfile")
SERVERS = ("redis", "postgres")

REDIS_URL = os.environ.get("BOTWARDEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get(
    "BOTWARDEN_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def botwarden_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's runtime files (logs, launch records) in a home of its own: never the
    user's ~/.botwarden, never another test's."""
    path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BOTWARDEN_HOME", str(path))
    return path


@pytest.fixture
def forget_imports() -> Iterator[None]:
    """What a test imports from its own folders (a user's strategy files, a package it
    put on sys.path) is forgotten after it."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def service_missing(what: str, how: str) -> None:
    """Fail under CI, skip elsewhere: a missing service never passes silently in CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true and cannot be reached. {how}")
    pytest.skip(f"{what} not reachable; {how}")


SDKS = {"alpaca": "alpaca", "ccxt": "ccxt"}
"""The venue SDKs the tests drive (module -> the botwarden extra that installs it)."""


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI a missing SDK stops the run at once: the tests that need it would skip
    themselves (`pytest.importorskip`), and a skip must never pass for a test in CI."""
    if os.environ.get("CI", "").lower() != "true":
        return
    for module, extra in SDKS.items():
        try:
            importlib.import_module(module)
        except ImportError as error:
            pytest.exit(
                f"{module} is required under CI=true ({error}): pip install 'botwarden[{extra}]'",
                returncode=1,
            )


def _ping_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    client.ping()
    client.close()


def _ping_postgres() -> None:
    import psycopg

    psycopg.connect(POSTGRES_DSN, connect_timeout=2).close()


_unreachable: dict[str, str | None] = {}
"""Service -> why it could not be reached (None: it could), checked once per session."""


def _require(what: str, address: str, ping: Callable[[], None], how: str) -> str:
    if what not in _unreachable:
        try:
            ping()
            _unreachable[what] = None
        except Exception as error:
            _unreachable[what] = str(error)
    if _unreachable[what] is not None:
        service_missing(f"{what} at {address} ({_unreachable[what]})", how)
    return address


def require_redis() -> str:
    return _require(
        "Redis",
        REDIS_URL,
        _ping_redis,
        "Start one (`redis-server --port 6379`) or set BOTWARDEN_TEST_REDIS_URL.",
    )


def require_postgres() -> str:
    return _require(
        "PostgreSQL",
        POSTGRES_DSN,
        _ping_postgres,
        "Start one (trust auth for user postgres) or set BOTWARDEN_TEST_POSTGRES_DSN.",
    )


def drop_redis_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def drop_postgres_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Backend:
    """One backend under test: its `state:` settings and a way to (re)open its store."""

    def __init__(self, name: str, settings: dict[str, Any], base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self.base_dir = base_dir
        self._memory: StateStore | None = None

    @property
    def durable(self) -> bool:
        return self.name != "memory"

    def store(self, flow_id: str = "bot") -> StateStore:
        """A new store object on the same location (for memory: the same object, since
        a new one would be empty by design)."""
        if self.name == "memory":
            if self._memory is None:
                self._memory = open_store(
                    StateSettings.model_validate(self.settings), flow_id, self.base_dir
                )
            return self._memory
        return open_store(StateSettings.model_validate(self.settings), flow_id, self.base_dir)


def make_backend(name: str, tmp_path: Path) -> Iterator[Backend]:
    tag = f"t{uuid.uuid4().hex[:10]}"
    settings: dict[str, Any] = {"backend": name}
    if name in FILE_BACKENDS:
        # No {flow_id}: one file holds every bot, so namespacing is really tested.
        settings[name] = {"path": str(tmp_path / f"state.{name}")}
    elif name == "redis":
        settings["redis"] = {"url": require_redis(), "key_prefix": tag}
    elif name == "postgres":
        settings["postgres"] = {"dsn": require_postgres(), "schema": tag}
    yield Backend(name, settings, tmp_path)
    if name == "redis":
        drop_redis_prefix(REDIS_URL, tag)
    elif name == "postgres":
        drop_postgres_schema(POSTGRES_DSN, tag)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, tmp_path)


@pytest.fixture(params=[b for b in BACKENDS if b != "memory"])
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, tmp_path)


@pytest.fixture(params=SERVERS)
def server_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, tmp_path)


async def whole(state: StateManager) -> WholeState:
    """A bot's live state with its whole history beside it (every intent, terminal ones
    too; every fill and event): what a test looks at after the bot has traded."""
    return await WholeState.read(await state.snapshot(), state.history)


async def whole_of(store: StateStore, bot_id: str) -> WholeState:
    """`whole`, read from an open store."""
    state = decode(await store.load(bot_id), bot_id, store.describe())
    return await WholeState.read(state, History(store, bot_id))
