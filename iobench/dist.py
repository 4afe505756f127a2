"""The MPI world (mpi4py) or a one-process world with the same interface.

Under `mpirun` every rank runs the same command; work is split by rank, every phase starts
after a barrier, and rank 0 gathers each rank's phases (bytes, ops, histogram, timeline,
wall-clock start and end) and writes one Result: aggregate throughput = total bytes /
(last end - first start), per-rank min/median/max, first done vs last done, percentiles
from the merged histogram. An error on any rank is reported by every rank at the next
collective, naming the rank, so nobody hangs.

Faults (see docs/interruption.md): every collective is polled (an `Ibarrier` first), so a
rank waiting for the others still sees signals, a peer's fault notice and a deadline
(IOBENCH_MPI_TIMEOUT seconds, default 1800). A rank that is interrupted or fails outside a
collective sends a fault notice to every other rank; a watchdog thread on each rank turns
the notice into a `PeerFault` in its main thread, so every rank stops and rank 0 writes a
failed result naming the rank; rank 0 then aborts the world (`MPI_Abort`), so nothing waits
in `MPI_Finalize` for a rank that left.
"""

from __future__ import annotations

import _thread
import os
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from iobench import interrupt
from iobench.errors import RunFailed, ToolMissing
from iobench.results import make_phase
from iobench.stats import Histogram, Timeline

T = TypeVar("T")

# Variables that launchers set in every rank's environment.
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")
_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
FAULT_TAG = 7301  # point-to-point tag of fault notices
PEER_TAG = 7302  # point-to-point tag of the ranks' check-in (gather_peers)
COLL_TAG = 7303  # point-to-point tag of the polled gather/bcast
WATCH_POLL_S = 0.1


def collective_timeout_s() -> float:
    v = os.environ.get("IOBENCH_MPI_TIMEOUT", "")
    try:
        return max(1.0, float(v)) if v else 1800.0
    except ValueError:
        return 1800.0


class RankFailed(RunFailed):
    """A rank failed, and every rank learnt it at the same collective (nobody is stuck)."""


def launched_size() -> int | None:
    """World size an MPI launcher announced in the environment, or None."""
    for var in _SIZE_VARS[:3]:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    if any(v in os.environ for v in _RANK_VARS):
        return 1
    return None


class World:
    """A world of one process: what iobench is without mpirun."""

    rank = 0
    size = 1
    mpi = False

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def barrier(self, what: str = "a barrier") -> None:
        return None

    def gather(self, obj: T) -> list[T] | None:
        return [obj]

    def allgather(self, obj: T) -> list[T]:
        return [obj]

    def bcast(self, obj: T) -> T:
        return obj

    def hostname(self) -> str:
        return socket.gethostname()

    # --- faults (no-ops in a world of one) ---
    peers: list[tuple[str, int]] = []  # (host, pid) of every rank, once execute gathered them
    missing: list[int] = []  # ranks rank 0 is still waiting for in `gather_peers`

    def gather_peers(self) -> None:
        """Every rank checks in with its (host, pid): the first collective of a run, after
        its provisional result exists (rank 0 then knows whom to name if one dies)."""
        self.peers = [(str(h), int(p)) for h, p in self.allgather((self.hostname(),
                                                                     os.getpid()))]

    def fault(self) -> tuple[int, str, str] | None:
        """(rank, host, what happened) of the first peer fault noticed, or None."""
        return None

    def notify_fault(self, what: str) -> None:
        return None

    def abort(self, code: int) -> None:
        return None

    def wait_to_be_aborted(self, timeout_s: float) -> None:
        return None


class MPIWorld(World):
    mpi = True

    def __init__(self) -> None:
        from mpi4py import MPI

        self._MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.peers = []
        self.missing = []
        self._fault: tuple[int, str, str] | None = None
        self._notified = False
        self._threaded = MPI.Query_thread() >= MPI.THREAD_MULTIPLE
        if self.size > 1:
            interrupt.set_fault_source(self._peer_fault)
            if self._threaded:
                threading.Thread(target=self._watch, name="iobench-mpi-watchdog",
                                 daemon=True).start()

    # --- fault notices ---
    def _probe(self) -> bool:
        """Receive a pending fault notice, if any; True when one arrived."""
        st = self._MPI.Status()
        if not self.comm.Iprobe(source=self._MPI.ANY_SOURCE, tag=FAULT_TAG, status=st):
            return False
        msg = self.comm.recv(source=st.Get_source(), tag=FAULT_TAG)
        if self._fault is None:
            self._fault = tuple(msg)
        return True

    def _watch(self) -> None:
        # a watchdog: a peer's notice interrupts this rank wherever its main thread is
        while True:
            try:
                if self._probe():
                    _thread.interrupt_main(signal.SIGTERM)
                    return
            except Exception:  # noqa: BLE001 - MPI finalized: the process is exiting
                return
            time.sleep(WATCH_POLL_S)

    def _peer_fault(self) -> KeyboardInterrupt | None:
        if self._fault is None:
            return None
        r, host, what = self._fault
        return interrupt.PeerFault(f"rank {r} ({host}) {what}")

    def fault(self) -> tuple[int, str, str] | None:
        if self._fault is None and not self._threaded:
            self._probe()
        return self._fault

    def _check(self, what: str, deadline: float) -> None:
        if interrupt.pending() is not None:  # start-up: no rank waits for a dead one
            raise interrupt.take()  # type: ignore[misc]
        if self.fault() is not None:
            raise self._peer_fault()  # type: ignore[misc]
        if time.monotonic() > deadline:
            if self.missing and not self.peers:  # the check-in: rank 0 knows who is absent
                names = ", ".join(f"rank {r}" for r in self.missing)
                raise RunFailed(f"{names} never checked in: rank {self.rank} "
                                f"({self.hostname()}) waited {collective_timeout_s():.0f} s "
                                f"for {what} (hung or dead during start-up; see "
                                "IOBENCH_MPI_TIMEOUT)")
            raise RunFailed(f"rank {self.rank} ({self.hostname()}) waited "
                            f"{collective_timeout_s():.0f} s for the other ranks in {what}; "
                            "a rank is stuck (see IOBENCH_MPI_TIMEOUT)")

    def _wait(self, req: Any, what: str) -> None:
        """Poll a non-blocking request: signals, peer faults and the deadline still act."""
        deadline = time.monotonic() + collective_timeout_s()
        spin_until = time.monotonic() + 0.002
        pause = 0.0001
        while not req.Test():
            self._check(what, deadline)
            if time.monotonic() < spin_until:
                time.sleep(0)
            else:
                time.sleep(pause)
                pause = min(0.01, pause * 2)

    def notify_fault(self, what: str) -> None:
        """Tell every other rank that this one stopped (once); bounded, never blocks."""
        if self._notified or self.size == 1:
            return
        self._notified = True
        msg = (self.rank, self.hostname(), what)
        reqs = []
        for dest in range(self.size):
            if dest != self.rank:
                try:
                    reqs.append(self.comm.isend(msg, dest=dest, tag=FAULT_TAG))
                except Exception:  # noqa: BLE001 - best effort
                    pass
        deadline = time.monotonic() + 2.0
        with interrupt.shield():
            while reqs and time.monotonic() < deadline:
                reqs = [r for r in reqs if not r.Test()]
                time.sleep(0.001)
            interrupt.take()

    def abort(self, code: int) -> None:
        """End every rank now (rank 0, once the result is written)."""
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def wait_to_be_aborted(self, timeout_s: float) -> None:
        """A rank other than 0 after a fault: rank 0 writes the result, then aborts the
        world; if it never does (it died), abort after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with interrupt.shield():
            while time.monotonic() < deadline:
                time.sleep(0.05)
            interrupt.take()
        self.abort(EXIT_INTERRUPTED_OR_FAILED)

    def gather_peers(self) -> None:
        """Point to point, so rank 0 knows which ranks never checked in (`missing`) when
        it is stopped while waiting: a rank killed during start-up is still named."""
        me = (self.hostname(), os.getpid())
        what = "the start of the run (every rank checking in)"
        if self.rank == 0:
            reqs = {r: self.comm.irecv(source=r, tag=PEER_TAG) for r in range(1, self.size)}
            got: dict[int, tuple[str, int]] = {0: me}
            self.missing = sorted(reqs)
            deadline = time.monotonic() + collective_timeout_s()
            pause = 0.0001
            while reqs:
                for r, req in list(reqs.items()):
                    done, msg = req.test()
                    if done and msg is not None:
                        got[r] = (str(msg[0]), int(msg[1]))
                        del reqs[r]
                self.missing = sorted(reqs)
                if reqs:
                    self._check(what, deadline)
                    time.sleep(pause)
                    pause = min(0.01, pause * 2)
            self.peers = [got[r] for r in range(self.size)]
            self.bcast(self.peers)
        else:
            self._wait(self.comm.isend(me, dest=0, tag=PEER_TAG), what)
            peers: list[tuple[str, int]] = self.bcast([])
            self.peers = [(str(h), int(p)) for h, p in peers]

    # --- collectives, all polled ---
    def barrier(self, what: str = "a barrier") -> None:
        self._wait(self.comm.Ibarrier(), what)

    # gather/bcast are point to point and polled, never a blocking MPI collective: after a
    # barrier a peer may be interrupted before it joins a blocking gather, which no signal
    # or fault notice could then end on this rank (the issue 11 checkpoint race)
    def _poll(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + collective_timeout_s()
        pause = 0.0001
        while not done():
            self._check(what, deadline)
            time.sleep(pause)
            pause = min(0.01, pause * 2)

    def _recv(self, source: int, what: str) -> Any:
        self._poll(lambda: bool(self.comm.Iprobe(source=source, tag=COLL_TAG)), what)
        return self.comm.recv(source=source, tag=COLL_TAG)  # already there: returns at once

    def _send_all(self, obj: Any, dests: Sequence[int], what: str) -> None:
        reqs = [self.comm.isend(obj, dest=d, tag=COLL_TAG) for d in dests]

        def done() -> bool:
            reqs[:] = [r for r in reqs if not r.Test()]
            return not reqs

        self._poll(done, what)

    def gather(self, obj: T) -> list[T] | None:
        if self.rank == 0:
            return [obj, *(self._recv(r, "a gather") for r in range(1, self.size))]
        self._send_all(obj, [0], "a gather")
        return None

    def allgather(self, obj: T) -> list[T]:
        return self.bcast(self.gather(obj))  # type: ignore[arg-type]

    def bcast(self, obj: T) -> T:
        if self.rank == 0:
            self._send_all(obj, range(1, self.size), "a broadcast")
            return obj
        return self._recv(0, "a broadcast")


EXIT_INTERRUPTED_OR_FAILED = 1


def leave_after_interrupt(code: int) -> None:
    """An interruption outside a run (start-up, before the provisional result): under MPI
    tell the other ranks and end the world, so nobody waits for this rank."""
    w = _WORLD
    if w is None or w.size == 1:
        return
    w.notify_fault("was interrupted during start-up (nothing was measured)")
    w.abort(code)


def dead_peers(w: World) -> list[int]:
    """Ranks on this host whose process is gone (killed or crashed)."""
    if not w.peers:
        return []
    here = w.hostname()
    dead = []
    for r, (host, pid) in enumerate(w.peers):
        if r == w.rank or host != here:
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            dead.append(r)
            continue
        if state in ("Z", "X"):
            dead.append(r)
    return dead


_WORLD: World | None = None


def world() -> World:
    """The process's world: MPI when launched by mpirun (and mpi4py is there), else one."""
    global _WORLD
    if _WORLD is None:
        n = launched_size()
        if n is None or os.environ.get("IOBENCH_NO_MPI"):
            _WORLD = World()
        else:
            try:
                _WORLD = MPIWorld()
            except ImportError:
                raise ToolMissing(
                    f"launched under mpirun ({n} ranks) but mpi4py is not installed; "
                    "install it with: pip install 'iobench[mpi]' (needs an MPI library, e.g. "
                    "apt-get install libopenmpi-dev)"
                ) from None
    return _WORLD


def set_world(w: World | None) -> None:
    """For tests: force a world (None = detect again)."""
    global _WORLD
    _WORLD = w


def split(n: int, w: World | None = None) -> range:
    """The indices of n work items that this rank owns (contiguous blocks, deterministic)."""
    w = w or world()
    base, extra = divmod(n, w.size)
    start = w.rank * base + min(w.rank, extra)
    return range(start, start + base + (1 if w.rank < extra else 0))


def collective(fn: Callable[[], T], w: World | None = None, what: str = "phase") -> list[T]:
    """Run fn() on every rank and allgather the outcomes.

    If any rank raised, every rank raises RunFailed naming the first failing rank, its
    host and its error, so the others stop at the next collective instead of hanging.
    KeyboardInterrupt is not caught: mpirun delivers it to every rank.
    """
    w = w or world()
    try:
        out: tuple[str, Any] = ("ok", fn())
    except (RunFailed, OSError, ValueError, RuntimeError) as e:
        msg = e.format_message() if isinstance(e, RunFailed) else f"{type(e).__name__}: {e}"
        out = ("error", msg)
        if w.size == 1:
            raise
    except Exception as e:  # noqa: BLE001 - other ranks must learn of it
        out = ("error", f"{type(e).__name__}: {e}")
        if w.size == 1:
            raise
    outcomes = w.allgather(out)
    for rank, (state, value) in enumerate(outcomes):
        if state == "error":
            host = w.hostname() if rank == w.rank else "its host"
            raise RankFailed(f"rank {rank} ({host}) failed in {what}: {value}")
    return [v for _, v in outcomes]


def stamp(phase: dict[str, Any], start_wall_ns: int, end_wall_ns: int) -> dict[str, Any]:
    """Record a phase's wall-clock start and end (for merging across ranks and hosts)."""
    phase["start_wall_ns"] = int(start_wall_ns)
    phase["end_wall_ns"] = int(end_wall_ns)
    return phase


def wall_from_mono(mono_ns: int) -> int:
    """Convert a monotonic timestamp taken in this process into wall-clock ns."""
    return time.time_ns() - (time.monotonic_ns() - mono_ns)


def merge_phases(per_rank: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge each rank's phases (same names, same order) into one set of phases.

    Aggregate throughput = total bytes / (last end - first start); percentiles from the
    merged histogram; per-rank min/median/max GB/s and first/last done in `metrics`.
    """
    if len(per_rank) == 1:
        return list(per_rank[0])
    merged: list[dict[str, Any]] = []
    for i, first in enumerate(per_rank[0]):
        group = [ph[i] for ph in per_rank]
        names = {p["name"] for p in group}
        if len(names) != 1:
            raise RunFailed(f"ranks ran different phases at position {i}: {sorted(names)}")
        stamped = all("start_wall_ns" in p and "end_wall_ns" in p for p in group)
        starts: list[int] = [int(p.get("start_wall_ns", 0)) for p in group]
        ends: list[int] = [int(p.get("end_wall_ns", 0)) for p in group]
        nbytes = sum(p["bytes"] for p in group)
        ops = sum(p["ops"] for p in group)
        t0: int | None = None
        t1: int | None = None
        if stamped:
            t0, t1 = min(starts), max(ends)
            seconds = (t1 - t0) / 1e9
            done = sorted((e - t0) / 1e9 for e in ends)
        else:  # phases that were not stamped: the slowest rank's duration
            seconds = max(p["seconds"] for p in group)
            done = sorted(p["seconds"] for p in group)
        hists = [Histogram.from_dict(p["histogram"]) for p in group if p.get("histogram")]
        hist = Histogram.merged(hists) if hists else None
        tl = None
        if all(p.get("timeline") for p in group) and t0 is not None:
            interval_ns = int(first["timeline"]["interval_s"] * 1e9)
            tl = Timeline(start_ns=t0, interval_ns=interval_ns)
            for p, s in zip(group, starts, strict=True):
                other = Timeline(start_ns=s, interval_ns=interval_ns,
                                 bins=list(p["timeline"]["bytes"]))
                tl.merge(other)
        rank_rates = [p["bytes_per_s"] / 1e9 for p in group]
        metrics = dict(first.get("metrics") or {})
        metrics.update({
            "ranks": len(group),
            "rank_gb_per_s_min": min(rank_rates),
            "rank_gb_per_s_median": statistics.median(rank_rates),
            "rank_gb_per_s_max": max(rank_rates),
            "first_done_s": done[0],
            "last_done_s": done[-1],
        })
        out = make_phase(first["name"], nbytes=nbytes, seconds=seconds, ops=ops, latency=hist,
                         timeline=tl, engine=first.get("engine", "native"),
                         direction=first.get("direction", "read"), metrics=metrics)
        if t0 is not None and t1 is not None:
            stamp(out, t0, t1)
        merged.append(out)
    return merged


def combine(run_phase: Callable[[], list[dict[str, Any]]], w: World | None = None,
            what: str = "phase") -> list[dict[str, Any]]:
    """Barrier, run this rank's part of a phase, then merge every rank's phases.

    Returns the merged phases on every rank (so every rank can compute the same summary).
    """
    w = w or world()
    w.barrier()
    per_rank = collective(run_phase, w, what)
    return merge_phases(per_rank)


def _root_then_others(fn: Callable[[], T], w: World, share: bool) -> T:
    """Run fn on rank 0, then tell the others how it went (and its value when `share`).

    Bad input on rank 0 is raised there and reported once; the other ranks exit with the
    same code silently. Without `share` the other ranks then run fn themselves.
    """
    from iobench.errors import IobenchError, ReportedByRoot

    if w.is_root:
        try:
            value = fn()
        except IobenchError as e:
            w.bcast(("error", e.exit_code))
            e.told_ranks = True  # type: ignore[attr-defined]  # no fault notice needed
            raise
        w.bcast(("ok", value if share else None))
        return value
    msg: tuple[str, Any] = w.bcast(("ok", None))
    if msg[0] == "error":
        raise ReportedByRoot(int(msg[1]))
    return msg[1] if share else fn()


def root_first(fn: Callable[[], T], w: World | None = None) -> T:
    """Rank 0 runs fn first (e.g. creating and marking the target), then the others do,
    so a user sees bad input once, not once per rank."""
    w = w or world()
    return fn() if w.size == 1 else _root_then_others(fn, w, share=False)


def root_first_value(fn: Callable[[], T], w: World | None = None) -> T:
    """Rank 0 computes a value (e.g. a plan from a manifest) and every rank receives it."""
    w = w or world()
    return fn() if w.size == 1 else _root_then_others(fn, w, share=True)
