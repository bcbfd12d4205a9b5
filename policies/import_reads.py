"""The data files each repository module reads while it is imported, for the synth fingerprint.

A module that reads a file in its body (``INVENTORY = load_inventory()`` in
``policies/inventory.py``) reads it once per process, at import. A synth that runs after that
import never opens the file, so the fingerprint's watch of the files a synth opens
(``infra.synth.fingerprint.watch``) cannot see it: every record of the process then omitted
``policies/inventory.toml``, and an edited inventory left them "fresh".

This audit hook is installed by the ``__init__`` of each package a synth is entered through
(``infra``, ``policies``, ``components``) before any of its modules runs, so it sees the import
of every repository module the program loads (``kernels`` and ``pipelines`` are reached through
those, and are left alone because they are copied into workload images). It attributes each
file opened for reading to the innermost repository module whose body the import system is
running at that moment, and the fingerprint lists the reads of every module in a record's
import closure, whenever and by whichever synth that module was imported. Python source and
bytecode are left out (the import closure lists modules itself).
Stdlib only, like the rest of ``policies``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The repository root: only modules and files below it are attributed."""
_SKIP_PARTS = frozenset({"__pycache__", "site-packages", "dist-packages", ".git"})
_CODE_SUFFIXES = (".py", ".pyc")
_IMPORTLIB = "<frozen importlib"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

_KEY = "_sovml_import_reads"
_FIRST = _KEY not in sys.__dict__
# Kept on ``sys``: a re-import of this module (a test dropping it from ``sys.modules``) shares the
# one table the one hook fills, instead of a new empty table no hook writes to.
READS: dict[str, set[str]] = sys.__dict__.setdefault(_KEY, {})
"""Absolute module file -> absolute paths of the repository files its body opened for reading."""


def _ours(path: str) -> bool:
    if not path.startswith(ROOT + os.sep):
        return False
    parts = path[len(ROOT) + 1 :].split(os.sep)
    return not any(p in _SKIP_PARTS or p.startswith(".venv") for p in parts)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "open":
        return
    try:
        path, mode, flags = args
        if isinstance(path, int):
            return
        if mode is not None:
            if any(c in mode for c in "wax+"):
                return
        elif isinstance(flags, int) and flags & _WRITE_FLAGS:
            return
        opened = os.path.abspath(os.fsdecode(path))
        if opened.endswith(_CODE_SUFFIXES) or not _ours(opened):
            return
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if code.co_name == "<module>" and _ours(code.co_filename):
                # Only a body run by the import system: a program run with runpy (the synth's
                # infra/__main__.py) is a <module> frame too, but its reads are the watch's.
                caller = frame.f_back
                if caller is not None and caller.f_code.co_filename.startswith(_IMPORTLIB):
                    READS.setdefault(os.path.abspath(code.co_filename), set()).add(opened)
                return
            frame = frame.f_back
    except Exception:
        return  # an audit hook must never break the program it watches


def reads_of(modules: Iterable[os.PathLike[str] | str]) -> set[str]:
    """Every file the bodies of ``modules`` (module file paths) opened while being imported."""
    out: set[str] = set()
    for module in modules:
        out |= READS.get(os.path.abspath(os.fspath(module)), set())
    return out


if _FIRST:  # once per process: audit hooks cannot be removed
    sys.addaudithook(_hook)
