"""File-system steps the file backends share: durable replace, directory sync, and
moving a corrupt file aside without ever overwriting anything."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


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
