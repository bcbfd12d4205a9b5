"""What kind of values each column holds, and which pairs of columns drift can compare.

A column's kind comes from its dtype and, for object columns, from its non-missing values
(``pandas.api.types.infer_dtype``):

* ``numeric``: integers and floats (numpy, nullable or ``Decimal`` objects), not booleans;
* ``boolean``: boolean dtypes, or objects that are all ``True``/``False``;
* ``categorical``: strings, pandas categories, or labels of mixed scalar types (ints and strings
  in one object column);
* ``empty``: no non-missing value at all, whatever the dtype (a CSV reads such a column as float);
* anything else is unsupported and named for what it is: ``datetime``, ``duration``,
  ``period``, ``interval``, ``complex``, ``bytes`` or ``nested`` (lists, dicts, arrays, objects).

:func:`match_columns` pairs the columns of a reference and a window by name (order may differ)
and refuses, with one :class:`kernels.drift.DriftError` listing every problem: duplicate names,
no column in common, columns missing or unexpected, an unsupported kind on either side, a kind
that differs between the two sides, and a reference column with no value. A window column with
no value is accepted under the reference's kind: it counts as drifted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from kernels.drift import DriftError

if TYPE_CHECKING:
    import pandas as pd

NUMERIC, BOOLEAN, CATEGORICAL, EMPTY = "numeric", "boolean", "categorical", "empty"
SUPPORTED = (NUMERIC, BOOLEAN, CATEGORICAL)
"""The kinds drift compares: numeric ones by the kernels, the others as categories."""
MAX_PROBLEMS = 5
"""Problems named in one error line; the rest are counted."""

# pandas.api.types.infer_dtype's answers for an object column, by kind.
_INFERRED = {
    "string": CATEGORICAL,
    "integer": NUMERIC,
    "floating": NUMERIC,
    "mixed-integer-float": NUMERIC,
    "decimal": NUMERIC,
    "boolean": BOOLEAN,
    "empty": EMPTY,
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
    "time": "datetime",
    "timedelta": "duration",
    "timedelta64": "duration",
    "period": "period",
    "interval": "interval",
    "complex": "complex",
    "bytes": "bytes",
}
_LABEL_TYPES = (str, int, float, bool, np.integer, np.floating, np.bool_, Decimal)


@dataclass(frozen=True)
class Column:
    """One column compared: its name and the labels it has in each table."""

    name: str
    """The name, as a string."""
    kind: str
    """Its kind (the reference's, one of :data:`SUPPORTED`)."""
    ref_label: object
    """Its label in the reference frame."""
    cur_label: object
    """Its label in the window frame."""


def column_kind(series: pd.Series) -> str:
    """The kind of ``series``'s values (see the module docstring)."""
    import pandas as pd

    types = pd.api.types
    if series.notna().sum() == 0:
        return EMPTY
    dtype = series.dtype
    if types.is_bool_dtype(dtype):
        return BOOLEAN
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if types.is_complex_dtype(dtype):
        return "complex"
    if types.is_numeric_dtype(dtype):
        return NUMERIC
    if types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if types.is_timedelta64_dtype(dtype):
        return "duration"
    inferred = types.infer_dtype(series, skipna=True)
    if inferred in _INFERRED:
        return _INFERRED[inferred]
    if inferred in ("mixed", "mixed-integer"):
        # Labels of several scalar types are still labels; lists, dicts or arrays are not.
        values = series[series.notna()]
        if all(isinstance(v, _LABEL_TYPES) for v in values):
            return CATEGORICAL
    return "nested"


def match_columns(
    ref: pd.DataFrame, cur: pd.DataFrame, ref_name: str, cur_name: str
) -> list[Column]:
    """The columns to compare, in the reference's order; :class:`DriftError` listing problems.

    ``ref_name`` and ``cur_name`` say where each table came from (a file path) in the messages.
    """
    ref_labels = _labels(ref, f"reference {ref_name}")
    cur_labels = _labels(cur, f"current {cur_name}")
    expected, got = list(ref_labels), list(cur_labels)
    if not set(expected) & set(got):
        raise DriftError(
            f"schema mismatch: no column in common: reference {ref_name} has {expected}, "
            f"current {cur_name} has {got}"
        )
    if set(expected) != set(got):
        missing = [c for c in expected if c not in cur_labels]
        extra = [c for c in got if c not in ref_labels]
        raise DriftError(
            f"schema mismatch: expected columns {expected}, got {got} "
            f"(missing {missing}, unexpected {extra})"
        )
    columns: list[Column] = []
    mismatched: list[str] = []
    unsupported: dict[str, list[str]] = {f"reference {ref_name}": [], f"current {cur_name}": []}
    no_value: list[str] = []
    for name in expected:
        kind_ref = column_kind(ref[ref_labels[name]])
        kind_cur = column_kind(cur[cur_labels[name]])
        pairs = zip(unsupported, (kind_ref, kind_cur), strict=True)
        bad = [(side, kind) for side, kind in pairs if kind not in (*SUPPORTED, EMPTY)]
        for side, kind in bad:
            unsupported[side].append(f"{name!r} ({kind})")
        if bad:
            continue
        if kind_ref == EMPTY:
            no_value.append(repr(name))
        elif kind_cur not in (kind_ref, EMPTY):
            mismatched.append(
                f"column {name!r} is {kind_ref} in reference {ref_name} but {kind_cur} in current "
                f"{cur_name}"
            )
        else:
            columns.append(Column(name, kind_ref, ref_labels[name], cur_labels[name]))
    problems = [f"schema mismatch: {m}" for m in mismatched]
    problems += [
        f"unsupported column(s) in {side}: {_listed(found)}; drift compares "
        f"{', '.join(SUPPORTED)} columns (drop or convert them)"
        for side, found in unsupported.items()
        if found
    ]
    if no_value:
        problems.append(
            f"column(s) with no value in reference {ref_name} (all missing): {_listed(no_value)}"
        )
    if problems:
        raise DriftError("; ".join(problems[:MAX_PROBLEMS]) + _more(len(problems)))
    return columns


def _listed(items: list[str]) -> str:
    """The first :data:`MAX_PROBLEMS` items, comma-separated, then how many more there are."""
    return ", ".join(items[:MAX_PROBLEMS]) + _more(len(items))


def _more(count: int) -> str:
    """`` and K more`` when ``count`` exceeds :data:`MAX_PROBLEMS`, else nothing."""
    return f" and {count - MAX_PROBLEMS} more" if count > MAX_PROBLEMS else ""


def _labels(frame: pd.DataFrame, where: str) -> dict[str, object]:
    """Column name (as a string) -> the frame's label; :class:`DriftError` on duplicates."""
    names = [str(c) for c in frame.columns]
    if not names:
        raise DriftError(f"{where} has no columns")
    dup = sorted(name for name, n in Counter(names).items() if n > 1)
    if dup:
        raise DriftError(f"{where} has duplicate column names {dup}")
    return dict(zip(names, frame.columns, strict=True))
