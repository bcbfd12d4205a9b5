"""The credit-risk feature store (Feast): apply, materialize, training sets and online lookups.

One feature definition serves training and serving (``pipelines/features/repo/``):

* :func:`apply` writes the feature table as the offline source (Parquet) and registers the
  entity and feature views; :func:`register_feature_service` adds the service of one model
  version (``credit_risk_v<N>``, see :mod:`pipelines.features.repo.definitions`).
* :func:`historical_features` builds a training set with Feast's point-in-time join: every entity
  row (id, event time, label) gets the latest feature values at or before its own timestamp and
  within each view's TTL, never a value written later.
* :func:`materialize` loads the offline source into the online store over the data's own time
  range (the synthetic data is dated 2025; "now minus TTL", Feast's first-run default, would load
  nothing).
* :func:`online_features` / :func:`serving_row` return an entity's online features in the model's
  input order: as a dict, and as the float32 ``[1, n]`` row Triton takes as ``features__0``. The
  exported model carries its preprocessing (``pipelines/training/model.py``), so that row is raw;
  :func:`model_input_row` applies the spec for runtimes that do not.

Where the state lives (``repo`` arguments, ``--repo`` of ``sovml features``, the pipeline's
``feature_repo`` parameter): a folder with a ``feature_store.yaml`` (a Feast repository, e.g.
``pipelines/features/repo``), a ``.yaml`` file (e.g. ``feature_store.prod.yaml``), or any other
folder, which becomes a local store: a copy of the local template with the registry, the SQLite
online store and the offline source inside that folder. The default is ``build/feature_store``,
the same state ``pipelines/features/repo/feature_store.yaml`` points at and the local pipeline run
materializes to. The offline source always lies beside the registry:
``<registry folder>/data/credit_features.parquet`` (an ``s3://`` URI on the cluster).

``feast`` takes seconds to import, so it is imported inside the functions; importing this module
is cheap (the CLI imports it at start-up).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.training import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from feast import FeatureService, FeatureStore

    from pipelines.training.preprocessing import FeatureSpec

CODE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding ``pipelines/``: the repository here, the embedded code in a cluster pod."""
REPO_DIR = CODE_ROOT / "pipelines" / "features" / "repo"
LOCAL_TEMPLATE = REPO_DIR / "feature_store.yaml"
PROD_CONFIG = REPO_DIR / "feature_store.prod.yaml"
DEFAULT_REPO = CODE_ROOT / "build" / "feature_store"
"""Local state of ``sovml features`` and of the default local pipeline run."""
CONFIG_FILE = "feature_store.yaml"
DEFAULT_MODEL = "credit_risk"
SOURCE_DIR = "data"
SOURCE_FILE = "credit_features.parquet"
END_MARGIN = timedelta(seconds=1)
"""Added to the data's last timestamp to form the materialization end: Feast's file store treats
the end as inclusive, other offline stores as exclusive; one second past the last row is safe for
both."""
KNOWN_EXAMPLES = 5


class FeatureStoreError(RuntimeError):
    """A feature-store request failed for a reason a person can act on (one-line message)."""


class UnknownEntityError(FeatureStoreError):
    """The online store has no features for the requested entity id."""


class UnknownFeatureViewError(FeatureStoreError):
    """A requested feature view (or feature) is not registered."""


class UnknownFeatureServiceError(FeatureStoreError):
    """A requested feature service is not registered."""


def feature_service_name(model_name: str, version: int) -> str:
    """``<model_name>_v<version>``: the feature service of one registered model version."""
    if version < 1:
        raise ValueError(f"version must be a positive registry version, got {version}")
    return f"{model_name}_v{version}"


# ------------------------------------------------------------------------------ the store


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


def _state_config(state_dir: Path) -> str:
    """The local template with its three paths moved into ``state_dir`` (YAML text)."""
    import yaml

    config = yaml.safe_load(LOCAL_TEMPLATE.read_text())
    config["registry"]["path"] = "registry.db"
    config["online_store"]["path"] = "online_store.db"
    header = (
        f"# Generated by pipelines/features/store.py from {LOCAL_TEMPLATE.relative_to(CODE_ROOT)}:\n"
        "# the same store with its state in this folder. Safe to delete with the folder.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def open_store(repo: str | Path | None = None, create: bool = False) -> FeatureStore:
    """A Feast ``FeatureStore`` for ``repo`` (see the module docstring for what it may name).

    Args:
        repo: Repository folder, ``.yaml`` config file, or local state folder.
        create: Make a missing local state folder (apply does; reads do not).

    Raises:
        FeatureStoreError: ``repo`` does not exist, or (``create=False``) holds no local store
            yet, or the config is invalid.
    """
    path = resolve_repo(repo)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FeatureStoreError(f"feature store config {path} does not exist")
        config_file, repo_path = path, path.parent
    else:
        config_file, repo_path = path / CONFIG_FILE, path
        if not config_file.is_file():
            if not create:
                raise FeatureStoreError(
                    f"no feature store at {path}: run `sovml pipeline run training --local` or "
                    "`sovml features apply --table TABLE` first"
                )
            path.mkdir(parents=True, exist_ok=True)
            config_file.write_text(_state_config(path))
    if not create and _local_registry(config_file) is not None:
        registry = _local_registry(config_file)
        assert registry is not None
        if not (repo_path / registry).is_file():
            raise FeatureStoreError(
                f"feature store {path} has no registry yet ({repo_path / registry}): run "
                "`sovml features apply --table TABLE` or the training pipeline first"
            )
    from feast import FeatureStore
    from feast.repo_config import FeastConfigError

    try:
        return FeatureStore(repo_path=str(repo_path), fs_yaml_file=config_file)
    except FeastConfigError as exc:
        raise FeatureStoreError(f"invalid feature store config {config_file}: {exc}") from None


def _local_registry(config_file: Path) -> str | None:
    """The registry path of a file registry on local disk, None for remote (s3://) ones."""
    import yaml

    registry = yaml.safe_load(config_file.read_text()).get("registry")
    path = registry.get("path") if isinstance(registry, dict) else registry
    if not isinstance(path, str) or "://" in path:
        return None
    return path


def source_uri(store: FeatureStore) -> str:
    """The offline source of ``store``: ``data/credit_features.parquet`` beside its registry."""
    registry = store.config.registry.path
    if "://" in registry:
        return posixpath.join(posixpath.dirname(registry), SOURCE_DIR, SOURCE_FILE)
    path = Path(registry)
    if not path.is_absolute():
        path = Path(store.repo_path) / path
    return str(path.resolve().parent / SOURCE_DIR / SOURCE_FILE)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # Feast prints progress (colours, tqdm bars) to stdout; it would corrupt `--json` output and
    # clutter pipeline logs, which carry our own one-line summaries instead.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# ---------------------------------------------------------------------------- offline side


def feature_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` the offline source holds: entity, event time, every feature.

    The label stays out: it belongs to the entity rows of a training set, not to the features
    served online. Features are cast to float64, the type the views declare.
    """
    missing = [c for c in (schema.ENTITY, schema.TIMESTAMP, *schema.FEATURES) if c not in frame]
    if missing:
        raise FeatureStoreError(f"the table lacks the feature-store columns {missing}")
    table = frame[[schema.ENTITY, schema.TIMESTAMP, *schema.FEATURES]].copy()
    table[schema.ENTITY] = table[schema.ENTITY].astype("int64")
    table[list(schema.FEATURES)] = table[list(schema.FEATURES)].astype("float64")
    return table.reset_index(drop=True)


def write_source(
    frame: pd.DataFrame, uri: str, s3_additional_kwargs: dict[str, str] | None = None
) -> int:
    """Write :func:`feature_table` of ``frame`` to ``uri`` (local path or ``s3://``); rows.

    Local files are replaced atomically, so a reader (materialize, a lookup's error path) never
    sees half a file. S3 writes go through ``s3fs`` (in the feature-steps image) with
    ``s3_additional_kwargs`` on every request: the registry's own settings, which ask for
    ``aws:kms`` explicitly, so the offline source is encrypted like the registry even if the
    bucket's default encryption were changed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(feature_table(frame), preserve_index=False)
    if "://" in uri:
        import s3fs

        filesystem = s3fs.S3FileSystem(s3_additional_kwargs=dict(s3_additional_kwargs or {}))
        pq.write_table(table, uri.split("://", 1)[1], filesystem=filesystem, compression="zstd")
        return table.num_rows
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return table.num_rows


def source_time_range(uri: str) -> tuple[datetime, datetime, int]:
    """``(first, last, rows)`` of the offline source's event timestamps (UTC).

    Raises:
        FeatureStoreError: The source has not been written yet, or is empty.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if "://" not in uri and not Path(uri).is_file():
        raise FeatureStoreError(
            f"no offline source at {uri}: run `sovml features apply --table TABLE` or the "
            "training pipeline first"
        )
    column = pq.read_table(uri, columns=[schema.TIMESTAMP]).column(schema.TIMESTAMP)
    if len(column) == 0:
        raise FeatureStoreError(f"the offline source {uri} has no rows")
    bounds = pc.min_max(column)
    return _utc(bounds["min"].as_py()), _utc(bounds["max"].as_py()), len(column)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` registered.

    Attributes:
        project: Feast project.
        source: Offline source URI.
        rows: Rows written to the source (0 when it was left as it was).
        entity: Entity name and join key.
        views: View name -> (feature count, TTL).
        services: Feature services registered (all of them, not only new ones).
    """

    project: str
    source: str
    rows: int
    entity: str
    views: dict[str, tuple[int, timedelta]]
    services: list[str]


def apply(store: FeatureStore, table: pd.DataFrame | None = None) -> Applied:
    """Register the entity and feature views; first write ``table`` as the offline source.

    Args:
        store: From :func:`open_store` (``create=True`` for a new local state folder).
        table: A credit-risk table (:mod:`pipelines.training.schema` columns; the label is dropped).
            None keeps the existing source, which must then exist.

    Raises:
        FeatureStoreError: No ``table`` and no source yet.
    """
    from pipelines.features.repo import definitions

    uri = source_uri(store)
    rows = 0
    if table is not None:
        extra = getattr(store.config.registry, "s3_additional_kwargs", None)
        rows = write_source(table, uri, extra)
    else:
        source_time_range(uri)  # fails clearly when there is nothing to register views over
    views = definitions.feature_views(uri)
    with _quiet():
        # Only adds or updates: existing feature services (one per model version) stay.
        store.apply([definitions.entity(), *views])
    return Applied(
        project=store.project,
        source=uri,
        rows=rows,
        entity=f"{definitions.ENTITY_NAME} ({schema.ENTITY})",
        views={v.name: (len(v.features), v.ttl) for v in views},
        services=feature_services(store),
    )


def register_feature_service(
    store: FeatureStore, model_name: str, version: int, features: Sequence[str]
) -> str:
    """Register the feature service of ``model_name`` ``version`` and return its name.

    Args:
        store: An applied store.
        model_name: Registry/Triton model name.
        version: Registry version.
        features: The model's features in input order (the feature spec's list); the order is
            kept in the service's ``features`` tag, so lookups can restore it.
    """
    from pipelines.features.repo import definitions

    feature_refs(features)  # an unknown feature fails here, with the known ones listed
    views = [_feature_view(store, name) for name in definitions.VIEW_FEATURES]
    service = definitions.feature_service(model_name, version, list(features), views)
    with _quiet():
        store.apply([service])
    return service.name


def feature_refs(features: Sequence[str]) -> list[str]:
    """``view:feature`` references of feature names (raises for a feature no view serves)."""
    from pipelines.features.repo import definitions

    unknown = [f for f in features if f not in definitions.VIEW_OF]
    if unknown:
        raise UnknownFeatureViewError(
            f"no feature view serves {unknown}; known features: {', '.join(definitions.VIEW_OF)}"
        )
    return [f"{definitions.VIEW_OF[f]}:{f}" for f in features]


def historical_features(
    store: FeatureStore, entity_rows: pd.DataFrame, features: Sequence[str]
) -> pd.DataFrame:
    """Point-in-time-correct features for ``entity_rows``, in the rows' own order.

    Each row gets, per feature view, the latest value with event time at or before the row's
    ``event_timestamp`` and no older than the view's TTL; otherwise null (per view: one view's
    expired value does not blank the others). Values written after the row's time never leak
    into it.

    Args:
        store: An applied store.
        entity_rows: ``customer_id``, ``event_timestamp`` and anything else to carry along
            (the label); timestamps naive = UTC.
        features: Feature names (the model's order); the result has them in that order.

    Returns:
        ``entity_rows``' columns, then ``features``; same length and order as ``entity_rows``.
    """
    import pandas as pd

    refs = feature_refs(features)
    rows = entity_rows.reset_index(drop=True).copy()
    rows[schema.TIMESTAMP] = pd.to_datetime(rows[schema.TIMESTAMP], utc=True)
    # Feast's join reorders rows; a position column restores the caller's order.
    position = "__sovml_row"
    keys = rows[[schema.ENTITY, schema.TIMESTAMP]].assign(**{position: range(len(rows))})
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        view, name = ref.split(":", 1)
        by_view.setdefault(view, []).append(name)
    columns = {}
    for view, names in by_view.items():
        # One join per view: Feast 0.67's file (dask) store drops an entity row outright when
        # every candidate row of a view is later than the event or older than the view's TTL,
        # which would also lose the row's other views. Joined alone and re-indexed by position,
        # such a row keeps its other views and gets nulls for this one.
        with _quiet():
            joined = store.get_historical_features(
                entity_df=keys, features=[f"{view}:{n}" for n in names]
            ).to_df()
        joined = joined.set_index(position).reindex(range(len(rows)))
        for name in names:
            columns[name] = joined[name].to_numpy()
    out = entity_rows.reset_index(drop=True).copy()
    for name in features:
        out[name] = columns[name]
    return out


# ----------------------------------------------------------------------------- online side


@dataclass(frozen=True)
class Materialized:
    """One feature view's materialization.

    Attributes:
        view: Feature view name.
        start: First event time loaded (inclusive).
        end: End of the interval.
        skipped: True when the view was already up to date (start >= end).
    """

    view: str
    start: datetime
    end: datetime
    skipped: bool = False


def materialize(
    store: FeatureStore,
    end: datetime | None = None,
    start: datetime | None = None,
    views: Sequence[str] | None = None,
) -> list[Materialized]:
    """Load the offline source into the online store, incrementally, up to ``end``.

    Per view the interval starts at ``start`` when given; else where the view's previous
    materialization ended; else (first run) at the source's first event time, not at Feast's
    default "now minus TTL", which for data dated 2025 would load nothing. ``end`` defaults to
    just after the source's last event time (:data:`END_MARGIN`). For each entity the latest row
    in the interval is written.

    Args:
        store: An applied store.
        end: End of the interval (UTC when naive).
        start: Start for every view (a full reload of the range), instead of incremental.
        views: Views to materialize (default: all).

    Raises:
        UnknownFeatureViewError: A name in ``views`` is not registered.
        FeatureStoreError: No offline source yet.
    """
    first, last, _ = source_time_range(source_uri(store))
    stop = _utc(end) if end is not None else last + END_MARGIN
    names = list(views) if views else [v.name for v in store.list_feature_views()]
    done = []
    for name in names:
        view = _feature_view(store, name)
        if start is not None:
            begin = _utc(start)
        elif view.most_recent_end_time is not None:
            begin = _utc(view.most_recent_end_time)
        else:
            begin = first
        if begin >= stop:
            done.append(Materialized(name, begin, stop, skipped=True))
            continue
        with _quiet():
            store.materialize(start_date=begin, end_date=stop, feature_views=[name])
        done.append(Materialized(name, begin, stop))
    return done


def feature_services(store: FeatureStore, model_name: str | None = None) -> list[str]:
    """Registered feature service names (of ``model_name``'s versions only, when given)."""
    names = sorted(s.name for s in store.list_feature_services())
    if model_name is None:
        return names
    return [n for n in names if _service_version(n, model_name) is not None]


def _service_version(name: str, model_name: str) -> int | None:
    prefix = f"{model_name}_v"
    tail = name.removeprefix(prefix)
    return int(tail) if name.startswith(prefix) and tail.isdigit() else None


def latest_feature_service(store: FeatureStore, model_name: str = DEFAULT_MODEL) -> str | None:
    """The service of ``model_name``'s highest registered version, None when there is none."""
    versions = {_service_version(n, model_name): n for n in feature_services(store, model_name)}
    return versions[max(versions)] if versions else None  # type: ignore[type-var]


def _feature_view(store: FeatureStore, name: str) -> Any:
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name)
    except FeatureViewNotFoundException:
        known = sorted(v.name for v in store.list_feature_views())
        raise UnknownFeatureViewError(
            f"unknown feature view {name!r}; known feature views: {', '.join(known) or 'none'}"
        ) from None


def _feature_service(store: FeatureStore, name: str) -> FeatureService:
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        known = feature_services(store)
        raise UnknownFeatureServiceError(
            f"unknown feature service {name!r}; known feature services: "
            f"{', '.join(known) or 'none (run the training pipeline to register one)'}"
        ) from None


@dataclass(frozen=True)
class Request:
    """What to look up: the feature names (model order) and the refs grouped by view."""

    features: list[str]
    refs: list[str]
    service: FeatureService | None
    label: str


def resolve_request(
    store: FeatureStore,
    feature_service: str | None = None,
    feature_views: Sequence[str] | None = None,
    model_name: str = DEFAULT_MODEL,
) -> Request:
    """The features a lookup asks for.

    ``feature_service`` wins; else ``feature_views`` (all their features, schema order); else
    the service of ``model_name``'s latest version; else every registered view.

    Raises:
        UnknownFeatureServiceError / UnknownFeatureViewError: A name is not registered.
    """
    from pipelines.features.repo import definitions

    if feature_service is None and not feature_views:
        feature_service = latest_feature_service(store, model_name)
    if feature_service is not None:
        service = _feature_service(store, feature_service)
        served = [f.name for p in service.feature_view_projections for f in p.features]
        # The model's input order, recorded when the service was registered; the projections
        # only group features by view.
        tagged = [f for f in service.tags.get("features", "").split(",") if f]
        ordered = tagged if sorted(tagged) == sorted(served) else served
        return Request(ordered, feature_refs(ordered), service, f"service {service.name}")
    names = list(feature_views or [v.name for v in store.list_feature_views()])
    for name in names:
        _feature_view(store, name)
    wanted = {f for name in names for f in definitions.VIEW_FEATURES.get(name, ())}
    ordered = [f for f in schema.FEATURES if f in wanted]
    return Request(ordered, feature_refs(ordered), None, f"views {', '.join(names)}")


def online_features(
    store: FeatureStore, entity_id: int, request: Request | None = None
) -> dict[str, float]:
    """The online feature values of ``entity_id``, keyed by feature, in the model's order.

    Args:
        store: A materialized store.
        entity_id: ``customer_id``.
        request: From :func:`resolve_request` (default: the latest model version's service).

    Raises:
        UnknownEntityError: No values for the entity in (some of) the requested views, with the
            view names and example ids that do exist.
    """
    request = request or resolve_request(store)
    features: Any = request.service if request.service is not None else request.refs
    response = store.get_online_features(
        features=features, entity_rows=[{schema.ENTITY: int(entity_id)}]
    ).to_dict()
    values = {name: response[name][0] for name in request.features}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        from pipelines.features.repo import definitions

        views = sorted({definitions.VIEW_OF[name] for name in missing})
        raise UnknownEntityError(
            f"no features for customer {entity_id} in feature view{'s' if len(views) > 1 else ''}"
            f" {', '.join(views)}; known ids are e.g. {_known_ids(store)}"
        )
    return {name: float(value) for name, value in values.items()}


def _known_ids(store: FeatureStore) -> str:
    """A few entity ids of the offline source, for error messages."""
    import pyarrow.parquet as pq

    try:
        ids = pq.read_table(source_uri(store), columns=[schema.ENTITY]).column(0)
    except (OSError, ValueError):
        return "(none: the offline source is missing)"
    shown = sorted(ids.to_pylist())[:KNOWN_EXAMPLES]
    return ", ".join(str(i) for i in shown) + (", ..." if len(ids) > KNOWN_EXAMPLES else "")


def serving_row(store: FeatureStore, entity_id: int, request: Request | None = None) -> np.ndarray:
    """The Triton input ``features__0`` for ``entity_id``: float32, shape ``[1, n]``, raw values.

    Raw, because the exported model standardises inside its graph (``Preprocess`` in
    ``pipelines/training/model.py``): training and serving share one preprocessing.
    """
    import numpy as np

    values = online_features(store, entity_id, request)
    return np.asarray([list(values.values())], dtype=np.float32)


def model_input_row(values: dict[str, float], spec: FeatureSpec) -> np.ndarray:
    """``values`` with the spec applied (transforms, then standardisation): float32 ``[1, n]``.

    What the network sees after its embedded preprocessing; for runtimes serving the MLP without
    it. The result's order is ``spec.features``.

    Raises:
        FeatureStoreError: ``values`` lacks a feature of the spec.
    """
    import numpy as np

    missing = [f for f in spec.features if f not in values]
    if missing:
        raise FeatureStoreError(f"the feature vector lacks {missing} of the model's spec")
    # float32 throughout, step for step like the model's Preprocess module, so the row matches
    # what the network receives to float32 rounding.
    raw = np.asarray([[values[f] for f in spec.features]], dtype=np.float32)
    log_mask = np.asarray([t == "log1p" for t in spec.transforms])
    logged = np.where(log_mask, np.log1p(np.clip(raw, 0, None)), raw)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return ((logged - mean) / std).astype(np.float32)
