"""Where the code came from: git commit, package version, digest of the pipeline library."""

from __future__ import annotations

import hashlib
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
    """
    digest = hashlib.sha256()
    for relative in STEP_LIBRARY:
        digest.update(relative.encode())
        digest.update(b"\0")
        digest.update((CODE_ROOT / relative).read_bytes())
    return digest.hexdigest()
