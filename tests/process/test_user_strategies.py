# ruff: noqa: E501 (tables of cases read best one case a line)
"""A user's strategy, from outside the package, named each way a config can name it (a
file beside the config, a module path, a package's entry point), run by `botwarden run`,
`botwarden start` (a real background process) and `botwarden torture`; and a strategy
that cannot load is one line and exit code 2 from each, nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.processes import promises_hold, wait_for

HOLDER = '''
from datetime import timedelta

from botwarden.strategies.base import Action, Signal


class Holder:
    """Enters when flat, exits once it has held for `hold` bars."""

    name = "holder"

    def __init__(self, hold: int = 3) -> None:
        self.hold = hold

    bars_needed = 2

    def decide(self, symbol, bars, position):
        last = bars[-1]
        if position is None:
            return Signal(self.name, symbol, Action.ENTER_LONG, last.time, "flat")
        if last.time - position.entry_time >= timedelta(hours=self.hold):
            return Signal(self.name, symbol, Action.EXIT, last.time, "held long enough")
        return None
'''

CONFIG = """\
bot_id: holder_bot
symbols: [SPY]
order: {{qty: 5}}
strategy: {{{strategy}, params: {{hold: 2}}, timeframe: 1h}}
venue: {{type: paper, speed: 36000, start: 2026-03-02T14:30:00Z}}
engine: {{check_interval: 1h, unknown_order_grace: 15s}}
"""

WAYS = {
    "file": "path: strategies/holder.py:Holder",
    "module": "name: my_strategies.holder:Holder",
    "entry point": "name: holder",
}


def lay_out(tmp_path: Path, way: str) -> tuple[Path, dict[str, str]]:
    """The user's project: a config, and the strategy where `way` finds it; the
    environment its commands run in."""
    project = tmp_path / "project"
    project.mkdir()
    env = {**os.environ, "COLUMNS": "200"}
    if way == "file":
        target = project / "strategies" / "holder.py"
    elif way == "module":
        (project / "my_strategies").mkdir()
        (project / "my_strategies" / "__init__.py").write_text("")
        target = project / "my_strategies" / "holder.py"
    else:  # an installed distribution: its metadata and its module on the import path
        site = tmp_path / "site"
        target = site / "holder_pack.py"
        info = site / "holder_pack-0.3.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Name: holder-pack\nVersion: 0.3\n")
        (info / "entry_points.txt").write_text(
            "[botwarden.strategies]\nholder = holder_pack:Holder\n"
        )
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(HOLDER))
    config = project / "bot.yaml"
    config.write_text(CONFIG.format(strategy=WAYS[way]))
    return config, env


def botwarden(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "botwarden", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


async def traded(config: Path) -> None:
    state = await promises_hold(config)
    entries = [s for s in state.signals if s.startswith("holder:SPY:enter_long:")]
    exits = [s for s in state.signals if s.startswith("holder:SPY:exit:")]
    assert entries and exits, "the user's strategy entered and exited"


@pytest.mark.parametrize("way", sorted(WAYS))
async def test_a_users_strategy_runs_in_the_foreground(
    tmp_path: Path, way: str, botwarden_home: Path
) -> None:
    config, env = lay_out(tmp_path, way)
    done = botwarden("run", str(config), "--ticks", "12", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    await traded(config)


@pytest.mark.parametrize("way", sorted(WAYS))
async def test_a_users_strategy_runs_in_the_background(
    tmp_path: Path, way: str, botwarden_home: Path
) -> None:
    config, env = lay_out(tmp_path, way)
    started = botwarden("start", str(config), env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        signals = config.parent / "state" / "holder_bot.db"
        wait_for(lambda: signals.exists() and b"holder:SPY:exit:" in signals.read_bytes())
        status = botwarden("status", "holder_bot", env=env, cwd=tmp_path)
        assert status.returncode == 0 and "running" in status.stdout, status.stdout
    finally:
        stopped = botwarden("stop", "holder_bot", env=env, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    await traded(config)


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_users_strategy_is_tortured(tmp_path: Path, way: str) -> None:
    config, env = lay_out(tmp_path, way)
    done = botwarden(
        "torture", "--config", str(config), "--seeds", "2", "--jobs", "1", "--days", "2",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "holder" in done.stdout, "the table names the user's strategy"


BROKEN = {
    "import": ("import numpyy\n", "cannot import: ModuleNotFoundError: No module named 'numpyy' (holder.py:1 in <module>)"),
    "params": (HOLDER.replace("hold: int = 3", "length: int = 3"), "strategy.params: strategies/holder.py:Holder: Holder.__init__() got an unexpected keyword argument 'hold'"),
}  # fmt: skip


@pytest.mark.parametrize("command", ["run", "start", "torture"])
@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_strategy_that_cannot_load_is_one_line_and_nothing_starts(
    tmp_path: Path, command: str, broken: str, botwarden_home: Path
) -> None:
    config, env = lay_out(tmp_path, "file")
    text, said = BROKEN[broken]
    (config.parent / "strategies" / "holder.py").write_text(textwrap.dedent(text))
    args = ["torture", "--config", str(config)] if command == "torture" else [command, str(config)]
    done = botwarden(*args, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"botwarden: error: {config}: "), lines[0]
    assert said in lines[0]
    assert not (config.parent / "state").exists(), "no state, no lock, no exchange book"
    assert not (botwarden_home / "bots" / "holder_bot").exists()


def test_torture_fails_a_strategy_that_fails(tmp_path: Path) -> None:
    config, env = lay_out(tmp_path, "file")
    holder = config.parent / "strategies" / "holder.py"
    holder.write_text(
        holder.read_text().replace('"held long enough")', '"held long enough") if 1 / 0 else None')
    )
    done = botwarden(
        "torture", "--config", str(config), "--seeds", "2", "--jobs", "1", "--days", "2",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "the strategy failed" in done.stdout and "(its own errors, not the engine's" in done.stdout
    )
