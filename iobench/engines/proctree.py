"""Every process a child started, even the ones that left its process group.

fio's job processes (and what a job's exec_prerun starts) can call setsid(): they leave
fio's process group, so killpg(fio) misses them, and when fio dies they are reparented
away from it and outlive iobench. `Tree` keeps the set of descendants of one child by
(pid, start time) from /proc, refreshed while the child runs; iobench is made a child
subreaper (prctl PR_SET_CHILD_SUBREAPER), so a descendant orphaned between two refreshes is
reparented to iobench instead of init and is still found (its parent is then iobench and
it started after the child). `kill(sig)` signals every one still alive (the start time
guards against a reused pid); `reap()` collects the ones reparented to iobench.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

from iobench.verify import note_own_read  # /proc reads: not data the run moved

PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux >= 3.4)."""
    global _subreaper
    if not _subreaper:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of `pid`, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    note_own_read(len(raw))
    # comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    rest = raw[raw.rfind(b")") + 2:].split()
    try:
        return int(rest[1]), int(rest[19])
    except (IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it now, from /proc/PID/task/TID/children (a snapshot:
    unlike `Tree`, it does not follow processes that have been reparented away)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    text = f.read()
                note_own_read(len(text))
                todo += [int(c) for c in text.split()]
        except OSError:
            continue
    return out


def _table() -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


class Tree:
    """The descendants of child `root` (its own pid included), tracked by start time."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.me = os.getpid()
        st = _stat(root)
        self.root_start = st[1] if st else 0
        self.known: dict[int, int] = {root: self.root_start}  # pid -> start time

    def refresh(self) -> None:
        """Add the descendants alive now: children of a known pid, or orphans reparented
        to this (subreaper) process that started after the root."""
        table = _table()
        grew = True
        while grew:
            grew = False
            for pid, (ppid, start) in table.items():
                if pid in self.known or pid == self.me:
                    continue
                parent_known = ppid in self.known and self.known[ppid] == table.get(
                    ppid, (0, self.known[ppid]))[1]
                orphan_here = _subreaper and ppid == self.me and start >= self.root_start
                if parent_known or orphan_here:
                    self.known[pid] = start
                    grew = True

    def alive(self) -> list[int]:
        out = []
        for pid, start in self.known.items():
            st = _stat(pid)
            if st is not None and st[1] == start and not _zombie(pid):
                out.append(pid)
        return out

    def kill(self, sig: int) -> None:
        """Signal every tracked process still alive (and the root's process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.root, sig)
        for pid in self.alive():  # the ones outside the group, signalled once each
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                if os.getpgid(pid) != self.root:
                    os.kill(pid, sig)

    def reap(self) -> None:
        """Collect the exit status of tracked processes reparented to this process."""
        for pid in list(self.known):
            if pid == self.root:
                continue  # the Popen object reaps the root
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return True
    note_own_read(len(raw))
    rest = raw[raw.rfind(b")") + 2:].split()
    return bool(rest) and rest[0] == b"Z"


__all__ = ["Tree", "become_subreaper", "signal"]
