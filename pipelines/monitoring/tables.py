"""Reading what drift is computed on: the two files of ``sovml drift``, the drift job's window.

Both read through :func:`pipelines.training.data.read_table`, the one reader of Parquet and CSV
tables, without parsing any column as a date (a date column stays a categorical label).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kernels.drift import DriftError
from pipelines.training.data import CSV_SUFFIXES, PARQUET_SUFFIXES, read_table

if TYPE_CHECKING:
    import pandas as pd


def read_input(path: Path) -> pd.DataFrame:
    """A Parquet (.parquet/.pq) or CSV (.csv/.txt) file; :class:`DriftError` if it can't be read.

    Checked before reading: the path exists, is a regular file (a folder or a FIFO is refused,
    a FIFO would block) and has a supported suffix. A file the readers reject (corrupt, not
    Parquet, no columns, unreadable) is a :class:`DriftError` too; running out of memory is not.
    """
    suffix = path.suffix.lower()
    try:
        if not path.exists():
            raise DriftError(f"{path}: no such file")
        if path.is_dir():
            raise DriftError(f"{path}: is a folder; give a .parquet or .csv file")
        if not path.is_file():
            raise DriftError(f"{path}: not a regular file")
    except OSError as exc:  # a name too long, a loop of links
        raise DriftError(f"{path}: cannot be used ({exc.strerror or exc})") from exc
    if suffix not in (*PARQUET_SUFFIXES, *CSV_SUFFIXES):
        raise DriftError(f"{path}: unsupported file type {suffix!r}; use .parquet or .csv")
    try:
        return read_table(path, dates=())
    except MemoryError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DriftError(f"{path}: cannot read ({detail})") from exc


def read_pair(reference: Path, current: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both input files, read and checked non-empty; :class:`DriftError` naming the file if not."""
    ref_df, cur_df = read_input(reference), read_input(current)
    for path, df in ((reference, ref_df), (current, cur_df)):
        if len(df) == 0:
            # Checked before the columns: an empty CSV has no column types to check against.
            raise DriftError(f"empty {'window' if df is cur_df else 'reference'}: {path}")
    return ref_df, cur_df


def read_window(path: Path, feature_names: tuple[str, ...] | None) -> np.ndarray:
    """Rows x features of every Parquet/CSV file at ``path`` (a file or a folder)."""
    import pandas as pd

    files = sorted(path.glob("*.parquet")) + sorted(path.glob("*.csv")) if path.is_dir() else [path]
    frames = [read_table(f, dates=()) for f in files]
    if not frames:
        raise FileNotFoundError(f"{path}: no .parquet or .csv inference logs in the window")
    frame = pd.concat(frames, ignore_index=True)
    if feature_names:
        missing = [n for n in feature_names if n not in frame.columns]
        if missing:
            raise ValueError(f"{path}: logged inputs lack features {missing}")
        frame = frame[list(feature_names)]
    return frame.to_numpy(dtype=np.float64)
