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

from pipelines.features.errors import BadInputError, FeatureStoreError
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


TABLE_EXPECTED = (
    f"a Parquet file (or a .csv) with the credit-risk columns {schema.ENTITY} (integers), "
    f"{schema.TIMESTAMP} (date-times) and {len(schema.FEATURES)} numeric features"
)
"""What a feature table must be, as the errors about one say."""
ENTITY_MAX = 2**63 - 1
"""Largest entity id: ``customer_id`` is a Feast ``Int64`` entity key (ids are never negative)."""


def read_feature_table(path: str | Path) -> pd.DataFrame:
    """Read and check a credit-risk table for the offline source: the one validator of tables.

    CSV by suffix (:data:`pipelines.training.data.CSV_SUFFIXES`), Parquet otherwise.

    Raises:
        BadInputError: The path is missing, not a regular file, unreadable, not Parquet (or not
            CSV), or the table fails :func:`feature_table`; the message names the file and what
            was expected (:data:`TABLE_EXPECTED`).
    """
    import pandas as pd

    from pipelines.training import data

    source = Path(path)
    if not source.exists():
        raise BadInputError(f"table {source}: no such file; expected {TABLE_EXPECTED}")
    if not source.is_file():
        raise BadInputError(f"table {source} is not a regular file; expected {TABLE_EXPECTED}")
    csv = source.suffix.lower() in data.CSV_SUFFIXES
    try:
        # CSV dates are parsed below, not by read_csv: a missing or unparsable column must be
        # reported as what it is, not as an unreadable file.
        frame = data.read_table(source, dates=()) if csv else data.read_table(source)
    except OSError as exc:
        if exc.strerror:  # the file itself could not be read (permissions, I/O)
            raise BadInputError(f"cannot read table {source}: {exc.strerror}") from None
        raise _not_a_table(source, csv, exc) from None
    except Exception as exc:  # pyarrow, pandas and codecs raise many types for a bad file
        raise _not_a_table(source, csv, exc) from None
    if csv and schema.TIMESTAMP in frame:
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            frame[schema.TIMESTAMP] = pd.to_datetime(frame[schema.TIMESTAMP], utc=True)
    try:
        feature_table(frame)
    except BadInputError as exc:
        raise BadInputError(f"table {source}: {exc}; expected {TABLE_EXPECTED}") from None
    return frame


def _not_a_table(source: Path, csv: bool, exc: Exception) -> BadInputError:
    kind = "a readable CSV file" if csv else "a Parquet file"
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return BadInputError(f"table {source} is not {kind} ({reason}); expected {TABLE_EXPECTED}")


def feature_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` the offline source holds: entity, event time, every feature.

    The label stays out: it belongs to the entity rows of a training set, not to the features
    served online. Features are cast to float64, the type the views declare.

    Raises:
        BadInputError: A column is missing or of the wrong type, the table has no rows, an
            entity id is missing or outside ``0 .. 2**63-1``, or an event time is missing.
    """
    import pandas as pd

    missing = [c for c in (schema.ENTITY, schema.TIMESTAMP, *schema.FEATURES) if c not in frame]
    if missing:
        raise BadInputError(f"the table lacks the feature-store columns {missing}")
    if len(frame) == 0:
        raise BadInputError("the table has no rows")
    types = pd.api.types
    ids, times = frame[schema.ENTITY], frame[schema.TIMESTAMP]
    if not types.is_integer_dtype(ids) or types.is_bool_dtype(ids):
        raise BadInputError(f"column {schema.ENTITY} is {ids.dtype}, not integers")
    if ids.isna().any():
        raise BadInputError(f"column {schema.ENTITY} has missing values")
    if ids.min() < 0 or int(ids.max()) > ENTITY_MAX:
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise BadInputError(f"column {schema.ENTITY} holds {bad}; allowed 0 to {ENTITY_MAX}")
    if not types.is_datetime64_any_dtype(times) or times.isna().any():
        what = "has missing values" if types.is_datetime64_any_dtype(times) else f"is {times.dtype}"
        raise BadInputError(f"column {schema.TIMESTAMP} {what}, not date-times")
    wrong = {
        f: str(frame[f].dtype)
        for f in schema.FEATURES
        if not types.is_numeric_dtype(frame[f]) or types.is_bool_dtype(frame[f])
    }
    if wrong:
        raise BadInputError(f"feature columns are not numeric: {wrong}")
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
