"""Venue keys stored through the API: encrypted at rest under a master key from the
environment, never given back (a name and four characters), used by a real bot through
alpaca-py against the Alpaca emulator, and a key that cannot be decrypted puts the bot
in error with that message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from botwarden.errors import ConfigError
from botwarden.keystore import MASTER_ENV, KeyStore, new_master_key
from tests.api.server import Server
from tests.venues.cli_server import served_from_the_cli

KEY, SECRET = "PKEMULATED0123456789", "emulated-secret-0123456789"
BODY = {"name": "alpaca-main", "api_key": KEY, "secret_key": SECRET}


@pytest.fixture(autouse=True)
def no_master_key_around(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_ENV, raising=False)


@pytest.fixture
def master() -> str:
    return new_master_key()


@pytest.fixture
def server(botwarden_home: Path, master: str) -> Iterator[Server]:
    server = Server(botwarden_home, {MASTER_ENV: master})
    yield server
    if server.process.poll() is None:  # not closed by the test itself
        server.client.post("/api/v1/bots/keyed/stop", params={"timeout": 5})
        server.close()


def test_without_a_master_key_the_route_says_how_to_set_one(botwarden_home: Path) -> None:
    server = Server(botwarden_home)
    try:
        answer = server.client.post("/api/v1/keys", json=BODY)
        assert answer.status_code == 503
        assert MASTER_ENV in answer.json()["error"] and "botwarden keys master" in answer.text
        assert not (botwarden_home / "keys").exists()
    finally:
        server.close()


def test_a_key_is_kept_encrypted_and_never_given_back(server: Server, botwarden_home: Path) -> None:
    stored = server.client.post("/api/v1/keys", json=BODY)
    assert stored.status_code == 201, stored.text
    assert stored.json()["name"] == "alpaca-main" and stored.json()["last4"] == "6789"
    listed = server.client.get("/api/v1/keys")
    assert [k["name"] for k in listed.json()] == ["alpaca-main"]
    on_disk = botwarden_home / "keys" / "alpaca-main.json"
    assert on_disk.stat().st_mode & 0o777 == 0o600
    everything = on_disk.read_text() + stored.text + listed.text
    assert KEY not in everything and SECRET not in everything

    again = server.client.post("/api/v1/keys", json=BODY)
    assert again.status_code == 409 and "stored already" in again.json()["error"]
    short = server.client.post("/api/v1/keys", json={**BODY, "name": "x", "api_key": "abc"})
    assert short.status_code == 422 and "abc" not in short.text
    bad_name = server.client.post("/api/v1/keys", json={**BODY, "name": "../etc"})
    assert bad_name.status_code == 422
    assert server.client.delete("/api/v1/keys/alpaca-main").status_code == 204
    assert server.client.delete("/api/v1/keys/alpaca-main").status_code == 404
    assert server.client.get("/api/v1/keys").json() == []


def test_a_bot_trades_with_a_stored_key_and_a_wrong_master_puts_it_in_error(
    server: Server, botwarden_home: Path, tmp_path: Path
) -> None:
    server.client.post("/api/v1/keys", json=BODY)
    with served_from_the_cli("alpaca", tmp_path, KEY, SECRET) as url:
        config = tmp_path / "keyed.yaml"
        config.write_text(
            "bot_id: keyed\nsymbols: [SPY]\n"
            f"venue: {{type: alpaca, stored_key: alpaca-main, base_url: '{url}',"
            f" data_url: '{url}'}}\n"
        )
        server.client.post("/api/v1/bots", json={"config": str(config)})
        started = server.client.post("/api/v1/bots/keyed/start")
        assert started.status_code == 200, started.text
        report = server.client.get("/api/v1/bots/keyed").json()["report"]
        assert report["status"] == "running", report
        assert server.client.post("/api/v1/bots/keyed/stop").status_code == 200
        server.close()

        wrong = Server(botwarden_home, {MASTER_ENV: new_master_key()})
        try:
            failed = wrong.client.post("/api/v1/bots/keyed/start")
            assert failed.status_code == 422
            assert "stored key 'alpaca-main' cannot be decrypted" in failed.json()["error"]
            report = wrong.client.get("/api/v1/bots/keyed").json()["report"]
            assert report["status"] == "error"
            assert "cannot be decrypted" in report["last_error"]
            log = (botwarden_home / "bots" / "keyed" / "bot.log").read_text()
            log += (botwarden_home / "bots" / "keyed" / "console.log").read_text()
            assert KEY not in log and SECRET not in log
        finally:
            wrong.close()


def test_the_master_key_command(botwarden_home: Path) -> None:
    import subprocess
    import sys

    made = subprocess.run(
        [sys.executable, "-m", "botwarden", "keys", "master"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert made.returncode == 0 and len(made.stdout.strip()) == 44


def test_the_store_itself_refuses_a_key_past_its_length(tmp_path: Path, master: str) -> None:
    store = KeyStore(tmp_path, master)
    with pytest.raises(ConfigError, match="8 to 256 characters"):
        store.put("long-key", "K" * 257, "s")
    with pytest.raises(ConfigError, match="4096 at most"):
        store.put("long-secret", "K" * 20, "S" * 4097)
    assert store.list() == []
