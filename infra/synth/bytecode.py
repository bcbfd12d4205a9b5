"""Bytecode Python would trust although its source changed: found and removed before a synth.

Python runs ``__pycache__/<module>.cpython-311.pyc`` instead of the source whenever the source's
modification time (whole seconds) and size equal what the ``.pyc`` header recorded: the file-date
check the fingerprint exists to avoid. A source whose content changed but whose date was kept (an
edit with the date restored, ``rsync -a``, ``cp -p``, ``tar``) at the same size would run as its
old code while the fingerprint hashed the new content, so the record would be judged fresh and be
wrong. ``stale_bytecode`` finds such files by compiling the source and comparing code objects
(comments and blank lines aside, equal code means equal behaviour); ``discard_stale_bytecode``
removes them so the import system compiles the source.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

_HEADER = 16
"""Bytes before the marshalled code: magic, flags, then mtime and size (or the source hash)."""
_CHECKED_HASH = 0b11
"""Header flags of a hash-based ``.pyc`` that Python validates against the source itself."""


def _cached(source: Path) -> Path | None:
    """Where Python keeps the bytecode of ``source`` (None when it keeps none)."""
    try:
        return Path(importlib.util.cache_from_source(str(source)))
    except (NotImplementedError, ValueError):
        return None


def _is_stale(source: Path, data: bytes) -> bool:
    """True when Python would run ``data`` for ``source`` but it was compiled from other code."""
    if len(data) < _HEADER or data[:4] != importlib.util.MAGIC_NUMBER:
        return False  # Python ignores it and compiles the source
    flags, mtime, size = struct.unpack("<III", data[4:_HEADER])
    if flags & _CHECKED_HASH == _CHECKED_HASH:
        return False  # Python compares the source's hash itself
    if flags == 0:
        st = source.stat()
        if (mtime, size) != (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF):
            return False  # the date or size differs: Python compiles the source
    text = source.read_bytes()
    key = (str(source), hashlib.sha256(data).digest(), hashlib.sha256(text).digest())
    verdict = _VERDICTS.get(key)
    if verdict is None:
        try:
            old = marshal.loads(data[_HEADER:])
            new = compile(text, str(source), "exec", dont_inherit=True)
            verdict = old != new
        except (ValueError, EOFError, TypeError, SyntaxError):
            verdict = True
        _VERDICTS[key] = verdict
    return verdict


_VERDICTS: dict[tuple[str, bytes, bytes], bool] = {}
"""Whether a ``.pyc`` holds other code than its source, by (source path, SHA-256 of the
``.pyc``, SHA-256 of the source). The verdict is a function of those two contents and the path
(the code's file name) alone, so a process that synthesizes stack after stack compiles each of
the program's 210 sources once instead of before every synth (about 0.08 s of CPU a synth); an
edited source or a rewritten ``.pyc`` is a new key and is compiled again."""


def stale_bytecode(sources: Iterable[Path]) -> list[Path]:
    """Sources whose bytecode Python would run although it was compiled from other content."""
    out = []
    for source in sorted(set(sources)):
        cached = _cached(source)
        try:
            data = cached.read_bytes() if cached else b""
        except OSError:
            continue
        if data and _is_stale(source, data):
            out.append(source)
    return out


def discard_stale_bytecode(sources: Iterable[Path]) -> list[Path]:
    """Remove stale bytecode of ``sources``; return those whose module this process already runs.

    A module imported before its stale ``.pyc`` was removed keeps running its old code in this
    process, so a synth that depends on it must be run again in a new one.
    """
    stale = stale_bytecode(sources)
    for source in stale:
        cached = _cached(source)
        if cached:
            cached.unlink(missing_ok=True)
    if not stale:
        return []
    loaded = {
        f for m in list(sys.modules.values()) if isinstance(f := getattr(m, "__file__", None), str)
    }
    return [s for s in stale if str(s) in loaded or os.path.realpath(s) in loaded]
