"""`botwarden strategies`, as a user runs it (a real subprocess): botwarden's own, a real
installed package's entry points, the classes in the project's strategies/*.py, each
with where it comes from and how a config names it; what cannot be imported with its
one-line problem; and nothing written, not even a bytecode cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from botwarden.strategies.loading import load_strategy
from botwarden.strategies.settings import StrategySettings

RSI = '''
"""Helpers, and one strategy."""

from botwarden import Signal
from helpers import LEVEL


class Rsi:
    """Buys below a level.

    More words, not shown."""

    name = "rsi"
    bars_needed = 2

    def decide(self, symbol, bars, position):
        return None if position else Signal.long(symbol, bars[-1], f"below {LEVEL}")


class Unrelated:
    pass
'''

PACKAGE = '''
class Momentum:
    """Rides what rises."""

    name = "momentum"
    bars_needed = 3

    def decide(self, symbol, bars, position):
        return None
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder: strategy files (one good, one broken, a helper, a private one)
    and, in site/, an installed distribution registering two entry points."""
    folder = tmp_path / "project"
    files = {
        "strategies/rsi.py": RSI,
        "strategies/helpers.py": "LEVEL = 30\n",
        "strategies/broken.py": "x = 1\ny = undefined_name\n",
        "strategies/_private.py": "raise SystemExit('imported!')\n",
        "../site/momentum_pack.py": PACKAGE,
        "../site/momentum_pack-1.2.dist-info/METADATA": "Name: momentum-pack\nVersion: 1.2\n",
        "../site/momentum_pack-1.2.dist-info/entry_points.txt": (
            "[botwarden.strategies]\nmomentum = momentum_pack:Momentum\n"
            "missing = no_such_pack.mod:Thing\n"
        ),
    }
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def strategies(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": path}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # Python as a user has it: caches are written
    return subprocess.run(
        [sys.executable, "-m", "botwarden", "strategies", *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=cwd,
    )  # fmt: skip


def listed(project: Path, *args: str, cwd: Path | None = None) -> dict[str, dict]:
    done = strategies("--json", *args, cwd=cwd or project, site=project.parent / "site")
    assert done.returncode == 0, done.stderr
    return {entry["name"]: entry for entry in json.loads(done.stdout)}


def test_every_strategy_is_listed_with_where_it_comes_from_and_how_a_config_names_it(
    project: Path,
) -> None:
    found = listed(project)
    assert found["golden_cross"] == {
        "name": "golden_cross", "kind": "builtin", "from": "botwarden",
        "config": {"name": "golden_cross"},
        "summary": "Buys when the fast SMA crosses above the slow one, exits when it crosses"
        " below.",
        "problem": None,
    }  # fmt: skip
    assert found["coin_flip"]["kind"] == "builtin" and found["coin_flip"]["summary"]
    assert found["momentum"] == {
        "name": "momentum", "kind": "entry point", "from": "momentum-pack 1.2",
        "config": {"name": "momentum"}, "summary": "Rides what rises.", "problem": None,
    }  # fmt: skip
    assert found["Rsi"] == {
        "name": "Rsi", "kind": "file", "from": str((project / "strategies/rsi.py").resolve()),
        "config": {"path": "strategies/rsi.py:Rsi"}, "summary": "Buys below a level.",
        "problem": None,
    }  # fmt: skip
    assert "Unrelated" not in found and "strategies/_private.py" not in found


def test_what_cannot_be_used_is_listed_with_its_one_line_problem(project: Path) -> None:
    found = listed(project)
    assert found["missing"]["kind"] == "entry point"
    assert found["missing"]["problem"] == (
        "no_such_pack.mod:Thing: cannot import: ModuleNotFoundError: No module named 'no_such_pack'"
    )
    assert found["strategies/broken.py"]["problem"] == (
        "cannot import: NameError: name 'undefined_name' is not defined (broken.py:2 in <module>)"
    )
    assert found["strategies/helpers.py"]["problem"] == (
        "defines no strategy class (a class with a decide method)"
    )


def test_the_table_shows_the_same(project: Path) -> None:
    done = strategies(cwd=project, site=project.parent / "site")
    assert done.returncode == 0, done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    assert "builtin: botwarden" in rows["golden_cross"]
    assert "entry point: momentum-pack 1.2" in rows["momentum"]
    assert "file: strategies/rsi.py" in rows["Rsi"] and "path: strategies/rsi.py:Rsi" in rows["Rsi"]
    assert "Buys below a level." in rows["Rsi"]
    assert "NameError: name 'undefined_name' is not defined" in rows["strategies/broken.py"]
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.usefixtures("forget_imports")
def test_each_strategy_listed_is_what_a_config_naming_it_loads(project: Path) -> None:
    sys.path.insert(0, str(project.parent / "site"))
    for entry in listed(project).values():
        if entry["problem"] is None:
            strategy = load_strategy(StrategySettings.model_validate(entry["config"]), project)
            assert (strategy.origin.kind, strategy.origin.where) == (entry["kind"], entry["from"])


def test_another_folder_is_listed_with_dir(project: Path, tmp_path: Path) -> None:
    found = listed(project, "--dir", str(project), cwd=tmp_path)
    assert found["Rsi"]["config"] == {"path": "strategies/rsi.py:Rsi"}


def test_a_folder_without_strategies_lists_what_is_installed_and_says_how_to_start(
    project: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = strategies("--dir", str(empty), cwd=tmp_path, site=project.parent / "site")
    assert done.returncode == 0, done.stderr
    assert "golden_cross" in done.stdout and "momentum" in done.stdout
    assert "no strategies/ folder in" in done.stdout and "botwarden new-strategy" in done.stdout


def test_listing_writes_nothing_not_even_a_bytecode_cache(project: Path) -> None:
    def tree() -> Iterator[tuple[str, int, bytes]]:
        for path in sorted(project.parent.rglob("*")):
            if path.is_file():
                yield (
                    str(path.relative_to(project.parent)),
                    path.stat().st_mtime_ns,
                    path.read_bytes(),
                )

    before = list(tree())
    listed(project)
    strategies(cwd=project, site=project.parent / "site")
    assert list(tree()) == before
    assert not list(project.parent.rglob("__pycache__"))


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    done = strategies("--dir", str(tmp_path / "nope"), cwd=tmp_path, site=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"botwarden: error: strategies: --dir {tmp_path / 'nope'}: no such folder"
    )
