"""Where the code came from: git commit, package version, digest of the pipeline library."""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import tokenize
from importlib import metadata
from pathlib import Path

PACKAGE = "sovereign-ml"
LIB_DIR = Path(__file__).resolve().parent
CODE_ROOT = LIB_DIR.parents[1]

STEP_LIBRARY: tuple[str, ...] = (
    "pipelines/__init__.py",
    "pipelines/serving/__init__.py",
    "pipelines/serving/python_model.py",
    "pipelines/serving/repository.py",
    "pipelines/training/__init__.py",
    "pipelines/training/data.py",
    "pipelines/training/encryption.py",
    "pipelines/training/gate.py",
    "pipelines/training/images.py",
    "pipelines/training/metrics.py",
    "pipelines/training/model.py",
    "pipelines/training/preprocessing.py",
    "pipelines/training/provenance.py",
    "pipelines/training/registry.py",
    "pipelines/training/schema.py",
    "pipelines/training/steps/__init__.py",
    "pipelines/training/steps/common.py",
    "pipelines/training/steps/dataset.py",
    "pipelines/training/steps/exporting.py",
    "pipelines/training/steps/modelling.py",
    "pipelines/training/steps/release.py",
    "pipelines/training/train.py",
    "pipelines/training/validation.py",
)
"""Repository-relative files every step imports: embedded in each cluster component and
digested into the lineage. The graph and its compilation (``pipeline.py``, ``tasks.py``,
``packaging.py``, ``compilation.py``, ``golden.py``) and ``local_run.py`` are not among them:
no pod imports them (KFP copies each component's function source into its command, and most of
them need the KFP SDK, which the step images do not import); per-step extras are in
``pipelines.training.packaging.EXTRA_EMBEDDED``."""


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit checked out in the repository containing ``start`` (read from ``.git``).

    Reads the files instead of running ``git`` so it works where no git binary is installed;
    returns None outside a repository or when the ref cannot be resolved.
    """
    here = Path(start or LIB_DIR).resolve()
    for folder in (here, *here.parents):
        git = folder / ".git"
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = git.read_text().strip()
            if text.startswith("gitdir:"):
                git = (folder / text.split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            continue
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        for base in (git, _common_dir(git)):
            loose = base / ref
            if loose.is_file():
                return loose.read_text().strip() or None
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        return None
    return None


def _common_dir(git: Path) -> Path:
    common = git / "commondir"
    if common.is_file():
        return (git / common.read_text().strip()).resolve()
    return git


def package_version() -> str | None:
    """Installed version of the project package, None when it is not installed."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def code_version(start: str | Path | None = None) -> str:
    """``git:<commit>`` when in a repository, else ``package:<version>``, else ``unknown``."""
    commit = git_commit(start)
    if commit:
        return f"git:{commit}"
    version = package_version()
    return f"package:{version}" if version else "unknown"


def lib_digest() -> str:
    """SHA-256 over the step library's sources (:data:`STEP_LIBRARY`).

    Identifies the code that actually ran, also on the cluster where the library arrives
    embedded in the component and no git checkout exists.

    Taken over each file's :func:`slim_source` form, the form the pods receive, so the digest a
    pod records equals the one computed from the repository.
    """
    digest = hashlib.sha256()
    for relative in STEP_LIBRARY:
        digest.update(relative.encode())
        digest.update(b"\0")
        digest.update(slim_source((CODE_ROOT / relative).read_text(encoding="utf-8")).encode())
    return digest.hexdigest()


def _docstring_starts(tree: ast.AST) -> set[tuple[int, int]]:
    """Where each docstring starts: the first string statement of a module, class or function
    body, and every other bare string statement (the attribute docstrings)."""
    starts = set()
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            for stmt in statements if isinstance(statements, list) else ():
                if (
                    isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                ):
                    starts.add((stmt.lineno, stmt.col_offset))
    return starts


# Memoized by the text itself: a cluster compile slims the same step library once per component
# (315 calls, 81 distinct files: 3.7 -> 1.9 s a compile); the result depends on nothing else.
@functools.lru_cache(maxsize=128)
def slim_source(text: str) -> str:
    """Python source with docstrings emptied and comments dropped, every line where it was.

    The cluster pods receive the step library inside their command, whose one argument Linux caps
    at 128 KiB (MAX_ARG_STRLEN); the prose is most of the bytes. Line numbers are kept, so a
    pod's traceback points at the repository's lines. Idempotent: slimming a slim file changes
    nothing, which lets :func:`lib_digest` give the same value in a pod and here.
    """
    starts = _docstring_starts(ast.parse(text))
    tokens = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            tok = tok._replace(string="")
        elif tok.type == tokenize.STRING and tok.start in starts:
            lines = tok.string.count("\n")
            tok = tok._replace(string='"""' + "\n" * lines + '"""' if lines else '""')
        tokens.append(tok)
    return tokenize.untokenize(tokens)
