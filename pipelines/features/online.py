"""Online lookups: which features a request asks for, an entity's values, the serving row.

:func:`online_features` / :func:`serving_row` return an entity's online features in the model's
input order: as a dict, and as the float32 ``[1, n]`` row Triton takes as ``features__0``. The
exported model carries its preprocessing (``pipelines/training/model.py``), so that row is raw;
:func:`model_input_row` applies the spec for runtimes that do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.features.errors import FeatureStoreError, UnknownEntityError
from pipelines.features.registration import feature_refs, get_feature_view
from pipelines.features.services import DEFAULT_MODEL, get_feature_service, latest_feature_service
from pipelines.features.source import source_uri
from pipelines.training import schema

if TYPE_CHECKING:
    import numpy as np
    from feast import FeatureService, FeatureStore

    from pipelines.training.preprocessing import FeatureSpec

KNOWN_EXAMPLES = 5
"""Entity ids an unknown-entity error shows as examples of known ones."""


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
    the service of ``model_name``'s latest version; else every registered view.

    Raises:
        UnknownFeatureServiceError / UnknownFeatureViewError: A name is not registered.
    """
    from pipelines.features.repo import definitions

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
    store: FeatureStore, entity_id: int, request: Request | None = None
) -> dict[str, float]:
    """The online feature values of ``entity_id``, keyed by feature, in the model's order.

    Args:
        store: A materialized store.
        entity_id: ``customer_id``.
        request: From :func:`resolve_request` (default: the latest model version's service).

    Raises:
        UnknownEntityError: No values for the entity in (some of) the requested views, with the
            view names and example ids that do exist.
    """
    request = request or resolve_request(store)
    features: Any = request.service if request.service is not None else request.refs
    response = store.get_online_features(
        features=features, entity_rows=[{schema.ENTITY: int(entity_id)}]
    ).to_dict()
    values = {name: response[name][0] for name in request.features}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        from pipelines.features.repo import definitions

        views = sorted({definitions.VIEW_OF[name] for name in missing})
        raise UnknownEntityError(
            f"no features for customer {entity_id} in feature view{'s' if len(views) > 1 else ''}"
            f" {', '.join(views)}; known ids are e.g. {_known_ids(store)}"
        )
    return {name: float(value) for name, value in values.items()}


def _known_ids(store: FeatureStore) -> str:
    """A few entity ids of the offline source, for error messages."""
    import pyarrow.parquet as pq

    try:
        ids = pq.read_table(source_uri(store), columns=[schema.ENTITY]).column(0)
    except (OSError, ValueError):
        return "(none: the offline source is missing)"
    shown = sorted(ids.to_pylist())[:KNOWN_EXAMPLES]
    return ", ".join(str(i) for i in shown) + (", ..." if len(ids) > KNOWN_EXAMPLES else "")


def serving_row(store: FeatureStore, entity_id: int, request: Request | None = None) -> np.ndarray:
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
