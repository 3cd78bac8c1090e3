"""`botwarden start | stop | restart | status | logs` with real processes: one process per
bot however often it is started, a stop that gets through a bot that does not obey
SIGTERM, a status that tells the truth after a SIGKILL, and a PID that now belongs to
another process never taken for the bot."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.demo import holding
from botwarden.domain.models import BotStatus, RiskState
from botwarden.domain.orders import IntentStatus, Purpose
from botwarden.domain.positions import Trade
from botwarden.process.home import UnknownBot
from botwarden.process.lock import holder
from botwarden.process.logs import follow_log, last_lines
from botwarden.process.procs import group_members, identify
from botwarden.process.supervisor import BotReport, StartFailed, Supervisor
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from tests.support.processes import CONFIG, promises_hold, wait_for

LOCK = Path("state") / "golden_spy.lock"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bot.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def supervisor(botwarden_home: Path) -> Iterator[Supervisor]:
    supervisor = Supervisor(botwarden_home)
    yield supervisor
    with contextlib.suppress(UnknownBot):  # never leave a bot running behind a test
        supervisor.stop("golden_spy", timeout=5)


def report_of(supervisor: Supervisor) -> BotReport:
    return asyncio.run(supervisor.report("golden_spy"))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "botwarden", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


def bot_processes(config: Path) -> list[int]:
    """Every live `botwarden run CONFIG` process on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"run" in argv and str(config).encode() in argv and identify(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_started_twice_at_once_runs_once(config: Path, supervisor: Supervisor) -> None:
    first, second = (
        subprocess.Popen(
            [sys.executable, "-m", "botwarden", "start", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    )
    answers = [(*p.communicate(timeout=120), p.returncode) for p in (first, second)]
    codes = sorted(code for _, _, code in answers)
    assert codes == [0, 1], answers
    [running] = bot_processes(config)
    refusal = next(err for _, err, code in answers if code == 1)
    assert f"already running (pid {running})" in refusal
    assert holder(config.parent / LOCK) == running
    report = report_of(supervisor)
    assert report.status == BotStatus.RUNNING and report.pid == running


def test_a_bot_that_does_not_obey_sigterm_is_killed_and_its_lock_freed(
    config: Path, supervisor: Supervisor
) -> None:
    launch = supervisor.start(config)
    os.kill(launch.pid, signal.SIGSTOP)  # hung: SIGTERM stays pending, unhandled
    stopped = supervisor.stop("golden_spy", timeout=1)
    assert stopped.killed and stopped.pid == launch.pid
    assert group_members(launch.pid) == [] and bot_processes(config) == []
    assert holder(config.parent / LOCK) is None
    report = report_of(supervisor)
    assert report.status == BotStatus.STOPPED and report.pid is None
    supervisor.start(config)  # the freed lock takes a new instance at once


def test_a_clean_stop_on_sigterm(config: Path, supervisor: Supervisor) -> None:
    launch = supervisor.start(config)
    stopped = supervisor.stop("golden_spy", timeout=30)
    assert not stopped.killed and stopped.pid == launch.pid
    assert bot_processes(config) == [] and holder(config.parent / LOCK) is None
    report = report_of(supervisor)
    assert report.status == BotStatus.STOPPED
    assert supervisor.stop("golden_spy").pid is None, "stopping a stopped bot is a no-op"


def test_status_after_a_sigkill_says_the_bot_is_not_running(
    config: Path, supervisor: Supervisor
) -> None:
    launch = supervisor.start(config)
    assert (report_of(supervisor)).status == BotStatus.RUNNING
    os.kill(launch.pid, signal.SIGKILL)
    _wait(lambda: holder(config.parent / LOCK) is None)
    report = report_of(supervisor)
    assert report.status == BotStatus.ERROR and report.pid is None
    assert "not running: the process ended without recording a stop" in report.last_error
    shown = cli("status", "--json")
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    assert row["status"] == "error" and row["pid"] is None


def test_a_stopped_bot_whose_state_file_is_gone_says_so(
    config: Path, supervisor: Supervisor
) -> None:
    """A new user deleted a stopped bot's state file: status showed 'stopped, never',
    a bot that never ran, where `state show` said the file is missing."""
    supervisor.start(config)
    _wait(lambda: report_of(supervisor).heartbeat_seconds is not None)
    supervisor.stop("golden_spy")
    assert report_of(supervisor).problem is None
    state = config.parent / "state/golden_spy.db"
    for leftover in state.parent.glob("golden_spy.db*"):
        leftover.unlink()
    report = report_of(supervisor)
    assert report.status == BotStatus.STOPPED
    assert report.problem is not None and f"no state at {state}" in report.problem
    assert "deleted or moved" in report.problem and not state.exists(), "looking made none"


def test_a_pid_reused_by_another_process_is_not_the_bot(
    config: Path, supervisor: Supervisor
) -> None:
    """The launch record names a PID that now belongs to an unrelated process (same PID,
    another start time): it is neither reported as the bot, nor signalled, nor does it
    stop the bot from starting."""
    supervisor.start(config)
    supervisor.stop("golden_spy")
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        files = supervisor.files("golden_spy")
        record = json.loads(files.launch.read_text())
        real = identify(stranger.pid)
        stale = {**record, "pid": stranger.pid, "started": real.started - 1000}
        files.launch.write_text(json.dumps(stale))
        report = report_of(supervisor)
        assert report.pid is None and report.status == BotStatus.STOPPED
        assert supervisor.stop("golden_spy", timeout=1).pid is None
        assert stranger.poll() is None, "the stranger was signalled"
        launch = supervisor.start(config)
        assert launch.pid != stranger.pid and bot_processes(config) == [launch.pid]
    finally:
        stranger.kill()
        stranger.wait()


def test_a_start_that_fails_says_why(tmp_path: Path, supervisor: Supervisor) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "bot_id: golden_spy\nsymbols: [SPY]\n"
        'state: {backend: redis, redis: {url: "redis://127.0.0.1:1/0"}}\n'
    )
    with pytest.raises(StartFailed, match=r"exited at once: redis .*cannot connect"):
        supervisor.start(path)
    shown = cli("start", str(path))
    assert shown.returncode == 1
    assert "bot golden_spy exited at once: redis" in shown.stderr
    assert "Traceback" not in shown.stderr + shown.stdout


def test_a_broken_config_is_refused_before_anything_starts(
    tmp_path: Path, botwarden_home: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("bot_id: x\nstrategy: {name: nope}\n")
    shown = cli("start", str(path))
    assert shown.returncode == 2 and "broken.yaml" in shown.stderr
    assert not (botwarden_home / "bots" / "x").exists()


def test_unknown_bots_are_named(botwarden_home: Path) -> None:
    for command in (
        ["stop", "ghost"],
        ["status", "ghost"],
        ["logs", "ghost"],
        ["restart", "ghost"],
        ["resolve", "ghost"],
        ["flatten", "ghost", "--yes"],
        ["stop", "../ghost"],
    ):
        shown = cli(*command)
        assert shown.returncode == 1 and f"no bot '{command[1]}'" in shown.stderr, command
    empty = cli("status")
    assert empty.returncode == 0 and "no bots" in empty.stdout


def test_the_cli_round_trip(config: Path, supervisor: Supervisor) -> None:
    started = cli("start", str(config))
    assert started.returncode == 0, started.stderr
    again = cli("start", str(config))
    assert again.returncode == 1 and "already running" in again.stderr
    table = cli("status")
    assert "golden_spy" in table.stdout and "running" in table.stdout
    _wait(lambda: "recovered" in cli("logs", "golden_spy").stdout)
    restarted = cli("restart", "golden_spy")
    assert restarted.returncode == 0, restarted.stderr
    [pid] = bot_processes(config)
    assert f"pid {pid}" in restarted.stdout
    stopped = cli("stop", "golden_spy")
    assert stopped.returncode == 0 and f"stopped bot golden_spy (pid {pid})" in stopped.stdout
    assert bot_processes(config) == []


def test_a_start_not_confirmed_in_time_says_so(config: Path, botwarden_home: Path) -> None:
    impatient = Supervisor(botwarden_home, start_wait=0.001)
    launch = impatient.start(config)
    assert not launch.confirmed
    _wait(lambda: report_of(impatient).status == BotStatus.RUNNING)
    impatient.stop("golden_spy")


def test_a_bot_that_could_not_start_shows_error_with_the_reason(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    path = tmp_path / "keyed.yaml"
    path.write_text(
        "bot_id: golden_spy\nsymbols: [SPY]\nvenue: {type: alpaca, stored_key: nowhere}\n"
    )
    with pytest.raises(StartFailed, match="no stored key named 'nowhere'"):
        supervisor.start(path)
    report = report_of(supervisor)
    assert report.status == BotStatus.ERROR and report.pid is None
    assert "no stored key named 'nowhere'" in report.last_error


def test_a_bot_killed_by_stop_still_needs_attention(config: Path, supervisor: Supervisor) -> None:
    config.write_text(CONFIG + "state: {recovery: {mode: manual}}\n")
    launch = supervisor.start(config)
    os.kill(launch.pid, signal.SIGSTOP)
    assert supervisor.stop("golden_spy", timeout=1).killed
    assert report_of(supervisor).status == BotStatus.NEEDS_ATTENTION


def test_resolve_clears_needs_attention_running_or_stopped(
    config: Path, supervisor: Supervisor
) -> None:
    config.write_text(CONFIG + "state: {recovery: {mode: manual}}\n")
    supervisor.start(config)
    waiting = report_of(supervisor)
    assert waiting.status == BotStatus.NEEDS_ATTENTION
    assert "manual mode: nothing changed; waiting for an operator" in waiting.attention
    assert "waiting for an operator" in cli("status").stdout
    resolved = cli("resolve", "golden_spy")
    assert resolved.returncode == 0, resolved.stderr
    assert "bot golden_spy resolved: running" in resolved.stdout
    assert "reconciling with the venue (as sync)" in resolved.stdout
    assert report_of(supervisor).status == BotStatus.RUNNING
    again = cli("resolve", "golden_spy")
    assert again.returncode == 1 and "does not need attention (status running)" in again.stderr

    supervisor.restart("golden_spy")  # manual mode: every start waits for an operator
    assert report_of(supervisor).status == BotStatus.NEEDS_ATTENTION
    supervisor.stop("golden_spy")
    assert report_of(supervisor).status == BotStatus.NEEDS_ATTENTION, "a stop does not clear it"
    resolved = cli("resolve", "golden_spy")
    assert "not running: its next start recovers, acting" in resolved.stdout
    assert report_of(supervisor).status == BotStatus.STOPPED
    supervisor.start(config)
    assert report_of(supervisor).status == BotStatus.RUNNING


def test_flatten_stops_the_bot_and_closes_at_market_only_when_meant(
    config: Path, supervisor: Supervisor
) -> None:
    config.write_text(  # enters at once, never exits by itself, its stop far away
        CONFIG.replace(
            "strategy: {name: golden_cross, params: {fast: 3, slow: 8}, timeframe: 1h}",
            "strategy: {name: coin_flip, params: {enter: 1, exit: 0}, timeframe: 1h}",
        )
        + "stop: {distance: 25}\n"
    )
    supervisor.start(config)
    _wait(lambda: report_of(supervisor).positions)
    refused = cli("flatten", "golden_spy")
    assert refused.returncode == 2 and "add --yes to mean it" in refused.stderr
    wrong = cli("flatten", "golden_spy", "--symbol", "QQQ", "--yes")
    assert wrong.returncode == 2 and "does not trade 'QQQ'" in wrong.stderr
    assert report_of(supervisor).pid is not None, "nothing touched by a refused flatten"
    supervisor.stop("golden_spy")
    [held] = report_of(supervisor).positions  # held while stopped, its stop resting

    done = cli("flatten", "golden_spy", "--symbol", "SPY", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bot golden_spy was not running" in done.stdout
    assert "closed at market: SPY" in done.stdout
    report = report_of(supervisor)
    assert report.positions == [] and report.open_orders == 0 and report.pid is None
    assert report.status == BotStatus.STOPPED
    state = asyncio.run(promises_hold(config, epoch_at_least=2))
    exits = sorted(
        (i for i in state.intents.values() if i.purpose is Purpose.EXIT),
        key=lambda i: i.created_at,
    )
    assert exits[-1].status is IntentStatus.FILLED, "the flatten's exit, written ahead"
    trades = [e for e in state.events.values() if e.kind == "trade"]
    assert trades[-1].data["symbol"] == "SPY" and trades[-1].data["qty"] == held.size
    assert not holding(config.parent / "state" / "golden_spy.paper.db")
    assert "flattening SPY, asked by an operator" in cli("logs", "golden_spy").stdout

    supervisor.start(config)  # a running bot is stopped first, then flattened
    _wait(lambda: report_of(supervisor).positions)
    done = cli("flatten", "golden_spy", "--yes")
    assert done.returncode == 0 and "bot golden_spy stopped (pid" in done.stdout, done.stdout
    assert bot_processes(config) == []
    assert report_of(supervisor).positions == []
    assert not holding(config.parent / "state" / "golden_spy.paper.db")


def test_a_log_is_followed_through_rotation(tmp_path: Path) -> None:
    """New lines only, a line written in two parts whole, and across a rotation the
    old file's last lines first, then the new file's."""
    log = tmp_path / "bot.log"
    log.write_text("old 1\nold 2\nold 3\n")
    assert last_lines(log, 2) == ["old 2\n", "old 3\n"]
    seen: list[str] = []
    lines = follow_log(log, poll=0.3)

    def read() -> None:
        for line in lines:
            seen.append(line)
            if line == "after rotation\n":
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.1)
    with open(log, "a") as file:
        file.write("new, in two ")
        file.flush()
        time.sleep(0.05)
        file.write("writes\n")
    _wait(lambda: seen == ["new, in two writes\n"])
    with open(log, "a") as file:  # then, within one look, written and rotated away
        file.write("the old one's last\n")
    log.rename(tmp_path / "bot.log.1")
    log.write_text("after rotation\n")
    reader.join(timeout=10)
    assert seen == ["new, in two writes\n", "the old one's last\n", "after rotation\n"]


def _wait(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_stopped_bot_never_shows_an_older_days_pnl_as_today(
    config: Path, supervisor: Supervisor
) -> None:
    """The day used to roll only when the bot traded: status showed yesterday's loss as
    'PnL today' for as long as the bot stayed flat or stopped."""
    supervisor.register(config)

    async def lost_forty_last_week() -> None:
        state = StateManager("golden_spy", SqliteStore(config.parent / "state/golden_spy.db"))
        async with state:
            last_week = datetime.now(UTC).date() - timedelta(days=7)
            await state.save_risk_state(
                RiskState(trading_day=last_week, daily_pnl=Decimal(-40), daily_trade_count=3)
            )

    asyncio.run(lost_forty_last_week())
    report = report_of(supervisor)
    assert report.trading_day == str(datetime.now(UTC).date())
    assert (report.pnl_today, report.trades_today, report.entries_today) == ("0.00", 0, 0)


def test_today_counts_the_trades_closed_and_the_entries_taken_apart(
    config: Path, supervisor: Supervisor
) -> None:
    """'trades today' beside 'all time' is trades closed, as there; the entries the daily
    limit counts are a figure of their own."""
    supervisor.register(config)

    async def three_entries_two_trades_closed() -> None:
        state = StateManager("golden_spy", SqliteStore(config.parent / "state/golden_spy.db"))
        async with state:
            today = datetime.now(UTC).date()
            await state.save_risk_state(RiskState(trading_day=today, daily_trade_count=3))
            for n in (1, 2):
                now = datetime.now(UTC)
                trade = Trade(
                    position_id=f"p{n}", symbol="SPY", side="long", qty=Decimal(1),
                    entry_price=Decimal(100), exit_price=Decimal(101), pnl=Decimal(1),
                    entry_time=now, exit_time=now, closed_by=f"x{n}", exit_fill=f"F{n}",
                )  # fmt: skip
                async with state.transaction() as tx:
                    tx.record_trade(trade, today, await state.day_pnl(today))

    asyncio.run(three_entries_two_trades_closed())
    report = report_of(supervisor)
    assert (report.trades_today, report.entries_today, report.trades_total) == (2, 3, 2)


def test_a_venue_unreachable_at_start_leaves_the_bot_pending_until_it_answers(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    """A ccxt bot whose exchange is down when it starts waits, saying why, and runs
    once the exchange answers (it used to exit at once: "stopped by an error")."""
    pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
    from tests.state.test_crash import free_port
    from tests.venues.test_ccxt_adapter import KEY, SECRET

    port = free_port()
    path = tmp_path / "bot.yaml"
    path.write_text(
        'bot_id: golden_spy\nsymbols: ["BTC/USDT:USDT"]\norder: {qty: 0.01}\n'
        f"venue: {{type: ccxt, exchange: binanceusdm, base_url: 'http://127.0.0.1:{port}',"
        f" api_key: {KEY}, secret_key: {SECRET}}}\n"
    )
    supervisor.start(path)
    wait_for(lambda: "recovery not finished" in (report_of(supervisor).last_error or ""))
    report = report_of(supervisor)
    assert report.status == "pending" and "trying again in" in report.last_error
    (tmp_path / "exchange").mkdir()
    exchange = subprocess.Popen(
        [sys.executable, "-m", "botwarden", "venue", "serve", "--api", "binanceusdm",
         "--port", str(port), "--key", KEY, "--secret", SECRET],
        cwd=tmp_path / "exchange",
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: report_of(supervisor).status == "running", seconds=90)
        assert report_of(supervisor).last_error is None, "the reason is over once it runs"
    finally:
        supervisor.stop("golden_spy", timeout=10)
        exchange.terminate()
        exchange.wait(timeout=20)


def test_trades_lists_every_closed_trade_and_the_pnl_per_period(
    config: Path, supervisor: Supervisor
) -> None:
    from botwarden.domain.models import Side
    from botwarden.domain.positions import Trade

    supervisor.register(config)
    now = datetime.now(UTC).replace(microsecond=0)
    made = [
        Trade(
            position_id=f"pos-{n}", symbol="SPY", side=Side.LONG, qty=Decimal(2),
            entry_price=Decimal(100), exit_price=Decimal(101), pnl=Decimal(n) - Decimal("0.5"),
            fees=Decimal("0.25"), entry_time=now - timedelta(days=n, hours=5),
            exit_time=now - timedelta(days=n), closed_by=f"c{n}", exit_fill=f"T{n}",
        )
        for n in (40, 10, 3, 0)
    ]  # fmt: skip

    async def traded() -> None:
        state = StateManager("golden_spy", SqliteStore(config.parent / "state/golden_spy.db"))
        async with state:
            for trade in made:
                day = trade.exit_time.date()  # (the config's trading day: UTC)
                before = await state.day_pnl(day)
                async with state.transaction() as tx:
                    tx.record_trade(trade, day, before)

    asyncio.run(traded())
    # Its last pass saw SPY's market, priced in cents: the prices are shown in them.
    market = {"symbols": {"SPY": {"price": "101", "price_places": 2, "qty_places": None}}}
    supervisor.files("golden_spy").market.write_text(json.dumps(market))
    shown = cli("trades", "golden_spy")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert sum(" SPY " in line for line in lines) == 4, shown.stdout
    assert all(" 100.00 " in line and " 101.00 " in line for line in lines if " SPY " in line)
    assert "5h" in shown.stdout, "how long each was held"
    [today] = [line.split() for line in lines if line.strip().startswith("today")]
    [week] = [line.split() for line in lines if line.strip().startswith("7 days")]
    [alltime] = [line.split() for line in lines if line.strip().startswith("all time")]
    assert today[1:] == ["1", "0%", "0.25", "-0.50"]
    assert week[2:] == ["2", "50%", "0.50", "2.00"]
    assert alltime[2:] == ["4", "75%", "1.00", "51.00"]

    recent = cli("trades", "golden_spy", "--csv", "--since", "14d")
    assert recent.returncode == 0, recent.stderr
    rows = list(csv.DictReader(io.StringIO(recent.stdout)))
    assert [r["position_id"] for r in rows] == ["pos-10", "pos-3", "pos-0"], "oldest first"
    assert rows[0]["held_seconds"] == str(5 * 3600) and rows[0]["fees"] == "0.25"

    for when in ("last tuesday", "999999d"):
        wrong = cli("trades", "golden_spy", "--since", when)
        assert wrong.returncode == 2 and f"--since {when!r}" in wrong.stderr
        assert "Traceback" not in wrong.stderr
