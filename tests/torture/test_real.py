"""`botwarden torture --real`: the exchange and the bot as real processes, the bot
killed with SIGKILL (by the harness and at armed crash points), frozen with SIGSTOP,
doubled by a second copy; every promise checked on the files both leave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")

from botwarden.torture.real import run_real_campaign


def test_real_trials_keep_every_promise() -> None:
    summary = run_real_campaign(range(6), jobs=2)
    problems = [(t.number, t.error, [v.explain() for v in t.violations]) for t in summary.failures]
    assert problems == []
    assert summary.trials == 6
    assert summary.counts["kills"] >= 6, "every trial kills the bot at least once"
    assert summary.counts["orders"] > 6 and summary.counts["fills"] > 0, "and it traded"
    tormented = ("freezes", "second_instances", "at_points")
    assert sum(summary.counts[what] for what in tormented) > 0


def test_the_command_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "botwarden", "torture", "--real", "--trials", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "120"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SIGKILLs" in done.stdout and "trials per minute" in done.stdout
