"""Every path iobench writes or deletes inside a target goes through this module.

The rules, enforced here and nowhere else:

- a name that comes from outside iobench (a YAML `name:`, a manifest entry, a marker
  entry) is one plain path component: letters, digits and `._+-`, not starting with `.`,
  at most 200 characters (`check_name`); anything else is one `error:` line naming the key;
- files are opened relative to a directory descriptor of the target, never through a
  symbolic link: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it,
  else a walk of `O_NOFOLLOW | O_DIRECTORY` opens, one component at a time;
- a file to overwrite that is not a regular file or has other hard links is refused
  (truncation happens only after that check, on the descriptor);
- directories below the target that are symbolic links are refused, never followed;
- deletion walks descriptors (`rmtree_at`, as `shutil.rmtree(dir_fd=...)`: no link followed)
  and only below a target this process prepared.

Targets are registered by `iobench.target.prepare`; a path under none of them is opened
with `O_NOFOLLOW` and the same file checks (library use, helper processes).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iobench.errors import SpecError, TargetError

MAX_NAME = 200
NAME_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._+-]{{0,{MAX_NAME - 1}}}")
NAME_RULE = ("a plain name: letters, digits, '.', '_', '+', '-', not starting with '.', "
             f"no '/', at most {MAX_NAME} characters")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ROOTS: list[tuple[str, ...]] = []  # parts of the absolute roots of prepared targets


def check_name(value: object, key: str) -> str:
    """A name from outside iobench that becomes one path component, or SpecError."""
    if not isinstance(value, str):
        raise SpecError(f"{key}: {value!r} is not a name; give {NAME_RULE}")
    if not NAME_RE.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise SpecError(f"{key}: {shown!r} is not {NAME_RULE}")
    return value


def is_name(value: object) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


# --- targets this process writes in ------------------------------------------------------
def absolute(path: str | os.PathLike[str]) -> Path:
    """The absolute form of `path`, links not resolved (the user may pick a link as the
    target itself; below it nothing is followed) and `..` kept (so it can be refused)."""
    return Path(path).absolute()


def normal_root(path: str | os.PathLike[str]) -> Path:
    """A target root: absolute, `.`/`..` folded (the user typed it; it is not a name)."""
    return Path(os.path.normpath(Path(path).absolute()))


def register_root(root: Path) -> None:
    parts = normal_root(root).parts
    if parts not in _ROOTS:
        _ROOTS.append(parts)


def forget_roots() -> None:
    _ROOTS.clear()


def _split(path: Path) -> tuple[Path, tuple[str, ...]] | None:
    """(root, components below it) for a path under a registered target, else None.

    `..`, `.` and empty components are refused, not normalised away."""
    parts = Path(os.fspath(path)).parts
    best: tuple[str, ...] | None = None
    for root in _ROOTS:
        if parts[:len(root)] == root and (best is None or len(root) > len(best)):
            best = root
    if best is None:
        return None
    rest = parts[len(best):]
    for c in rest:
        if c in ("", ".", "..") or "\0" in c:
            raise TargetError(f"{path}: leaves the target {Path(*best)} ({c!r} component); "
                              "iobench writes only below its target")
    return Path(*best), rest


def _link_error(root: Path, rel: tuple[str, ...], e: OSError) -> TargetError:
    where = Path(root, *rel)
    with contextlib.suppress(OSError):
        if where.is_symlink():
            e = OSError(errno.ELOOP, "link")
    if e.errno in (errno.ELOOP, errno.EXDEV):
        why = "is (or passes through) a symbolic link"
    elif e.errno == errno.ENOTDIR:
        why = "is not a directory"
    else:
        why = e.strerror or str(e)
    return TargetError(f"{where}: {why}; iobench never follows links inside its target "
                       f"{root}: remove it, or choose another --target")


def _walk(root: Path, parts: tuple[str, ...], create: bool) -> int:
    """A descriptor of root/parts..., each component opened O_NOFOLLOW|O_DIRECTORY."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(parts):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _link_error(root, parts[:i + 1], e) from None
                raise
            # swap first, then close: a Ctrl-C raised as the close returns must find
            # `fd` naming the open child, never the closed parent, or the handler below
            # would close that number twice (EBADF, or someone else's new descriptor)
            fd, nfd = nfd, fd
            os.close(nfd)
        return fd
    except BaseException:
        os.close(fd)
        raise


# openat2(2): RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_RESOLVE = 0x08 | 0x04 | 0x02
_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64 (asm-generic)
_openat2_ok: bool | None = None
_syscall: Any = None


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _openat2(dirfd: int, rel: str, flags: int, mode: int) -> int | None:
    """openat2 beneath dirfd, or None where the kernel (or a seccomp filter) lacks it."""
    global _openat2_ok, _syscall
    if _openat2_ok is False:
        return None
    if _syscall is None:
        try:
            _syscall = ctypes.CDLL(None, use_errno=True).syscall
        except (OSError, AttributeError):
            _openat2_ok = False
            return None
    syscall = _syscall
    how = _OpenHow(flags, mode if flags & os.O_CREAT else 0, _RESOLVE)
    fd = syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd),
                 ctypes.c_char_p(os.fsencode(rel)), ctypes.byref(how),
                 ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        _openat2_ok = True
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM) and _openat2_ok is None:
        _openat2_ok = False
        return None
    raise OSError(err, os.strerror(err), rel)


def openat2_available() -> bool:
    """Whether files are opened with openat2 here (for sysinfo and tests)."""
    if _openat2_ok is None:
        with contextlib.suppress(OSError):
            fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
            try:
                got = _openat2(fd, ".", os.O_RDONLY | os.O_DIRECTORY, 0)
                if got is not None:
                    os.close(got)
            finally:
                os.close(fd)
    return bool(_openat2_ok)


def _open_below(root: Path, rel: tuple[str, ...], flags: int, mode: int) -> int:
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = _openat2(dfd, "/".join(rel), flags, mode)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EXDEV):
                raise _link_error(root, rel, e) from None
            raise OSError(e.errno, e.strerror, str(Path(root, *rel))) from None
        if fd is not None:
            return fd
    finally:
        os.close(dfd)
    pfd = _walk(root, rel[:-1], create=False)
    try:
        return os.open(rel[-1], flags, mode, dir_fd=pfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _link_error(root, rel, e) from None
        raise OSError(e.errno, e.strerror, str(Path(root, *rel))) from None
    finally:
        os.close(pfd)


# --- the operations ------------------------------------------------------------------------
def check_file(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise TargetError(f"{path}: is not a regular file; iobench writes only its own files: "
                          "remove it, or choose another --target")
    if st.st_nlink > 1:
        raise TargetError(f"{path}: has {st.st_nlink - 1} other hard link(s), so writing it "
                          "would change a file iobench did not create: remove it, or choose "
                          "another --target")


def open_write(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """Open a file iobench writes (or reads back) in a target: never through a link,
    never a file with other hard links; O_TRUNC applies only after those checks."""
    p = absolute(path)
    trunc = flags & os.O_TRUNC
    flags = (flags & ~os.O_TRUNC) | os.O_NOFOLLOW | os.O_CLOEXEC
    split = _split(p)
    try:
        if split is not None and split[1]:
            fd = _open_below(split[0], split[1], flags, mode)
        else:
            fd = os.open(p, flags, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TargetError(f"{p}: is a symbolic link; iobench never writes through "
                              "links: remove it, or choose another --target") from None
        raise
    try:
        check_file(fd, p)
        if trunc:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_writable(path: str | os.PathLike[str]) -> None:
    """Before another program (fio) writes `path`: its directories are no links and the
    file, if it exists, is a regular file with no other hard links."""
    p = absolute(path)
    split = _split(p)
    if split is not None and split[1]:
        os.close(_walk(split[0], split[1][:-1], create=False))
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise TargetError(f"{p}: is a symbolic link; iobench never writes through links: "
                          "remove it, or choose another --target")
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise TargetError(f"{p}: has {st.st_nlink - 1} other hard link(s); iobench will not "
                          "overwrite it: remove it, or choose another --target")
    if not stat.S_ISREG(st.st_mode):
        raise TargetError(f"{p}: is not a regular file; remove it, or choose another --target")


def makedirs(path: str | os.PathLike[str]) -> Path:
    """Create path (and its parents below the target), refusing links on the way."""
    p = absolute(path)
    split = _split(p)
    if split is None:
        _refuse_outside(p, "create")
        p.mkdir(parents=True, exist_ok=True)
        return p
    os.close(_walk(split[0], split[1], create=True))
    return p


@contextlib.contextmanager
def parent_fd(path: Path) -> Iterator[tuple[int, str]]:
    """(descriptor of path's directory, path's last component), walked from its target."""
    split = _split(path)
    if split is None or not split[1]:
        _refuse_outside(path, "delete")
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        fd = _walk(split[0], split[1][:-1], create=False)
    try:
        yield fd, path.name
    finally:
        os.close(fd)


_ACTIVE = [0]  # runs in progress (target.locked): inside one, nothing outside is touched


def _inside_a_run() -> bool:
    if _ACTIVE[0]:
        return True
    click = sys.modules.get("click")  # a command that has not entered target.locked()
    return click is not None and click.get_current_context(silent=True) is not None


def _refuse_outside(path: Path, what: str) -> None:
    """Inside a run, which has prepared its target, nothing outside it is touched."""
    if _ROOTS and _inside_a_run():
        roots = ", ".join(str(Path(*r)) for r in _ROOTS)
        raise TargetError(f"{path}: is not below the target ({roots}); iobench will not "
                          f"{what} anything outside it")


def remove(path: str | os.PathLike[str], missing_ok: bool = True) -> None:
    """Unlink one file (a link itself, never what it points to)."""
    p = absolute(path)
    try:
        with parent_fd(p) as (fd, name):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise TargetError(f"{p}: is a directory where iobench expects its own file; "
                                  "remove it by hand")
            os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        if not missing_ok:
            raise


def rmtree_at(parent: int, name: str) -> None:
    """Remove the directory `name` in the directory `parent` (descriptors all the way, no
    link followed, no recursion limit): shutil.rmtree(dir_fd=) as on Python 3.11+."""
    stack: list[tuple[int, str, int, list[os.DirEntry[str]]]] = []

    def enter(pfd: int, n: str) -> None:
        dfd = os.open(n, _DIR_FLAGS, dir_fd=pfd)
        with os.scandir(dfd) as it:
            entries = list(it)
        stack.append((pfd, n, dfd, entries))

    enter(parent, name)
    try:
        while stack:
            pfd, n, dfd, entries = stack[-1]
            if entries:
                e = entries.pop()
                if e.is_dir(follow_symlinks=False):
                    enter(dfd, e.name)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.name, dir_fd=dfd)
                continue
            stack.pop()
            os.close(dfd)
            os.rmdir(n, dir_fd=pfd)
    finally:
        for _, _, dfd, _ in stack:
            os.close(dfd)


def rmtree(path: str | os.PathLike[str], missing_ok: bool = True) -> None:
    """Remove a directory tree below a target by descriptors; links inside are unlinked,
    never followed; a link in place of the directory is unlinked itself."""
    p = absolute(path)
    try:
        with parent_fd(p) as (fd, name):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                rmtree_at(fd, name)
            else:
                os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        if not missing_ok:
            raise


def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rename src over dst in one directory of the target (a link at dst is replaced
    itself; what it pointed to is untouched)."""
    s, d = absolute(src), absolute(dst)
    if s.parent != d.parent:
        raise TargetError(f"{s} -> {d}: iobench renames only within one directory")
    with parent_fd(d) as (fd, name):
        os.replace(s.name, name, src_dir_fd=fd, dst_dir_fd=fd)


def write_file(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write a small file atomically (temp name, fsync, rename) in a target directory."""
    p = absolute(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    remove(tmp)
    fd = open_write(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        replace(tmp, p)
    except BaseException:
        remove(tmp)
        raise
