"""The data steps: ingest the table, validate it, build the training set (features)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipelines.training import data as data_lib
from pipelines.training import schema
from pipelines.training.steps.common import StepError, reported, write_json


def ingest(
    rows: int, seed: int, source_uri: str, source_sha256: str, out_path: str
) -> dict[str, Any]:
    """Write the input table to ``out_path`` (Parquet).

    With an empty ``source_uri`` the table is generated (:func:`pipelines.training.data.generate`);
    otherwise it is read from that local Parquet/CSV file (``file://`` accepted). A non-empty
    ``source_sha256`` must match the source file, which pins the exact extract in the lineage.
    """
    with reported("ingest"):
        if not source_uri:
            sha = data_lib.write_table(data_lib.generate(rows, seed), out_path)
            return {"rows": rows, "seed": seed, "source": "synthetic", "sha256": sha}
        source = Path(source_uri.removeprefix("file://"))
        if not source.is_file():
            raise StepError(f"ingest: source {source_uri!r} is not a readable local file")
        source_sha = data_lib.sha256_file(source)
        if source_sha256 and source_sha != source_sha256:
            raise StepError(
                f"ingest: source {source} has SHA-256 {source_sha}, expected {source_sha256}"
            )
        if source.suffix.lower() == ".parquet":
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out_path)
            sha = source_sha
        else:
            sha = data_lib.write_table(data_lib.read_table(source), out_path)
        frame_rows = _parquet_rows(out_path)
        return {
            "rows": frame_rows,
            "source": str(source),
            "source_sha256": source_sha,
            "sha256": sha,
        }


def _parquet_rows(path: str | Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def validate(
    dataset_path: str,
    report_path: str,
    min_rows: int,
    min_positive_rate: float,
    max_positive_rate: float,
) -> dict[str, Any]:
    """Check the table against :mod:`pipelines.training.schema` and the balance rules.

    Raises:
        ValidationError: Listing every broken rule (also printed as marker lines).
    """
    from pipelines.training import validation

    with reported("validate"):
        frame = data_lib.read_table(dataset_path)
        rules = validation.Rules(min_rows, min_positive_rate, max_positive_rate)
        profile = validation.validate(frame, rules)
        profile["sha256"] = data_lib.sha256_file(dataset_path)
        write_json(report_path, profile)
        return {k: profile[k] for k in ("rows", "positive_rate", "sha256")}


def features(
    dataset_path: str,
    train_path: str,
    test_path: str,
    spec_path: str,
    test_fraction: float,
    feature_repo: str = "",
) -> dict[str, Any]:
    """Out-of-time split, fit the preprocessing on the training rows, record the feature list.

    With ``feature_repo`` (the pipeline always sets it) the training set comes from the feature
    store: the table's features are written as the Feast offline source, the repository is
    applied, and every row's features are fetched with the point-in-time join of
    :func:`pipelines.features.historical_features` from entity rows (id, event time, label), so
    the model learns from exactly what the store serves. Empty: the table is used as it is (for
    in-process tests that need no Feast).
    """
    from pipelines.training import preprocessing as features_lib

    with reported("features"):
        frame = data_lib.read_table(dataset_path)
        store_meta: dict[str, Any] = {}
        if feature_repo:
            frame, store_meta = _training_set_from_store(frame, feature_repo)
        train, test, cutoff = features_lib.split_out_of_time(frame, test_fraction)
        spec = features_lib.fit(train, test, cutoff)
        data_lib.write_table(train, train_path)
        data_lib.write_table(test, test_path)
        spec.save(spec_path)
        return {"features": len(spec.features), **spec.split, **store_meta}


def _training_set_from_store(frame: Any, feature_repo: str) -> tuple[Any, dict[str, Any]]:
    """``frame``'s rows with their features re-read from the feature store (see features)."""
    from pipelines import features as store_lib

    store = store_lib.open_store(feature_repo, create=True)
    applied = store_lib.apply(store, frame)
    entity_rows = frame[[schema.ENTITY, schema.TIMESTAMP, schema.LABEL]]
    joined = store_lib.historical_features(store, entity_rows, list(schema.FEATURES))
    incomplete = joined[list(schema.FEATURES)].isna().any(axis=1)
    if incomplete.any():
        first = joined.loc[incomplete, schema.ENTITY].head(5).tolist()
        raise StepError(
            f"features: {int(incomplete.sum())} of {len(joined)} entity rows found no feature "
            f"values at their event time (outside a view's TTL?), e.g. customers {first}"
        )
    ordered = joined[[schema.ENTITY, schema.TIMESTAMP, *schema.FEATURES, schema.LABEL]]
    return ordered, {"feature_source": applied.source, "feature_project": applied.project}
