"""The credit-risk feature store (Feast): open, apply, training sets, materialize, look up."""

from pipelines.features.config import (
    CODE_ROOT,
    CONFIG_FILE,
    DEFAULT_REPO,
    LOCAL_TEMPLATE,
    PROD_CONFIG,
    REPO_DIR,
    open_store,
    resolve_repo,
)
from pipelines.features.errors import (
    FeatureStoreError,
    UnknownEntityError,
    UnknownFeatureServiceError,
    UnknownFeatureViewError,
)
from pipelines.features.materialization import END_MARGIN, Materialized, materialize
from pipelines.features.online import (
    Request,
    model_input_row,
    online_features,
    resolve_request,
    serving_row,
)
from pipelines.features.registration import (
    Applied,
    apply,
    feature_refs,
    register_feature_service,
)
from pipelines.features.services import (
    DEFAULT_MODEL,
    feature_service_name,
    feature_services,
    latest_feature_service,
)
from pipelines.features.source import (
    SOURCE_DIR,
    SOURCE_FILE,
    feature_table,
    source_time_range,
    source_uri,
    write_source,
)
from pipelines.features.training_sets import historical_features

__all__ = [
    "CODE_ROOT",
    "CONFIG_FILE",
    "DEFAULT_MODEL",
    "DEFAULT_REPO",
    "END_MARGIN",
    "LOCAL_TEMPLATE",
    "PROD_CONFIG",
    "REPO_DIR",
    "SOURCE_DIR",
    "SOURCE_FILE",
    "Applied",
    "FeatureStoreError",
    "Materialized",
    "Request",
    "UnknownEntityError",
    "UnknownFeatureServiceError",
    "UnknownFeatureViewError",
    "apply",
    "feature_refs",
    "feature_service_name",
    "feature_services",
    "feature_table",
    "historical_features",
    "latest_feature_service",
    "materialize",
    "model_input_row",
    "online_features",
    "open_store",
    "register_feature_service",
    "resolve_repo",
    "resolve_request",
    "serving_row",
    "source_time_range",
    "source_uri",
    "write_source",
]
