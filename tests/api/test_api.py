"""The control API over a real `botwarden serve` process and real bot processes: the
token guards every route but health; start and stop really start and stop a bot; bad
ids and bodies get 4xx JSON; the event stream tells of a bot started; no key is ever
shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botwarden.api.app import create_app
from botwarden.process.lock import holder
from botwarden.process.supervisor import Supervisor
from tests.api.server import Server, bot_config
from tests.process.test_supervisor import bot_processes

BOT = "golden_spy"


@pytest.fixture
def server(botwarden_home: Path) -> Iterator[Server]:
    server = Server(botwarden_home)
    yield server
    server.client.post(f"/api/v1/bots/{BOT}/stop", params={"timeout": 5})
    server.close()


def routes() -> list[tuple[str, str]]:
    """Every (method, path) the app describes, and its description, but health."""
    app = create_app(Supervisor(Path("/nonexistent")), "x" * 32)
    found = [("GET", "/openapi.json")]
    for path, operations in app.openapi()["paths"].items():
        if path != "/healthz":
            found += [(method.upper(), path.replace("{bot_id}", BOT)) for method in operations]
    return found


def test_every_route_but_health_needs_the_token(server: Server) -> None:
    guarded = routes()
    assert len(guarded) >= 14, guarded  # the app's list, not a copy of it
    for method, path in guarded:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": server.token}):
            answer = httpx.request(method, server.url + path, headers=headers, timeout=30)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert "token" in answer.json()["error"]
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}


def test_the_token_is_made_once_private_and_shown_once(botwarden_home: Path) -> None:
    first = Server(botwarden_home)
    said = first.close()
    token_file = botwarden_home / "api-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert first.token in said
    second = Server(botwarden_home)
    assert second.token == first.token
    assert first.token not in second.close(), "shown at its making only"
    token_file.chmod(0o644)
    run = subprocess.run(
        [sys.executable, "-m", "botwarden", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "BOTWARDEN_HOME": str(botwarden_home)},
        timeout=60,
    )
    assert run.returncode == 2 and "can be read by other users" in run.stderr
    assert first.token not in run.stderr + run.stdout


def test_start_and_stop_really_start_and_stop_the_bot(server: Server, tmp_path: Path) -> None:
    config = bot_config(tmp_path)
    added = server.client.post("/api/v1/bots", json={"config": str(config)})
    assert added.status_code == 201 and added.json()["status"] == "stopped", added.text
    started = server.client.post(f"/api/v1/bots/{BOT}/start")
    assert started.status_code == 200, started.text
    [pid] = bot_processes(config)
    assert started.json()["pid"] == pid == holder(tmp_path / "state" / f"{BOT}.lock")
    again = server.client.post(f"/api/v1/bots/{BOT}/start")
    assert again.status_code == 409 and f"already running (pid {pid})" in again.json()["error"]

    _wait(lambda: server.client.get(f"/api/v1/bots/{BOT}/positions").json())
    [position] = server.client.get(f"/api/v1/bots/{BOT}/positions").json()
    assert position["symbol"] == "SPY" and position["stop_live"] is True
    assert server.client.get(f"/api/v1/bots/{BOT}/fills").json()
    assert server.client.get(f"/api/v1/bots/{BOT}/orders", params={"limit": 2}).json()
    events = server.client.get(f"/api/v1/bots/{BOT}/events").json()
    assert any(e["kind"] == "stop_placed" for e in events)
    [listed] = server.client.get("/api/v1/bots").json()
    assert listed["status"] == "running" and listed["pid"] == pid
    metrics = server.client.get("/metrics").text
    assert f'botwarden_bot_up{{bot="{BOT}"}} 1' in metrics
    assert f'botwarden_unprotected_positions{{bot="{BOT}"}} 0' in metrics

    stopped = server.client.post(f"/api/v1/bots/{BOT}/stop")
    assert stopped.status_code == 200 and stopped.json()["pid"] == pid, stopped.text
    assert bot_processes(config) == [] and holder(tmp_path / "state" / f"{BOT}.lock") is None
    assert server.client.get(f"/api/v1/bots/{BOT}").json()["report"]["status"] == "stopped"
    openapi = server.client.get("/openapi.json").json()
    assert "/api/v1/bots/{bot_id}/start" in openapi["paths"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/bots/ghost", None, 404),
        ("POST", "/api/v1/bots/ghost/start", None, 404),
        ("GET", "/api/v1/bots/-bad-id", None, 422),
        ("GET", "/api/v1/bots/" + "x" * 65, None, 422),
        ("GET", f"/api/v1/bots/{BOT}/events?after=nope", None, 422),
        ("GET", f"/api/v1/bots/{BOT}/fills?limit=0", None, 422),
        ("POST", f"/api/v1/bots/{BOT}/stop?timeout=-1", None, 422),
        ("POST", "/api/v1/bots", {}, 422),
        ("POST", "/api/v1/bots", {"config": 7}, 422),
        ("POST", "/api/v1/bots", {"config": "/no/such/bot.yaml"}, 422),
        ("POST", "/api/v1/bots", "not json", 422),
        ("POST", f"/api/v1/bots/{BOT}/resolve", None, 409),
        ("GET", "/api/v1/nothing-here", None, 404),
        ("DELETE", "/api/v1/bots", None, 405),
    ],
)
def test_bad_requests_get_a_json_4xx(
    server: Server, tmp_path: Path, method: str, path: str, body: object, status: int
) -> None:
    server.client.post("/api/v1/bots", json={"config": str(bot_config(tmp_path))})
    content = body if isinstance(body, str) else None
    payload = None if isinstance(body, str) or body is None else body
    answer = server.client.request(method, path, json=payload, content=content)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] and "Traceback" not in answer.text


def test_the_event_stream_tells_of_a_bot_started(server: Server, tmp_path: Path) -> None:
    server.client.post("/api/v1/bots", json={"config": str(bot_config(tmp_path))})
    seen: list[tuple[str, dict]] = []
    connected = threading.Event()

    def listen() -> None:
        with server.client.stream("GET", "/api/v1/events/stream") as stream:
            kind = None
            for line in stream.iter_lines():
                connected.set()
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    seen.append((kind, json.loads(line.removeprefix("data: "))))
                    if {"stop_placed", "market"} <= {k for k, _ in seen}:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(30)
    time.sleep(1.5)  # the watcher's first look: the baseline
    server.client.post(f"/api/v1/bots/{BOT}/start")
    listener.join(timeout=60)
    kinds = [kind for kind, _ in seen]
    statuses = [data["status"] for kind, data in seen if kind == "bot_status"]
    assert "running" in statuses and "stop_placed" in kinds, seen
    assert "market" in kinds, "a pass saw the market again: the charts and prices redraw"
    assert all(data["bot_id"] == BOT for _, data in seen)


def test_no_key_is_ever_shown(server: Server, tmp_path: Path) -> None:
    key, secret = "PKTESTKEY0123456789", "the-secret-value-42"
    config = tmp_path / "keyed.yaml"
    config.write_text(
        "bot_id: keyed\nsymbols: [SPY]\n"
        f"venue: {{type: alpaca, api_key: {key}, secret_key: {secret},"
        " base_url: 'http://127.0.0.1:1'}\n"
        "state: {backend: redis, redis: {url: 'redis://user:hunter2@127.0.0.1:1/0'}}\n"
    )
    config.chmod(0o600)
    server.client.post("/api/v1/bots", json={"config": str(config)})
    shown = server.client.get("/api/v1/bots/keyed").text + server.client.get("/api/v1/bots").text
    failed = server.client.post("/api/v1/bots/keyed/start")
    shown += failed.text + server.client.get("/metrics").text
    assert failed.status_code == 422
    for secret_value in (key, secret, "hunter2"):
        assert secret_value not in shown
    assert '"api_key":"**********"' in shown.replace(" ", "")


def _wait(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_trades_and_pnl_come_from_the_history_of_a_stopped_bot(
    server: Server, tmp_path: Path
) -> None:
    """Every closed trade is kept, however many: the API reads them by time range and
    the PnL per day from the history, all time from the bot's book."""
    import asyncio
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from botwarden.config import load_config
    from botwarden.domain.models import Side
    from botwarden.domain.positions import Trade
    from botwarden.state.manager import StateManager

    config = bot_config(tmp_path)
    loaded = load_config(config)
    start = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    made = [
        Trade(
            position_id=f"pos-{n}", symbol="SPY", side=Side.LONG, qty=Decimal(1),
            entry_price=Decimal(100), exit_price=Decimal(100 + n - 3), pnl=Decimal(n - 3),
            fees=Decimal("0.1"), entry_time=start + timedelta(hours=n),
            exit_time=start + timedelta(hours=n, minutes=30), closed_by=f"c{n}",
            exit_fill=f"T{n}",
        )
        for n in range(50)  # two trading days and more
    ]  # fmt: skip

    async def write() -> None:
        async with StateManager.from_config(loaded.bot_id, loaded) as state:
            async with state.transaction() as tx:
                for n in range(12):
                    tx.add_event(start, "note", f"event {n}")
            for trade in made:
                day = loaded.risk.trading_day(trade.exit_time)
                before = await state.day_pnl(day)
                async with state.transaction() as tx:
                    tx.record_trade(trade, day, before)

    assert server.client.post("/api/v1/bots", json={"config": str(config)}).status_code == 201
    # Known, never run: no state yet, so no trades and nothing earned.
    assert server.client.get(f"/api/v1/bots/{BOT}/trades").json() == []
    empty = server.client.get(f"/api/v1/bots/{BOT}/pnl").json()
    assert empty["days"] == [] and empty["periods"]["all"]["trades"] == 0
    asyncio.run(write())

    newest = server.client.get(f"/api/v1/bots/{BOT}/trades", params={"limit": 5}).json()
    assert [t["exit_fill"] for t in newest] == [f"T{n}" for n in range(45, 50)]
    since = (start + timedelta(hours=40)).isoformat()
    later = server.client.get(f"/api/v1/bots/{BOT}/trades", params={"since": since}).json()
    assert [t["exit_fill"] for t in later] == [f"T{n}" for n in range(40, 50)]
    pnl = server.client.get(f"/api/v1/bots/{BOT}/pnl").json()
    total = sum(n - 3 for n in range(50))
    assert pnl["periods"]["all"] == {"trades": 50, "wins": 46, "pnl": str(total), "fees": "5.0"}
    assert sum(d["trades"] for d in pnl["days"]) == 50 and len(pnl["days"]) >= 2
    assert sum(Decimal(d["pnl"]) for d in pnl["days"]) == total
    recent = server.client.get(f"/api/v1/bots/{BOT}/trades", params={"since": "100000d"})
    assert len(recent.json()) == 50, "a length of time ago, as the CLI takes it"
    wrong = server.client.get(f"/api/v1/bots/{BOT}/trades", params={"since": "soon"})
    assert wrong.status_code == 422 and "since 'soon'" in wrong.json()["error"]
    events = f"/api/v1/bots/{BOT}/events"
    page = server.client.get(events, params={"after": 3, "limit": 4}).json()
    assert [e["seq"] for e in page] == [4, 5, 6, 7], "paging forward from seq 3"
    newest = server.client.get(events, params={"limit": 3}).json()
    assert [e["message"] for e in newest] == ["event 9", "event 10", "event 11"]
    [report] = [r for r in server.client.get("/api/v1/bots").json() if r["bot_id"] == BOT]
    assert (report["pnl_total"], report["trades_total"]) == (f"{total:.2f}", 50)
