"""What an output may replace: ``--force`` replaces only an earlier output of the same kind.

An existing destination is replaced only when it is recognisably what the command itself would
have produced before, and never when it is, contains or lies inside the input or the key file:

* ``encrypt`` to a folder: an earlier encrypted folder, holding exactly its manifest and the
  ``.enc`` files that manifest lists (nothing else);
* ``encrypt`` to a file: an earlier ``.enc`` file (it starts with this tool's magic), with at most
  its manifest beside it;
* ``decrypt`` to a folder: an earlier plaintext output of this artifact: regular files and
  folders only, and every file one this artifact's file list would write;
* ``decrypt`` to a file: a regular file that is neither a ciphertext nor a manifest of this tool.

Anything else is refused with :class:`UnsafeDestinationError` naming what is in the way.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from enum import Enum
from pathlib import Path

from pipelines.artifacts import fs
from pipelines.artifacts.encoding import shown
from pipelines.artifacts.envelope import (
    CIPHERTEXT_SUFFIX,
    FOLDER_MANIFEST,
    MAGIC,
    MANIFEST_SUFFIX,
    MAX_MANIFEST_BYTES,
    OLD_MAGICS,
)
from pipelines.artifacts.errors import ArtifactError, ManifestError, UnsafeDestinationError
from pipelines.artifacts.manifest import is_manifest, locate

REMEDY = "choose another output path, or remove it yourself if it is really to go"
"""How to proceed after a refusal (the tool never deletes what it cannot recognise)."""


class Output(Enum):
    """What a command writes."""

    CIPHERTEXT_FOLDER = "an encrypted folder"
    CIPHERTEXT_FILE = "an encrypted file"
    PLAINTEXT_FOLDER = "a decrypted folder"
    PLAINTEXT_FILE = "a decrypted file"

    @property
    def is_folder(self) -> bool:
        """Whether the output is a folder."""
        return self in (Output.CIPHERTEXT_FOLDER, Output.PLAINTEXT_FOLDER)


def _overlaps(dest: Path, protected: Path) -> str | None:
    """How ``dest`` and a protected path overlap (same file, one inside the other), or None."""
    with contextlib.suppress(OSError):
        if dest.exists() and protected.exists() and os.path.samefile(dest, protected):
            return "is"
    d, p = dest.resolve(), protected.resolve()
    if d == p:
        return "is"
    if p.is_relative_to(d):
        return "contains"
    if d.is_relative_to(p):
        return "is inside"
    return None


def check_protected(dest: Path, protected: Iterable[tuple[str, Path]]) -> None:
    """Refuse a destination that is, contains or lies inside an input or the key file."""
    for what, path in protected:
        how = _overlaps(dest, path)
        if how is not None:
            raise UnsafeDestinationError(
                f"the output {how} {what} {path}; refusing to write there; {REMEDY}", dest
            )


def _first_unexpected(root: Path, allowed: set[str]) -> str | None:
    """The first entry under ``root`` that is not a plain folder or an allowed file, or None."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            full = here / name
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode) or rel not in allowed:
                return rel
    return None


def _starts_with_magic(path: Path) -> bool:
    try:
        fd = fs.open_regular(path, follow=False)
    except (OSError, ArtifactError):
        return False
    with os.fdopen(fd, "rb") as fh:
        return fh.read(len(MAGIC)) in (MAGIC, *OLD_MAGICS)


def _earlier_encrypted_folder(dest: Path) -> str | None:
    """None when ``dest`` holds exactly an encrypted folder; else what is in the way."""
    try:
        located = locate(dest)
    except ManifestError:
        return f"it has no valid {FOLDER_MANIFEST}"
    if located.manifest.kind != "folder":
        return "it is not an encrypted folder"
    allowed = {FOLDER_MANIFEST} | {e.path + CIPHERTEXT_SUFFIX for e in located.manifest.files}
    odd = _first_unexpected(dest, allowed)
    return None if odd is None else f"it holds {shown(odd)}, which its manifest does not list"


def _earlier_encrypted_file(dest: Path) -> str | None:
    if not _starts_with_magic(dest):
        return "it is not an encrypted file of this tool"
    beside = dest.with_name(dest.name + MANIFEST_SUFFIX)
    if (beside.exists() or beside.is_symlink()) and not is_manifest(beside):
        return f"{beside.name} beside it is not a manifest of this tool"
    return None


def _earlier_plaintext_folder(dest: Path, paths: set[str]) -> str | None:
    odd = _first_unexpected(dest, paths)
    return None if odd is None else f"it holds {shown(odd)}, which this artifact does not contain"


def _earlier_plaintext_file(dest: Path) -> str | None:
    if _starts_with_magic(dest) or (
        dest.stat().st_size <= MAX_MANIFEST_BYTES and is_manifest(dest)
    ):
        return "it is an encrypted artifact or manifest of this tool"
    return None


def check_destination(
    dest: Path,
    output: Output,
    *,
    overwrite: bool,
    protected: Iterable[tuple[str, Path]],
    paths: Iterable[str] = (),
) -> None:
    """Refuse to write ``output`` to ``dest`` unless it is new or a replaceable earlier output.

    Args:
        dest: Where the output goes.
        output: What it is.
        overwrite: ``--force``: an existing destination may be replaced when recognised.
        protected: ``(description, path)`` of the inputs and key files, never touched.
        paths: The artifact's relative file paths (decrypt to a folder only).

    Raises:
        UnsafeDestinationError: ``dest`` overlaps a protected path, or exists and is not an
            earlier output of this kind.
        ArtifactError: ``dest`` exists and ``overwrite`` is false.
    """
    protected = list(protected)
    check_protected(dest, protected)
    if not (dest.exists() or dest.is_symlink()):
        return
    if not overwrite:
        raise ArtifactError("destination exists (use --force to replace an earlier output)", dest)
    if dest.is_symlink():
        raise UnsafeDestinationError(
            f"destination is a symbolic link; --force never replaces one; {REMEDY}", dest
        )
    mode = dest.stat().st_mode
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise UnsafeDestinationError(
            "destination is a device, FIFO or socket; --force never replaces one", dest
        )
    if dest.is_dir() != output.is_folder:
        kind = "folder" if dest.is_dir() else "file"
        raise UnsafeDestinationError(
            f"destination is a {kind}; --force replaces only {output.value}; {REMEDY}", dest
        )
    if output is Output.CIPHERTEXT_FOLDER:
        why = _earlier_encrypted_folder(dest)
    elif output is Output.CIPHERTEXT_FILE:
        why = _earlier_encrypted_file(dest)
    elif output is Output.PLAINTEXT_FOLDER:
        why = _earlier_plaintext_folder(dest, set(paths))
    else:
        why = _earlier_plaintext_file(dest)
    if why is not None:
        raise UnsafeDestinationError(
            f"--force replaces only an earlier output ({output.value}), and this is not one: "
            f"{why}; {REMEDY}",
            dest,
        )
