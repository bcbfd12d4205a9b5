"""Pinned images, runtime packages and resource requests of the pipeline steps.

How the code reaches a cluster pod
----------------------------------
The images are stock, exact-tag-pinned public images (mirror them into the in-region registry and
pass ``image_registry`` to ``compile_pipeline`` so nodes never pull from outside the zone). The
project's own code does not need a custom image: for the ``cluster`` target every component is
compiled with ``embedded_artifact_path`` pointing at a clean copy of ``pipelines/__init__.py``
and ``pipelines/lib/*.py`` (plus ``pipelines/artifacts.py`` for the encrypt step). KFP stores that
folder as a base64 tar.gz inside the component's command and, at start-up, extracts it and puts it
first on ``sys.path``; the ``from pipelines.lib import steps`` inside each component then resolves
to exactly the code that was compiled. Third-party dependencies come from ``packages_to_install``
(exact pins, the same as ``requirements/main.txt``), installed by KFP's launcher at pod start from
``pip_index_url`` (set it to the in-region package mirror, e.g. CodeArtifact).

The archive's gzip header carries the compile time, so every compile changes the commands and
KFP's server-side cache only hits between runs of the same compiled file.

For the ``local`` target (``kfp.local`` with ``SubprocessRunner(use_venv=False)``) nothing is
installed or embedded: the steps run in the current virtualenv with the repository root on
``PYTHONPATH`` (:mod:`pipelines.local_run` sets it), and the images are only recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

PYTHON_IMAGE = "python:3.11.11-slim-bookworm"
"""Steps without torch: pandas/pyarrow work, registry, encryption."""
TORCH_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
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
}

_TABLE = ("numpy", "pandas", "pyarrow")


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
    """

    image: str
    packages: tuple[str, ...]
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    gpus: int = 0


STEPS: dict[str, StepRuntime] = {
    "ingest": StepRuntime(PYTHON_IMAGE, tuple(pinned(*_TABLE)), "1", "2", "2Gi", "4Gi"),
    "validate": StepRuntime(PYTHON_IMAGE, tuple(pinned(*_TABLE)), "1", "2", "2Gi", "4Gi"),
    "features": StepRuntime(PYTHON_IMAGE, tuple(pinned(*_TABLE)), "1", "2", "2Gi", "4Gi"),
    "train": StepRuntime(TORCH_IMAGE, tuple(pinned(*_TABLE)), "4", "8", "16Gi", "32Gi", gpus=1),
    "evaluate": StepRuntime(TORCH_IMAGE, tuple(pinned(*_TABLE)), "2", "4", "4Gi", "8Gi"),
    "export": StepRuntime(TORCH_IMAGE, tuple(pinned(*_TABLE)), "1", "2", "4Gi", "8Gi"),
    "register": StepRuntime(PYTHON_IMAGE, tuple(pinned(*_TABLE)), "500m", "1", "512Mi", "1Gi"),
    "encrypt": StepRuntime(
        PYTHON_IMAGE,
        tuple(pinned("numpy", "cryptography", "hvac", "boto3")),
        "1",
        "2",
        "1Gi",
        "2Gi",
    ),
}
"""Per step; the names are the pipeline's task names."""

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}
GPU_TOLERATION_EFFECT = "NoSchedule"
GPU_NODE_SELECTOR = ("sovereign-ml/pool", "gpu")
"""Label of the GPU node pool (components/node_pools.py) the train step must land on."""


REGISTRY_PVC = "model-registry"
"""PersistentVolumeClaim holding the model registry on the cluster (ReadWriteMany, e.g. EFS)."""
REGISTRY_MOUNT = "/mnt/model-registry"
REGISTRY_STEPS = ("evaluate", "export", "register", "encrypt")
"""Steps that read or write the registry, and so mount its volume."""


def with_registry(image: str, registry: str | None) -> str:
    """``image`` pulled through ``registry`` (an in-region mirror), or unchanged."""
    return f"{registry.rstrip('/')}/{image}" if registry else image
