"""Feast objects of the credit-risk model: the customer entity, three feature views, services.

Entity
    ``customer`` with join key ``customer_id`` (:data:`pipelines.training.schema.ENTITY`, Int64).

Feature views (one Parquet offline source, :func:`source`)
    ``customer_profile``  age, income, employment, residence, savings      TTL 365 days
    ``credit_bureau``     debt, limits, utilisation, delinquencies, ...   TTL 90 days
    ``loan_application``  amount, term, rate, payment-to-income           TTL 30 days

    The TTL is how old a value may be, at an event's timestamp, to be used for that event in a
    point-in-time join: a bureau pull older than 90 days or an application older than 30 days is
    no basis for a credit decision, so ``get_historical_features`` returns null for it (and the
    training step refuses rows with missing features). Online reads in Feast 0.67 do not apply
    the TTL (only pre-computed service vectors would, and these services do not use them), and
    :func:`pipelines.features.materialization.materialize` starts at the data's own first
    timestamp rather than "now minus TTL", so the 2025-dated rows stay servable.

Feature services
    One per registered model version, named
    :func:`~pipelines.features.services.feature_service_name`: ``<model name>_v<version>``, e.g.
    ``credit_risk_v3`` for registry version 3 of ``credit_risk``. It lists exactly the model's
    features (the order of the model input is the feature spec's, which
    :mod:`pipelines.features.online` restores; a service only groups features by view). The
    model's lineage record names it under ``features.feature_service``.

Every feature and its type come from :mod:`pipelines.training.schema`; :data:`VIEW_FEATURES` only
groups them, and :func:`check_coverage` fails when a schema feature has no view.

The module-level objects (``customer``, ``customer_profile``, ...) make this folder a plain Feast
repository for the local default paths (``feast -c pipelines/features/repo plan``). Apply
through ``sovml features apply`` / :func:`pipelines.features.registration.apply` instead of
``feast apply``: the Feast CLI deletes registry objects its files do not define, which would
drop the versioned services.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pipelines.features.config import DEFAULT_REPO
from pipelines.features.feast_import import uninstrumented
from pipelines.features.services import DEFAULT_MODEL, feature_service_name
from pipelines.features.source import SOURCE_DIR, SOURCE_FILE
from pipelines.training import schema

with uninstrumented():  # first imported here in `feast` CLI runs: see feast_import
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

ENTITY_NAME = "customer"
SOURCE_NAME = "credit_features"

VIEW_FEATURES: dict[str, tuple[str, ...]] = {
    "customer_profile": (
        "age",
        "income",
        "employment_years",
        "residence_years",
        "savings_balance",
    ),
    "credit_bureau": (
        "debt_to_income",
        "credit_limit",
        "credit_utilization",
        "open_accounts",
        "delinquencies_2y",
        "months_since_delinquency",
        "inquiries_6m",
    ),
    "loan_application": (
        "loan_amount",
        "loan_term_months",
        "interest_rate",
        "payment_to_income",
    ),
}
"""Feature view name -> its features (each schema feature in exactly one view)."""

VIEW_TTL: dict[str, timedelta] = {
    "customer_profile": timedelta(days=365),
    "credit_bureau": timedelta(days=90),
    "loan_application": timedelta(days=30),
}
"""How old a value may be at an event's timestamp and still join to it (see the module doc)."""

VIEW_DESCRIPTIONS: dict[str, str] = {
    "customer_profile": "Who the customer is: age, income, employment, residence, savings.",
    "credit_bureau": "Credit bureau attributes at the time of the event.",
    "loan_application": "The loan applied for: amount, term, offered rate, affordability.",
}

VIEW_OF: dict[str, str] = {f: view for view, names in VIEW_FEATURES.items() for f in names}
"""Feature name -> the view that serves it."""

DEFAULT_SOURCE = DEFAULT_REPO / SOURCE_DIR / SOURCE_FILE
"""Offline source of the module-level objects: the local default state (feature_store.yaml)."""


def check_coverage() -> None:
    """Raise ValueError unless the views cover :data:`schema.FEATURES` exactly once each."""
    grouped = [f for names in VIEW_FEATURES.values() for f in names]
    missing = sorted(set(schema.FEATURES) - set(grouped))
    extra = sorted(set(grouped) - set(schema.FEATURES))
    doubled = sorted({f for f in grouped if grouped.count(f) > 1})
    if missing or extra or doubled:
        raise ValueError(
            f"VIEW_FEATURES must cover the schema's features once each: missing {missing}, "
            f"not in the schema {extra}, in several views {doubled}"
        )


def entity() -> Entity:
    """The customer entity (join key :data:`schema.ENTITY`)."""
    return Entity(
        name=ENTITY_NAME,
        join_keys=[schema.ENTITY],
        value_type=ValueType.INT64,
        description=schema.BY_NAME[schema.ENTITY].description,
    )


def source(path: str | Path) -> FileSource:
    """The offline source: one Parquet file with the entity, event time and every feature."""
    return FileSource(
        name=SOURCE_NAME,
        path=str(path),
        timestamp_field=schema.TIMESTAMP,
        description="Credit-risk feature table written by the training pipeline's features step.",
    )


def feature_views(path: str | Path) -> list[FeatureView]:
    """The three feature views over the Parquet source at ``path``, typed from the schema."""
    check_coverage()
    customer = entity()
    offline = source(path)
    views = []
    for name, names in VIEW_FEATURES.items():
        views.append(
            FeatureView(
                name=name,
                entities=[customer],
                ttl=VIEW_TTL[name],
                # Explicit fields: Feast would otherwise infer the schema by reading the source,
                # and a column that changed type would change the served type silently.
                schema=[
                    Field(name=schema.ENTITY, dtype=Int64),
                    *(
                        Field(name=f, dtype=Float64, description=schema.BY_NAME[f].description)
                        for f in names
                    ),
                ],
                online=True,
                source=offline,
                description=VIEW_DESCRIPTIONS[name],
                tags={"model": DEFAULT_MODEL},
            )
        )
    return views


def feature_service(
    model_name: str, version: int, features: list[str], views: list[FeatureView]
) -> FeatureService:
    """The service of ``model_name`` ``version``: exactly ``features``, projected per view.

    Args:
        model_name: Registry/Triton model name.
        version: Registry version.
        features: The model's features (names; the spec's order).
        views: The applied feature views (:func:`feature_views`).

    Raises:
        ValueError: When a feature is served by none of the views.
    """
    unknown = [f for f in features if f not in VIEW_OF]
    if unknown:
        raise ValueError(f"features {unknown} are in no feature view of {sorted(VIEW_FEATURES)}")
    by_name = {v.name: v for v in views}
    projections = []
    for view_name in VIEW_FEATURES:
        wanted = [f for f in features if VIEW_OF[f] == view_name]
        if wanted:
            projections.append(by_name[view_name][wanted])
    return FeatureService(
        name=feature_service_name(model_name, version),
        features=projections,
        description=f"Features of {model_name} version {version}, in the model's input order.",
        tags={"model": model_name, "version": str(version), "features": ",".join(features)},
    )


# A plain Feast repository for the local default (see the module docstring).
customer = entity()
customer_profile, credit_bureau, loan_application = feature_views(DEFAULT_SOURCE)
