"""Apply: write the offline source, register the entity, the feature views and the services.

:func:`apply` writes the feature table as the offline source (Parquet) and registers the entity
and feature views of :mod:`pipelines.features.repo.definitions`; :func:`register_feature_service`
adds the service of one model version. Both only add or update: the Feast CLI's ``feast apply``
would delete the versioned services its files do not define.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pipelines.features.config import quiet
from pipelines.features.errors import UnknownFeatureViewError, not_registered
from pipelines.features.feast_import import uninstrumented
from pipelines.features.services import feature_services
from pipelines.features.source import source_time_range, source_uri, write_source
from pipelines.training import schema

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` registered.

    Attributes:
        project: Feast project.
        source: Offline source URI.
        rows: Rows written to the source (0 when it was left as it was).
        entity: Entity name and join key.
        views: View name -> (feature count, TTL).
        services: Feature services registered (all of them, not only new ones).
    """

    project: str
    source: str
    rows: int
    entity: str
    views: dict[str, tuple[int, timedelta]]
    services: list[str]


def apply(store: FeatureStore, table: pd.DataFrame | None = None) -> Applied:
    """Register the entity and feature views; first write ``table`` as the offline source.

    Args:
        store: From :func:`~pipelines.features.config.open_store` (``create=True`` for a new
            local state folder).
        table: A credit-risk table (:mod:`pipelines.training.schema` columns; the label is dropped).
            None keeps the existing source, which must then exist.

    Raises:
        FeatureStoreError: No ``table`` and no source yet.
    """
    from pipelines.features.repo import definitions

    uri = source_uri(store)
    rows = 0
    if table is not None:
        extra = getattr(store.config.registry, "s3_additional_kwargs", None)
        rows = write_source(table, uri, extra)
    else:
        source_time_range(uri)  # fails clearly when there is nothing to register views over
    views = definitions.feature_views(uri)
    with quiet():
        # Only adds or updates: existing feature services (one per model version) stay.
        store.apply([definitions.entity(), *views])
    return Applied(
        project=store.project,
        source=uri,
        rows=rows,
        entity=f"{definitions.ENTITY_NAME} ({schema.ENTITY})",
        views={v.name: (len(v.features), v.ttl) for v in views},
        services=feature_services(store),
    )


def register_feature_service(
    store: FeatureStore, model_name: str, version: int, features: Sequence[str]
) -> str:
    """Register the feature service of ``model_name`` ``version`` and return its name.

    Args:
        store: An applied store.
        model_name: Registry/Triton model name.
        version: Registry version.
        features: The model's features in input order (the feature spec's list); the order is
            kept in the service's ``features`` tag, so lookups can restore it.
    """
    from pipelines.features.repo import definitions

    feature_refs(features)  # an unknown feature fails here, with the known ones listed
    views = [get_feature_view(store, name) for name in definitions.VIEW_FEATURES]
    service = definitions.feature_service(model_name, version, list(features), views)
    with quiet():
        store.apply([service])
    return service.name


def feature_refs(features: Sequence[str]) -> list[str]:
    """``view:feature`` references of feature names (raises for a feature no view serves)."""
    from pipelines.features.repo import definitions

    unknown = [f for f in features if f not in definitions.VIEW_OF]
    if unknown:
        raise UnknownFeatureViewError(
            f"no feature view serves {unknown}; known features: {', '.join(definitions.VIEW_OF)}"
        )
    return [f"{definitions.VIEW_OF[f]}:{f}" for f in features]


def get_feature_view(store: FeatureStore, name: str) -> Any:
    """The registered feature view ``name``.

    Raises:
        UnknownFeatureViewError: It is not registered (the message lists those that are).
    """
    with uninstrumented():
        from feast.errors import FeatureViewNotFoundException

    def known() -> list[str]:
        return sorted(v.name for v in store.list_feature_views())

    with not_registered(
        FeatureViewNotFoundException, UnknownFeatureViewError, "feature view", name, known
    ):
        return store.get_feature_view(name)
