"""Where a feature store's configuration and state live, and opening it.

Where the state lives (``repo`` arguments, ``--repo`` of ``sovml features``, the pipeline's
``feature_repo`` parameter): a folder with a ``feature_store.yaml`` (a Feast repository, e.g.
``pipelines/features/repo``), a ``.yaml`` file (e.g. ``feature_store.prod.yaml``), or any other
folder, which becomes a local store: a copy of the local template with the registry, the SQLite
online store and the offline source inside that folder. The default is ``build/feature_store``,
the same state ``pipelines/features/repo/feature_store.yaml`` points at and the local pipeline run
materializes to. The offline source always lies beside the registry
(:func:`pipelines.features.source.source_uri`).

``feast`` takes seconds to import, so it is imported inside the functions; importing this package
is cheap (the CLI imports it at start-up).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.features.errors import BadInputError
from pipelines.features.feast_import import uninstrumented

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

CODE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding ``pipelines/``: the repository here, the embedded code in a cluster pod."""
REPO_DIR = CODE_ROOT / "pipelines" / "features" / "repo"
"""The Feast repository of the credit-risk model (definitions and both configs)."""
LOCAL_TEMPLATE = REPO_DIR / "feature_store.yaml"
"""The local default config, copied into every new local state folder."""
PROD_CONFIG = REPO_DIR / "feature_store.prod.yaml"
"""The cluster config (S3 registry and offline source, Redis online store)."""
DEFAULT_REPO = CODE_ROOT / "build" / "feature_store"
"""Local state of ``sovml features`` and of the default local pipeline run."""
CONFIG_FILE = "feature_store.yaml"
"""The config file Feast looks for in a repository or state folder."""


def resolve_repo(repo: str | Path | None = None) -> Path:
    """The repository/config/state path ``repo`` names (default :data:`DEFAULT_REPO`).

    A relative path that does not exist from the working directory is tried against
    :data:`CODE_ROOT`: the cluster pipeline's default ``pipelines/features/repo/
    feature_store.prod.yaml`` then resolves inside the code embedded in the pod.
    """
    path = Path(repo) if repo else DEFAULT_REPO
    if not path.is_absolute() and not path.exists() and (CODE_ROOT / path).exists():
        return CODE_ROOT / path
    return path


def open_store(repo: str | Path | None = None, create: bool = False) -> FeatureStore:
    """A Feast ``FeatureStore`` for ``repo``: the one validator of ``--repo`` and ``feature_repo``.

    Every problem with ``repo`` is found here, before Feast reads or writes any state, and
    refused with the path and what is wrong: a path that is neither a folder nor a
    ``.yaml``/``.yml`` file; a config that is missing, not a regular file, unreadable, not UTF-8,
    not YAML, not a mapping, or rejected by Feast (unknown or missing keys, bad store types);
    without ``create``, a folder with no config or a local registry never written; a local
    registry that is not a Feast registry. With ``create``, a missing state folder is made (and
    its config written); one that cannot be made (under a file, no permission) is refused.

    Args:
        repo: Repository folder, ``.yaml`` config file, or local state folder (see the module
            docstring).
        create: Make a missing local state folder (apply does; reads do not).

    Raises:
        BadInputError: See above.
    """
    path = resolve_repo(repo)
    config_file, repo_path = _config_file(path, create)
    settings = _read_config(config_file)
    config = _feast_config(config_file, repo_path, settings)
    if not create:
        _require_registry(path, settings, repo_path)
    with uninstrumented():
        from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo_path), config=config)
    _check_registry(store, config_file, repo_path)
    return store


def _config_file(path: Path, create: bool) -> tuple[Path, Path]:
    """``(config file, repository folder)`` of ``path``; writes a new local state's config."""
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise BadInputError(f"feature store config {path} does not exist")
        if not path.is_file():
            raise BadInputError(f"feature store config {path} is not a regular file")
        return path, path.parent
    if path.exists() and not path.is_dir():
        raise BadInputError(
            f"{path} is a file, not a feature store: give a state folder, a Feast repository "
            f"folder or a feature_store*.yaml config"
        )
    config_file = path / CONFIG_FILE
    if config_file.exists() or config_file.is_symlink():
        if not config_file.is_file():
            raise BadInputError(f"feature store config {config_file} is not a regular file")
        return config_file, path
    if not create:
        raise BadInputError(
            f"no feature store at {path}: run `sovml pipeline run training --local` or "
            "`sovml features apply --table TABLE` first"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        config_file.write_text(_state_config(path))
    except OSError as exc:
        raise BadInputError(
            f"cannot create a feature store at {path}: {exc.strerror or exc}"
        ) from None
    return config_file, path


def _read_config(config_file: Path) -> dict[str, Any]:
    """The settings of a ``feature_store.yaml``: a YAML mapping (not yet checked by Feast).

    Raises:
        BadInputError: The file cannot be read, is not UTF-8 text, not YAML, or not a mapping.
    """
    import yaml

    try:
        text = config_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"feature store config {config_file} is not UTF-8 text") from None
    except OSError as exc:
        raise BadInputError(
            f"cannot read feature store config {config_file}: {exc.strerror or exc}"
        ) from None
    try:
        settings = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInputError(
            f"feature store config {config_file} is not valid YAML: {_yaml_problem(exc)}"
        ) from None
    if not isinstance(settings, dict):
        raise BadInputError(
            f"feature store config {config_file}: expected a mapping of Feast settings "
            f"(project, registry, provider, online_store, ...), got {_kind(settings)}"
        )
    return settings


def _yaml_problem(exc: Exception) -> str:
    """A YAML error in one line: the problem and where (line, column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _kind(value: object) -> str:
    """What a YAML document is, for people: ``a list``, ``a string``, ``nothing``."""
    if value is None:
        return "an empty document"
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a bool"}
    return names.get(type(value), type(value).__name__)


def _feast_config(config_file: Path, repo_path: Path, settings: dict[str, Any]) -> RepoConfig:
    """Feast's own validation of the config (keys, types, store types), as one-line errors.

    Feast ignores keys it does not know, so a misspelt ``registy:`` would silently fall back to
    a default registry; such keys are refused here.
    """
    import yaml

    with uninstrumented():
        from feast.repo_config import FeastConfigError, RepoConfig, load_repo_config

    known = {k for n, f in RepoConfig.model_fields.items() for k in (n, f.alias) if k}
    unknown = sorted(str(k) for k in settings if k not in known)
    if unknown:
        raise BadInputError(
            f"invalid feature store config {config_file}: unknown key"
            f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; Feast knows "
            f"{', '.join(sorted(k for k in known if k != 'repo_path'))}"
        )
    try:
        return load_repo_config(repo_path, config_file)
    except FeastConfigError as exc:
        problem = _validation_problem(exc)
    except yaml.YAMLError as exc:  # only after Feast expanded ${VARS} in the text
        problem = f"not valid YAML after expanding environment variables: {_yaml_problem(exc)}"
    except Exception as exc:  # Feast raises many types for a bad setting: all are bad input
        problem = f"{type(exc).__name__}: {exc}"
    raise BadInputError(f"invalid feature store config {config_file}: {_line(problem)}")


def _validation_problem(exc: Exception) -> str:
    """Pydantic's errors inside Feast's ``FeastConfigError``, as ``key: problem; ...``."""
    cause = getattr(exc, "_error_message", None)
    errors = getattr(cause, "errors", None)
    if not callable(errors):
        return str(cause if cause is not None else exc)
    parts = []
    for error in errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "(top level)"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _line(text: str) -> str:
    """``text`` on one line."""
    return " ".join(text.split())


def _state_config(state_dir: Path) -> str:
    """The local template with its three paths moved into ``state_dir`` (YAML text)."""
    import yaml

    config = yaml.safe_load(LOCAL_TEMPLATE.read_text())
    config["registry"]["path"] = "registry.db"
    config["online_store"]["path"] = "online_store.db"
    header = (
        f"# Generated by pipelines/features/config.py from "
        f"{LOCAL_TEMPLATE.relative_to(CODE_ROOT)}:\n"
        "# the same store with its state in this folder. Safe to delete with the folder.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def _require_registry(path: Path, settings: dict[str, Any], repo_path: Path) -> None:
    """Fail when a local file registry has not been written yet (reads never create one)."""
    registry = _local_registry(settings)
    if registry is not None and not (repo_path / registry).exists():
        raise BadInputError(
            f"feature store {path} has no registry yet ({repo_path / registry}): run "
            "`sovml features apply --table TABLE` or the training pipeline first"
        )


def _local_registry(settings: dict[str, Any]) -> str | None:
    """The registry path of a file registry on local disk, None for remote (s3://) ones."""
    registry = settings.get("registry")
    path = registry.get("path") if isinstance(registry, dict) else registry
    if not isinstance(path, str) or "://" in path:
        return None
    return path


def _check_registry(store: FeatureStore, config_file: Path, repo_path: Path) -> None:
    """Read a local registry file once, so a broken one is refused here, with its path."""
    registry = _local_registry({"registry": store.config.registry.path})
    if registry is None:
        return
    path = repo_path / registry
    if not path.exists():
        return  # a new store: Feast writes it on the first apply
    if not path.is_file():
        raise BadInputError(f"the registry {path} of {config_file} is not a regular file")
    from google.protobuf.message import DecodeError

    try:
        store.refresh_registry()
    except (DecodeError, OSError, ValueError) as exc:
        raise BadInputError(
            f"the registry {path} of {config_file} is not a readable Feast registry: "
            f"{_line(str(exc)) or type(exc).__name__}"
        ) from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Run a Feast call with its stdout progress output swallowed."""
    # Feast prints progress (colours, tqdm bars) to stdout; it would corrupt `--json` output and
    # clutter pipeline logs, which carry our own one-line summaries instead.
    with contextlib.redirect_stdout(io.StringIO()):
        yield
