"""One live instance per bot on a host: an exclusive `flock` held for the process's life.

The kernel releases a flock when its process dies, however it dies (SIGKILL, a power
cut releases everything), so a lock can never be left stale, unlike a PID file alone.
The file also holds the owner's PID and start time, read only to name the holder in
the message a second instance exits with. Who holds the lock is asked of the kernel
(`holder`), never of that file.

A flock belongs to a file, not to its path: a lock file deleted or replaced while its
holder runs leaves the holder locking a file no path names, and a new file at the path
would let a second instance start. So a start refuses while any process of this user
holds a lock on a file that was at the path (the kernel shows it as "<path> (deleted)"
in /proc/PID/fd), and the holder calls `verify` on every tick, which puts the file back
(locked, with its owner written) or says the lock was lost.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from botwarden.errors import BotwardenError
from botwarden.process.procs import PROC

if TYPE_CHECKING:
    from botwarden.config import BotConfig


class AlreadyRunning(BotwardenError):
    """Another process holds the bot's lock."""


RELOCK_TRIES, RELOCK_PAUSE = 20, 0.05
"""How long `verify` waits for a refused second start to let go of a new lock file."""


class LockLost(BotwardenError):
    """The instance's lock file was deleted or replaced, and another process holds the
    lock on the file now at its path: this instance must stop trading."""


class InstanceLock:
    def __init__(self, path: Path, bot_id: str) -> None:
        self.path = Path(path)
        self.bot_id = bot_id
        self._fd: int | None = None
        self._owner = b""

    def acquire(self) -> None:
        """Take the lock at once, or raise `AlreadyRunning` naming the holder (or
        `BotwardenError` if the lock file cannot be made: a folder the bot may not
        write, a read-only disk)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = _lock_file_at(self.path)
        except BlockingIOError:
            self._refuse(_owner_of(self.path) or _pid_only(holder(self.path)))
        except OSError as error:
            raise BotwardenError(
                f"{self.path}: cannot make the bot's lock file ({error.strerror}): the bot"
                f" must be able to write in {self.path.parent}, beside its state"
            ) from None
        pid, lost_file = _holder_of_lost_file(self.path)
        if pid is not None:
            os.close(fd)
            self._refuse(
                _owner_of(lost_file) or _pid_only(pid), ", its lock file deleted or replaced"
            )
        self._owner = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": datetime.now(UTC).isoformat(),
            }
        ).encode()
        self._fd = fd
        self._write_owner()

    def _refuse(self, holder: str, why: str = "") -> NoReturn:
        raise AlreadyRunning(
            f"bot {self.bot_id} is already running{holder}{why}; stop it first (lock {self.path})"
        ) from None

    def _write_owner(self) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, self._owner, 0)

    def verify(self) -> bool:
        """Check, on every tick, that the lock file at the path is still the one held.
        If it was deleted or replaced, lock the file now at the path (made if missing)
        and write the owner in it, so that `status`, `stop` and a second start find this
        instance again; True if it had to. `LockLost` if another process holds that file.
        """
        if self._fd is None:
            raise RuntimeError(f"lock {self.path} is not held")
        if _names(self.path, self._fd):
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A second start takes the new file for a moment before it finds this instance
        # and is refused: it lets go within milliseconds, so look again for a second.
        for _ in range(RELOCK_TRIES):
            try:
                fd = _lock_file_at(self.path)
                break
            except BlockingIOError:
                time.sleep(RELOCK_PAUSE)
        else:
            raise LockLost(
                f"bot {self.bot_id}: lock file {self.path} was deleted or replaced, and"
                f" {named(holder(self.path) or HIDDEN)} now holds the file there: this"
                " instance must stop trading"
            )
        os.close(self._fd)  # the old file, which no path names
        self._fd = fd
        self._write_owner()
        return True

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


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _lock_file_at(path: Path) -> int:
    """A descriptor holding an exclusive flock on the file `path` names (made if
    missing); `BlockingIOError` if another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        if _names(path, fd):
            return fd
        os.close(fd)  # deleted or replaced between the open and the lock: lock the new one


def _owner_of(path: Path | str | None) -> str:
    """ " (pid 1234 on host, since ...)" from a lock file; "" if it tells nothing (torn,
    empty, gone)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as file:
            owner = json.loads(file.read(4096) or b"{}")
        return f" (pid {owner['pid']} on {owner['host']}, since {owner['started_at']})"
    except (ValueError, KeyError, TypeError, OSError):
        return ""


def _pid_only(pid: int | None) -> str:
    return "" if pid is None else f" ({named(pid)})"


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
    device = _device(stat)
    for pid, locked in _flocks():
        if locked == device:
            return max(HIDDEN, pid)
    return None


def _device(stat: os.stat_result) -> str:
    """A file as /proc/locks names it: major:minor:inode."""
    return f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"


def _flocks() -> Iterator[tuple[int, str]]:
    """(pid, file) of every flock held, from the kernel's table."""
    for line in (PROC / "locks").read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5308597 0 EOF"; "1: -> FLOCK ..." waits
        if len(fields) >= 6 and fields[1] == "FLOCK":
            yield int(fields[4]), fields[5]


def _holder_of_lost_file(path: Path) -> tuple[int | None, str | None]:
    """(pid, its descriptor's /proc path) of a process holding a flock on a file that
    was at `path` and was deleted or replaced since; (None, None) if there is none.

    Only processes this user may look into are seen; another PID namespace is left to
    the holder's own `verify`."""
    if not (PROC / "locks").exists():
        return None, None
    lost = f"{os.path.realpath(path)} (deleted)"
    for pid, locked in set(_flocks()):
        if pid <= HIDDEN:
            continue
        try:
            descriptors = list(os.scandir(PROC / str(pid) / "fd"))
        except OSError:  # gone, or not ours to look at
            continue
        for descriptor in descriptors:
            try:
                if (
                    os.readlink(descriptor.path) == lost
                    and _device(os.stat(descriptor.path)) == locked
                ):
                    return pid, descriptor.path
            except OSError:
                continue
    return None, None


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


FILE_BACKENDS = ("sqlite", "duckdb", "jsonfile")


def runtime_dir(config: BotConfig) -> Path:
    """Where the bot's lock lives: beside its state file (or `state/` beside the config
    for a server backend), so that whoever shares the state shares the lock."""
    from botwarden.state.settings import resolve_path  # (pydantic: not for `stop`)

    backend = config.state.backend
    if backend in FILE_BACKENDS:
        template = getattr(config.state, backend).path
        return resolve_path(template, config.bot_id, config.base_dir).parent
    return config.base_dir / "state"


def lock_path(config: BotConfig) -> Path:
    return runtime_dir(config) / f"{config.bot_id}.lock"
