"""Pseudonymize a table before anything else reads it: every column classified, deny by default.

The ingest step knows the declared schema (``pipelines/training/schema.py``). For each column:

* **declared numeric** (``int``/``float``): kept, after a check that it holds no Emirates ID or
  UAE phone number written as a number (a national id used as ``customer_id`` would reach the
  feature store and the online store as an entity key): such a table is refused
  (:class:`PrivacyError`), naming column and count, never a value.
* **declared, but holding text** where a number or time is expected: treated like an undeclared
  text column below (pseudonymized in place); the validate step then reports the type error.
* **undeclared text**: an *identifier column* when most of its distinct values validate as one
  kind (:data:`IDENTIFIER_SHARE`), or when its name announces one (``mobile``, ``full_name``,
  ``national_id``): every value, valid or not, is replaced by its token, and the column is
  renamed ``<name>_token``. Any other text column is *free text*: each embedded identifier is
  replaced in place, and so is every name that stands in a name column of the same table.
* **undeclared numbers**: kept, unless some value is an Emirates ID or a +971 phone number
  written as digits: then it is an identifier column like the above.
* **undeclared booleans and times**: kept.
* **anything else** (bytes, lists, mixed types): dropped, noted in the report.

Column *names* are scanned as free text too: an identifier in a header is replaced by its token.

The report (what ingest records in its metadata and in the Parquet file) names the columns, the
kinds and counts, the key id and version (never the key) and the recognizers' versions; it never
holds a value.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipelines.privacy import recognizers
from pipelines.privacy.tokens import Pseudonymizer

if TYPE_CHECKING:
    import pandas as pd

IDENTIFIER_SHARE = 0.5
"""Share of a text column's distinct values that must validate as one kind to make it an
identifier column (the rest of its values are tokenized too: a typo is still personal data)."""
TOKEN_SUFFIX = "_token"
MAX_NAME_WORDS = 8
"""Longest name (in words, particles included) looked up in free text."""
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


class PrivacyError(ValueError):
    """The table cannot be made safe to store; the message names columns, never values."""


def pseudonymize_table(
    frame: pd.DataFrame, pseudonymizer: Pseudonymizer, declared: Mapping[str, str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table with every direct identifier replaced by its token, and the report.

    Args:
        frame: The incoming table (not modified).
        pseudonymizer: Makes the tokens (:func:`pipelines.privacy.tokens.open_pseudonymizer`).
        declared: The declared schema: column name -> ``int``, ``float`` or ``datetime``.

    Raises:
        PrivacyError: A declared numeric column holds identifiers, or two columns would end up
            with the same name.
    """
    import pandas as pd

    source = frame.copy()
    source.columns = [_safe_column_name(str(c), pseudonymizer) for c in frame.columns]
    renamed = sum(str(a) != b for a, b in zip(frame.columns, source.columns, strict=True))
    if len(set(source.columns)) != len(source.columns):
        raise PrivacyError("two columns have the same name (after pseudonymizing the names)")

    plan = {name: _classify(name, source[name], declared) for name in source.columns}
    names = _known_names(source, plan)
    out: dict[str, Any] = {}
    identifier: dict[str, Any] = {}
    scanned: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for name, (role, detail) in plan.items():
        column = source[name]
        if role == "keep":
            out[name] = column
        elif role == "drop":
            dropped[name] = detail
        elif role == "identifier":
            target = name if name.endswith(TOKEN_SUFFIX) else name + TOKEN_SUFFIX
            if target != name and target in plan:
                raise PrivacyError(
                    f"identifier column {name!r} would become {target!r}, a name already taken "
                    "by another column"
                )
            out[target], count = _tokenize_column(column, detail, pseudonymizer)
            identifier[name] = {"kind": detail, "column": target, "values": count}
        else:
            out[name], counts = _scan_column(column, pseudonymizer, names)
            scanned[name] = {"replaced": dict(sorted(counts.items()))}
    result = pd.DataFrame(out, index=source.index)
    report = {
        "identifier_columns": identifier,
        "scanned_columns": scanned,
        "dropped_columns": dropped,
        "renamed_columns": renamed,
        "key": pseudonymizer.key.describe(),
        "recognizers": dict(recognizers.VERSIONS),
    }
    return result, report


def _safe_column_name(name: str, pseudonymizer: Pseudonymizer) -> str:
    """``name`` with every identifier in it replaced by its token."""
    return _replace(name, list(recognizers.find(name)), pseudonymizer)[0]


def _classify(name: str, column: pd.Series, declared: Mapping[str, str]) -> tuple[str, str]:
    """``(role, detail)``: keep, drop (detail: why), identifier (detail: kind) or scan."""
    import pandas as pd

    kind = declared.get(name)
    values = column.dropna()
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return "keep", ""
    if pd.api.types.is_numeric_dtype(column):
        hits = _numeric_identifiers(values)
        if hits and kind in ("int", "float"):
            raise PrivacyError(
                f"declared column {name!r} holds {hits} Emirates ID or phone number(s) written "
                "as numbers; replace them with a surrogate key before ingesting"
            )
        return ("identifier", "number") if hits else ("keep", "")
    if not all(isinstance(v, str) for v in values):
        types = sorted({type(v).__name__ for v in values if not isinstance(v, str)})
        return "drop", f"cannot be classified: holds {', '.join(types)} values"
    distinct = pd.unique(values)
    if len(distinct):
        shares = Counter(
            kind
            for value in distinct
            for kind in ("emirates_id", "phone", "email", "name")
            if recognizers.canonical(kind, value) is not None
        )
        best = max(shares.items(), key=lambda kv: kv[1], default=None)
        if best is not None and best[1] / len(distinct) >= IDENTIFIER_SHARE:
            return "identifier", best[0]
    announced = recognizers.kind_of_column_name(name)
    if announced is not None:
        return "identifier", announced
    return "scan", ""


def _numeric_identifiers(values: pd.Series) -> int:
    """How many numbers are Emirates IDs or +971 phone numbers written as digits."""
    import numpy as np

    numbers = values.to_numpy()
    if numbers.dtype.kind == "f":
        numbers = numbers[np.isfinite(numbers) & (numbers == np.floor(numbers))]
    # Only integers of 11 to 15 digits can be one: a cheap filter before the exact checks.
    candidates = [int(n) for n in numbers if 10**10 <= abs(n) < 10**15]
    return sum(1 for n in candidates if _number_identity(n)[0] != "number")


def _number_identity(value: Any) -> tuple[str, str]:
    """``(kind, canonical)`` of a number: an Emirates ID or phone joins with its text form."""
    text = str(int(value))
    number_id = recognizers.emirates_id(text)
    if number_id is not None:
        return "emirates_id", number_id
    e164 = recognizers.phone("+" + text)
    return ("phone", e164) if e164 is not None else ("number", text)


def _known_names(source: pd.DataFrame, plan: dict[str, tuple[str, str]]) -> set[str]:
    """Canonical forms of the names in the table's name columns (looked up in free text)."""
    found: set[str] = set()
    for name, (role, kind) in plan.items():
        if role == "identifier" and kind == "name":
            found.update(
                recognizers.canonical_name(v)
                for v in source[name].dropna().unique()
                if recognizers.looks_like_name(v)
            )
    return found


def _tokenize_column(
    column: pd.Series, kind: str, pseudonymizer: Pseudonymizer
) -> tuple[pd.Series, int]:
    """Every non-null value replaced by its token; nulls stay null."""
    mapping: dict[Any, str] = {}
    for value in column.dropna().unique():
        if kind == "number":
            mapping[value] = pseudonymizer.token(*_number_identity(value))
            continue
        text = str(value)
        canonical = recognizers.canonical(kind, text)
        if canonical is None:
            canonical = recognizers.canonical_text(text)
        mapping[value] = pseudonymizer.token(kind, canonical)
    tokens = column.map(mapping).astype(object)
    return tokens.where(column.notna(), None), int(column.notna().sum())


def _scan_column(
    column: pd.Series, pseudonymizer: Pseudonymizer, names: set[str]
) -> tuple[pd.Series, Counter[str]]:
    """Every embedded identifier (and known name) replaced by its token, in place."""
    counts: Counter[str] = Counter()
    mapping: dict[str, str] = {}
    occurrences = column.value_counts()
    for value, times in occurrences.items():
        found = list(recognizers.find(value))
        if names:
            found = _with_names(value, found, names)
        mapping[value], kinds = _replace(value, found, pseudonymizer)
        for kind, n in kinds.items():
            counts[kind] += n * int(times)
    scanned = column.map(mapping).astype(object)
    return scanned.where(column.notna(), None), counts


def _with_names(
    text: str, found: list[recognizers.Found], names: set[str]
) -> list[recognizers.Found]:
    """``found`` plus the known names in ``text`` (longest first, never overlapping)."""
    words = [m.span() for m in _WORD.finditer(text)]
    taken = [(f.start, f.end) for f in found]
    extra: list[recognizers.Found] = []
    i = 0
    while i < len(words):
        for n in range(min(MAX_NAME_WORDS, len(words) - i), 1, -1):
            start, end = words[i][0], words[i + n - 1][1]
            canonical = recognizers.canonical_name(text[start:end])
            if canonical in names and not any(start < e and s < end for s, e in taken):
                extra.append(recognizers.Found("name", start, end, canonical))
                taken.append((start, end))
                i += n - 1
                break
        i += 1
    return sorted([*found, *extra], key=lambda f: f.start)


def _replace(
    text: str, found: list[recognizers.Found], pseudonymizer: Pseudonymizer
) -> tuple[str, Counter[str]]:
    """``text`` with each found span replaced by its token; counts per kind."""
    parts: list[str] = []
    counts: Counter[str] = Counter()
    cursor = 0
    for item in found:
        parts.append(text[cursor : item.start])
        parts.append(pseudonymizer.token(item.kind, item.canonical))
        counts[item.kind] += 1
        cursor = item.end
    parts.append(text[cursor:])
    return "".join(parts), counts
