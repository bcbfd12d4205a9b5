"""Training sets: Feast's point-in-time join of entity rows with the offline source.

Every entity row (id, event time, label) gets the latest feature values at or before its own
timestamp and within each view's TTL, never a value written later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipelines.features.config import quiet
from pipelines.features.registration import feature_refs
from pipelines.training import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from feast import FeatureStore

POSITION = "__sovml_row"
"""Column carrying each entity row's position through Feast's join, which reorders rows."""


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
    keys = rows[[schema.ENTITY, schema.TIMESTAMP]].assign(**{POSITION: range(len(rows))})
    columns: dict[str, np.ndarray] = {}
    for view, names in _names_by_view(refs).items():
        columns.update(_join_view(store, keys, view, names))
    out = entity_rows.reset_index(drop=True).copy()
    for name in features:
        out[name] = columns[name]
    return out


def _names_by_view(refs: list[str]) -> dict[str, list[str]]:
    """``view:feature`` references grouped by view, in their given order."""
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        view, name = ref.split(":", 1)
        by_view.setdefault(view, []).append(name)
    return by_view


def _join_view(
    store: FeatureStore, keys: pd.DataFrame, view: str, names: list[str]
) -> dict[str, np.ndarray]:
    """One view's features for ``keys``, one array per feature, in the keys' order."""
    # One join per view: Feast 0.67's file (dask) store drops an entity row outright when
    # every candidate row of a view is later than the event or older than the view's TTL,
    # which would also lose the row's other views. Joined alone and re-indexed by position,
    # such a row keeps its other views and gets nulls for this one.
    with quiet():
        joined = store.get_historical_features(
            entity_df=keys, features=[f"{view}:{n}" for n in names]
        ).to_df()
    joined = joined.set_index(POSITION).reindex(range(len(keys)))
    return {name: joined[name].to_numpy() for name in names}
