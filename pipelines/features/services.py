"""Feature services: one per registered model version, how they are named and found.

The service of version ``N`` of a model is ``<model>_v<N>`` (:func:`feature_service_name`),
e.g. ``credit_risk_v3``; the training pipeline's lineage record names it, and lookups default
to the highest registered version's (:func:`latest_feature_service`). Naming needs no Feast:
the pipeline's register step imports :func:`feature_service_name` without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.features.errors import (
    UnknownFeatureServiceError,
    UnknownModelError,
    not_registered,
)
from pipelines.features.feast_import import uninstrumented

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

DEFAULT_MODEL = "credit_risk"
"""The credit-risk model's registry name: the model the feature views serve, and the one whose
latest feature service lookups use by default."""


def feature_service_name(model_name: str, version: int) -> str:
    """``<model_name>_v<version>``: the feature service of one registered model version."""
    if version < 1:
        raise ValueError(f"version must be a positive registry version, got {version}")
    return f"{model_name}_v{version}"


def service_version(name: str, model_name: str) -> int | None:
    """The model version a service ``name`` of ``model_name`` serves, None for other names."""
    prefix = f"{model_name}_v"
    tail = name.removeprefix(prefix)
    return int(tail) if name.startswith(prefix) and tail.isdigit() else None


def feature_services(store: FeatureStore, model_name: str | None = None) -> list[str]:
    """Registered feature service names (of ``model_name``'s versions only, when given)."""
    names = sorted(s.name for s in store.list_feature_services())
    if model_name is None:
        return names
    return [n for n in names if service_version(n, model_name) is not None]


def latest_feature_service(store: FeatureStore, model_name: str = DEFAULT_MODEL) -> str | None:
    """The service of ``model_name``'s highest registered version, None when there is none."""
    versions = {service_version(n, model_name): n for n in feature_services(store, model_name)}
    return versions[max(versions)] if versions else None  # type: ignore[type-var]


def known_models(store: FeatureStore) -> list[str]:
    """Models lookups may name: :data:`DEFAULT_MODEL` (the views serve it) and every model with
    a registered version's service (``<model>_v<N>``)."""
    names = {DEFAULT_MODEL}
    for service in feature_services(store):
        model, _, tail = service.rpartition("_v")
        if model and tail.isdigit():
            names.add(model)
    return sorted(names)


def check_model(store: FeatureStore, model_name: str) -> None:
    """Refuse a model lookups cannot serve, rather than falling back to every view.

    Raises:
        UnknownModelError: ``model_name`` is not in :func:`known_models` (the message lists them).
    """
    known = known_models(store)
    if model_name not in known:
        raise UnknownModelError(f"unknown model {model_name!r}; known models: {', '.join(known)}")


def get_feature_service(store: FeatureStore, name: str) -> FeatureService:
    """The registered service ``name``.

    Raises:
        UnknownFeatureServiceError: It is not registered (the message lists those that are).
    """
    with uninstrumented():
        from feast.errors import FeatureServiceNotFoundException

    with not_registered(
        FeatureServiceNotFoundException,
        UnknownFeatureServiceError,
        "feature service",
        name,
        lambda: feature_services(store),
        none="none (run the training pipeline to register one)",
    ):
        return store.get_feature_service(name)
