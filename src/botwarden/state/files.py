"""File-system steps the file backends share: durable replace, directory sync, moving
a corrupt file aside without ever overwriting anything, telling one backend's file
from another's, and noticing that an open file is no longer the one at its path."""

from __future__ import annotations

import functools
import json
import os
import struct
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from botwarden.errors import WrongBackend

FORMAT_NAMES = {"sqlite": "a SQLite database", "duckdb": "a DuckDB database", "jsonfile": "JSON"}


def file_format(path: Path) -> str | None:
    """The backend whose format the file at `path` is in, told by its first bytes:
    "sqlite", "duckdb" or "jsonfile"; "empty" for no bytes; None for anything else (a
    damaged header, a file that is not state at all, one that cannot be read: the
    backend's own open then says what is wrong with it)."""
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except OSError:
        return None
    if not head:
        return "empty"
    if head.startswith(b"SQLite format 3\0"):
        return "sqlite"
    if head[8:12] == b"DUCK":  # after DuckDB's 8-byte checksum
        return "duckdb"
    if head.lstrip()[:1] == b"{" and _json_document(path):
        return "jsonfile"
    return None


def _json_document(path: Path) -> bool:
    """Does the file hold one JSON object? (A `{` alone is one byte in 256 of garbage:
    garbage is damage, never "another backend's file".)"""
    try:
        with open(path, "rb") as file:
            return isinstance(json.load(file), dict)
    except (OSError, ValueError, RecursionError):
        return False


def refuse_another_format(path: Path, backend: str) -> str | None:
    """The file's format; `WrongBackend` if it is another backend's. Such a file is
    healthy and the config is wrong: called corrupt, it would be moved aside and the
    bot would start again from nothing."""
    found = file_format(path)
    if found in FORMAT_NAMES and found != backend:
        raise WrongBackend(path, found, FORMAT_NAMES[found], backend)
    return found


FileId = tuple[int, int]
"""(st_dev, st_ino): which file a path names. A file deleted or replaced under an open
descriptor keeps its own; the path then names another, or nothing."""


def file_id(path: Path) -> FileId | None:
    """The file at `path` now, or None if there is none."""
    statx = _statx()
    if statx is not None and (found := statx(os.fsencode(path))) is not None:
        return found
    try:  # (and where statx failed: os.stat says why, or that nothing is there)
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


# Why not os.stat on Linux: since 6.13 a stat that reads a file's times makes its next
# write stamp them finely, which dirties and journals the inode. Asked after every
# commit of SQLite's WAL, that cost ~60 µs a commit on ext4 here (a third of a durable
# change); statx asked for the inode number alone reads no times.
_STATX_INO = 0x100
_AT_FDCWD = -100
_STATX_SIZE = 256
_INO_AND_DEV = struct.Struct("=32xQ96xII")
"""stx_ino at byte 32 of `struct statx`, stx_dev_major and stx_dev_minor at 136."""


@functools.cache
def _statx() -> Callable[[bytes], FileId | None] | None:
    """The statx reader (None where it fails), or None where libc has no statx (not
    Linux, an old glibc)."""
    if sys.platform != "linux":
        return None
    import ctypes  # here: only a file backend on Linux needs it

    call = getattr(ctypes.CDLL(None), "statx", None)
    if call is None:
        return None

    def read(path: bytes) -> FileId | None:
        # A buffer per call: ctypes lets go of the GIL in the call, and stores in other
        # threads (the real trials seed theirs side by side) ask at the same time.
        buffer = ctypes.create_string_buffer(_STATX_SIZE)
        if call(_AT_FDCWD, path, 0, _STATX_INO, buffer) != 0:
            return None
        ino, major, minor = _INO_AND_DEV.unpack_from(buffer)
        return (os.makedev(major, minor), ino)

    return read


def fsync_dir(directory: Path) -> None:
    """Make a create, rename or unlink in `directory` itself survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temp file, fsync, rename, fsync the directory.

    A crash at any point leaves either the old file or the new one, whole.
    A write that fails (a full disk) removes its temp file and leaves the old file; a
    failure after the rename (the directory's sync) leaves the new one, reported all the
    same: the caller cannot count it as durable.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def quarantine(path: Path, companions: tuple[str, ...] = ()) -> Path:
    """Move a corrupt file (and companions such as `-wal`) to `<name>.corrupt-<UTC time>`.

    `os.link` + `unlink` instead of `rename`: link refuses to replace an existing file,
    so an earlier quarantined copy can never be overwritten.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        suffix = f".corrupt-{stamp}" + (f"-{attempt}" if attempt else "")
        target = path.with_name(path.name + suffix)
        try:
            os.link(path, target)
        except FileExistsError:
            continue
        os.unlink(path)
        for companion in companions:
            extra = path.with_name(path.name + companion)
            if extra.exists():
                os.link(extra, target.with_name(target.name + companion))
                os.unlink(extra)
        fsync_dir(path.parent)
        return target
    raise FileExistsError(f"no free name to move {path} aside")
