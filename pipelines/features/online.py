"""Online lookups: which features a request asks for, an entity's values, the serving row.

:func:`online_features` / :func:`serving_row` return an entity's online features in the model's
input order: as a dict, and as the float32 ``[1, n]`` row Triton takes as ``features__0``. The
exported model carries its preprocessing (``pipelines/training/model.py``), so that row is raw;
:func:`model_input_row` applies the spec for runtimes that do not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Any

from pipelines.features.errors import (
    BadInputError,
    FeatureStoreError,
    NotMaterializedError,
    UnknownEntityError,
)
from pipelines.features.registration import feature_refs, get_feature_view
from pipelines.features.services import (
    DEFAULT_MODEL,
    check_model,
    get_feature_service,
    latest_feature_service,
)
from pipelines.features.source import ENTITY_MAX, source_uri
from pipelines.training import schema

if TYPE_CHECKING:
    import numpy as np
    from feast import FeatureService, FeatureStore

    from pipelines.training.preprocessing import FeatureSpec

KNOWN_EXAMPLES = 5
"""Entity ids an unknown-entity error shows as examples of known ones."""
CANDIDATES = 50
"""Offline-source ids an unknown-entity error looks up online to find examples that are there."""
_DIGITS = re.compile(r"[+-]?[0-9]+")


def check_entity_id(value: int | str) -> int:
    """``value`` as a customer id: the one validator of entity ids (CLI argument or library call).

    A string must be a decimal integer (ASCII digits, an optional sign); every id must lie in
    ``0 .. 2**63-1``, as ``customer_id`` is a Feast ``Int64`` entity key and ids are never
    negative.

    Raises:
        BadInputError: Not an integer, or out of that range; the message says the range.
    """
    allowed = f"allowed: integers 0 to {ENTITY_MAX} ({schema.ENTITY} is a Feast Int64 entity key)"
    shown = repr(value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "...")
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        digits = value.strip().lstrip("+-").lstrip("0")
        # Longer than 2**63's 19 digits is out of range; int() of a huge string is slow.
        number = int(value) if len(digits) <= 20 else ENTITY_MAX + 1
    elif isinstance(value, Integral) and not isinstance(value, bool):
        number = int(value)
    else:
        raise BadInputError(f"customer id {shown} is not an integer; {allowed}")
    if not 0 <= number <= ENTITY_MAX:
        raise BadInputError(f"customer id {shown} is out of range; {allowed}")
    return number


@dataclass(frozen=True)
class Request:
    """What to look up.

    Attributes:
        features: Feature names, in the model's input order.
        refs: ``view:feature`` references of ``features``.
        service: The feature service asked for, None when the request names views.
        label: What was asked for, for people: ``service <name>`` or ``views <names>``.
    """

    features: list[str]
    refs: list[str]
    service: FeatureService | None
    label: str


def resolve_request(
    store: FeatureStore,
    feature_service: str | None = None,
    feature_views: Sequence[str] | None = None,
    model_name: str = DEFAULT_MODEL,
) -> Request:
    """The features a lookup asks for.

    ``feature_service`` wins; else ``feature_views`` (all their features, schema order); else
    the service of ``model_name``'s latest version; else, for the model the views serve
    (:data:`DEFAULT_MODEL`) before any version is registered, every registered view.

    Raises:
        UnknownFeatureServiceError / UnknownFeatureViewError / UnknownModelError: A name is not
            registered (the message lists those that are).
    """
    from pipelines.features.repo import definitions

    check_model(store, model_name)
    if feature_service is None and not feature_views:
        feature_service = latest_feature_service(store, model_name)
    if feature_service is not None:
        service = get_feature_service(store, feature_service)
        served = [f.name for p in service.feature_view_projections for f in p.features]
        # The model's input order, recorded when the service was registered; the projections
        # only group features by view.
        tagged = [f for f in service.tags.get("features", "").split(",") if f]
        ordered = tagged if sorted(tagged) == sorted(served) else served
        return Request(ordered, feature_refs(ordered), service, f"service {service.name}")
    names = list(feature_views or [v.name for v in store.list_feature_views()])
    for name in names:
        get_feature_view(store, name)
    wanted = {f for name in names for f in definitions.VIEW_FEATURES.get(name, ())}
    ordered = [f for f in schema.FEATURES if f in wanted]
    return Request(ordered, feature_refs(ordered), None, f"views {', '.join(names)}")


def online_features(
    store: FeatureStore, entity_id: int | str, request: Request | None = None
) -> dict[str, float]:
    """The online feature values of ``entity_id``, keyed by feature, in the model's order.

    Args:
        store: A materialized store.
        entity_id: ``customer_id`` (checked by :func:`check_entity_id`).
        request: From :func:`resolve_request` (default: the latest model version's service).

    Raises:
        BadInputError: ``entity_id`` is not an id.
        NotMaterializedError: A requested view was never materialized.
        UnknownEntityError: No values for the entity in (some of) the requested views; the
            message gives only true facts: example ids that are online in those views, or that
            the entity is in the offline source but outside what was materialized.
    """
    entity = check_entity_id(entity_id)
    request = request or resolve_request(store)
    features: Any = request.service if request.service is not None else request.refs
    response = store.get_online_features(
        features=features, entity_rows=[{schema.ENTITY: entity}]
    ).to_dict()
    values = {name: response[name][0] for name in request.features}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        from pipelines.features.repo import definitions

        views = sorted({definitions.VIEW_OF[name] for name in missing})
        raise _missing_error(store, entity, views)
    return {name: float(value) for name, value in values.items()}


def _missing_error(store: FeatureStore, entity: int, views: list[str]) -> FeatureStoreError:
    """Why ``entity`` has no online values in ``views``, in words that are all true."""
    plural = "s" if len(views) > 1 else ""
    registered = {v.name: v for v in store.list_feature_views()}
    never = [v for v in views if v in registered and registered[v].most_recent_end_time is None]
    if never:
        return NotMaterializedError(
            f"nothing materialized yet in feature view{'s' if len(never) > 1 else ''} "
            f"{', '.join(never)}, so no customer has online features there: run "
            "`sovml features materialize` first"
        )
    offline = _offline_ids(store)
    if offline is not None and entity in set(offline):
        return UnknownEntityError(
            f"no online features for customer {entity} in feature view{plural} "
            f"{', '.join(views)}: it is in the offline source, but its events lie outside the "
            "materialized range; reload with `sovml features materialize --start DATE`"
        )
    return UnknownEntityError(
        f"no features for customer {entity} in feature view{plural} {', '.join(views)}; "
        f"{_known_ids(store, views, offline)}"
    )


def _offline_ids(store: FeatureStore) -> list[int] | None:
    """The distinct entity ids of the offline source, sorted; None when it cannot be read."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        ids = pq.read_table(source_uri(store), columns=[schema.ENTITY]).column(0)
    except (OSError, ValueError):
        return None
    return sorted(pc.unique(ids).to_pylist())


def _known_ids(store: FeatureStore, views: list[str], offline: list[int] | None) -> str:
    """``known ids are e.g. ...``: ids that do have online values in every one of ``views``.

    Examples come from the offline source and are looked up online first, so an id shown is one
    a lookup of these views would return.
    """
    from pipelines.features.repo import definitions

    if offline is None:
        return "known ids: none (the offline source is missing)"
    candidates = offline[:CANDIDATES]
    probes = [definitions.VIEW_FEATURES[v][0] for v in views]
    response = store.get_online_features(
        features=feature_refs(probes), entity_rows=[{schema.ENTITY: i} for i in candidates]
    ).to_dict()
    online = [
        i for k, i in enumerate(candidates) if all(response[f][k] is not None for f in probes)
    ]
    if not online:
        return (
            f"none of the first {len(candidates)} ids of the offline source is online there: "
            "run `sovml features materialize`"
        )
    more = len(online) > KNOWN_EXAMPLES or len(offline) > len(candidates)
    shown = ", ".join(str(i) for i in online[:KNOWN_EXAMPLES])
    return f"known ids are e.g. {shown}" + (", ..." if more else "")


def serving_row(
    store: FeatureStore, entity_id: int | str, request: Request | None = None
) -> np.ndarray:
    """The Triton input ``features__0`` for ``entity_id``: float32, shape ``[1, n]``, raw values.

    Raw, because the exported model standardises inside its graph (``Preprocess`` in
    ``pipelines/training/model.py``): training and serving share one preprocessing.
    """
    import numpy as np

    values = online_features(store, entity_id, request)
    return np.asarray([list(values.values())], dtype=np.float32)


def model_input_row(values: dict[str, float], spec: FeatureSpec) -> np.ndarray:
    """``values`` with the spec applied (transforms, then standardisation): float32 ``[1, n]``.

    What the network sees after its embedded preprocessing; for runtimes serving the MLP without
    it. The result's order is ``spec.features``.

    Raises:
        FeatureStoreError: ``values`` lacks a feature of the spec.
    """
    import numpy as np

    missing = [f for f in spec.features if f not in values]
    if missing:
        raise FeatureStoreError(f"the feature vector lacks {missing} of the model's spec")
    # float32 throughout, step for step like the model's Preprocess module, so the row matches
    # what the network receives to float32 rounding.
    raw = np.asarray([[values[f] for f in spec.features]], dtype=np.float32)
    log_mask = np.asarray([t == "log1p" for t in spec.transforms])
    logged = np.where(log_mask, np.log1p(np.clip(raw, 0, None)), raw)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return ((logged - mean) / std).astype(np.float32)
