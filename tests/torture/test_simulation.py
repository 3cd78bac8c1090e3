"""The torture simulator: seeds keep every promise, the checker catches a broken engine,
the same seed gives the same history, and a failing seed says how to replay it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console

from botwarden.domain.risk import RiskLimits
from botwarden.engine.runner import Runner
from botwarden.torture.campaign import print_summary, run_campaign, run_seed
from botwarden.torture.simulation import (
    FAULTS,
    Options,
    parse_options,
    simulate,
    simulated_markets,
)
from tests.conftest import require_postgres, require_redis

BROKEN = Options(sabotage=frozenset({"write_ahead"}))


def test_seeds_keep_every_promise_under_every_fault(tmp_path: Path) -> None:
    summary = run_campaign(range(100), Options(), jobs=1, history_dir=tmp_path)
    assert [(r.seed, r.findings, r.error) for r in summary.failures] == []
    assert summary.seeds == 100
    assert summary.crashes >= 100, "crashes at crash points and between calls"
    assert summary.recoveries > summary.seeds + summary.crashes / 2
    assert summary.orders > 1000 and summary.fills > 500
    never = [kind for kind in FAULTS if summary.faults[kind] == 0]
    assert never == [], "every kind of fault was injected"


def test_the_checker_catches_an_engine_that_sends_before_it_writes(tmp_path: Path) -> None:
    """A checker that cannot fail proves nothing: with write-ahead switched off, an
    order sent just before a crash is unknown to the restarted bot, and I1 says so."""
    i1 = []
    for seed in range(10):
        outcome = run_seed(seed, BROKEN, tmp_path)
        i1 += [f.violation for f in outcome.findings if f.violation.promise == "I1"]
        if i1:
            break
    assert i1, "ten seeds of a broken engine and no I1 violation"
    assert any("venue order torture-" in line for line in i1[0].evidence), "names the order"


def test_a_failing_seed_is_reported_with_its_history_and_replay_command(tmp_path: Path) -> None:
    # (the first seed the broken engine fails that still runs to its end: another may
    # end early, its own error reported instead of the final check)
    report = next(
        r
        for seed in range(20)
        if (r := run_seed(seed, BROKEN, tmp_path)).failed and r.error is None
    )
    assert report.history_file is not None and report.history_file.exists()
    history = report.history_file.read_text()
    assert " invoke submit " in history and " ok submit " in history
    assert " note check at the end: " in history
    summary = run_campaign(
        range(report.seed, report.seed + 1), BROKEN, jobs=1, history_dir=tmp_path
    )
    console = Console(record=True, width=200)
    print_summary(console, summary, Options(days=2), None)
    text = console.export_text()
    assert f"seed {report.seed} FAILED" in text
    assert f"replay: botwarden torture --seeds 1 --seed-base {report.seed} --days 2" in text
    assert "violations: I1 no duplicate exposure" in text


def _history(seed: int, folder: Path) -> str:
    outcome = asyncio.run(simulate(seed, Options(), folder))
    return outcome.history.text()


def test_the_same_seed_gives_the_same_history_byte_for_byte(tmp_path: Path) -> None:
    first = _history(11, tmp_path / "a")
    assert first == _history(11, tmp_path / "b")
    assert first != _history(12, tmp_path / "c")
    # ...in another process too, whatever its string hashing.
    script = (
        "import asyncio, sys; from pathlib import Path;"
        "from botwarden.torture.simulation import Options, simulate;"
        "o = asyncio.run(simulate(11, Options(), Path(sys.argv[1])));"
        "sys.stdout.write(o.history.text())"
    )
    for hash_seed in ("1", "2"):
        other = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"p{hash_seed}")],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert other.stdout == first


def test_the_command_runs_a_campaign_and_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "botwarden", "torture", "--seeds", "6", "--jobs", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seeds per second" in done.stdout
    assert "violations: I2 always protected" in done.stdout


def test_the_users_own_bot_can_be_simulated(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "golden_cross.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "botwarden", "torture", "--seeds", "2", "--jobs", "1",
         "--config", str(example), "--days", "3", "--store", "jsonfile"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_simulating_a_users_bot_leaves_its_folder_as_it_was(tmp_path: Path) -> None:
    """The docs' promise: a simulation never touches the bot's real files. Asking its
    paper venue what it refuses once opened the bot's own book, whose clock then
    started from that moment: the bot's first run began days ahead."""
    config = tmp_path / "bot.yaml"
    config.write_text(
        "bot_id: mine\nsymbols: [SPY]\norder: {qty: 1}\n"
        "strategy: {name: coin_flip, params: {seed: 1}, timeframe: 1h}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "botwarden", "torture", "--seeds", "2", "--jobs", "1",
         "--config", str(config)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["bot.yaml"]


def test_a_bot_on_markets_the_simulator_does_not_list_is_simulated_on_their_kin(
    tmp_path: Path,
) -> None:
    """A futures bot (`BTC/USDT:USDT`) or one on any stock was refused: the simulator
    listed five markets. Each now trades like its nearest kin, or like a stock at 100."""
    config = tmp_path / "bot.yaml"
    config.write_text(
        "bot_id: perp\nsymbols: ['BTC/USDT:USDT', TSLA]\norder: {notional: 500}\n"
        "strategy: {name: coin_flip, params: {seed: 1, enter: 0.5, exit: 0.3}}\n"
    )
    markets = simulated_markets(["BTC/USDT:USDT", "TSLA", "SPY"])
    assert markets["BTC/USDT:USDT"] == markets["BTC/USDT"]
    assert markets["TSLA"].price == 100 and markets["SPY"].price == 450
    options = parse_options(days=3, faults="all", config=config, store="sqlite")
    summary = run_campaign(range(3), options, jobs=1, history_dir=tmp_path)
    assert [(r.seed, r.findings, r.error) for r in summary.failures] == []
    assert summary.fills > 0, "and it traded there"


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--faults", "timeout_after,meteor"], "--faults: unknown fault 'meteor'"),
        (["--store", "floppy"], "--store: 'floppy' is not one of sqlite, duckdb, jsonfile"),
        (
            ["--store", "postgres", "--store-url", "postgresql://me:hunter2@127.0.0.1:1/x"],
            "--store postgres: postgres postgresql://me:***@127.0.0.1:1/x",
        ),
    ],
)
def test_bad_options_get_one_clear_line(tmp_path: Path, option: list[str], said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "botwarden", "torture", "--seeds", "1", *option],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr


def test_a_bot_that_waits_for_an_operator_is_refused_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text("bot_id: b\nsymbols: [SPY]\nstate: {recovery: {mode: manual}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "botwarden", "torture", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "state.recovery.mode: manual waits for an operator" in done.stderr


@pytest.mark.parametrize("store", ["redis", "postgres"])
def test_server_stores_are_tortured_too_and_left_as_found(store: str, tmp_path: Path) -> None:
    url = require_redis() if store == "redis" else require_postgres()
    options = Options(store=store, store_url=url)
    summary = run_campaign(range(8), options, jobs=1, history_dir=tmp_path)
    assert [(r.seed, r.findings, r.error) for r in summary.failures] == []
    assert summary.crashes > 0 and summary.faults["store_io"] > 0
    # The same seed does the same things, whichever store keeps the bot's state (but
    # for a lost state file, which only a file store has).
    kept = frozenset(FAULTS) - {"state_loss"}
    same = Options(store=store, store_url=url, faults=kept)
    on_server = asyncio.run(simulate(3, same, tmp_path / "server")).history.text()
    on_file = asyncio.run(simulate(3, Options(faults=kept), tmp_path / "sqlite"))
    assert on_server == on_file.history.text()
    assert _namespaces_left(store, url) == [], "every seed's namespace dropped"


def _namespaces_left(store: str, url: str) -> list[str]:
    if store == "redis":
        import redis

        client = redis.Redis.from_url(url)
        try:
            return [k.decode() for k in client.scan_iter(match="bwtorture_*")]
        finally:
            client.close()
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE schema_name LIKE 'bwtorture%'"
        ).fetchall()
    return [row[0] for row in rows]


def test_the_checker_catches_a_position_left_bare_while_the_store_fails(tmp_path: Path) -> None:
    """With the outage guard switched off, an entry that fills as the store starts
    failing stays without a stop until the store writes again: the campaign's check
    from the venue's book, while the store is down, says so."""
    broken = Options(sabotage=frozenset({"outage_guard"}))
    summary = run_campaign(range(300), broken, jobs=2, history_dir=tmp_path)
    bare = [
        f
        for r in summary.failures
        for f in r.findings
        if f.violation.promise == "I2" and f.when.startswith("while the store failed")
    ]
    assert bare, "a bare position during a store outage is found"


def test_the_checker_catches_a_lost_state_taken_for_a_new_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the look at the venue's history patched out, a state emptied or deleted
    while the bot was down is taken for a new bot: its own position's stop is
    canceled as a stray, or its ids collide with the lost life's, and the checker
    says so."""

    async def never_looks(self: Runner) -> None:
        return None

    monkeypatch.setattr(Runner, "_epoch_above_the_venue", never_looks)
    only_losses = Options(faults=frozenset({"crash", "state_loss"}))
    summary = run_campaign(range(120), only_losses, jobs=2, history_dir=tmp_path)
    assert summary.faults["state_loss"] >= 10
    assert summary.failures, "a lost state taken for a new bot breaks a promise"


def test_the_checker_catches_a_trading_day_that_goes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the trading day read naively from the local time (as it was), the second
    pass through a fall-back hour is the day before: the simulator's day check says so."""

    def naive_day(self: RiskLimits, now: datetime) -> date:
        local = now.astimezone(ZoneInfo(self.timezone))
        day = local.date()
        return day - timedelta(days=1) if local.time() < self.day_starts_at else day

    monkeypatch.setattr(RiskLimits, "trading_day", naive_day)
    summary = run_campaign(range(300), Options(faults=frozenset()), jobs=2, history_dir=tmp_path)
    errors = [r.error for r in summary.failures if r.error]
    assert any("went back" in e for e in errors)
