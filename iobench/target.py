"""The target directory: marker file, ownership of what iobench creates, the run lock.

iobench writes only inside a target it has marked with `.iobench`. The marker records
every top-level entry iobench created there with its identity (type, device, inode), so
`iobench clean` removes exactly those and nothing a user put beside them (or swapped in
for them). Every path below the target is opened through `iobench.safepath`. One run at
a time holds the target's lock (`.iobench.lock`, flock) for as long as the command runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iobench import safepath
from iobench.errors import TargetError
from iobench.units import format_bytes

MARKER = ".iobench"
LOCK = ".iobench.lock"
OWNER = ".iobench-owner"  # a random token in each top-level directory iobench creates
OWN_FILES = (MARKER, LOCK)
MARKER_VERSION = 2
_FORBIDDEN = ("/proc", "/sys", "/dev")
# the operating system's own directories: never a target, even with --force
_SYSTEM = ("/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def _refuse_special(path: Path) -> None:
    if path.exists():
        mode = path.stat().st_mode
        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
            raise TargetError(
                f"--target {path}: is a {'block' if stat.S_ISBLK(mode) else 'character'} "
                "device; iobench never writes raw devices: make a filesystem, mount it and "
                "give a directory on it"
            )
        if not path.is_dir():
            raise TargetError(f"--target {path}: exists and is not a directory; give a directory")
    resolved = path.resolve()
    if resolved == Path("/"):
        raise TargetError(f"--target {path}: is the root directory; give a directory of "
                          "its own on the filesystem you want to measure, e.g. /mnt/nvme/ib")
    for root in _SYSTEM:
        if resolved == Path(root) or str(resolved).startswith(root + "/"):
            raise TargetError(
                f"--target {path}: is under {root}, the operating system's own files; "
                "iobench never writes there (not even with --force): give a directory on "
                "the storage you want to measure")
    for root in _FORBIDDEN:
        if resolved == Path(root) or str(resolved).startswith(root + "/"):
            raise TargetError(
                f"--target {path}: is under {root}, which is not storage; "
                "point --target at a directory on the filesystem you want to measure"
            )


def _corrupt(root: Path, why: str) -> TargetError:
    return TargetError(
        f"--target {root}: the {MARKER} marker is corrupt ({why}); iobench writes and "
        f"deletes nothing on its word: check the directory and remove {MARKER} by hand")


def parse_marker(text: str, root: Path) -> dict[str, Any]:
    """The marker's content, validated: every entry a plain name with an identity."""
    if not text.strip():
        return {"iobench": MARKER_VERSION, "created": []}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise _corrupt(root, f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise _corrupt(root, f"top level is {type(data).__name__}, not an object")
    created = data.get("created", [])
    if not isinstance(created, list):
        raise _corrupt(root, f"'created' is {type(created).__name__}, not a list")
    for entry in created:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not safepath.is_name(name) or name in OWN_FILES:
            raise _corrupt(root, f"entry {name!r} is not a plain name inside the target")
        if isinstance(entry, dict):
            if entry.get("type") not in ("dir", "file"):
                raise _corrupt(root, f"entry {name!r} has type {entry.get('type')!r}")
            for k in ("dev", "ino"):
                v = entry.get(k)
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise _corrupt(root, f"entry {name!r} has {k} {v!r}")
    return data


def _record(data: dict[str, Any], name: str) -> dict[str, Any] | str | None:
    for e in data["created"]:
        if (e["name"] if isinstance(e, dict) else e) == name:
            return e
    return None


def _token(root: Path, name: str) -> str | None:
    """The owner token inside root/name (a directory iobench created), never via a link."""
    try:
        dfd = os.open(root / name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = os.open(OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            return os.read(fd, 128).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
    except OSError:
        return None
    finally:
        os.close(dfd)


def _proven(rec: dict[str, Any] | str, st: os.stat_result, root: Path) -> bool:
    """The entry on disk is the one iobench recorded: same type and inode, on the same
    device (or on the target's own device: NFS clients number devices differently), and
    for a directory the random token iobench left in it (an inode number can be reused by
    a directory made after iobench's was removed)."""
    if not isinstance(rec, dict):
        return False  # a marker from before identities were recorded: not proof
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "?"
    if not (kind == rec["type"] and st.st_ino == rec["ino"]
            and st.st_dev in (rec["dev"], root.stat().st_dev)):
        return False
    return kind != "dir" or (rec.get("token") is not None
                             and _token(root, rec["name"]) == rec["token"])


class Target:
    """A prepared, marked target directory."""

    def __init__(self, root: Path) -> None:
        self.root = safepath.normal_root(root)
        self.marker = self.root / MARKER
        safepath.register_root(self.root)

    # -- ownership -----------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        try:
            fd = safepath.open_write(self.marker, os.O_RDWR)
        except FileNotFoundError:
            raise TargetError(f"--target {self.root}: its {MARKER} marker disappeared; "
                              "another process cleaned it: run again") from None
        with os.fdopen(fd, "r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            raw = f.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _corrupt(self.root, "not UTF-8 text") from None
            data = parse_marker(text, self.root)
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                data["iobench"] = MARKER_VERSION
                f.seek(0)
                f.truncate()
                f.write(json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())

    def _own_top(self, top: str) -> Path:
        """Create (or re-open) the top-level directory `top`, recorded with its identity."""
        safepath.check_name(top, "target entry")
        p = self.root / top
        with self._locked() as data:
            rec = _record(data, top)
            try:
                st: os.stat_result | None = os.lstat(p)
            except FileNotFoundError:
                st = None
            if rec is not None and st is not None and not _proven(rec, st, self.root):
                raise TargetError(
                    f"--target {self.root}: {top!r} is not the entry iobench created there "
                    "(it was replaced, is a link, or the marker predates identity records); "
                    "move it away or choose another --target")
            if rec is None and st is not None:
                raise TargetError(
                    f"--target {self.root}: {top!r} exists and was not created by iobench; "
                    "move it away or choose another --target")
            if st is None:
                with contextlib.suppress(FileExistsError):
                    p.mkdir(0o755)
                st = os.lstat(p)
                if not stat.S_ISDIR(st.st_mode):
                    raise TargetError(f"--target {self.root}: {top!r} appeared as a non-"
                                      "directory while iobench created it; run again")
                data["created"] = [e for e in data["created"]
                                   if (e["name"] if isinstance(e, dict) else e) != top]
                token = secrets.token_hex(16)
                safepath.write_file(p / OWNER, token + "\n")
                data["created"].append({"name": top, "type": "dir", "dev": st.st_dev,
                                        "ino": st.st_ino, "token": token})
        return p

    def claim(self, relpath: str) -> Path:
        """Return root/relpath, its top-level directory created and recorded as iobench's.

        Refuses an existing entry iobench did not create (or cannot prove it created):
        iobench never writes to or deletes a file it did not make.
        """
        parts = relpath.split("/")
        for c in parts:
            safepath.check_name(c, f"path {relpath!r}")
        self._own_top(parts[0])
        return self.root.joinpath(*parts)

    def subdir(self, relpath: str) -> Path:
        """root/relpath as a directory: created below an owned top, no link on the way."""
        p = self.claim(relpath)
        return safepath.makedirs(p)

    def info(self) -> dict:
        with self._locked() as data:
            return dict(data)

    # -- space ---------------------------------------------------------------------
    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def check_space(self, need_bytes: int, what: str = "this run") -> None:
        """Fail before writing when the filesystem cannot hold `need_bytes` more."""
        free = self.free_bytes()
        if need_bytes > free:
            raise TargetError(
                f"--target {self.root}: {what} needs {format_bytes(need_bytes)} "
                f"({need_bytes} bytes) but only {format_bytes(free)} ({free} bytes) are free; "
                "free space or use smaller sizes"
            )


# --- the run lock --------------------------------------------------------------------
_HELD: dict[tuple[int, int], list[int]] = {}  # (dev, ino) of a target root -> [fd, depth]


def _wait_requested() -> bool:
    import click

    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get("iobench.wait"))


def acquire_lock(t: Target, wait: bool | None = None) -> None:
    """Hold the target's run lock until the current command ends (re-entrant: a suite's
    steps run inside the suite's hold). Another holder -> one line naming its pid."""
    rst = t.root.stat()
    key = (rst.st_dev, rst.st_ino)
    held = _HELD.get(key)
    if held is None:
        fd = safepath.open_write(t.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "?"
                if not (_wait_requested() if wait is None else wait):
                    raise TargetError(
                        f"--target {t.root}: in use by another iobench run ({other}); "
                        "wait for it to finish, pass --wait, or use another --target"
                    ) from None
                print(f"waiting for the other iobench run on {t.root} ({other})",
                      file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            me = f"pid {os.getpid()} on {socket.gethostname()} since " \
                 f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        held = _HELD[key] = [fd, 0]
    held[1] += 1
    mark = len(_STACK)
    _STACK.append(key)
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # a command: released when it ends (a library call: `locked`)
        ctx.call_on_close(lambda: release_to(mark))


_STACK: list[tuple[int, int]] = []  # lock holds in the order taken


def lock_mark() -> int:
    """How many lock holds exist now; `release_to(mark)` lets go of the later ones."""
    return len(_STACK)


def release_to(mark: int) -> None:
    while len(_STACK) > mark:
        release_lock(_STACK.pop())


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Every target lock taken inside is released on leaving (a library caller's run)."""
    mark = lock_mark()
    safepath._ACTIVE[0] += 1
    try:
        yield
    finally:
        safepath._ACTIVE[0] -= 1
        release_to(mark)


def release_lock(key: tuple[int, int]) -> None:
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.ftruncate(held[0], 0)
        os.close(held[0])


def _expand(path: str | Path) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError:  # ~user of no such user
        raise TargetError(f"--target {path}: no such user's home directory; give the "
                          "path itself") from None


def _os_error(p: Path, e: OSError) -> TargetError:
    why = e.strerror or str(e)
    if e.errno == errno.ENAMETOOLONG:
        why += ": a component is over the filesystem's name limit"
    return TargetError(f"--target {p}: {why}; check the path and permissions")


def prepare(path: str | Path, force: bool = False, create: bool = True,
            lock: bool = True, wait: bool | None = None) -> Target:
    """Validate and mark a target directory (created if missing); take its run lock
    (on MPI rank 0 only: the other ranks work inside rank 0's hold)."""
    p = safepath.normal_root(_expand(path))
    try:
        t = _prepare(p, force, create)
    except OSError as e:
        raise _os_error(p, e) from None
    if lock:
        from iobench import dist

        if dist.world().is_root:
            acquire_lock(t, wait)
    return t


def _prepare(p: Path, force: bool, create: bool) -> Target:
    _refuse_special(p)
    if not p.exists():
        if not create:
            raise TargetError(f"--target {p}: does not exist; run a command that creates it")
        try:
            p.mkdir(parents=True)
            created = True
        except FileExistsError:  # another rank or process made it a moment ago
            created = False
            _refuse_special(p)
        except OSError as e:
            raise TargetError(f"--target {p}: cannot create it ({e.strerror}); check the path "
                              "and permissions") from None
    else:
        created = False
    marker = p / MARKER
    if not os.access(p, os.W_OK | os.X_OK):
        raise TargetError(f"--target {p}: is not writable by this user; fix its permissions "
                          "or choose another directory")
    if not os.path.lexists(marker):
        entries = [e for e in os.listdir(p) if e not in OWN_FILES]
        if entries and not force:
            raise TargetError(
                f"--target {p}: is not empty and has no {MARKER} marker "
                f"({len(entries)} entries); use an empty directory or pass --force"
            )
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"iobench": MARKER_VERSION, "created": [], "created_dir": created}, f)
        except FileExistsError:
            pass
        except OSError as e:
            raise TargetError(f"--target {p}: cannot write the marker ({e.strerror})") from None
    t = Target(p)
    with t._locked():  # the marker is a regular file of ours, with a valid shape
        pass
    return t


def open_existing(path: str | Path) -> Target:
    """A target iobench has already marked (for clean, reports, reads)."""
    p = safepath.normal_root(_expand(path))
    try:
        _refuse_special(p)
        if not p.is_dir():
            raise TargetError(f"--target {p}: is not a directory")
        if not os.path.lexists(p / MARKER):
            raise TargetError(
                f"--target {p}: has no {MARKER} marker, so iobench did not create it; "
                "refusing to touch it"
            )
        t = Target(p)
        with t._locked():
            pass
    except OSError as e:
        raise _os_error(p, e) from None
    return t


def clean(path: str | Path) -> tuple[list[str], list[str]]:
    """Remove what iobench provably created in the target. Returns (removed, kept).

    An entry is removed only when the marker names it and the entry on disk has the
    type, device and inode recorded when iobench created it; removal walks descriptors
    and never follows a link. Everything else is kept (and listed)."""
    t = open_existing(path)
    acquire_lock(t, wait=False)
    info = t.info()  # validated: a corrupt marker stops here, nothing deleted
    removed: list[str] = []
    kept: list[str] = []
    root_fd = os.open(t.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rec in info.get("created", []):
            name = rec["name"] if isinstance(rec, dict) else rec
            try:
                st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not _proven(rec, st, t.root):
                kept.append(f"{name} (not provably iobench's)")
                continue
            if stat.S_ISDIR(st.st_mode):
                safepath.rmtree_at(root_fd, name)
            else:
                os.unlink(name, dir_fd=root_fd)
            removed.append(name)
        foreign = sorted(e for e in os.listdir(root_fd)
                         if e not in OWN_FILES and e not in removed
                         and not any(k.startswith(e + " (") for k in kept))
        kept = foreign + kept
        os.unlink(MARKER, dir_fd=root_fd)
        os.unlink(LOCK, dir_fd=root_fd)
    finally:
        os.close(root_fd)
    if not kept and info.get("created_dir"):
        with contextlib.suppress(OSError):
            t.root.rmdir()
    return removed, kept

