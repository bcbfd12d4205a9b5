"""How files are read and written: regular inputs only, private locked temporaries, installs.

Inputs (artifacts, manifests, key files) are opened only when they are regular files: the type is
checked with ``stat`` before opening and again on the opened descriptor (``O_NONBLOCK``), so a
FIFO, device or socket is refused instead of blocking forever.

Nothing the library writes appears under its final name before it is complete. Output is written
into a private temporary folder beside the destination (mode 0700, files 0600 while written),
named ``.<destination name>.<pid>.<random>.sovml-tmp`` and locked (``flock``) by its process for
as long as it exists; it is renamed into place at the end and removed on every exit path. A
folder left by a process that was killed with SIGKILL is no longer locked: the next run in the
same folder removes it (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from pipelines.artifacts.errors import ArtifactError
from pipelines.artifacts.signals import signals_blocked

TEMP_SUFFIX = ".sovml-tmp"
"""Suffix of the private temporary folders beside a destination."""
_STAGING_SUFFIX = ".sovml-new"
_STALE = re.compile(r"\..+\.sovml-(?:tmp|old)")
"""Temporaries of this tool, this version's and earlier ones' (which were not locked)."""
STAGING_GRACE_S = 60.0
"""An empty, unlocked staging folder younger than this may be another run's, just created."""


def umask() -> int:
    """The process umask."""
    # Linux exposes the umask without the set-and-restore race of os.umask().
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """Mode of a newly created file: ``0666`` filtered by the umask."""
    return 0o666 & ~umask()


def new_dir_mode() -> int:
    """Mode of a newly created folder: ``0777`` filtered by the umask."""
    return 0o777 & ~umask()


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable, where the platform allows it."""
    # Not every platform/filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------- inputs


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular(path: Path, *, follow: bool = True) -> int:
    """Open a regular file for reading; a FIFO, device, socket or folder is refused, never opened.

    Returns a blocking file descriptor. Raises FileNotFoundError when ``path`` does not exist and
    :class:`ArtifactError` for anything else that is not a readable regular file.
    """
    try:
        st = os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ArtifactError(f"cannot read: {exc.strerror}", path) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else _kind(st.st_mode)
        raise ArtifactError(f"{kind} where a regular file belongs; refusing to read it", path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ArtifactError(f"cannot read: {exc.strerror}", path) from None
    # Checked again on the descriptor: the path may have been swapped since the stat.
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError("not a regular file; refusing to read it", path)
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`open_regular`)."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ArtifactError(f"larger than the {limit}-byte limit", path)
    return data


def list_files(root: Path) -> list[tuple[str, Path]]:
    """Regular files under ``root`` (file symlinks followed), as sorted ``(posix path, path)``."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for d in dirnames:
            if (here / d).is_symlink():
                raise ArtifactError("symlinked folders are not supported; copy them in", here / d)
        for name in filenames:
            full = here / name
            try:
                st = full.stat()
            except OSError as exc:
                raise ArtifactError(f"cannot read: {exc.strerror}", full) from None
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError(f"{_kind(st.st_mode)}; only regular files are encrypted", full)
            found.append((full.relative_to(root).as_posix(), full))
    found.sort()
    return found


# --------------------------------------------------------------------------- temporaries


def _try_lock(fd: int) -> bool:
    """Take an exclusive ``flock`` without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _remove(path: Path) -> None:
    """Remove a file or folder tree (not following links), ignoring what is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporaries in ``folder`` whose process is gone; returns what was removed.

    Only entries named like this tool's temporaries, owned by this user and not symbolic links
    are considered, and a locked one (its process still runs) is left alone. Earlier versions
    did not lock their temporaries: theirs count as stale when unlocked, too.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if entry.name.endswith(_STAGING_SUFFIX):
            _remove_abandoned_staging(path)
            continue
        if not _STALE.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_uid != os.geteuid() or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if _try_lock(fd):
                _remove(path)
                removed.append(path)
        except OSError:
            pass  # no locks on this filesystem: never remove what might be in use
        finally:
            os.close(fd)
    return removed


def _remove_abandoned_staging(path: Path) -> None:
    """An empty staging folder (created, never locked and renamed) of a run killed at once."""
    with contextlib.suppress(OSError):
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode) and time.time() - st.st_mtime > STAGING_GRACE_S:
            path.rmdir()  # only ever empty: nothing is written before it is renamed


@contextlib.contextmanager
def private_temp_dir(beside: Path) -> Iterator[Path]:
    """A private (0700), locked temporary folder next to ``beside``; removed with its contents.

    Stale temporaries of earlier runs in the same folder are removed first. The folder is
    created under a staging name, locked, then renamed: a concurrent run never sees it unlocked.
    """
    parent = beside.parent
    remove_stale_temps(parent)
    base = f".{beside.name[:100]}.{os.getpid()}.{secrets.token_hex(4)}"
    staging, tmp = parent / (base + _STAGING_SUFFIX), parent / (base + TEMP_SUFFIX)
    fd = -1
    try:
        with signals_blocked():
            os.mkdir(staging, 0o700)
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            with contextlib.suppress(OSError):
                # Without lock support the folder is simply never considered stale.
                _try_lock(fd)
            os.rename(staging, tmp)
        yield tmp
    finally:
        with signals_blocked():
            for path in (tmp, staging):
                _remove(path)
            if fd >= 0:
                os.close(fd)


def create_private(path: Path) -> int:
    """Create a new file (mode 0600, never following a link) for writing; returns its descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600)


def install(item: Path, final: Path, scratch: Path, *, replace: bool) -> None:
    """Rename ``item`` (a complete file or folder in a temp folder) onto ``final``.

    With ``replace``, the caller has decided that an existing ``final`` may be replaced (see
    :mod:`pipelines.artifacts.destinations`): a replaced folder is first moved into ``scratch``
    (the operation's temp folder, removed afterwards), and both renames happen with signals held
    back, so an interruption never leaves ``final`` missing. Without ``replace`` nothing that
    appeared at ``final`` meanwhile is overwritten (a file is linked into place, which fails if
    the name is taken).
    """
    with signals_blocked():
        if not replace:
            if final.exists() or final.is_symlink():
                raise ArtifactError("destination appeared while writing; nothing replaced", final)
            if item.is_dir():
                os.rename(item, final)
            else:
                os.link(item, final)
                os.unlink(item)
        else:
            if final.is_dir() and not final.is_symlink():
                os.rename(final, scratch / f"replaced-{secrets.token_hex(4)}")
            os.replace(item, final)
    fsync_dir(final.parent)


def atomic_write_bytes(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``) in one rename, after an fsync."""
    with private_temp_dir(path) as tmp:
        staged = tmp / "data"
        with os.fdopen(create_private(staged), "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(staged, mode)
        os.replace(staged, path)
    fsync_dir(path.parent)


def set_tree_modes(root: Path, mode: int) -> None:
    """Give ``root`` and every folder below it ``mode``."""
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, mode)
