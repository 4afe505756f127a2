"""The target directory: marker file, ownership of what iobench creates, safety checks.

iobench writes only inside a target it has marked with `.iobench`. The marker records
every top-level entry iobench created there, so `iobench clean` removes exactly those and
nothing a user put beside them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from iobench.errors import TargetError, UsageError
from iobench.units import format_bytes

MARKER = ".iobench"
_FORBIDDEN = ("/proc", "/sys", "/dev")


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
    for root in _FORBIDDEN:
        if resolved == Path(root) or str(resolved).startswith(root + "/"):
            raise TargetError(
                f"--target {path}: is under {root}, which is not storage; "
                "point --target at a directory on the filesystem you want to measure"
            )


class Target:
    """A prepared, marked target directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = root / MARKER

    # -- ownership -----------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        with open(self.marker, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            text = f.read()
            data = json.loads(text) if text.strip() else {"iobench": 1, "created": []}
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                f.seek(0)
                f.truncate()
                f.write(json.dumps(data, indent=1, sort_keys=True))
                f.flush()
                os.fsync(f.fileno())

    def owned(self) -> list[str]:
        with self._locked() as data:
            return list(data["created"])

    def claim(self, relpath: str) -> Path:
        """Return root/relpath (a top-level entry), recording it as iobench's own.

        Refuses an existing entry iobench did not create: iobench never writes to or
        deletes a file it did not make.
        """
        top = Path(relpath).parts[0]
        with self._locked() as data:
            p = self.root / top
            if top not in data["created"]:
                if p.exists() or p.is_symlink():
                    raise TargetError(
                        f"--target {self.root}: {top!r} exists and was not created by iobench; "
                        "move it away or choose another --target"
                    )
                data["created"].append(top)
        return self.root / relpath

    def subdir(self, relpath: str) -> Path:
        p = self.claim(relpath)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def info(self) -> dict:
        with self._locked() as data:
            return dict(data)

    def set_info(self, key: str, value: object) -> None:
        with self._locked() as data:
            data[key] = value

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


def prepare(path: str | Path, force: bool = False, create: bool = True) -> Target:
    """Validate and mark a target directory (created if missing)."""
    p = Path(path).expanduser()
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
    if not marker.exists():
        entries = [e for e in os.listdir(p) if e != MARKER]
        if entries and not force:
            raise TargetError(
                f"--target {p}: is not empty and has no {MARKER} marker "
                f"({len(entries)} entries); use an empty directory or pass --force"
            )
        try:
            with open(marker, "x", encoding="utf-8") as f:
                json.dump({"iobench": 1, "created": [], "created_dir": created}, f)
        except FileExistsError:
            pass
        except OSError as e:
            raise TargetError(f"--target {p}: cannot write the marker ({e.strerror})") from None
    return Target(p)


def open_existing(path: str | Path) -> Target:
    """A target iobench has already marked (for clean, reports, reads)."""
    p = Path(path).expanduser()
    _refuse_special(p)
    if not p.is_dir():
        raise TargetError(f"--target {p}: is not a directory")
    if not (p / MARKER).exists():
        raise TargetError(
            f"--target {p}: has no {MARKER} marker, so iobench did not create it; "
            "refusing to touch it"
        )
    return Target(p)


def clean(path: str | Path) -> tuple[list[str], list[str]]:
    """Remove what iobench created in the target. Returns (removed, kept_foreign)."""
    t = open_existing(path)
    info = t.info()
    removed: list[str] = []
    for top in info.get("created", []):
        p = t.root / top
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        else:
            continue
        removed.append(top)
    foreign = sorted(e for e in os.listdir(t.root) if e != MARKER and e not in info["created"])
    t.marker.unlink()
    if not foreign and info.get("created_dir"):
        with contextlib.suppress(OSError):
            t.root.rmdir()
    return removed, foreign


def ensure_not_file(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path}: is a file; give a directory")
