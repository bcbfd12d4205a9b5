"""Pinned images, runtime packages and resource requests of the pipeline steps.

How the code reaches a cluster pod
----------------------------------
The images are stock, exact-tag-pinned public images (mirror them into the in-region registry and
pass ``image_registry`` to ``compile_pipeline`` so nodes never pull from outside the zone). The
project's own code does not need a custom image: for the ``cluster`` target every component is
compiled with ``embedded_artifact_path`` pointing at a clean copy of the step library
(``pipelines.training.provenance.STEP_LIBRARY``: ``pipelines/training`` and what it imports) plus
the step's own extras (``pipelines.training.packaging.EXTRA_EMBEDDED``, e.g. the envelope library
for the encrypt step). KFP stores that folder as a base64 tar.gz inside the component's command
and, at start-up, extracts it and puts it first on ``sys.path``; the
``from pipelines.training import steps`` inside each component then resolves to exactly the code
that was compiled. Third-party dependencies come from ``packages_to_install``
(exact pins, the same as ``requirements/main.txt``), installed by KFP's launcher at pod start from
``pip_index_url`` (set it to the in-region package mirror, e.g. CodeArtifact).

The archive's gzip header carries the compile time, so every compile changes the commands and
KFP's server-side cache only hits between runs of the same compiled file.

For the ``local`` target (``kfp.local`` with ``SubprocessRunner(use_venv=False)``) nothing is
installed or embedded: the steps run in the current virtualenv with the repository root on
``PYTHONPATH`` (:mod:`pipelines.training.local_run` sets it), and the images are only recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

# No pod imports this module (packaging and local_run read it at compile time), so the
# inventory need not be embedded in the step library.
from policies import inventory

PYTHON_IMAGE = inventory.image("python")
"""Steps without torch: pandas/pyarrow work, registry, encryption."""
TORCH_IMAGE = inventory.image("pytorch")
"""Steps with torch (train, evaluate, export): torch 2.5.1 on the CUDA 12.4 runtime.

Not verified from this offline machine: the image's Python must be 3.11 (numpy 2.4 needs >= 3.11),
and its torch differs from the 2.13 in requirements/main.txt. Align the versions and pin the
digest when the image is mirrored into the in-region registry.
"""

# Exact pins, kept equal to requirements/main.txt (a test checks it). torch is not here: it
# comes with TORCH_IMAGE, and installing a CUDA torch at pod start would pull gigabytes.
PINS: dict[str, str] = {
    "numpy": "2.4.6",
    "pandas": "2.3.3",
    "pyarrow": "26.0.1",
    "cryptography": "50.0.2",
    "hvac": "2.4.0",
    "boto3": "1.44.5",
    "onnx": "1.23.2",
    "onnx-ir": "1.1.0",
    "onnxscript": "0.7.2",
    "onnxruntime": "1.32.0",
    "optuna": "5.0.0",
    "fairlearn": "0.15.0",
    "scikit-learn": "1.9.1",
    "scipy": "1.17.1",
    "narwhals": "2.29.0",
    "requests": "2.33.0",
}

_TABLE = ("numpy", "pandas", "pyarrow")
_ONNX = ("onnx", "onnx-ir", "onnxscript", "onnxruntime")
_FAIRNESS = ("fairlearn", "scikit-learn", "scipy", "narwhals")
"""The evaluate step's group fairness metrics (fairlearn and what it computes with)."""
"""The export's CPU backend selection: ONNX export (dynamo, via onnxscript) and ONNX Runtime."""
FEATURE_IMAGE = inventory.image("feature-steps")
"""The feature-store steps (features, materialize): Feast with the S3 registry and offline source
(``s3fs``, ``boto3``) and the Redis online store (``redis``, ``hiredis``), plus kfp, installed
from the complete lock ``requirements/feature-steps.txt`` by
``pipelines/images/feature-steps/Dockerfile``. Its own image and lock because ``s3fs`` cannot join
the main lock (its aiobotocore pins botocore below boto3 1.44's); nothing is installed at pod
start."""
FEATURE_LOCK = "requirements/feature-steps.txt"
"""The image's lock, relative to the repository root."""
TRIAL_IMAGE = inventory.image("katib-trial")
"""One Katib trial (``python -m pipelines.training.tuning``) on the cluster: the torch image with
the table libraries of ``requirements/katib-trial.txt`` and the modules a trial imports copied
in, built by ``pipelines/images/katib-trial/Dockerfile``; the Katib Experiment's default image."""
TRIAL_LOCK = "requirements/katib-trial.txt"
"""The trial image's lock, relative to the repository root."""


def pinned(*names: str) -> list[str]:
    """``["numpy==2.4.6", ...]`` for ``names``."""
    return [f"{name}=={PINS[name]}" for name in names]


@dataclass(frozen=True)
class StepRuntime:
    """Image, packages and Kubernetes resources of one step on the cluster.

    Attributes:
        image: Base image (exact tag).
        packages: Pip requirements installed at pod start (exact pins).
        cpu_request: CPU request, Kubernetes quantity.
        cpu_limit: CPU limit.
        memory_request: Memory request.
        memory_limit: Memory limit.
        gpus: ``nvidia.com/gpu`` limit (0 for none).
        preinstalled: The image carries every package (kfp too); nothing is pip-installed.
    """

    image: str
    packages: tuple[str, ...]
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    gpus: int = 0
    preinstalled: bool = False
    """The image already holds every package, kfp included: install nothing at pod start."""


STEPS: dict[str, StepRuntime] = {
    # The pseudonymization key comes from the key service: the encrypt step's clients too.
    "ingest": StepRuntime(
        PYTHON_IMAGE,
        tuple(pinned(*_TABLE, "cryptography", "hvac", "boto3")),
        "1",
        "2",
        "2Gi",
        "4Gi",
    ),
    "validate": StepRuntime(PYTHON_IMAGE, tuple(pinned(*_TABLE)), "1", "2", "2Gi", "4Gi"),
    # Feast holds about 400 MB resident on its own; the point-in-time join adds the table twice.
    "features": StepRuntime(FEATURE_IMAGE, (), "1", "2", "2Gi", "4Gi", preinstalled=True),
    # Tuning trials are short CPU runs of one process each: no GPU is held for them.
    "tune": StepRuntime(TORCH_IMAGE, tuple(pinned(*_TABLE, "optuna")), "4", "8", "8Gi", "16Gi"),
    "train": StepRuntime(TORCH_IMAGE, tuple(pinned(*_TABLE)), "4", "8", "16Gi", "32Gi", gpus=1),
    "evaluate": StepRuntime(
        TORCH_IMAGE, tuple(pinned(*_TABLE, *_FAIRNESS)), "2", "4", "4Gi", "8Gi"
    ),
    # CPU request = limit = the cpu serving profile's 2 vCPUs: the export times the candidate
    # backends on them, and a pod that may only burst to its limit would time CFS throttling.
    "export": StepRuntime(TORCH_IMAGE, tuple(pinned(*_TABLE, *_ONNX)), "2", "2", "4Gi", "8Gi"),
    # boto3: on the cluster the lifecycle log is the audit bucket's chain (encrypt has it too).
    "register": StepRuntime(
        PYTHON_IMAGE, tuple(pinned(*_TABLE, "boto3")), "500m", "1", "512Mi", "1Gi"
    ),
    "materialize": StepRuntime(FEATURE_IMAGE, (), "500m", "1", "1Gi", "2Gi", preinstalled=True),
    "encrypt": StepRuntime(
        PYTHON_IMAGE,
        tuple(pinned("numpy", "cryptography", "hvac", "boto3")),
        "1",
        "2",
        "1Gi",
        "2Gi",
    ),
    # The MLflow REST client (requests) and the run's files; the served model is uploaded.
    "track": StepRuntime(PYTHON_IMAGE, tuple(pinned("requests")), "100m", "500m", "256Mi", "512Mi"),
    # The exit task: the standard library and the embedded code, nothing to install.
    "outcome": StepRuntime(PYTHON_IMAGE, (), "100m", "500m", "128Mi", "256Mi"),
}
"""Per step; the names are the pipeline's task names."""
EXIT_TASK = "outcome"
"""The cluster pipeline's exit task (``dsl.ExitHandler``): pushes the run's outcome."""
TRACK_TASK = "track"
"""The cluster pipeline's tracking step (the local run tracks from the host instead)."""
CLUSTER_ONLY = (TRACK_TASK, EXIT_TASK)
"""Tasks only the cluster graph has."""

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}
GPU_TOLERATION_EFFECT = "NoSchedule"
GPU_NODE_SELECTOR = ("sovereign-ml/pool", "gpu")
"""Label of the GPU node pool (components/node_pools.py) the train step must land on."""


TRACKING_URI = "http://mlflow.kubeflow.svc:5000"
"""The cluster's MLflow server (``components/mlflow.py``'s Service in ``kubeflow``, which
``infra/tracking.py`` deploys on every tier): the cluster pipeline's ``tracking_uri`` default. A
test holds it equal to the component's URL (pipelines never import components)."""

REGISTRY_PVC = "model-registry"
"""PersistentVolumeClaim holding the model registry on the cluster (ReadWriteMany, e.g. EFS)."""
REGISTRY_MOUNT = "/mnt/model-registry"
REGISTRY_STEPS = ("evaluate", "export", "register", "encrypt")
"""Steps that read or write the registry, and so mount its volume."""


FEATURE_STORE_STEPS = ("features", "materialize")
"""Steps that open the feature store, and so get its client settings as environment variables."""
FEAST_CLIENT_CONFIG_MAP = "feast-client"
FEAST_CLIENT_CONFIG_ENV = {"features_bucket": "FEATURES_BUCKET", "redis_host": "REDIS_HOST"}
"""ConfigMap (in the pipeline's namespace) key -> variable that
``pipelines/features/repo/feature_store.prod.yaml`` expands."""
FEAST_CLIENT_SECRET = "feast-online-store"
FEAST_CLIENT_SECRET_ENV = {"password": "REDIS_PASSWORD"}
"""Secret (in the pipeline's namespace) with the online store's AUTH token. Both are optional on
the pod: without them the step fails naming the unexpanded ``${VAR}``, not at scheduling."""


def with_registry(image: str, registry: str | None) -> str:
    """``image`` pulled through ``registry`` (an in-region mirror), or unchanged."""
    return f"{registry.rstrip('/')}/{image}" if registry else image
