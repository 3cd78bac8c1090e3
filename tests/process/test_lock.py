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

from botwarden.process.lock import AlreadyRunning, InstanceLock, LockLost, holder


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


def hold_in_another_process(path: Path, code: str) -> subprocess.Popen[str]:
    """A process that runs `code` (with `path` as `path`), says "held", and waits."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; path = {str(path)!r}\n{code}\nprint('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def deleted(path: Path) -> None:
    path.unlink()


def replaced(path: Path) -> None:
    path.with_name("new").write_text("{}")
    path.with_name("new").replace(path)


@pytest.mark.parametrize("lose", [deleted, replaced], ids=lambda f: f.__name__)
def test_a_second_start_is_refused_when_the_lock_file_was_deleted_or_replaced(
    tmp_path: Path, lose
) -> None:
    """The holder keeps its flock on a file no path names; a new file at the path
    used to let a second instance start (the store's epoch fenced the first one out)."""
    path = tmp_path / "golden.lock"
    holder = hold_in_another_process(
        path,
        "from botwarden.process.lock import InstanceLock\nInstanceLock(path, 'golden').acquire()",
    )
    try:
        lose(path)
        with pytest.raises(
            AlreadyRunning, match=rf"bot golden is already running \(pid {holder.pid} "
        ):
            InstanceLock(path, "golden").acquire()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with InstanceLock(path, "golden") as again:  # its holder gone: free
        assert again.held


def test_the_holder_puts_its_deleted_lock_file_back(tmp_path: Path) -> None:
    """So that `status` and `stop`, which find a bot by its lock file, find it again."""
    path = tmp_path / "golden.lock"
    with InstanceLock(path, "golden") as lock:
        assert lock.verify() is False, "nothing to do while the file is in place"
        path.unlink()
        assert holder(path) is None

        assert lock.verify() is True
        assert holder(path) == os.getpid()
        assert lock.verify() is False
        with pytest.raises(AlreadyRunning, match=rf"\(pid {os.getpid()} on "):
            InstanceLock(path, "golden").acquire()
    assert holder(path) is None, "released"


def test_a_holder_whose_lock_file_another_process_locked_is_told_it_lost_the_lock(
    tmp_path: Path,
) -> None:
    """Another process locked a new file at the path (from another PID namespace, say,
    where this one's lock cannot be seen): this instance must stop trading."""
    path = tmp_path / "golden.lock"
    with InstanceLock(path, "golden") as lock:
        path.unlink()
        other = hold_in_another_process(
            path,
            "import fcntl, os\nfd = os.open(path, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)",
        )
        try:
            with pytest.raises(LockLost, match=rf"{path}.*pid {other.pid}"):
                lock.verify()
        finally:
            other.kill()
            other.wait(timeout=10)


def test_a_refused_second_start_holding_the_new_file_a_moment_does_not_stop_the_holder(
    tmp_path: Path,
) -> None:
    """Found by the real campaign: a second start locks the new file at the path, finds
    the running instance and lets go; the holder's check in that moment took it for
    another instance that took over, and stopped trading."""
    path = tmp_path / "golden.lock"
    with InstanceLock(path, "golden") as lock:
        path.unlink()
        brief = hold_in_another_process(
            path,
            "import fcntl, os, threading\nfd = os.open(path, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "threading.Timer(0.3, lambda: fcntl.flock(fd, fcntl.LOCK_UN)).start()",
        )
        try:
            assert lock.verify() is True, "locked again once the refused start let go"
            assert holder(path) == os.getpid()
        finally:
            brief.kill()
            brief.wait(timeout=10)
