"""What the kernel says of a process: is this PID still the process we launched, and
what is left of its process group. Read from /proc (Linux).

A PID is reused once its process is gone, so a PID alone proves nothing: a process is
named by its PID together with the kernel's record of when that PID's process started
(`/proc/PID/stat`, field 22, in clock ticks since boot) and the boot it started in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: int
    """Clock ticks after boot at which the process started (0 where /proc is absent)."""
    boot: str


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and
    parentheses itself): [state, ppid, pgrp, ...]; None if there is no such process."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def identify(pid: int) -> ProcessId | None:
    """The process holding `pid` now, or None if none does (or only its zombie)."""
    fields = _stat_fields(pid)
    if fields is None:
        if PROC.is_dir():
            return None
        try:  # no /proc (not Linux): the PID alone is all there is
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ProcessId(pid, 0, "")
    if fields[0] == "Z":
        return None  # dead, waiting to be reaped by its parent
    return ProcessId(pid, int(fields[19]), _boot_id())


def group_members(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (zombies do not count)."""
    if not PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def uptime(process: ProcessId) -> float | None:
    """Seconds since `process` started (None where /proc cannot tell)."""
    try:
        since_boot = float((PROC / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(max(0.0, since_boot - process.started / os.sysconf("SC_CLK_TCK")), 2)
