"""`botwarden new-strategy NAME`, as a user runs it (a real subprocess): a strategy whose
own tests pass under pytest, a bot that runs it at once, a refusal in one line for a
bad name or a file that exists, and then nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import promises_hold


def command(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def botwarden(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return command("-m", "botwarden", *args, cwd=cwd)


def files_in(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def one_line_refusal(done: subprocess.CompletedProcess[str], *said: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("botwarden: error: new-strategy: "), lines
    for words in said:
        assert words in lines[0], lines[0]


async def test_a_new_strategy_passes_its_own_tests_and_its_bot_runs_at_once(
    tmp_path: Path, botwarden_home: Path
) -> None:
    made = botwarden("new-strategy", "mean_reversion", "--dir", "project", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "project"
    assert sorted(files_in(project)) == [
        "mean_reversion.yaml", "strategies/mean_reversion.py", "tests/test_mean_reversion.py",
    ]  # fmt: skip
    for path in files_in(project):
        assert f"wrote project/{path}" in made.stdout, made.stdout
    assert "pytest project/tests/test_mean_reversion.py" in made.stdout
    assert "botwarden run project/mean_reversion.yaml --ticks 5" in made.stdout
    config = project / "mean_reversion.yaml"
    assert "path: strategies/mean_reversion.py:MeanReversion" in config.read_text()

    # pytest from another folder: the tests find their strategy from their own file
    tested = command("-m", "pytest", "-q", "-p", "no:cacheprovider", str(project), cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "5 passed" in tested.stdout, tested.stdout

    ran = botwarden("run", str(config), "--ticks", "3", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    await promises_hold(config)  # it really ran: its state, its exchange, every promise


def test_the_tests_it_writes_fail_when_the_strategy_stops_doing_what_they_say(
    tmp_path: Path,
) -> None:
    assert botwarden("new-strategy", "rsi", cwd=tmp_path).returncode == 0
    strategy = tmp_path / "strategies" / "rsi.py"
    text = strategy.read_text()
    assert "level < self.buy_below" in text
    strategy.write_text(text.replace("level < self.buy_below", "level < self.buy_below - 5"))
    tested = command("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=tmp_path)
    assert tested.returncode == 1, tested.stdout + tested.stderr
    assert " failed" in tested.stdout, tested.stdout
    assert "test_it_buys_the_dip_and_sells_the_bounce" in tested.stdout


def test_the_files_it_writes_are_clean_python(tmp_path: Path) -> None:
    """ruff's defaults, as a user's project has them: no lint, formatted."""
    assert botwarden("new-strategy", "rsi", cwd=tmp_path).returncode == 0
    checked = command("-m", "ruff", "check", "--isolated", ".", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = command("-m", "ruff", "format", "--isolated", "--check", ".", cwd=tmp_path)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


@pytest.mark.parametrize("existing", ["strategies/rsi.py", "tests/test_rsi.py"])
def test_an_existing_file_is_never_overwritten_and_nothing_is_written(
    tmp_path: Path, existing: str
) -> None:
    (tmp_path / existing).parent.mkdir(parents=True)
    (tmp_path / existing).write_text("mine\n")
    done = botwarden("new-strategy", "rsi", cwd=tmp_path)
    one_line_refusal(done, f"{existing} exists", "nothing was written")
    assert files_in(tmp_path) == {existing: b"mine\n"}


def test_an_existing_config_is_kept_and_said_so(tmp_path: Path) -> None:
    (tmp_path / "rsi.yaml").write_text("bot_id: mine\n")
    done = botwarden("new-strategy", "rsi", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rsi.yaml").read_text() == "bot_id: mine\n"
    assert sorted(files_in(tmp_path)) == ["rsi.yaml", "strategies/rsi.py", "tests/test_rsi.py"]
    assert "kept  rsi.yaml" in done.stdout and "strategies/rsi.py:Rsi" in done.stdout
    assert "botwarden run" not in done.stdout, "not a bot that runs this strategy"


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("my-rsi", "'my-rsi' is not a strategy name: use letters, digits and underscores"),
        ("2fast", "'2fast' is not a strategy name"),
        ("rsi.py", "(rsi_py)"),
        ("class", "'class' is a Python keyword"),
        ("json", "'json' is the name of a module Python already has"),
        ("signal", "'signal' is the name of a module"),
        ("position", "makes a class Position"),
        ("a" * 33, "32 at most"),
    ],
)
def test_a_bad_name_is_refused_in_one_line(tmp_path: Path, name: str, said: str) -> None:
    done = botwarden("new-strategy", name, "--dir", "project", cwd=tmp_path)
    one_line_refusal(done, said)
    assert not (tmp_path / "project").exists()
