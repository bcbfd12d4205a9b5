"""The data steps: ingest the table, validate it, build the training set (features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.training import data as data_lib
from pipelines.training import schema
from pipelines.training.steps.common import StepError, reported, write_json


def ingest(
    rows: int,
    seed: int,
    source_uri: str,
    source_sha256: str,
    out_path: str,
    key_backend: str = "local",
    key: str = "",
    biased: bool = False,
) -> dict[str, Any]:
    """Write the input table to ``out_path`` (Parquet), every direct identifier pseudonymized.

    With an empty ``source_uri`` the table is generated (:func:`pipelines.training.data.generate`,
    with its raw identifier columns); otherwise it is read from that local Parquet/CSV file
    (``file://`` accepted). A non-empty ``source_sha256`` must match the source file, which pins
    the exact extract in the lineage. Either way the table goes through
    :func:`pipelines.privacy.tables.pseudonymize_table` before it is written: the file holds
    tokens, never a raw identifier, and nothing else reads the raw table.

    Args:
        rows: Rows to generate (without ``source_uri``).
        seed: Generator seed.
        source_uri: Local extract to ingest instead.
        source_sha256: Expected SHA-256 of the extract (optional).
        out_path: The Parquet file written.
        key_backend: Key service of the pseudonymization key (as for the artifact encryption).
        key: Its key reference: key file (local), transit key (vault); for kms an HMAC key
            (empty: the default, never the encryption key).
        biased: Generate the deliberately biased variant (:func:`pipelines.training.data.generate`;
            synthetic data only: a source extract is read as it is).

    Returns:
        The step's metadata: rows, source, digests and ``privacy`` (the report: columns, kinds,
        counts, key id and version, recognizer versions).
    """
    from pipelines.privacy import tables, tokens

    with reported("ingest"):
        if not source_uri:
            frame = data_lib.generate(rows, seed, identifiers=True, biased=biased)
            meta: dict[str, Any] = {"rows": rows, "seed": seed, "source": "synthetic"}
            if biased:
                meta["variant"] = "biased"
        else:
            source = Path(source_uri.removeprefix("file://"))
            if not source.is_file():
                raise StepError(f"ingest: source {source_uri!r} is not a readable local file")
            source_sha = data_lib.sha256_file(source)
            if source_sha256 and source_sha != source_sha256:
                raise StepError(
                    f"ingest: source {source} has SHA-256 {source_sha}, expected {source_sha256}"
                )
            frame = data_lib.read_table(source)
            meta = {"source": str(source), "source_sha256": source_sha}
        try:
            pseudonymizer = tokens.open_pseudonymizer(key_backend, key, create_local=True)
            safe, report = tables.pseudonymize_table(frame, pseudonymizer, DECLARED)
        except tables.PrivacyError as exc:
            raise StepError(f"ingest: {exc}") from None
        del frame  # the raw table goes no further than this function
        sha = data_lib.write_table(safe, out_path, metadata={PRIVACY_METADATA_KEY: report})
        return {**meta, "rows": len(safe), "sha256": sha, "privacy": report}


DECLARED: dict[str, str] = {c.name: c.kind for c in schema.COLUMNS}
"""The declared schema as the pseudonymizer reads it: column name -> kind."""
PRIVACY_METADATA_KEY = "sovml.privacy"
"""Key of the pseudonymization report in the ingested Parquet file's key-value metadata."""


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
    :func:`pipelines.features.historical_features` from entity rows (id, event time, sensitive
    attribute, label), so
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
    # The sensitive attribute rides with the label, beside the store's features, never among
    # them: the evaluate step measures fairness over it; no model input is read from it.
    entity_rows = frame[[schema.ENTITY, schema.TIMESTAMP, schema.SENSITIVE, schema.LABEL]]
    joined = store_lib.historical_features(store, entity_rows, list(schema.FEATURES))
    incomplete = joined[list(schema.FEATURES)].isna().any(axis=1)
    if incomplete.any():
        first = joined.loc[incomplete, schema.ENTITY].head(5).tolist()
        raise StepError(
            f"features: {int(incomplete.sum())} of {len(joined)} entity rows found no feature "
            f"values at their event time (outside a view's TTL?), e.g. customers {first}"
        )
    ordered = joined[
        [schema.ENTITY, schema.TIMESTAMP, *schema.FEATURES, schema.SENSITIVE, schema.LABEL]
    ]
    return ordered, {"feature_source": applied.source, "feature_project": applied.project}
