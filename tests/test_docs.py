"""Every code block of the README and docs/ is run the way a reader would run it.

Blocks are taken from the Markdown itself, so a doc that drifts from the code fails
here. Each block is one case, named `file:line`:

- `yaml` / `json` / `toml`: loaded by the real config loader (a fragment without
  `bot_id` is completed with a minimal bot);
- `python`: executed; an `async def` it defines is called with the arguments a
  `given` fixture provides, and the fixture checks what it did;
- `sh`: run by bash in a fresh folder (a copy of `examples/`, its own home), with
  `botwarden`, `.venv/bin/botwarden` and `pytest` being this checkout's; runs that last
  forever in the docs are bounded (`run` gets `--ticks 1`, `torture` a few seeds or
  one trial, and a small past),
  servers are started in the background, checked to be serving, then stopped;
- a block without a language shows output: its `$ ` lines are run and what they
  print must be the rest of the block.

A block that cannot be run says why, just before it in the Markdown:
`<!-- doc-test: skip (a systemd unit) -->`. A block that needs a world set up first
names it: `<!-- doc-test: given NAME -->`, NAME being one of GIVEN below. A block that
is a file a reader saves (a strategy, say) names where:
`<!-- doc-test: file strategies/staged.py -->`; it is checked as its kind is (Python
compiled, a config loaded), and every `sh` block after it on the same page runs with
it saved there.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from botwarden.config import load_config
from botwarden.torture.processes import free_port

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*doc-test:\s*(skip|given|file)\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    """Of the opening fence, 1-based."""
    lang: str
    text: str
    marker: tuple[str, str] | None
    """("skip", reason) or ("given", name), from the comment just before the block."""

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = [line for line in lines[:i] if line.strip()][-1:]
        marked = MARKER.search(before[0]) if before else None
        marker = (marked.group(1), marked.group(2).strip("()")) if marked else None
        text = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(path, i + 1, opening.group(1), text, marker))
        i = end + 1
    return found


ALL_BLOCKS = [block for path in DOCS for block in blocks(path)]


# -- the world a reader has ------------------------------------------------------------


@dataclass
class World:
    """A folder with the examples, a home of its own, and this checkout's botwarden."""

    root: Path
    env: dict[str, str]
    ports: dict[str, str] = field(default_factory=dict)
    """The docs' ports, mapped to free ones (other tests may use the documented ones), in
    the commands and in the files an `sh` block runs with."""

    def run(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    shutil.copytree(
        REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("state")
    )
    shims = tmp_path / ".venv" / "bin"
    shims.mkdir(parents=True)
    commands = {  # pytest: a strategy's tests, python: a user's script, as they run them
        tool: f'"{sys.executable}" -m {tool}' for tool in ("botwarden", "pytest")
    } | {"python": f'"{sys.executable}"'}
    for tool, command in commands.items():
        shim = shims / tool
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BOTWARDEN_") or key.startswith("BOTWARDEN_TEST_")
    }
    env.update(
        HOME=str(tmp_path),  # so ~/.botwarden, as the docs write it, is this world's
        COLUMNS="100",  # a terminal this wide: tables print the same on every machine
        PATH=f"{shims}{os.pathsep}{env['PATH']}",
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]),
    )
    ports = {port: str(free_port()) for port in ("8700", "8710", "8711", "8712")}
    for example in (tmp_path / "examples").glob("*.yaml"):  # one naming an emulator's port
        text = example.read_text()
        for documented, free in ports.items():
            text = text.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{free}")
        example.write_text(text)
    return World(tmp_path, env, ports)


# -- what a block needs first ----------------------------------------------------------


@dataclass(frozen=True)
class Given:
    script: str = ""
    """Shell run in the world before the block."""
    env: dict[str, str] = field(default_factory=dict)
    arguments: Callable[[World], dict[str, Any]] | None = None
    """For a python block: the arguments of the function it defines."""
    check: Callable[[World], None] | None = None
    """Run after the block: what it did, seen from outside."""


RUN_ONCE = "botwarden run examples/golden_cross.yaml --ticks 1 2>/dev/null\n"
NEW_STRATEGY = "botwarden new-strategy rsi >/dev/null\n"


def state_manager_arguments(world: World) -> dict[str, Any]:
    from botwarden.config import BotConfig
    from botwarden.domain.models import Fill, OrderSide, Position, Side
    from botwarden.domain.orders import OrderIntent, OrderType, Purpose

    now = datetime.now(UTC)  # signals are remembered for a while from now
    config = BotConfig.model_validate({"bot_id": "golden_cross_spy", "symbols": ["SPY"]})
    config._base_dir = world.root
    intent = OrderIntent(
        client_order_id="golden_cross_spy-1-1",
        symbol="SPY",
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        qty=Decimal(10),
        purpose=Purpose.ENTRY,
        position_id="pos-1",
        created_at=now,
        updated_at=now,
    )
    fill = Fill(
        trade_id="T1",
        client_order_id=intent.client_order_id,
        symbol="SPY",
        side=OrderSide.BUY,
        qty=Decimal(10),
        price=Decimal("450.10"),
        time=now,
    )
    position = Position(
        id="pos-1",
        bot_id="golden_cross_spy",
        symbol="SPY",
        side=Side.LONG,
        size=Decimal(10),
        entry_price=Decimal("450.10"),
        entry_time=now,
    )
    return {
        "config": config,
        "signal_id": "golden_cross:SPY:buy:2026-03-02T14:00",
        "entry_intent": intent,
        "fill": fill,
        "position": position,
        "now": now,
    }


def state_manager_kept_everything(world: World) -> None:
    from botwarden.state.manager import StateManager

    async def read() -> None:
        async with StateManager.from_config("golden_cross_spy", base_dir=world.root) as state:
            assert [f.trade_id for f in await state.get_fills()] == ["T1"]
            assert [p.id for p in await state.get_positions()] == ["pos-1"]
            (intent,) = await state.get_orders()
            assert intent.status == "filled" and intent.filled_qty == 10
            assert await state.is_signal_processed("golden_cross:SPY:buy:2026-03-02T14:00")
            assert await state.check_circuit_breaker() == "daily loss limit"
            assert (await state.get_risk_state()).daily_pnl == Decimal("-12.50")

    asyncio.run(read())


def protocol_excerpt_is_the_protocol(world: World) -> None:
    from botwarden.state.base import StateStore

    (block,) = [b for b in ALL_BLOCKS if b.marker == ("given", "protocol-excerpt")]
    names = re.findall(r"^\s+(?:async )?def (\w+)|^\s+(\w+):", block.text, re.MULTILINE)
    for name in {a or b for a, b in names}:
        assert hasattr(StateStore, name) or name in StateStore.__annotations__, name


GIVEN: dict[str, Given] = {
    "state-manager": Given(arguments=state_manager_arguments, check=state_manager_kept_everything),
    "protocol-excerpt": Given(check=protocol_excerpt_is_the_protocol),
    "mongo": Given(
        script="printf 'bot_id: golden_cross_spy\\nstate: {backend: mongo}\\n' > bot.yaml"
    ),
    "a-bot-ran": Given(script=RUN_ONCE),
    "needs-attention": Given(
        script="printf 'state: {recovery: {mode: manual}}\\n' >> examples/golden_cross.yaml\n"
        + RUN_ONCE
    ),
    "serving": Given(script=RUN_ONCE + "botwarden serve 2>/dev/null\n"),
    "two-stores": Given(
        script="cp examples/golden_cross.yaml old.yaml\n"
        "botwarden run old.yaml --ticks 1 2>/dev/null\n"
        "sed 's/^venue:/state: {backend: jsonfile}\\nvenue:/' old.yaml > new.yaml\n"
    ),
    "my-bot": Given(script="cp examples/golden_cross.yaml my_bot.yaml\n"),
    "new-strategy": Given(script=NEW_STRATEGY),
    "misspelt-param": Given(script=NEW_STRATEGY + "sed -i 's/{length: 14/{lenght: 14/' rsi.yaml\n"),
    "notify-env": Given(
        env={"BOTWARDEN_WEBHOOK_URL": "https://hooks.example.com/x", "TELEGRAM_TOKEN": "1:abc"}
    ),
}


def given(block: Block) -> Given:
    if block.marker is None or block.marker[0] != "given":
        return Given()
    assert block.marker[1] in GIVEN, f"{block.where}: no fixture named {block.marker[1]!r}"
    return GIVEN[block.marker[1]]


# -- running a block -------------------------------------------------------------------


SHELL_HELPERS = """\
set -euo pipefail
background=()
wait_http() {  # a server on this port answers
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done
    echo "nothing answered on port $1" >&2; return 1
}
still_running() {  # every server started in the background got going and is still up
    for pid in "${background[@]}"; do
        kill -0 "$pid" || { echo "a background command ended early" >&2; return 1; }
    done
}
trap 'for pid in "${background[@]}"; do kill "$pid" 2>/dev/null || true; done; wait' EXIT
"""

COMMENT = re.compile(r"\s+#\s.*$")


def shell_lines(text: str) -> list[str]:
    """Commands as a reader types them: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [COMMENT.sub("", line).strip() for line in joined.splitlines() if line.strip()]


def bounded(command: str, world: World) -> str:
    """The command as the test runs it: bounded where the docs' one runs on and on,
    in the background where it serves, on free ports."""
    for documented, free in world.ports.items():
        command = command.replace(documented, free)
    words = command.split()
    botwarden = next((i for i, w in enumerate(words) if w.endswith("botwarden")), None)
    if words[0] == "make":
        return f"make -n -C {REPO} {' '.join(words[1:])} >/dev/null"
    if botwarden is None:
        return command
    verb = words[botwarden + 1 : botwarden + 3]
    if verb[:1] == ["run"] and "--ticks" not in words:
        return command + " --ticks 1"
    if verb[:1] == ["torture"]:
        command = re.sub(r"--seeds \d+", "--seeds 2", command)
        command = re.sub(r"--trials \d+", "--trials 1", command)
        command = re.sub(r"--days \d+", "--days 1", command)
        command = re.sub(r"--history \d+", "--history 400", command)
        return command if "--seeds" in command or "--real" in command else command + " --seeds 2"
    if verb == ["venue", "serve"] or verb[:1] == ["serve"]:
        port = re.search(r"--port (\d+)", command)
        if port is None:
            port_number = world.ports["8700"]
            command += f" --port {port_number}"
        else:
            port_number = port.group(1)
        return f"{command} &\nbackground+=($!)\nwait_http {port_number}"
    if verb[:1] == ["logs"] and ("-f" in words or "--follow" in words):
        return f"{command} &\nbackground+=($!)\nsleep 1"
    return command


def save_the_files_before(block: Block, world: World) -> None:
    """The blocks marked `file PATH` above this one, written where it runs."""
    for saved in blocks(block.file):
        if saved.line < block.line and saved.marker and saved.marker[0] == "file":
            path = world.root / saved.marker[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            text = saved.text
            for documented, free in world.ports.items():  # a config naming an emulator's port
                text = text.replace(documented, free)
            path.write_text(text)


def run_shell(block: Block, world: World) -> None:
    save_the_files_before(block, world)
    lines = shell_lines(given(block).script) + shell_lines(block.text)
    commands = [bounded(line, world) for line in lines]
    script = SHELL_HELPERS + "\n".join(commands) + "\nstill_running\n"
    ran = world.run(script)
    assert ran.returncode == 0, f"{block.where} failed:\n{script}\n{ran.stdout}\n{ran.stderr}"
    assert "Traceback" not in ran.stderr, ran.stderr


def load_config_block(block: Block, world: World) -> None:
    text = block.text
    if block.lang == "yaml" and not re.search(r"^bot_id:", text, re.MULTILINE):
        text = "bot_id: doc_bot\nsymbols: [SPY]\n" + text  # a fragment of a bot's config
    path = world.root / f"bot.{block.lang}"
    path.write_text(text, encoding="utf-8")
    saved = dict(os.environ)
    os.environ.update(given(block).env)
    try:
        load_config(path)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_python(block: Block, world: World) -> None:
    save_the_files_before(block, world)
    fixture = given(block)
    if fixture.script:
        ready = world.run(SHELL_HELPERS + fixture.script)
        assert ready.returncode == 0, f"{block.where}: given failed:\n{ready.stderr}"
    if fixture.arguments is None and fixture.check is not None and block.lang == "python":
        try:
            compile(block.text, block.where, "exec")
        except SyntaxError:  # an excerpt, not a program: its check reads it
            fixture.check(world)
            return
    namespace: dict[str, Any] = {"__name__": "doc_block"}
    cwd = Path.cwd()
    os.chdir(world.root)
    try:
        exec(compile(block.text, block.where, "exec"), namespace)
        functions = [
            value
            for name, value in namespace.items()
            if inspect.iscoroutinefunction(value) and value.__module__ == "doc_block"
        ]
        if fixture.arguments is not None:
            assert functions, f"{block.where}: no async function to call"
            arguments = fixture.arguments(world)
            for function in functions:
                wanted = inspect.signature(function).parameters
                asyncio.run(function(**{name: arguments[name] for name in wanted}))
    finally:
        os.chdir(cwd)
    if fixture.check is not None:
        fixture.check(world)


def compare_output(block: Block, world: World) -> None:
    lines = block.text.splitlines()
    assert lines and lines[0].startswith("$ "), (
        f"{block.where}: a block without a language shows a command's output (`$ command`"
        " first), or is marked <!-- doc-test: skip (why) -->"
    )
    command = lines[0].removeprefix("$ ")
    ran = world.run(given(block).script + "\n" + command + " 2>&1 || true")
    assert ran.stdout.splitlines() == lines[1:], f"{block.where}: printed\n{ran.stdout}"


RUNNERS: dict[str, Callable[[Block, World], None]] = {
    "sh": run_shell,
    "yaml": load_config_block,
    "json": load_config_block,
    "toml": load_config_block,
    "python": run_python,
    "": compare_output,
}


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.where for block in ALL_BLOCKS])
def test_documented_block_works_as_written(block: Block, world: World) -> None:
    if block.marker and block.marker[0] == "skip":
        assert block.marker[1], f"{block.where}: say why it is skipped"
        pytest.skip(block.marker[1])
    if block.marker and block.marker[0] == "file":  # saved for the sh blocks after it
        assert block.marker[1], f"{block.where}: name the file"
        if block.lang == "python":  # a module to import, not a script to run
            compile(block.text, block.where, "exec")
            return
    assert block.lang in RUNNERS, (
        f"{block.where}: a {block.lang!r} block is not run by this test: run it here, or"
        " mark it <!-- doc-test: skip (why) -->"
    )
    RUNNERS[block.lang](block, world)


def test_the_blocks_are_found() -> None:
    """A change to the extraction that found nothing would pass every case above."""
    assert len(ALL_BLOCKS) >= 30
    assert {block.lang for block in ALL_BLOCKS} >= {"sh", "yaml", "python", ""}


def test_run_ticks_ends_after_its_last_pass(world: World) -> None:
    """`run --ticks 1` on an hourly bot used to wait out the hour after its pass."""
    config = world.root / "hourly.yaml"
    config.write_text("bot_id: hourly\nsymbols: [SPY]\nengine: {check_interval: 1h}\n")
    ran = world.run(f"botwarden run {config} --ticks 1", timeout=60)
    assert ran.returncode == 0, ran.stderr


def test_links_stay_inside_the_repository() -> None:
    """docs/architecture.md once pointed at a design file outside the repository."""
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        assert "../shared/" not in text, path
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if target.startswith(("http://", "https://")):
                continue
            linked = (path.parent / target).resolve()
            assert linked.is_relative_to(REPO) and linked.exists(), f"{path}: {target}"
