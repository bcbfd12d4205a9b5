"""Materialization: load the offline source into the online store over the data's own range.

The synthetic data is dated 2025: "now minus TTL", Feast's first-run default, would load
nothing, so a first run starts at the source's first event time instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelines.features.config import quiet
from pipelines.features.errors import BadInputError
from pipelines.features.registration import get_feature_view
from pipelines.features.source import as_utc, source_time_range, source_uri

if TYPE_CHECKING:
    from feast import FeatureStore

END_MARGIN = timedelta(seconds=1)
"""Added to the data's last timestamp to form the materialization end: Feast's file store treats
the end as inclusive, other offline stores as exclusive; one second past the last row is safe for
both."""
EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)
"""``--start``/``--end`` must lie in ``[EARLIEST, LATEST]``: the range of pandas' nanosecond
timestamps, which Feast's offline stores use (outside it they fail deep inside a join)."""


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
        BadInputError: ``start`` or ``end`` lies outside :data:`EARLIEST`..:data:`LATEST`, or
            ``start`` is not before the end (``end``, or the data's last event when omitted),
            or a view never materialized would get nothing (``end`` at or before the data's
            first event): an empty interval is a mistake, not "up to date".
        UnknownFeatureViewError: A name in ``views`` is not registered.
        FeatureStoreError: No offline source yet.
    """
    start_at, end_at = check_date(start, "start"), check_date(end, "end")
    first, last, _ = source_time_range(source_uri(store))
    stop = end_at if end_at is not None else last + END_MARGIN
    if start_at is not None and start_at >= stop:
        bound = f"--end {_shown(stop)}" if end_at is not None else f"the data's end {_shown(stop)}"
        raise BadInputError(
            f"--start {_shown(start_at)} is not before {bound}: nothing to materialize; give a "
            "start before the end"
        )
    names = list(views) if views else [v.name for v in store.list_feature_views()]
    # Every name is checked before the first view is loaded: no half-done run on a typo.
    resolved = [get_feature_view(store, name) for name in names]
    if end_at is not None and end_at <= first and any(not _loaded(v) for v in resolved):
        raise BadInputError(
            f"--end {_shown(end_at)} is not after the data's first event {_shown(first)}: "
            "nothing to materialize"
        )
    done = []
    for name, view in zip(names, resolved, strict=True):
        begin = _begin(view, start_at, first)
        if begin >= stop:
            done.append(Materialized(name, begin, stop, skipped=True))
            continue
        with quiet():
            store.materialize(start_date=begin, end_date=stop, feature_views=[name])
        done.append(Materialized(name, begin, stop))
    return done


def check_date(value: datetime | None, option: str) -> datetime | None:
    """``value`` in UTC (naive means UTC), within :data:`EARLIEST`..:data:`LATEST`; the one
    validator of materialization dates. None stays None.

    Raises:
        BadInputError: Outside the range (or beyond what a datetime can hold in UTC); the
            message names ``--<option>``, the value and the range.
    """
    if value is None:
        return None
    allowed = f"allowed {_shown(EARLIEST)} to {_shown(LATEST)}"
    try:
        moment = as_utc(value)
    except OverflowError:
        raise BadInputError(f"--{option} {value.isoformat()} is out of range; {allowed}") from None
    if not EARLIEST <= moment <= LATEST:
        raise BadInputError(f"--{option} {_shown(moment)} is out of range; {allowed}")
    return moment


def _shown(moment: datetime) -> str:
    """``moment`` (UTC) as people read it: ``2025-01-31 12:00:00 UTC``."""
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds") + " UTC"


def _loaded(view: Any) -> bool:
    """Whether ``view`` was ever materialized."""
    return view.most_recent_end_time is not None


def _begin(view: Any, start: datetime | None, first: datetime) -> datetime:
    """Where ``view``'s interval starts: ``start``, else its last end, else the data's first."""
    if start is not None:
        return as_utc(start)
    if _loaded(view):
        return as_utc(view.most_recent_end_time)
    return first
