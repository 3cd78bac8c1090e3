"""One live instance per bot: the lock refuses a second one, naming the first, and is
free again the moment its holder dies, however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botwarden.process.lock import AlreadyRunning, InstanceLock


def test_a_second_instance_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "golden.lock"
    with (
        InstanceLock(path, "golden"),
        pytest.raises(AlreadyRunning, match=rf"bot golden is already running \(pid {os.getpid()} "),
    ):
        InstanceLock(path, "golden").acquire()
    with InstanceLock(path, "golden") as again:  # released: free
        assert again.held


def test_the_lock_is_free_once_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "golden.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from botwarden.process.lock import InstanceLock;"
            f" InstanceLock({str(path)!r}, 'golden').acquire(); print('held', flush=True);"
            " time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(AlreadyRunning, match=rf"pid {holder.pid} "):
        InstanceLock(path, "golden").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            InstanceLock(path, "golden").acquire()
            break
        except AlreadyRunning:
            assert time.monotonic() < deadline, "the kernel did not release the lock"
            time.sleep(0.01)
