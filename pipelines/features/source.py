"""The offline source: the Parquet feature table the views read, where it lies, its time range.

The offline source always lies beside the registry:
``<registry folder>/data/credit_features.parquet`` (an ``s3://`` URI on the cluster). It holds
the entity, the event time and every feature, never the label (:func:`feature_table`).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.features.errors import FeatureStoreError
from pipelines.training import schema

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

SOURCE_DIR = "data"
"""Folder of the offline source, beside the registry."""
SOURCE_FILE = "credit_features.parquet"
"""File name of the offline source."""


def source_uri(store: FeatureStore) -> str:
    """The offline source of ``store``: ``data/credit_features.parquet`` beside its registry."""
    registry = store.config.registry.path
    if "://" in registry:
        return posixpath.join(posixpath.dirname(registry), SOURCE_DIR, SOURCE_FILE)
    path = Path(registry)
    if not path.is_absolute():
        path = Path(store.repo_path) / path
    return str(path.resolve().parent / SOURCE_DIR / SOURCE_FILE)


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
    return as_utc(bounds["min"].as_py()), as_utc(bounds["max"].as_py()), len(column)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
