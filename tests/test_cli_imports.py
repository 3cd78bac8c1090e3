"""The quick commands import only what they use, so they answer at once: `--help`,
`logs` and `stop` load no pydantic, no rich, no asyncio, no store; `status`, which
reads and decodes each bot's state, loads nothing of the API server, the engine, the
venue SDKs or a backend the bot does not use (and with --json, no rich).
benchmarks/cli.py times them; what is checked here is what each imports, which does
not depend on the machine's speed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BOT = "quick_bot"

CONFIG = f"""\
bot_id: {BOT}
symbols: [SPY]
order: {{qty: 10}}
strategy: {{name: coin_flip, params: {{seed: 3}}, timeframe: 1h}}
venue: {{type: paper, speed: 36000}}
engine: {{check_interval: 1h}}
"""

SERVERS_AND_SDKS = (
    "botwarden.api",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "alpaca",
    "ccxt",
    "duckdb",
    "redis",
    "psycopg",
    "botwarden.engine.runner",
    "botwarden.venues.paper",
)
MODELS_TABLES_AND_STORES = (
    "pydantic",
    "rich",
    "yaml",
    "asyncio",
    "botwarden.config",
    "botwarden.domain",
    "botwarden.state.factory",
    "botwarden.state.sqlite",
)

COMMANDS = {
    "--help": (["--help"], SERVERS_AND_SDKS + MODELS_TABLES_AND_STORES),
    "logs": (["logs", BOT], SERVERS_AND_SDKS + MODELS_TABLES_AND_STORES),
    "stop": (["stop", BOT], SERVERS_AND_SDKS + MODELS_TABLES_AND_STORES),
    "status": (["status"], SERVERS_AND_SDKS),
    "status --json": (["status", "--json"], (*SERVERS_AND_SDKS, "rich")),
}


@pytest.fixture(scope="module")
def home_with_a_bot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a home with one stopped bot that has run."""
    root = tmp_path_factory.mktemp("quick")
    config = root / "bot.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "BOTWARDEN_HOME": str(root / "home")}
    ran = subprocess.run(
        [sys.executable, "-m", "botwarden", "run", str(config), "--ticks", "2"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    return env


def imported(args: list[str], env: dict[str, str]) -> tuple[set[str], str]:
    """The modules `botwarden ARGS` imports (as `-X importtime` lists them), and what
    it printed."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "botwarden", *args],
        env=env,
        cwd=Path(env["BOTWARDEN_HOME"]).parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    modules = {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}
    return modules, done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_a_quick_command_imports_only_what_it_uses(
    command: str, home_with_a_bot: dict[str, str]
) -> None:
    args, unwanted = COMMANDS[command]
    modules, printed = imported(args, home_with_a_bot)
    assert "botwarden.cli" in modules, "the import list was read"
    if command != "--help":
        assert BOT in printed, printed  # it looked at the bot (not at an empty home)
    loaded = [
        name
        for name in unwanted
        if any(module == name or module.startswith(f"{name}.") for module in modules)
    ]
    assert not loaded, f"`botwarden {' '.join(args)}` imports {', '.join(loaded)}"
