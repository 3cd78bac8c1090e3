"""Two hosts, one bot, one shared store: the lease decides which one trades.

Each "host" is a folder of its own (its config, its lock file, its $BOTWARDEN_HOME)
running `botwarden run` as a real process; both share the store (Redis or PostgreSQL,
real servers) and one paper exchange, whose own book is what the promises are checked
against."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from botwarden.config import load_config
from botwarden.demo import holding
from botwarden.engine.checks import check_promises
from botwarden.engine.ids import ClientIds
from botwarden.process.run import write_unfenced
from botwarden.state.factory import open_leases, open_store
from botwarden.state.lease import LeaseHeld
from botwarden.state.manager import Transaction
from botwarden.venues.factory import open_paper_venue
from tests.conftest import Backend, make_backend, whole_of
from tests.support.processes import CONFIG, wait_for


@pytest.fixture(params=["redis", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, tmp_path)


def host(tmp_path: Path, name: str, backend: Backend) -> Path:
    """A host's folder and config: the shared store, the shared exchange."""
    folder = tmp_path / name
    folder.mkdir()
    state = {**backend.settings, "lease": {"ttl": "2s"}}
    exchange = tmp_path / "exchange" / "golden_spy.paper.db"
    config = CONFIG.replace("venue: {type: paper,", f"venue: {{type: paper, path: '{exchange}',")
    path = folder / "bot.yaml"
    path.write_text(config + f"state: {json.dumps(state)}\n")
    return path


def run(config: Path, *options: str) -> subprocess.Popen:
    home = config.parent / "home"
    return subprocess.Popen(
        [sys.executable, "-m", "botwarden", "run", str(config), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "BOTWARDEN_HOME": str(home)},
    )


async def lease_epoch(config: Path) -> int:
    settings = load_config(config).state
    store = open_store(settings, "golden_spy", config.parent, readonly=True)
    leases = open_leases(settings, store, readonly=True)
    await leases.open()
    try:
        record = await leases.read("golden_spy")
    finally:
        await leases.close()
    return 0 if record is None or not record.live else record.epoch


async def test_a_second_host_is_refused_and_a_takeover_fences_the_first(
    shared: Backend, tmp_path: Path
) -> None:
    a_config, b_config = host(tmp_path, "host-a", shared), host(tmp_path, "host-b", shared)
    exchange = tmp_path / "exchange" / "golden_spy.paper.db"
    a = run(a_config)
    try:
        wait_for(lambda: holding(exchange), seconds=60)

        refused = run(b_config)
        _, err = refused.communicate(timeout=60)
        assert refused.returncode == 1, err
        expected = f"bot golden_spy is already running on {socket.gethostname()} (pid {a.pid})"
        assert expected in err and "--takeover" in err, err
        assert "Traceback" not in err
        assert a.poll() is None, "a refused start leaves the healthy instance trading"

        a_epoch = await lease_epoch(a_config)
        b = run(b_config, "--takeover")
        try:
            _, a_err = a.communicate(timeout=60)
            assert a.returncode == 1, a_err
            assert "lease of epoch" in a_err or "write refused" in a_err, a_err
            b_epoch = await lease_epoch(b_config)
            assert b_epoch > a_epoch
        finally:
            b.send_signal(signal.SIGTERM)
            _, b_err = b.communicate(timeout=60)
        assert b.returncode == 0, b_err
        assert "waiting" in b_err and "for its lease to run out" in b_err, b_err
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()

    # From the exchange's side: the promises hold under the new epoch, and nothing of
    # the old instance's epoch was placed after the new one started.
    config = load_config(b_config)
    store = open_store(config.state, "golden_spy", config.base_dir)
    await store.open()
    state = await whole_of(store, "golden_spy")
    await store.close()
    assert state.bot.instance is not None and state.bot.instance.epoch >= b_epoch
    venue = open_paper_venue(config.venue, "golden_spy", config.base_dir)
    try:
        ids = ClientIds("golden_spy", state.bot.instance.epoch)
        assert check_promises(state, venue.book, ids) == []
        took_over = min(
            e.time for e in state.events.values() if e.data.get("instance", 0) > a_epoch
        )
        late = [
            o.client_order_id
            for o in venue.book.all_orders()
            if ClientIds.epoch_of(o.client_order_id) <= a_epoch and o.created_at > took_over
        ]
        assert late == [], "the fenced-out instance placed orders after the takeover"
    finally:
        venue.book.close()


async def test_an_operators_word_waits_for_a_live_instance_but_not_for_a_killed_one(
    shared: Backend, tmp_path: Path
) -> None:
    """What `stop` (after a SIGKILL) and `resolve` write goes under a lease of its own:
    refused while an instance holds the bot, written at once over a killed instance of
    this host whose lease has not run out yet."""
    a_config, b_config = host(tmp_path, "host-a", shared), host(tmp_path, "host-b", shared)
    a = run(a_config)
    try:
        wait_for(lambda: holding(tmp_path / "exchange" / "golden_spy.paper.db"), seconds=60)

        def note(tx: Transaction, now: datetime) -> None:
            tx.add_event(now, "status", "an operator's word")

        with pytest.raises(LeaseHeld, match=f"pid {a.pid}"):
            await write_unfenced(load_config(b_config), note)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        assert await lease_epoch(a_config) > 0, "(its lease is live still)"
        await write_unfenced(load_config(b_config), note)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    config = load_config(b_config)
    store = open_store(config.state, "golden_spy", config.base_dir, readonly=True)
    await store.open()
    state = await whole_of(store, "golden_spy")
    await store.close()
    assert [e.message for e in state.events.values()][-1] == "an operator's word"


def status_of(config: Path) -> dict:
    shown = subprocess.run(
        [sys.executable, "-m", "botwarden", "status", "golden_spy", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BOTWARDEN_HOME": str(config.parent / "home")},
    )
    assert shown.returncode == 0, shown.stderr
    (report,) = json.loads(shown.stdout)
    return report


async def test_a_standby_takes_over_a_killed_instance_with_every_position_protected(
    shared: Backend, tmp_path: Path
) -> None:
    a_config, b_config = host(tmp_path, "host-a", shared), host(tmp_path, "host-b", shared)
    exchange = tmp_path / "exchange" / "golden_spy.paper.db"
    a = run(a_config)
    wait_for(lambda: holding(exchange), seconds=60)
    b = run(b_config, "--standby")
    try:
        wait_for(
            lambda: (b_config.parent / "home" / "bots" / "golden_spy" / "standby.json").exists()
        )
        shown = status_of(b_config)
        assert shown["status"] == "standby", shown
        assert f"the bot runs on {socket.gethostname()} (pid {a.pid})" in shown["problem"]
        assert status_of(a_config)["status"] == "running"
        a_epoch = await lease_epoch(a_config)

        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        killed = time.monotonic()
        wait_for(lambda: status_of(b_config)["status"] == "running", seconds=30)
        took = time.monotonic() - killed
        assert await lease_epoch(b_config) > a_epoch
        # Within the lease's ttl (2 s) and a quarter (the standby's next look), and a
        # recovery: the bound docs/operating.md states, with room for a slow machine.
        assert took < 2 * 1.25 + 10, took
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        _, b_err = b.communicate(timeout=60)
        a.communicate(timeout=60)
    assert "standing by: the bot runs on" in b_err, b_err
    assert b.returncode == 0, b_err

    config = load_config(b_config)
    store = open_store(config.state, "golden_spy", config.base_dir, readonly=True)
    await store.open()
    state = await whole_of(store, "golden_spy")
    await store.close()
    venue = open_paper_venue(config.venue, "golden_spy", config.base_dir)
    try:
        assert state.bot.instance is not None and state.bot.instance.epoch > a_epoch
        assert (
            check_promises(state, venue.book, ClientIds("golden_spy", state.bot.instance.epoch))
            == []
        )
    finally:
        venue.book.close()
