"""How outputs reach the disk: private temporaries, fsync, atomic writes and installation.

Nothing the library writes appears under its final name before it is complete: files are written
under a temporary name in the destination folder and renamed into place (:func:`install`,
:func:`atomic_write_bytes`), so a failure never leaves partial output behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipelines.artifacts.errors import ArtifactError

TEMP_SUFFIX = ".sovml-tmp"
"""Suffix of the temporary files and folders beside a destination."""


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


def atomic_write_bytes(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``) in one rename, after an fsync."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def refuse_existing(final: Path, overwrite: bool) -> None:
    """Refuse a destination that exists (or is a dangling link) unless ``overwrite``."""
    if (final.exists() or final.is_symlink()) and not overwrite:
        raise ArtifactError("destination exists (use overwrite/--force)", final)


@contextlib.contextmanager
def private_temp_dir(final: Path) -> Iterator[Path]:
    """A private temp folder beside ``final``; removed with its contents unless renamed away."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=final.parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def private_temp_file(final: Path) -> Iterator[Path]:
    """A private (mode 0600) empty temp file beside ``final``; removed unless renamed away."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def install(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename ``tmp`` (file or folder) onto ``final``, replacing it only when allowed."""
    if final.exists() or final.is_symlink():
        refuse_existing(final, overwrite)
        if final.is_dir() != tmp.is_dir():
            # --force replaces like with like; it never swaps a folder for a file or back.
            kind = "folder" if final.is_dir() else "file"
            raise ArtifactError(f"destination is a {kind}; refusing to replace it", final)
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.{secrets.token_hex(4)}.sovml-old")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            fsync_dir(final.parent)
            return
    os.replace(tmp, final)
    fsync_dir(final.parent)


def set_tree_modes(root: Path, mode: int) -> None:
    """Give ``root`` and every folder below it ``mode``."""
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, mode)


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
                raise ArtifactError("not a regular file (device, socket or fifo)", full)
            found.append((full.relative_to(root).as_posix(), full))
    found.sort()
    return found
