"""A real full disk for the real campaign: the bot's state folder on a small tmpfs of
its own, filled by a file written until the kernel refuses another byte (ENOSPC), and
emptied again. Mounting needs root: `why_no_tmpfs` says why it cannot be had."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SIZE = "2m"
"""Room for the state, a WAL at its fullest (the SQLite store checkpoints it at about
400 KiB) and a few damaged state files moved aside: only the filler fills it."""
CHUNK = b"\0" * (1 << 16)


def _mount(where: Path, size: str) -> str | None:
    """Mount a tmpfs at `where`; None, or why it could not be."""
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
    except OSError as error:  # no mount command at all
        return f"cannot mount a tmpfs ({error.strerror})"
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[:1] or [f"exit {done.returncode}"]
        return f"cannot mount a tmpfs ({said[0]})"
    return None


def why_no_tmpfs() -> str | None:
    """None if this process can mount a tmpfs (and unmount it); else why not, in a few
    words for one line."""
    where = Path(tempfile.mkdtemp(prefix="botwarden-mount-"))
    try:
        why = _mount(where, "64k")
        if why is None:
            subprocess.run(["umount", "-l", str(where)], check=False)
        return why
    finally:
        where.rmdir()


class SmallDisk:
    """A tmpfs mounted at `where` for a trial; `fill` leaves no byte free, `make_room`
    frees it again."""

    def __init__(self, where: Path, size: str = SIZE) -> None:
        self.where = where
        self.size = size
        self.filler = where / "filler"
        self.mounted = False

    def mount(self) -> None:
        self.where.mkdir(parents=True, exist_ok=True)
        why = _mount(self.where, self.size)
        if why is not None:
            raise OSError(errno.EPERM, f"{self.where}: {why}")
        self.mounted = True

    def holds(self, path: Path) -> bool:
        """Is `path` (or the folder it would be in) on this disk?"""
        while not path.exists():
            path = path.parent
        return os.stat(path).st_dev == os.stat(self.where).st_dev

    def fill(self) -> int:
        """Write the filler until the disk is full; the bytes it took."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                written += os.write(fd, CHUNK)  # a short write, then ENOSPC
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        return written

    def make_room(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        """Unmount it (lazily: a process still in it lets go later), and put what it
        held in the folder beneath, so that a failed trial's state can still be read."""
        if not self.mounted:
            return
        self.make_room()
        kept = Path(tempfile.mkdtemp(prefix="botwarden-disk-"))
        try:
            try:
                shutil.copytree(self.where, kept, dirs_exist_ok=True)
            finally:
                subprocess.run(["umount", "-l", str(self.where)], check=False)
                self.mounted = False
            shutil.copytree(kept, self.where, dirs_exist_ok=True)
        finally:
            shutil.rmtree(kept, ignore_errors=True)
