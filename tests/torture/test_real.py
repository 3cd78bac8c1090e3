"""`botwarden torture --real`: the exchange and the bot as real processes, on Alpaca and
on Binance USD-M in turn, the bot killed with SIGKILL (by the harness and at armed crash
points), frozen with SIGSTOP, doubled by a second copy (at times with the first's lock
file removed), its state lost (damaged while it is down, deleted while it runs), its
disk full (a tmpfs, as root), the venue's clock skewed; every promise checked on the
files both leave."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")
pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")

from botwarden.torture.disks import why_no_tmpfs
from botwarden.torture.real import run_real_campaign


def test_real_trials_keep_every_promise() -> None:
    summary = run_real_campaign(range(12), jobs=4)
    problems = [
        (t.number, t.venue, t.draws, t.error, [v.explain() for v in t.violations])
        for t in summary.failures
    ]
    assert problems == []
    assert summary.trials == 12
    assert summary.venues == {"alpaca": 6, "binanceusdm": 6}, "each venue in turn"
    assert summary.counts["kills"] >= 12 - summary.counts["deleted_running"]
    assert summary.counts["orders"] > 12 and summary.counts["fills"] > 0, "and it traded"
    tormented = ("freezes", "second_instances", "at_points")
    assert sum(summary.counts[what] for what in tormented) > 0
    lost = ("deleted_running", "lost_emptied", "lost_truncated", "lost_garbage", "lost_deleted")
    assert sum(summary.counts[what] for what in lost) > 0 and summary.counts["rebuilds"] > 0
    assert summary.counts["clock_skews"] > 0, "drawn before anything else: trials 1, 3, ..."
    if summary.without_disk is None:
        assert summary.counts["full_disks"] > 0, "trials 3 and 10 draw it"
    else:  # not root: allowed, but never under CI
        assert not summary.disk_required, f"no full disk: {summary.without_disk}"


def test_trials_beside_a_long_past_keep_every_promise_and_the_past() -> None:
    """Each bot starts beside 2,000 records of its own past (closed round trips under an
    old instance, on the exchange and in its state) and is put through its trial as
    any other: every promise holds over the past too, and the past is there at the end
    as it was written. Trial 1 loses its state twice: the rebuild from the venue must
    find the past's fills, trades and trading days again."""
    summary = run_real_campaign(range(2), jobs=2, history=2000)
    problems = [
        (t.number, t.venue, t.draws, t.error, [v.explain() for v in t.violations])
        for t in summary.failures
    ]
    assert problems == []
    assert summary.counts["past_kept"] == 2
    assert summary.counts["rebuilds"] > 0, "trial 1 deletes its state while down"
    assert summary.counts["kills"] >= 2 and summary.counts["orders"] > 0
    assert summary.seeding_seconds > 0


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
    assert "...on binanceusdm" in done.stdout and "state deleted while running" in done.stdout
    assert "state's disk full (tmpfs)" in done.stdout and "guard checks" in done.stdout


def test_without_a_tmpfs_the_campaign_says_so_in_one_line_and_runs(tmp_path: Path) -> None:
    """Not allowed to mount (as root: in a user namespace of its own, root's files and
    no right to mount), the trials run without the full disk; under CI that fails."""
    command = [sys.executable, "-m", "botwarden", "torture", "--real", "--trials", "1"]
    if os.geteuid() == 0:
        if (
            shutil.which("unshare") is None
            or subprocess.run(["unshare", "--user", "true"]).returncode
        ):
            pytest.skip("no user namespaces here (unshare --user) to be root without mount")
        command = ["unshare", "--user", *command]
    elif why_no_tmpfs() is None:
        pytest.skip("this user may mount a tmpfs")
    for ci, code in (("false", 0), ("true", 1)):
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "CI": ci, "COLUMNS": "80"},
            timeout=300,
        )
        assert done.returncode == code, done.stdout + done.stderr
        said = [line for line in done.stdout.splitlines() if line.startswith("no full disk:")]
        assert len(said) == 1 and "cannot mount a tmpfs" in said[0], done.stdout
        assert "trials ran without it" in said[0] and "SIGKILLs" in done.stdout
