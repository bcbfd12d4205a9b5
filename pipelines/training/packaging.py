"""How each step becomes a KFP component for a target: the code it carries, image, packages,
resources and, on the cluster, GPU scheduling, the registry volume and feature-store settings.

``local`` components run in this virtualenv (nothing installed, nothing embedded); ``cluster``
components embed a clean copy of :data:`pipelines.training.provenance.STEP_LIBRARY` plus the
step's :data:`EXTRA_EMBEDDED` files and install the pins of :mod:`pipelines.training.images`.
"""

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfp import dsl

from pipelines.training import images, provenance
from pipelines.training.tasks import COMPONENT_FUNCTIONS
from policies.lifecycle import CONFIG_MAP as AUDIT_CONFIG_MAP
from policies.lifecycle import ENV_NAMES as AUDIT_ENV_NAMES

TARGETS = ("local", "cluster")
"""Where a compiled pipeline runs: ``kfp.local`` on this machine, or Kubeflow Pipelines on EKS."""

FEATURE_STORE_LIBRARY = (
    "pipelines/features/__init__.py",
    "pipelines/features/config.py",
    "pipelines/features/errors.py",
    "pipelines/features/feast_import.py",
    "pipelines/features/materialization.py",
    "pipelines/features/online.py",
    "pipelines/features/registration.py",
    "pipelines/features/services.py",
    "pipelines/features/source.py",
    "pipelines/features/training_sets.py",
)
"""The feature store library: ``pipelines.features`` loads every module of it on import."""

FEATURE_STORE_CODE = (
    *FEATURE_STORE_LIBRARY,
    "pipelines/features/repo/__init__.py",
    "pipelines/features/repo/definitions.py",
    "pipelines/features/repo/feature_store.yaml",
    "pipelines/features/repo/feature_store.prod.yaml",
)
"""The feature store library, definitions and both configs (the cluster default is the prod one)."""

AUDIT_LIBRARY = (
    "pipelines/audit/__init__.py",
    "pipelines/audit/entries.py",
    "pipelines/audit/log.py",
    "pipelines/audit/sink.py",
)
"""What the register and encrypt steps import to append to the lifecycle log (not the verifier)."""
AUDIT_STEPS = ("register", "encrypt")
"""Steps that append to the lifecycle log: on the cluster each gets its namespace's
``sovml-audit`` ConfigMap (bucket, chain prefix, region) as environment variables."""

KEY_SERVICES = (
    "pipelines/artifacts/__init__.py",
    "pipelines/artifacts/encoding.py",
    "pipelines/artifacts/envelope.py",
    "pipelines/artifacts/errors.py",
    "pipelines/artifacts/fs.py",
    "pipelines/artifacts/signals.py",
    "pipelines/artifacts/keys/__init__.py",
    "pipelines/artifacts/keys/base.py",
    "pipelines/artifacts/keys/factory.py",
    "pipelines/artifacts/keys/kms.py",
    "pipelines/artifacts/keys/local.py",
    "pipelines/artifacts/keys/patterns.py",
    "pipelines/artifacts/keys/vault.py",
)
"""The key services and what they import (``pipelines.artifacts`` loads its names lazily)."""

ENVELOPE_LIBRARY = (
    *KEY_SERVICES,
    "pipelines/artifacts/api.py",
    "pipelines/artifacts/destinations.py",
    "pipelines/artifacts/manifest.py",
    "pipelines/artifacts/preflight.py",
    "pipelines/artifacts/stream.py",
)
"""The whole envelope library (the encrypt step)."""

PRIVACY_LIBRARY = (
    "pipelines/privacy/__init__.py",
    "pipelines/privacy/recognizers.py",
    "pipelines/privacy/synthetic.py",
    "pipelines/privacy/tables.py",
    "pipelines/privacy/tokens.py",
)
"""The pseudonymization the ingest step runs (its key comes from the envelope library's key
services)."""

TRACKING_LIBRARY = (
    "pipelines/registry/__init__.py",
    "pipelines/registry/governance.py",
    "pipelines/registry/mlflow_rest.py",
    "pipelines/registry/tracking.py",
    "policies/__init__.py",
    "policies/approvals.py",
    "policies/model_lifecycle.py",
)
"""The MLflow client and the run's tracking (the track step): the same modules the local run
logs with, and the lifecycle table and export format the registration moves through."""

EXTRA_EMBEDDED: dict[str, tuple[str, ...]] = {
    # Not the whole envelope library: one argument of a container's command holds at most
    # 128 KiB (Linux MAX_ARG_STRLEN), and the step library plus both would exceed it.
    "ingest": (*KEY_SERVICES, *PRIVACY_LIBRARY),
    "encrypt": (*AUDIT_LIBRARY, *ENVELOPE_LIBRARY),
    "export": (
        "pipelines/serving/cpu_tier/__init__.py",
        "pipelines/serving/cpu_tier/accuracy.py",
        "pipelines/serving/cpu_tier/candidates.py",
        "pipelines/serving/cpu_tier/config.py",
        "pipelines/serving/cpu_tier/forms.py",
        "pipelines/serving/cpu_tier/measurement.py",
        "pipelines/serving/cpu_tier/report.py",
        "pipelines/serving/cpu_tier/selection.py",
    ),
    "features": FEATURE_STORE_CODE,
    "tune": ("pipelines/training/tuning.py",),
    "evaluate": ("pipelines/training/fairness.py",),
    "register": (*FEATURE_STORE_LIBRARY, *AUDIT_LIBRARY),
    "materialize": FEATURE_STORE_CODE,
    "outcome": ("pipelines/pushgateway.py", "pipelines/training/outcome.py"),
    "track": TRACKING_LIBRARY,
}
"""Files beyond the step library that a step imports, embedded for that step only, which keeps
the cluster IR small (every embedded copy is repeated in each component's command): the envelope
library (85 KB) for encrypt, the key services and the pseudonymization for ingest, the CPU
backend selection for export, the feature store library and repository for features and
materialize (register only names the feature service), the lifecycle log's writer for register
and encrypt, the pushgateway client for the exit task, the search space and Optuna study for
tune, the fairness figures for evaluate, the MLflow client and tracking for track."""


@contextlib.contextmanager
def _embedded_code(extra: tuple[str, ...] = ()) -> Iterator[str]:
    """A clean copy of the code the cluster pods import (no caches, no tests), as a folder;
    Python files in their :func:`provenance.slim_source` form (the kernel's argument limit).

    Args:
        extra: Repository-relative files added to :data:`provenance.STEP_LIBRARY`
            (see :data:`EXTRA_EMBEDDED`).
    """
    with tempfile.TemporaryDirectory(prefix="sovml-embed-") as tmp:
        for relative in (*provenance.STEP_LIBRARY, *extra):
            target = Path(tmp) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            source = provenance.CODE_ROOT / relative
            if source.suffix == ".py":
                slim = provenance.slim_source(source.read_text(encoding="utf-8"))
                target.write_text(slim, encoding="utf-8")
            else:
                shutil.copyfile(source, target)
        yield tmp


def build_components(
    target: str, image_registry: str | None = None, pip_index_url: str | None = None
) -> dict[str, Any]:
    """The ten components for ``target`` (``local`` or ``cluster``), keyed by task name: the
    nine steps and the exit task."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    built: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        embeds: dict[tuple[str, ...], str] = {}
        if target == "cluster":
            for extra in {(), *EXTRA_EMBEDDED.values()}:
                embeds[extra] = stack.enter_context(_embedded_code(extra))
        for name, func in COMPONENT_FUNCTIONS.items():
            step = images.STEPS[name]
            options: dict[str, Any] = {
                "base_image": images.with_registry(step.image, image_registry)
            }
            if target == "cluster":
                options.update(
                    packages_to_install=list(step.packages),
                    pip_index_urls=[pip_index_url] if pip_index_url else None,
                    embedded_artifact_path=embeds[EXTRA_EMBEDDED.get(name, ())],
                )
                if step.preinstalled:
                    options.update(install_kfp_package=False)
            else:
                # Runs in this virtualenv: nothing to install (and no network to install from).
                options.update(packages_to_install=[], install_kfp_package=False)
            built[name] = dsl.component(func, **options)
    return built


def kubernetes_extension() -> Any | None:
    """``kfp.kubernetes`` when the ``kfp-kubernetes`` package is installed, else None."""
    try:
        from kfp import kubernetes
    except ImportError:
        return None
    return kubernetes


def cluster_settings(name: str, task: Any) -> None:
    """Set step ``name``'s cluster settings on ``task``: resources, GPU scheduling (train), the
    registry volume, the feature-store client settings and the lifecycle log's settings."""
    step = images.STEPS[name]
    task.set_cpu_request(step.cpu_request).set_cpu_limit(step.cpu_limit)
    task.set_memory_request(step.memory_request).set_memory_limit(step.memory_limit)
    k8s = kubernetes_extension()
    if name in images.REGISTRY_STEPS and k8s is not None:
        k8s.mount_pvc(task, pvc_name=images.REGISTRY_PVC, mount_path=images.REGISTRY_MOUNT)
    if name in images.FEATURE_STORE_STEPS and k8s is not None:
        # The prod feature_store.yaml expands these; optional so a missing object fails the step
        # with the unexpanded ${VAR} in its message rather than leaving the pod unschedulable.
        k8s.use_config_map_as_env(
            task, images.FEAST_CLIENT_CONFIG_MAP, images.FEAST_CLIENT_CONFIG_ENV, optional=True
        )
        k8s.use_secret_as_env(
            task, images.FEAST_CLIENT_SECRET, images.FEAST_CLIENT_SECRET_ENV, optional=True
        )
    if name in AUDIT_STEPS:
        # Not optional: a pod without its audit settings would append to a throwaway file in
        # the pod; without the ConfigMap the kubelet does not start it at all. Nor is
        # compiling such a pod: without kfp-kubernetes the step could not get the ConfigMap.
        if k8s is None:
            raise RuntimeError(
                f"kfp-kubernetes is not installed: the {name} step cannot get the "
                f"{AUDIT_CONFIG_MAP!r} ConfigMap and would write its lifecycle log to a file "
                "that dies with the pod; install the pinned kfp-kubernetes to compile for the "
                "cluster"
            )
        k8s.use_config_map_as_env(
            task, AUDIT_CONFIG_MAP, {key: key for key in AUDIT_ENV_NAMES}, optional=False
        )
    if step.gpus:
        task.set_accelerator_type(images.GPU_RESOURCE).set_accelerator_limit(step.gpus)
        if k8s is not None:
            k8s.add_toleration(task, effect=images.GPU_TOLERATION_EFFECT, **images.GPU_TOLERATION)
            k8s.add_node_selector(task, *images.GPU_NODE_SELECTOR)
        else:
            warnings.warn(
                "kfp-kubernetes is not installed: the train step gets no toleration for "
                "nvidia.com/gpu=true:NoSchedule and no node selector sovereign-ml/pool=gpu, "
                f"and no step mounts the registry volume {images.REGISTRY_PVC!r}",
                stacklevel=2,
            )
