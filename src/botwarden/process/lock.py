"""One live instance per bot on a host: an exclusive `flock` held for the process's life.

The kernel releases a flock when its process dies, however it dies (SIGKILL, a power
cut releases everything), so a lock can never be left stale, unlike a PID file alone.
The file also holds the owner's PID and start time, read only to name the holder in
the message a second instance exits with. Who holds the lock is asked of the kernel
(`holder`), never of that file.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from botwarden.errors import BotwardenError
from botwarden.process.procs import PROC


class AlreadyRunning(BotwardenError):
    """Another process holds the bot's lock."""


class InstanceLock:
    def __init__(self, path: Path, bot_id: str) -> None:
        self.path = Path(path)
        self.bot_id = bot_id
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once, or raise `AlreadyRunning` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise AlreadyRunning(
                f"bot {self.bot_id} is already running{holder}; stop it first (lock {self.path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f" (pid {owner['pid']} on {owner['host']}, since {owner['started_at']})"
        except (ValueError, KeyError, OSError):
            return ""

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


HIDDEN = 0
"""What `holder` says of a lock held by a process this one cannot see (another PID
namespace: a container sharing the state's folder). Never a PID to signal."""


def holder(path: Path) -> int | None:
    """The PID of the process holding the lock at `path`, `HIDDEN` if it is held by a
    process not visible from here, or None if it is free.

    Read from the kernel's table of locks (/proc/locks), so that looking never takes
    the lock, not even for a moment (a bot starting at that moment would be refused).
    Where there is no such table, the lock is tried, shared, and let go at once.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    locks = PROC / "locks"
    if not locks.exists():
        return _probe(path)
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in locks.read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5308597 0 EOF"; "1: -> FLOCK ..." waits
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            return max(HIDDEN, int(fields[4]))
    return None


def _probe(path: Path) -> int | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:  # the holder wrote its PID; a torn or empty file tells nothing
            return max(HIDDEN, int(json.loads(os.pread(fd, 4096, 0) or b"{}").get("pid", 0)))
        except (ValueError, TypeError, AttributeError):
            return HIDDEN
    finally:
        os.close(fd)  # closing lets go of a shared lock taken above
    return None


def named(pid: int) -> str:
    """`pid 1234`, or what a hidden holder is."""
    return f"pid {pid}" if pid > HIDDEN else "a process not visible from here"
