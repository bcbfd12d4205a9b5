"""Materialization: load the offline source into the online store over the data's own range.

The synthetic data is dated 2025: "now minus TTL", Feast's first-run default, would load
nothing, so a first run starts at the source's first event time instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelines.features.config import quiet
from pipelines.features.registration import get_feature_view
from pipelines.features.source import as_utc, source_time_range, source_uri

if TYPE_CHECKING:
    from feast import FeatureStore

END_MARGIN = timedelta(seconds=1)
"""Added to the data's last timestamp to form the materialization end: Feast's file store treats
the end as inclusive, other offline stores as exclusive; one second past the last row is safe for
both."""


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
    stop = as_utc(end) if end is not None else last + END_MARGIN
    names = list(views) if views else [v.name for v in store.list_feature_views()]
    done = []
    for name in names:
        begin = _begin(get_feature_view(store, name), start, first)
        if begin >= stop:
            done.append(Materialized(name, begin, stop, skipped=True))
            continue
        with quiet():
            store.materialize(start_date=begin, end_date=stop, feature_views=[name])
        done.append(Materialized(name, begin, stop))
    return done


def _begin(view: Any, start: datetime | None, first: datetime) -> datetime:
    """Where ``view``'s interval starts: ``start``, else its last end, else the data's first."""
    if start is not None:
        return as_utc(start)
    if view.most_recent_end_time is not None:
        return as_utc(view.most_recent_end_time)
    return first
