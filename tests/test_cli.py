"""The `botwarden` command end to end, as an operator runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Backend, drop_redis_prefix, require_redis
from tests.state.as_stored import as_stored


def botwarden(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "botwarden", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TRADING = (
    "symbols: [SPY]\norder: {qty: 10}\nstrategy: {params: {fast: 3, slow: 8}}\n"
    "venue: {speed: 36000, start: 2026-03-02T14:30:00Z}\nengine: {check_interval: 1h}\n"
)
"""A bot that trades within a few dozen ticks (an hour each, 0.1 s apart)."""


def trade(config: Path, cwd: Path, ticks: int = 40) -> subprocess.CompletedProcess[str]:
    """Run the bot in `config` (plus TRADING) for `ticks` passes: a state to look at."""
    text = config.read_text()
    if "symbols:" not in text:
        config.write_text(text + TRADING)
    result = botwarden("run", str(config), "--ticks", str(ticks), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("botwarden: error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0], "the error is the last word"
    for needle in needles:
        assert needle in errors[0]


def test_a_bad_config_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bot.yaml", "bot_id: b\nstate: {backend: mongo}\n")
    result = botwarden("state", "show", str(config), cwd=tmp_path)
    assert_one_line_error(result, 2, str(config), "state.backend", "'mongo'", "'sqlite'")


def test_a_past_for_the_simulator_is_refused_not_ignored(tmp_path: Path) -> None:
    """`--history` seeds real trials: without `--real` it would do nothing, silently."""
    result = botwarden("torture", "--history", "500", "--seeds", "1", cwd=tmp_path)
    assert result.returncode == 2 and "--history is for real trials: add --real" in result.stderr
    assert not (tmp_path / "torture-histories").exists()


def test_showing_a_bot_without_state_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bot.yaml", "bot_id: fresh\n")
    result = botwarden("state", "show", str(config), cwd=tmp_path)
    assert_one_line_error(result, 1, "bot fresh has no state yet", "fresh.db")
    assert not (tmp_path / "state").exists()


def test_a_bot_unknown_to_a_shared_store_is_an_error_not_an_empty_report(
    tmp_path: Path, server_backend: Backend
) -> None:
    """And the look made nothing there: no Redis key, no PostgreSQL schema."""
    section = json.dumps(server_backend.settings)
    config = write_config(tmp_path / "bot.yaml", f"bot_id: typo_bot\nstate: {section}\n")
    result = botwarden("state", "show", str(config), cwd=tmp_path)
    assert_one_line_error(result, 1, f"bot typo_bot has no state in {server_backend.name}")
    assert as_stored(server_backend) == {}


def test_a_bot_run_twice_carries_on_and_state_show_reports_it(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bot.yaml", "bot_id: golden\n")
    trade(config, tmp_path)
    trade(config, tmp_path)

    shown = botwarden("state", "show", str(config), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert state["bot"]["status"] == "stopped"
    assert state["bot"]["instance"]["epoch"] == 2
    assert state["fills"]["count"] >= 1
    assert state["risk"]["trading_day"] is not None, "entries are counted by trading day"
    for position in state["positions"]:  # every position held has its stop
        assert position["stop_client_order_id"] in {
            o["client_order_id"] for o in state["pending_orders"] if o["purpose"] == "stop"
        }

    tables = botwarden("state", "show", str(config), cwd=tmp_path)
    assert tables.returncode == 0
    assert "stopped" in tables.stdout and "risk" in tables.stdout


def test_run_says_what_each_pass_decided_unless_quiet(tmp_path: Path, botwarden_home: Path) -> None:
    """A person watching sees why nothing happens yet: bars still to come, or no signal
    on the bar just closed, its time on the exchange's clock when that runs fast."""
    config = write_config(
        tmp_path / "bot.yaml",
        "bot_id: watched\nsymbols: [SPY]\nstrategy: {params: {fast: 3, slow: 8}}\n"
        "venue: {speed: 36000, start: 2026-03-02T14:30:00Z}\nengine: {check_interval: 1h}\n",
    )
    told = botwarden("run", str(config), "--ticks", "3", cwd=tmp_path)
    assert told.returncode == 0, told.stderr
    said = re.findall(r"watched: SPY: (.*)", told.stderr)
    assert len(said) == 3, told.stderr
    assert all(
        re.fullmatch(
            r"no signal on the 1h bar of 2026-03-\d\d \d\d:00 UTC on the exchange's clock,"
            r" 36000x \(close \d+\.\d+\)",
            line,
        )
        for line in said
    ), said
    quiet = botwarden("run", str(config), "--ticks", "3", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "no signal" not in quiet.stderr and "starting as instance 2" in quiet.stderr
    log = (botwarden_home / "bots" / "watched" / "bot.log").read_text()
    assert log.count("no signal on the 1h bar") >= 4, "the log keeps every line"


def shown_at(columns: str, cwd: Path, *command: str) -> str:
    """What `botwarden COMMAND` prints in a terminal this wide: every line fits, and
    nothing is cut short."""
    shown = subprocess.run(
        [sys.executable, "-m", "botwarden", *command],
        cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": columns},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert all(len(line) <= int(columns) for line in shown.stdout.splitlines()), shown.stdout
    assert "…" not in shown.stdout, "nothing cut short"
    return shown.stdout


def test_status_and_the_state_read_whole_in_an_80_column_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bot.yaml", "bot_id: a_bot_with_a_long_name\n")
    trade(config, tmp_path, ticks=60)
    state = json.loads(botwarden("state", "show", str(config), "--json", cwd=tmp_path).stdout)
    [position] = state["positions"]
    [stop] = [i for i in state["pending_orders"] if i["purpose"] == "stop"]
    for columns in ("80", "200"):
        shown = shown_at(columns, tmp_path, "status")
        assert "a_bot_with_a_long_name" in shown and "stopped" in shown
        assert re.search(r"-?\d+\.\d\d \(\d+", shown), "the PnL and its trades"
        shown = shown_at(columns, tmp_path, "state", "show", str(config))
        for told in (position["symbol"], position["entry_price"], position["stop_price"],
                     stop["client_order_id"]):  # fmt: skip
            assert told in shown, (told, shown)


def test_state_moves_from_sqlite_to_jsonfile_and_redis(tmp_path: Path) -> None:
    source = write_config(tmp_path / "bot.yaml", "bot_id: mover\n")
    trade(source, tmp_path)
    exported = tmp_path / "mover.json"
    result = botwarden("state", "export", str(source), "-o", str(exported), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    before = json.loads(botwarden("state", "show", str(source), "--json", cwd=tmp_path).stdout)

    url = require_redis()
    targets = {
        "jsonfile": "state: {backend: jsonfile}\n",
        "redis": f"state: {{backend: redis, redis: {{url: '{url}', key_prefix: tcli}}}}\n",
    }
    try:
        for name, section in targets.items():
            target = write_config(tmp_path / f"{name}.yaml", f"bot_id: mover\n{section}")
            result = botwarden("state", "import", str(target), str(exported), cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            after = json.loads(
                botwarden("state", "show", str(target), "--json", cwd=tmp_path).stdout
            )
            assert {**after, "store": None} == {**before, "store": None}, name

            again = botwarden("state", "import", str(target), str(exported), cwd=tmp_path)
            assert_one_line_error(again, 1, "already holds", "--replace")
            replaced = botwarden(
                "state", "import", str(target), str(exported), "--replace", cwd=tmp_path
            )
            assert replaced.returncode == 0, replaced.stderr
    finally:
        drop_redis_prefix(url, "tcli")


def test_an_export_of_another_bot_is_refused(tmp_path: Path) -> None:
    source = write_config(tmp_path / "a.yaml", "bot_id: alpha\n")
    trade(source, tmp_path)
    exported = tmp_path / "alpha.json"
    botwarden("state", "export", str(source), "-o", str(exported), cwd=tmp_path)
    other = write_config(tmp_path / "b.yaml", "bot_id: beta\n")
    result = botwarden("state", "import", str(other), str(exported), cwd=tmp_path)
    assert_one_line_error(result, 1, "holds bot 'alpha'", "'beta'")


def test_a_corrupt_state_file_is_reported_and_left_where_it_is(tmp_path: Path) -> None:
    """Looking moves nothing: only a start sets a corrupt file aside."""
    config = write_config(tmp_path / "bot.yaml", "bot_id: hurt\nstate: {backend: jsonfile}\n")
    trade(config, tmp_path)
    path = tmp_path / "state" / "hurt.json"
    damaged = path.read_bytes()[:-40]
    path.write_bytes(damaged)

    for command in ("show", "export"):
        result = botwarden("state", command, str(config), cwd=tmp_path)
        assert_one_line_error(result, 1, str(path), "corrupt", "left as it is")
    assert path.read_bytes() == damaged
    assert not list(path.parent.glob("hurt.json.corrupt-*"))


def test_a_config_naming_the_wrong_backend_is_told_so_and_moves_nothing(
    tmp_path: Path, botwarden_home: Path
) -> None:
    """`state show` with jsonfile over the SQLite file once called the file corrupt and
    moved it aside, and the next `run` started as a new bot."""
    right = write_config(tmp_path / "bot.yaml", "bot_id: golden\n")
    trade(right, tmp_path)
    path = tmp_path / "state" / "golden.db"
    before = path.read_bytes()
    wrong = write_config(
        tmp_path / "wrong.yaml",
        "bot_id: golden\nsymbols: [SPY]\n"
        "state: {backend: jsonfile, jsonfile: {path: state/golden.db}}\n",
    )

    for command in (("state", "show"), ("state", "export"), ("run",)):
        result = botwarden(*command, str(wrong), cwd=tmp_path)
        assert_one_line_error(
            result, 2, str(path), "is a SQLite database", "the config says state.backend jsonfile"
        )
        assert path.read_bytes() == before, f"{command} changed the state file"
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("golden.db")) == [
        "golden.db"
    ]
    shown = botwarden("state", "show", str(right), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["bot"]["instance"]["epoch"] == 1, "the same bot, kept"
    record = json.loads((botwarden_home / "bots" / "golden" / "bot.json").read_text())
    assert record["config"] == str(right), "a refused run takes over nothing: restart, status"


def test_state_from_a_newer_botwarden_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bot.yaml", "bot_id: future\n")
    trade(config, tmp_path)
    path = tmp_path / "state" / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE botwarden_schema SET version = 99")
    result = botwarden("state", "show", str(config), cwd=tmp_path)
    assert_one_line_error(result, 1, "schema version 99", "upgrade botwarden")
    assert path.exists()


@pytest.mark.parametrize(
    "section",
    [
        "state: {backend: postgres, postgres: {dsn: 'postgresql://bw:hunter2@127.0.0.1:1/x'}}",
        "state: {backend: redis, redis: {url: 'redis://:hunter2@127.0.0.1:1/0'}}",
        "state: {backend: redis, redis: {url: 'redis://127.0.0.1:1/0?password=hunter2'}}",
        "state: {backend: redis, redis: {url: 'redis://u:hunter2@127.0.0.1:54x2/0'}}",
        "state: {backend: postgres, postgres: {dsn: 'postgresql://u:hun%zzter2@127.0.0.1:1/x'}}",
        "state: {backend: postgres, postgres: {dsn: 'postgresql://127.0.0.1:1/x?password=hunter2'}}",
        "state: {backend: postgres, postgres:"
        " {dsn: \"host=127.0.0.1 port=1 password='hunter2 x'\"}}",
    ],
)
def test_a_password_never_reaches_an_error_message(tmp_path: Path, section: str) -> None:
    config = write_config(tmp_path / "bot.yaml", f"bot_id: b\n{section}\n")
    result = botwarden("state", "show", str(config), cwd=tmp_path)
    assert_one_line_error(result, 1)
    assert "hunter2" not in result.stderr + result.stdout
    assert "zzter2" not in result.stderr + result.stdout
    assert "***" in result.stderr


def test_version() -> None:
    result = botwarden("--version", cwd=Path.cwd())
    assert result.returncode == 0
    assert result.stdout.startswith("botwarden ")


def test_a_duckdb_file_in_use_is_reported_as_busy_never_as_corrupt(tmp_path: Path) -> None:
    import duckdb

    config = write_config(tmp_path / "bot.yaml", "bot_id: busy\nstate: {backend: duckdb}\n")
    trade(config, tmp_path)
    path = tmp_path / "state" / "busy.duckdb"
    running_bot = duckdb.connect(str(path))  # DuckDB lets one process open the file
    try:
        result = botwarden("state", "show", str(config), cwd=tmp_path)
    finally:
        running_bot.close()
    assert_one_line_error(result, 1, str(path), "cannot open", "lock")
    assert not list(path.parent.glob("*.corrupt-*")), "a busy file must never be moved aside"
    assert botwarden("state", "show", str(config), cwd=tmp_path).returncode == 0


def test_a_broken_record_can_be_exported_mended_and_imported_back(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bot.yaml", "bot_id: mend\n")
    trade(config, tmp_path)
    with sqlite3.connect(tmp_path / "state" / "mend.db") as conn:  # a hand edit gone wrong
        conn.execute(
            'UPDATE botwarden_live SET doc = \'{"at": "2026-03-02T14:30:00"}\''
            " WHERE collection = 'signals'"
        )
    shown = botwarden("state", "show", str(config), cwd=tmp_path)
    assert_one_line_error(shown, 1, "record signals/", "timezone")

    exported = tmp_path / "mend.json"
    assert (
        botwarden("state", "export", str(config), "-o", str(exported), cwd=tmp_path).returncode == 0
    )
    document = json.loads(exported.read_text())
    for stamp in document["records"]["signals"].values():
        stamp["at"] += "Z"
    exported.write_text(json.dumps(document))

    restored = botwarden("state", "import", str(config), str(exported), "--replace", cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert botwarden("state", "show", str(config), cwd=tmp_path).returncode == 0


def test_an_export_holding_nan_is_refused_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bot.yaml", "bot_id: nan\n")
    bad = tmp_path / "nan.json"
    bad.write_text('{"format": "botwarden-state", "records": {"positions": {"p": {"x": NaN}}}}')
    result = botwarden("state", "import", str(config), str(bad), cwd=tmp_path)
    assert_one_line_error(result, 1, str(bad), "NaN")


def test_the_demo_kills_restarts_and_checks_every_promise(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "botwarden", "demo", "--seconds", "12", "--seed", "3",
         "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS") == 6
    held = re.search(r"3 SIGKILLs \((\d+) while holding a position\), 4 runs", result.stdout)
    assert held and int(held.group(1)) >= 1, result.stdout
    assert "already running" in result.stdout, "a second instance was refused"
    assert (tmp_path / "demo" / "state" / "golden_cross.db").exists()
    # What each run said went to a file, not to a pipe nobody read while it ran: one
    # full (64 KiB of log lines, in a minute's demo) hung the last run on its SIGTERM.
    said = sorted((tmp_path / "demo").glob("run-*.stderr"))
    assert len(said) == 4 and "starting as instance" in said[-1].read_text()
