"""What a synth record depends on, as a digest of contents: the record's ``fingerprint``.

A record is a function of the program's source, the files the program reads, the stack file, the
project file, the installed SDKs and Python, and the synthesizer itself. ``fingerprint`` lists
each of those inputs with the sha256 of its content (never a file date: ``rsync -a``, ``cp -p``,
``tar`` and ``git checkout`` all keep or rewind dates), so ``recompute`` can hash exactly the
listed files again and ``difference`` says which one changed. The listed source files are
resolved from what the program actually loads, not from a folder list:

* the static import closure (``ast``, imports inside functions included) of the program file and
  of the synthesizer (``infra/synth/runner.py``: its mocks answer the program's invokes) over the
  repository's modules and the program's own folder;
* every repository module newly loaded while the program ran (``watch``), with its own closure;
* every file under the repository or the program's folder that the program opened for reading
  while it ran (a ``sys.addaudithook`` hook, active only inside ``watch`` through a ContextVar);
* every file a module of that closure read while it was imported (``policies.import_reads``),
  whichever earlier synth or command of the process imported it: a module's data read at import
  (``policies/inventory.toml``) is not opened again by a later synth.

Files under the repository are listed by their repository-relative path, others (a ``--program``
in a temporary folder and its siblings) by absolute path. The stack file is listed with its
resolved path, so equally named stacks in two folders never share a record. Beside the files: the
versions of Python and of every installed distribution the program imports (``pulumi`` and its
providers), and one digest of the policy code and data (``policy_digest``), so a result judged
by other rules is not taken for this one either.

Source that Python itself would run stale is handled by ``infra.synth.bytecode``; a module that a
long-lived process imported before a synth runs as it was imported (``sovml`` starts a new
process per command; tests that edit a module drop it from ``sys.modules`` first).
"""

from __future__ import annotations

import ast
import contextvars
import hashlib
import importlib.metadata as metadata
import json
import os
import platform
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from infra.config.stackfile import ROOT
from policies import import_reads

FINGERPRINT_VERSION = 2
"""Bumped when the fingerprint's shape or meaning changes (every older record is then stale)."""
SYNTHESIZER = ROOT / "infra" / "synth" / "runner.py"
"""The synthesizer's entry module: its closure (mocks, recorder, config) shapes every record."""
PROJECT_FILE = ROOT / "Pulumi.yaml"
"""The project file (name, runtime, typed config defaults)."""
POLICIES = ROOT / "policies"
"""The policy code whose digest is part of the fingerprint (``policy_digest``)."""
# Parts of a path that mark installed or generated code rather than the repository's own source.
_NOT_SOURCE = frozenset({"__pycache__", "site-packages", "dist-packages", ".git", "node_modules"})
_POLICY_SUFFIXES = frozenset({".py", ".json", ".yaml", ".yml"})
"""Files under ``policies/`` that decide what the rules say (code, suppressions, generated data)."""
_POLICY_KEY = "\0policies"
"""Where a ``Snapshot`` keeps the policy digest (not a file key: no path starts with NUL)."""
_PROVIDER_PREFIX = "pulumi"
"""Top-level modules named ``pulumi`` or ``pulumi_*`` are the SDK and its provider packages."""


# --- the open hook ----------------------------------------------------------------------------

# Paths opened for reading while a ``watch`` is active in this context; None outside one. A
# ContextVar, not a global flag, so other threads and contexts of the process are never recorded.
_OPENED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "sovml_synth_opened", default=None
)
_LINECACHE_DEPTH = 4
"""How many callers of an ``open`` are searched for ``linecache`` (it opens via ``tokenize``)."""
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook: remember files opened for reading while a ``watch`` is active."""
    if event != "open":
        return
    opened = _OPENED.get()
    if opened is None:
        return
    try:
        path, mode, flags = args
        if isinstance(path, int):
            return  # an already open descriptor
        if mode is not None:
            if any(c in mode for c in "wax+"):
                return
        elif isinstance(flags, int) and flags & _WRITE_FLAGS:
            return
        # Tracebacks read source lines through linecache (Pulumi captures one per resource): that
        # is not the program reading the file, and would list the caller's modules (the CLI).
        frame = sys._getframe(1)
        for _ in range(_LINECACHE_DEPTH):
            if frame is None or frame.f_globals.get("__name__") == "linecache":
                return
            frame = frame.f_back
        opened.append(os.path.abspath(os.fsdecode(path)))
    except Exception:
        return  # an audit hook must never break the program it watches


@cache
def _install_hook() -> None:
    """Install the audit hook once per process (audit hooks cannot be removed, hence ``cache``)."""
    sys.addaudithook(_audit)


@dataclass
class Watched:
    """What the program loaded and read while it ran (filled when ``watch`` exits)."""

    modules: set[Path] = field(default_factory=set)
    """Files of repository modules (or modules beside the program) newly imported during the run."""
    opened: set[Path] = field(default_factory=set)
    """Files under the repository or the program's folder opened for reading during the run."""
    providers: set[str] = field(default_factory=set)
    """Top-level ``pulumi``/``pulumi_*`` modules newly imported during the run."""


@contextmanager
def watch(program: Path) -> Iterator[Watched]:
    """Record the modules the program newly imports and the files it opens inside the block."""
    _install_hook()
    roots = source_roots(program)
    seen = Watched()
    before = set(sys.modules)
    opened: list[str] = []
    token = _OPENED.set(opened)
    try:
        yield seen
    finally:
        _OPENED.reset(token)
        for name in set(sys.modules) - before:
            top = name.partition(".")[0]
            if top == _PROVIDER_PREFIX or top.startswith(_PROVIDER_PREFIX + "_"):
                seen.providers.add(top)
            origin = getattr(sys.modules.get(name), "__file__", None)
            if origin and origin.endswith(".py") and _is_source(Path(origin), roots):
                seen.modules.add(Path(origin).resolve())
        for raw in opened:
            path = Path(raw)
            if _is_source(path, roots) and path.suffix != ".pyc" and path.is_file():
                seen.opened.add(path.resolve())


# --- the static import closure ----------------------------------------------------------------


def source_roots(program: Path) -> tuple[Path, ...]:
    """Where the program's modules live: its folder (``sys.path[0]`` of a script), the root."""
    return tuple(dict.fromkeys((program.resolve().parent, ROOT)))


def _is_source(path: Path, roots: Sequence[Path]) -> bool:
    """True for a file under one of ``roots`` that is not installed or cached code."""
    path = Path(os.path.abspath(path))
    for root in roots:
        if path.is_relative_to(root):
            parts = path.relative_to(root).parts
            return not any(p in _NOT_SOURCE or p.startswith(".venv") for p in parts)
    return False


def _resolve_in(base: Path, parts: Sequence[str]) -> list[Path] | None:
    """Files executed by importing ``parts`` below folder ``base`` (packages' ``__init__`` first).

    None when the dotted name does not end in a module or a regular package there. Works on
    strings (``os.path``): a snapshot resolves a few thousand names, and building ``Path``\\ s
    for every candidate took most of its time.
    """
    files: list[str] = []
    here = os.fspath(base)
    last = len(parts) - 1
    for i, part in enumerate(parts):
        package = os.path.join(here, part)
        init = os.path.join(package, "__init__.py")
        if os.path.isfile(init):
            files.append(init)
            here = package
        elif i == last and os.path.isfile(f"{package}.py"):
            files.append(f"{package}.py")
        elif i != last and os.path.isdir(package):
            here = package  # a namespace package: no file of its own
        else:
            return None
    return [Path(f) for f in files]


def resolve_module(name: str, roots: Sequence[Path]) -> list[Path] | None:
    """Files that importing the absolute module ``name`` executes, from the first root with it."""
    parts = name.split(".")
    for root in roots:
        found = _resolve_in(root, parts)
        if found is not None:
            return found
    return None


def _imported_names(tree: ast.AST) -> Iterator[tuple[int, str | None, list[str]]]:
    """``(level, module, names)`` of each import, inside functions too, and literal dynamic ones."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module, [a.name for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
            )
        ):
            # importlib.import_module("pkg.mod") / __import__("pkg"): a name known before running.
            yield 0, node.args[0].value, []


def _targets(
    path: Path,
    level: int,
    module: str | None,
    names: list[str],
    roots: Sequence[Path],
    memo: dict[str, list[Path] | None] | None = None,
) -> tuple[list[Path], str | None]:
    """Files one import statement executes, and its top-level name when it is not ours.

    ``memo``: absolute module names already resolved in this walk (most files import the same
    few names; each resolution is several ``stat`` calls per root)."""
    memo = {} if memo is None else memo

    def resolve(name: str) -> list[Path] | None:
        if name not in memo:
            memo[name] = resolve_module(name, roots)
        return memo[name]

    if level:
        # ``from .mod import name`` / ``from .. import mod``: relative to the importing file.
        base = path.parents[level - 1]
        parts = module.split(".") if module else []
        found = _resolve_in(base, parts) if parts else []
        if found is None:
            return [], None
        package = base.joinpath(*parts)
        return found + [f for n in names for f in _resolve_in(package, [n]) or []], None
    assert module is not None
    found = resolve(module)
    if found is None:
        top = module.partition(".")[0]
        return [], None if top in sys.stdlib_module_names else top
    files = list(found)
    for n in names:
        # ``from package import submodule`` imports the submodule; a plain name adds nothing.
        files += resolve(f"{module}.{n}") or []
    return files, None


@lru_cache(maxsize=4096)
def _imports_in(filename: str, source: bytes) -> tuple[tuple[int, str | None, list[str]], ...]:
    """The imports of one file's ``source`` (:func:`_imported_names`); none when it does not parse
    (the synth itself reports that; the file's hash is still listed).

    Keyed by the bytes themselves, so an edited file is parsed afresh and an unchanged one is
    not parsed again in the same process (every synth fingerprints the program twice, and a
    session synthesizes many stacks and examples). Callers must not mutate the name lists.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError):
        return ()
    return tuple(_imported_names(tree))


@dataclass
class Closure:
    """The static import closure of some seed files."""

    files: set[Path] = field(default_factory=set)
    """Source files (resolved) the seeds import, directly or not, the seeds included."""
    external: set[str] = field(default_factory=set)
    """Top-level names imported from outside the roots and the standard library."""


def import_closure(
    seeds: Iterable[Path], roots: Sequence[Path], known: Closure | None = None
) -> Closure:
    """Every source file the ``seeds`` import under ``roots`` (AST walk, no code is run).

    ``known``: a closure already walked; the result extends a copy of it.
    """
    out = Closure(set(known.files), set(known.external)) if known else Closure()
    todo = [Path(os.path.abspath(s)) for s in seeds]
    memo: dict[str, list[Path] | None] = {}
    while todo:
        path = todo.pop()
        if path in out.files or not path.is_file():
            continue
        out.files.add(path)
        for level, module, names in _imports_in(str(path), path.read_bytes()):
            files, top = _targets(path, level, module, names, roots, memo)
            todo += [f for f in files if f not in out.files]
            if top:
                out.external.add(top)
    return out


# --- versions ---------------------------------------------------------------------------------


def _canonical(dist: str) -> str:
    """A distribution name in its canonical form (``pulumi_aws`` -> ``pulumi-aws``)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


@cache
def _distributions_of_modules() -> dict[str, list[str]]:
    """Top-level module -> distributions that install it (scans every installed distribution)."""
    return metadata.packages_distributions()


def distributions(top_level: Iterable[str]) -> list[str]:
    """Canonical names of the installed distributions providing these top-level modules."""
    mapping = _distributions_of_modules()
    return sorted({_canonical(d) for top in top_level for d in mapping.get(top, [])})


def versions(dists: Iterable[str]) -> dict[str, str | None]:
    """``python`` and each distribution's installed version (None when it is not installed)."""
    out: dict[str, str | None] = {
        "python": f"{platform.python_implementation()} {platform.python_version()}"
    }
    for dist in sorted(set(dists)):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


# --- hashing ----------------------------------------------------------------------------------


def file_key(path: Path) -> str:
    """How the fingerprint names a file: repository-relative when inside it, else absolute."""
    path = Path(os.path.abspath(path))
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def key_path(key: str) -> Path:
    """The file a ``file_key`` names."""
    path = Path(key)
    return path if path.is_absolute() else ROOT / path


def sha256_of(path: Path) -> str | None:
    """sha256 of a file's bytes, None when it is missing, unreadable or not a regular file."""
    try:
        # Not a regular file (a FIFO, /dev/zero behind a stack file's name): never read, the
        # stack-file check refuses it (infra/config/yamlfile.py); streamed, in bounded memory.
        if not path.is_file():
            return None
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def policy_files(root: Path | None = None) -> list[Path]:
    """The policy code and the data it reads: ``policies/**/*.{py,json,yaml,yml}``.

    That is every rule module, ``suppressions.yaml`` and generated tables such as the type
    classification, whichever the rules load.
    """
    root = root or POLICIES
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in _POLICY_SUFFIXES and "__pycache__" not in p.parts and p.is_file()
    )


def policy_digest(root: Path | None = None) -> str:
    """One sha256 over the policy code's names and contents (a new or removed file changes it)."""
    root = root or POLICIES
    h = hashlib.sha256()
    for path in policy_files(root):
        h.update(f"{path.relative_to(root).as_posix()}\0{sha256_of(path)}\n".encode())
    return h.hexdigest()


def _digest(parts: Mapping[str, Any]) -> str:
    body = {k: v for k, v in parts.items() if k != "digest"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _assemble(
    program: Path,
    stack_path: Path,
    files: Iterable[str],
    dists: Iterable[str],
    hashed: Mapping[str, str | None] | None = None,
    memo: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The fingerprint's fields and digest; ``hashed`` holds hashes already taken, by file key;
    ``memo`` (when given) is read and filled, so one caller hashes each file once."""
    hashed = hashed if hashed is not None else (memo if memo is not None else {})
    stack = stack_path.resolve()

    def sha(key: str) -> str | None:
        if key in hashed:
            return hashed[key]
        value = sha256_of(key_path(key))
        if memo is not None:
            memo[key] = value
        return value

    if memo is not None and _POLICY_KEY not in memo:
        memo[_POLICY_KEY] = policy_digest()

    fp: dict[str, Any] = {
        "version": FINGERPRINT_VERSION,
        "digest": "",
        "program": str(program.resolve()),
        "stackFile": {"path": str(stack), "sha256": sha(file_key(stack))},
        "files": {k: sha(k) for k in sorted(set(files))},
        "versions": versions(dists),
        "policies": hashed.get(_POLICY_KEY) or policy_digest(),
    }
    fp["digest"] = _digest(fp)
    return fp


def _import_reads(modules: Iterable[Path]) -> set[Path]:
    """The data files the bodies of ``modules`` read when they were imported, in this process
    (``policies.import_reads``): read once per process, never again by a later synth."""
    return {Path(p) for p in import_reads.reads_of(modules) if Path(p).is_file()}


# --- the fingerprint --------------------------------------------------------------------------


@dataclass
class Snapshot:
    """The inputs of a synth known before the program runs, hashed before it reads them."""

    closure: Closure
    """The static import closure of the program and the synthesizer."""
    hashes: dict[str, str | None]
    """sha256 by file key: the closure, the stack file, ``Pulumi.yaml`` (and the policy code)."""


def snapshot(program: Path, stack_path: Path) -> Snapshot:
    """Hash what the synth of ``program`` on ``stack_path`` will read, before it runs.

    A file edited while the program runs then keeps the hash it had when the run began, so the
    record made from either content is synthesized again by the next check instead of reused.
    """
    closure = import_closure([program, SYNTHESIZER], source_roots(program))
    paths = [*closure.files, *_import_reads(closure.files), stack_path.resolve(), PROJECT_FILE]
    hashes = {file_key(p): sha256_of(p) for p in paths}
    hashes[_POLICY_KEY] = policy_digest()
    return Snapshot(closure, hashes)


def fingerprint(
    program: Path,
    stack_path: Path,
    watched: Watched | None = None,
    before: Snapshot | None = None,
) -> dict[str, Any]:
    """The fingerprint of a record synthesized from ``program`` and ``stack_path``.

    ``watched``: what the run loaded and opened (``watch``); ``before``: the ``snapshot`` taken
    before the run (taken now when not given). Keys: ``version``, ``digest`` (sha256 over all the
    others), ``program`` and ``stackFile.path`` (resolved), ``stackFile.sha256``, ``files`` (key
    -> sha256 of every source and data file, ``Pulumi.yaml`` included), ``versions`` (Python and
    the distributions the program imports, ``pulumi`` and its providers among them) and
    ``policies`` (``policy_digest``: the policy code and data).
    """
    watched = watched or Watched()
    before = before or snapshot(program, stack_path)
    py_opened = [p for p in watched.opened if p.suffix == ".py"]
    closure = import_closure(
        [*watched.modules, *py_opened], source_roots(program), known=before.closure
    )
    opened = watched.opened | _import_reads(closure.files)
    files = {file_key(p) for p in closure.files | opened} | {file_key(PROJECT_FILE)}
    files.discard(file_key(stack_path.resolve()))  # listed on its own, with its resolved path
    providers = {_PROVIDER_PREFIX} | closure.external | watched.providers
    return _assemble(program, stack_path, files, distributions(providers), before.hashes)


def recompute(
    recorded: Mapping[str, Any], memo: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """The fingerprint ``recorded`` would have now: the same listed parts, hashed again.

    Hashes only the listed files, the stack file and the policy code, and looks up only the
    listed versions (well under 100 ms for the real program). The list itself changes only when
    a listed file does (a new import is written in one), so hashing the list again suffices.
    ``memo``: hashes shared by the records one command judges at once (the fleet gate: hundreds
    of records list the same files); only for a run short enough that files do not change in it.
    """
    return _assemble(
        Path(recorded["program"]),
        Path(recorded["stackFile"]["path"]),
        recorded.get("files", {}),
        [d for d in recorded.get("versions", {}) if d != "python"],
        memo=memo,
    )


def _changed_files(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    changed = [k for k in old if old[k] != new.get(k)]
    if not changed:
        return None
    missing = [k for k in changed if new.get(k) is None]
    if missing:
        more = f", {len(changed) - 1} more file(s) changed" if len(changed) > 1 else ""
        return f"{missing[0]} is missing{more}"
    more = f" and {len(changed) - 1} more file(s)" if len(changed) > 1 else ""
    return f"{changed[0]}{more} changed"


def _identity_difference(old: Mapping[str, Any], program: str, stack_path: str) -> str | None:
    """Why a record with fingerprint ``old`` is not one of ``program`` on ``stack_path``."""
    if old["program"] != program:
        return f"the record is of program {old['program']}, not {program}"
    if old["stackFile"]["path"] != stack_path:
        return f"the record is of {old['stackFile']['path']}, not {stack_path} (another stacks dir)"
    return None


def difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why fingerprint ``old`` no longer holds, comparing it with ``new``; None when equal."""
    if old.get("version") != new.get("version"):
        return f"the fingerprint format changed ({old.get('version')} -> {new.get('version')})"
    moved = _identity_difference(old, new["program"], new["stackFile"]["path"])
    if moved:
        return moved
    if old["stackFile"]["sha256"] != new["stackFile"]["sha256"]:
        return f"{file_key(Path(new['stackFile']['path']))} changed"
    files = _changed_files(old.get("files", {}), new.get("files", {}))
    if files:
        return files
    for dist, was in old.get("versions", {}).items():
        now = new.get("versions", {}).get(dist)
        if was != now:
            return f"{dist} changed from {was} to {now or 'not installed'}"
    if old.get("policies") != new.get("policies"):
        return "the policy code changed (policies/)"
    if old.get("digest") != new.get("digest"):
        return "the fingerprint differs"
    return None


def stale_reason(
    record: Mapping[str, Any],
    stack_path: Path,
    program: Path,
    memo: dict[str, str | None] | None = None,
) -> str | None:
    """Why ``record`` cannot stand for ``program`` on ``stack_path`` now; None when it can.

    Never looks at a file date: only the contents, paths and versions the fingerprint lists.
    ``memo``: file hashes shared across the records of one run (``recompute``).
    """
    recorded = record.get("fingerprint")
    if not isinstance(recorded, Mapping) or recorded.get("version") != FINGERPRINT_VERSION:
        return "the record has no fingerprint (of this version)"
    try:
        moved = _identity_difference(recorded, str(program.resolve()), str(stack_path.resolve()))
        return moved or difference(recorded, recompute(recorded, memo))
    except (KeyError, TypeError, AttributeError):
        return "the record's fingerprint is malformed"
