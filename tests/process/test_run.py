"""`botwarden run` as a real process: one instance per bot, a clean stop on SIGTERM, and
a SIGKILL at each named crash point followed by a restart that keeps every promise."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from botwarden.config import load_config
from botwarden.demo import holding
from botwarden.domain.models import BotStatus
from botwarden.engine.checks import check_promises
from botwarden.engine.crash import POINTS
from botwarden.engine.ids import ClientIds
from botwarden.state.sqlite import SqliteStore
from botwarden.venues.factory import open_paper_venue
from tests.conftest import whole_of
from tests.support.processes import CONFIG, promises_hold, wait_for


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bot.yaml"
    path.write_text(CONFIG)
    return path


def botwarden(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "botwarden", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


async def test_a_second_instance_exits_at_once_naming_the_first(config: Path) -> None:
    first = botwarden("run", str(config))
    lock = config.parent / "state" / "golden_spy.lock"
    wait_for(lambda: lock.exists() and b"pid" in lock.read_bytes())
    second = botwarden("run", str(config))
    _, err = second.communicate(timeout=30)
    assert second.returncode == 1
    assert f"bot golden_spy is already running (pid {first.pid} " in err
    assert "Traceback" not in err
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    state = await promises_hold(config)
    assert state.bot.status is BotStatus.STOPPED


REDUCE_ONLY = CONFIG.replace("venue: {type: paper,", "venue: {type: paper, reduce_only: true,")


def with_take_profit(config: Path, point: str) -> None:
    """A take-profit beside every stop, each an order of its own (reduce-only honoured).
    A new position's two go out together, at the stop's points; a take-profit is placed
    on its own beside a stop already resting: the bot held a position with a stop alone
    when it was killed, and comes back with a take-profit in its config (its stop wide
    enough that the exchange, hours further on at the restart, has not reached it)."""
    if point in ("before_take_profit_stored", "take_profit_stored_not_sent"):
        config.write_text(REDUCE_ONLY + "stop: {distance: 25}\n")
        first = botwarden("run", str(config))
        book = config.parent / "state" / "golden_spy.paper.db"
        wait_for(lambda: holding(book) and _resting_stops(book) == 1, seconds=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        config.write_text(REDUCE_ONLY + "stop: {distance: 25}\ntake_profit: {percent: 3}\n")
        return
    config.write_text(REDUCE_ONLY + "take_profit: {percent: 3}\n")


@pytest.mark.parametrize("point", sorted(POINTS))
async def test_sigkill_at_a_crash_point_then_restart(config: Path, point: str) -> None:
    """Armed by the environment, the process kills itself with SIGKILL when it reaches
    the point; the restart recovers, trades on, and every promise holds."""
    if "take_profit" in point:  # an order of its own where the venue honours reduce-only
        with_take_profit(config, point)
    if point.startswith("recovery_"):  # a start with something to recover first
        first = botwarden("run", str(config), "--ticks", "40")
        assert first.wait(timeout=60) == 0
    armed = botwarden("run", str(config), "--ticks", "400", env={"BOTWARDEN_CRASH_AT": point})
    _, err = armed.communicate(timeout=90)
    assert armed.returncode == -signal.SIGKILL, f"{point} was never reached: {err[-500:]}"
    again = botwarden("run", str(config), "--ticks", "40")
    _, err = again.communicate(timeout=90)
    assert again.returncode == 0, err
    assert "Traceback" not in err
    await promises_hold(config, epoch_at_least=2)


async def test_a_corrupt_state_is_set_aside_and_rebuilt_from_the_venue(tmp_path: Path) -> None:
    """The state file is damaged while the bot holds a position: the next start moves it
    aside, says so loudly, replays the bot's fills from the venue (the position comes
    back with them) and protects it, under an epoch no earlier instance can have used."""
    path = tmp_path / "bot.yaml"
    path.write_text(CONFIG + "state: {backend: jsonfile}\n")
    state_file = tmp_path / "state" / "golden_spy.json"
    book = tmp_path / "state" / "golden_spy.paper.db"
    first = botwarden("run", str(path))
    wait_for(lambda: holding(book) and _resting_stops(book) == 1, seconds=60)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    state_file.write_bytes(state_file.read_bytes()[:-60])  # torn in the middle

    again = botwarden("run", str(path), "--ticks", "3")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "corrupt" in err and "rebuilding the state from the venue" in err
    assert list(state_file.parent.glob("golden_spy.json.corrupt-*")), "kept, set aside"

    from botwarden.state.jsonfile import JsonFileStore

    store = JsonFileStore(state_file)
    await store.open()
    state = await whole_of(store, "golden_spy")
    await store.close()
    # The exchange moved on while the bot was down (its stop may have fired, the
    # strategy may have left): whatever it holds now is the bot's and is protected.
    assert state.fills, "the ledger replayed from the venue"
    assert all(p.stop_client_order_id for p in state.positions.values()), "protected"
    assert _resting_stops(book) == len(state.positions), "one stop each, none stray"
    assert state.bot.instance.epoch > 1_000_000_000, "an epoch made from the time"
    assert any("STATE LOST" in e.message for e in state.events.values())
    config = load_config(path)
    venue = open_paper_venue(config.venue, "golden_spy", config.base_dir)
    violations = check_promises(state, venue.book, ClientIds("golden_spy", 0))
    venue.book.close()
    assert violations == [], "\n".join(map(str, violations))


def _resting_stops(book: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{book}?mode=ro", uri=True, timeout=1) as conn:
        rows = conn.execute("SELECT doc FROM orders WHERE final = 0").fetchall()
    return sum('"type":"stop"' in doc for (doc,) in rows)


@pytest.mark.parametrize("secret_given", ["binance-test-secret", "a-wrong-secret-42"])
def test_keys_never_reach_the_log_the_state_or_the_console(
    tmp_path: Path, botwarden_home: Path, secret_given: str
) -> None:
    """A real bot on ccxt against the Binance emulator: whether the keys work or not,
    neither the key nor the secret appears in the bot's log, its stored last error,
    or what it prints."""
    pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
    from botwarden.venues.emulators.server import serving
    from tests.venues.test_ccxt_adapter import KEY, SECRET, start

    exchange, app = start(tmp_path, "usdm")
    path = tmp_path / "bot.yaml"
    with serving(app) as url:
        path.write_text(
            'bot_id: keyed\nsymbols: ["BTC/USDT:USDT"]\norder: {qty: 0.01}\n'
            f"venue: {{type: ccxt, exchange: binanceusdm, base_url: '{url}'}}\n"
            "engine: {check_interval: 1s}\n"
        )
        run = botwarden(
            "run", str(path), "--ticks", "1",
            env={"BOTWARDEN_CCXT_API_KEY": KEY, "BOTWARDEN_CCXT_SECRET": secret_given},
        )  # fmt: skip
        out, err = run.communicate(timeout=60)
    exchange.book.close()
    works = secret_given == SECRET
    assert run.returncode == (0 if works else 1), err
    if not works:
        assert "Signature for this request is not valid" in err
    seen = out + err + (botwarden_home / "bots" / "keyed" / "bot.log").read_text()
    seen += (tmp_path / "state" / "keyed.db").read_bytes().decode("latin-1")
    for secret in (KEY, secret_given):
        assert secret not in seen


async def test_a_state_file_deleted_while_the_bot_runs_stops_it_and_the_restart_rebuilds(
    tmp_path: Path,
) -> None:
    """The bot used to write on into the unlinked file without a word, and the next
    start was a new bot. Now the store notices, the bot makes sure every position has
    its stop and exits with the reason; the restart finds no state, sees the bot's
    history at the venue, and rebuilds."""
    path = tmp_path / "bot.yaml"
    path.write_text(CONFIG)
    state_file = tmp_path / "state" / "golden_spy.db"
    book = tmp_path / "state" / "golden_spy.paper.db"
    first = botwarden("run", str(path))
    try:
        wait_for(lambda: holding(book) and _resting_stops(book) == 1, seconds=60)
        for name in ("golden_spy.db", "golden_spy.db-wal", "golden_spy.db-shm"):
            (state_file.parent / name).unlink(missing_ok=True)  # an operator's `rm state/*`
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()  # (already gone, unless the test failed)
    assert first.returncode == 1, err
    assert "STATE LOST" in err and "deleted" in err and "Traceback" not in err
    assert not holding(book) or _resting_stops(book) >= 1, "what it holds keeps a stop"
    store = SqliteStore(state_file)  # what `status` reads now: error, and why
    await store.open()
    told = (await whole_of(store, "golden_spy")).bot
    await store.close()
    assert told.status is BotStatus.ERROR
    assert "was deleted while the bot had it open" in (told.last_error or "")

    again = botwarden("run", str(path), "--ticks", "3")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    store = SqliteStore(state_file)
    await store.open()
    state = await whole_of(store, "golden_spy")
    await store.close()
    assert any("STATE LOST" in e.message for e in state.events.values())
    assert state.bot.instance.epoch > 1, "never the lost life's epoch again"
    config = load_config(path)
    venue = open_paper_venue(config.venue, "golden_spy", config.base_dir)
    violations = check_promises(state, venue.book, ClientIds("golden_spy", 0))
    venue.book.close()
    assert violations == [], "\n".join(map(str, violations))


def test_a_lock_file_deleted_while_the_bot_runs_still_refuses_a_second_start(
    config: Path,
) -> None:
    first = botwarden("run", str(config))
    try:
        lock = config.parent / "state" / "golden_spy.lock"
        wait_for(lambda: lock.exists() and b"pid" in lock.read_bytes())
        lock.unlink()
        wait_for(lambda: lock.exists() and str(first.pid).encode() in lock.read_bytes())
        second = botwarden("run", str(config))
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert f"bot golden_spy is already running (pid {first.pid} " in err
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert "lock file" in err and "locked again" in err


def test_a_bot_whose_folder_cannot_be_written_says_so_in_one_line(tmp_path: Path) -> None:
    """It used to end in a 40-line PermissionError from the lock's folder."""
    from tests.disks import tmpfs

    with tmpfs(tmp_path / "readonly", readonly=True) as folder:
        config = tmp_path / "bot.yaml"  # readable; its state's folder is not writable
        config.write_text(CONFIG + f"state: {{sqlite: {{path: '{folder}/golden_spy.db'}}}}\n")
        run = botwarden("run", str(config), "--ticks", "1")
        _, err = run.communicate(timeout=60)
    assert run.returncode != 0
    said = [line for line in err.splitlines() if not line.startswith("bot golden_spy: log in")]
    assert len(said) == 1 and "Traceback" not in err, err
    assert said[0].startswith("botwarden: error: ")
    assert "cannot make the bot's lock file (Read-only file system)" in said[0]


def test_a_bot_whose_state_folder_became_read_only_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    """The bot ran before (its lock file and the paper exchange's book are there), then
    its folder was made read-only: the book could not open, a 67-line traceback. Run
    as root without the right to override file permissions, as a user would be."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop the override of permissions")
    config = tmp_path / "bot.yaml"
    config.write_text(CONFIG)
    assert botwarden("run", str(config), "--ticks", "1").wait(timeout=60) == 0
    (tmp_path / "state").chmod(0o555)
    drop = "-dac_override,-dac_read_search"
    run = subprocess.run(
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}",
         sys.executable, "-m", "botwarden", "run", str(config), "--ticks", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    (tmp_path / "state").chmod(0o755)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    assert "cannot open it" in run.stderr and "must be able to write in" in run.stderr


async def test_a_ccxt_bot_finds_fills_in_its_symbols_without_venue_symbols(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Binance lists fills one market at a time. A config naming its markets only in
    the top-level `symbols` (not `venue.symbols`) found none: a stop that filled while
    the bot was down was taken for a phantom, its loss never booked."""
    from botwarden.process.run import open_bot_venue
    from botwarden.venues.emulators.server import serving
    from tests.venues.test_ccxt_adapter import KEY, SECRET, btc, start

    exchange, app = start(tmp_path, "spot")
    filled = await exchange.submit(btc("someones-1"))  # a fill, made while no bot looked
    monkeypatch.setenv("BOTWARDEN_CCXT_API_KEY", KEY)
    monkeypatch.setenv("BOTWARDEN_CCXT_SECRET", SECRET)
    with serving(app) as url:
        path = tmp_path / "bot.yaml"
        path.write_text(
            "bot_id: spot\nsymbols: [BTC/USDT]\n"
            f"venue: {{type: ccxt, exchange: binance, base_url: '{url}', throttle: false}}\n"
        )
        venue = open_bot_venue(load_config(path))
        await venue.connect()
        try:
            page = await venue.fills(since=filled.created_at - timedelta(hours=1))
        finally:
            await venue.close()
    exchange.book.close()
    assert [f.client_order_id for f in page.fills] == ["someones-1"]
