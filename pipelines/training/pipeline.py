"""Credit-risk training pipeline (Kubeflow Pipelines v2).

ingest -> validate -> features -> train -> evaluate -> [gate passed] export -> register ->
materialize, encrypt

The training set comes from the Feast feature store (``pipelines/features/store.py``): the features step
writes the offline source and joins every row's features point in time; after a registration,
materialize registers the version's feature service and loads the online store.

The same pipeline runs locally with ``kfp.local`` and compiles for the cluster:

* ``compile_pipeline(target="local")`` (the default): lightweight components that run in the
  current virtualenv (``pipelines.training`` on ``PYTHONPATH``); see ``pipelines/training/local_run.py``.
* ``compile_pipeline(target="cluster")``: pinned images, ``pipelines.training`` embedded in every
  component, exact-pinned runtime packages, CPU/memory requests and limits, and for ``train`` a
  ``nvidia.com/gpu`` limit. When ``kfp-kubernetes`` is installed, also the GPU-pool toleration
  and node selector for ``train`` and the registry volume for the steps that use the registry
  (without it they are left out, with a warning). See ``pipelines/training/images.py`` for how code
  and images reach the pod.

Regenerate the golden IR (``pipelines/training/compiled/training.yaml`` and ``training-cluster.yaml``)::

    .venv/bin/python -m pipelines.training.pipeline --write-golden

Each component body imports what it needs inside the function (the lightweight-component rule)
and delegates to :mod:`pipelines.training.steps`, which holds the logic and is tested in-process.
"""

import argparse
import contextlib
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from pipelines.serving.repository import CPU_PROFILE_VCPUS
from pipelines.training import images, provenance

PIPELINE_NAME = "credit-risk-training"
TARGETS = ("local", "cluster")
ROOT = Path(__file__).resolve().parents[2]
COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
GOLDEN = {
    "local": COMPILED_DIR / "training.yaml",
    "cluster": COMPILED_DIR / "training-cluster.yaml",
}

CLUSTER_DEFAULTS: dict[str, Any] = {
    "serving_profile": "gpu",
    "registry_dir": images.REGISTRY_MOUNT,
    "encryption_backend": "vault",
    "feature_repo": "pipelines/features/repo/feature_store.prod.yaml",
}
"""Pipeline-parameter defaults that differ on the cluster (a GPU Triton profile, the registry on
a shared volume, keys in Vault transit, the feature store on S3 + Redis, whose config is resolved
inside the code embedded in the pod); everything else defaults the same as locally."""

# Steps that read or write state outside their artifacts (the registry, the key service, the online
# store) must run every time; the others are pure functions of their inputs and may be served from
# the cache. features also writes the feature store's offline source and registry, but only as a
# function of its inputs: a cached run leaves them as the original run did, and materialize (never
# cached) rewrites the source from the dataset should it have gone missing since.
UNCACHED = ("evaluate", "export", "register", "materialize", "encrypt")


# -------------------------------------------------------------------------------- components


def ingest(
    rows: int,
    seed: int,
    source_uri: str,
    source_sha256: str,
    dataset: Output[Dataset],
) -> None:
    """Generate the synthetic credit-risk table, or read a local extract.

    Args:
        rows: Rows to generate (ignored when ``source_uri`` is set).
        seed: Generator seed.
        source_uri: Optional local Parquet/CSV file to ingest instead of generating.
        source_sha256: Optional expected SHA-256 of ``source_uri``.
        dataset: The table as Parquet.
    """
    from pipelines.training import steps

    dataset.metadata.update(steps.ingest(rows, seed, source_uri, source_sha256, dataset.path))


def validate(
    dataset: Input[Dataset],
    min_rows: int,
    min_positive_rate: float,
    max_positive_rate: float,
    report: Output[Artifact],
) -> None:
    """Check schema, nulls, ranges, uniqueness and class balance; fail naming column and rule.

    Args:
        dataset: The ingested table.
        min_rows: Fewest rows accepted.
        min_positive_rate: Lowest accepted share of defaults.
        max_positive_rate: Highest accepted share of defaults.
        report: Profile of the valid table (JSON).
    """
    from pipelines.training import steps

    report.metadata.update(
        steps.validate(dataset.path, report.path, min_rows, min_positive_rate, max_positive_rate)
    )


def features(
    dataset: Input[Dataset],
    test_fraction: float,
    feature_repo: str,
    train_set: Output[Dataset],
    test_set: Output[Dataset],
    feature_spec: Output[Artifact],
) -> None:
    """Build the training set from the feature store (point in time), split, fit the scaling.

    Writes the table's features as the Feast offline source, applies the repository and joins
    every row's features at its own event time (``get_historical_features``); then splits
    out-of-time and fits the standardisation on the training rows.

    Args:
        dataset: The validated table.
        test_fraction: Share of the latest rows held out for evaluation.
        feature_repo: Feature store: state folder, repository or ``feature_store*.yaml``.
        train_set: Training rows (Parquet).
        test_set: Test rows (Parquet).
        feature_spec: Feature list, transforms, means and standard deviations (JSON).
    """
    from pipelines.training import steps

    feature_spec.metadata.update(
        steps.features(
            dataset.path,
            train_set.path,
            test_set.path,
            feature_spec.path,
            test_fraction,
            feature_repo=feature_repo,
        )
    )


def train(
    train_set: Input[Dataset],
    feature_spec: Input[Artifact],
    seed: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    hidden_units: str,
    precision: str,
    workers: int,
    model: Output[Model],
) -> None:
    """Train the PyTorch MLP (seeded; AMP + DDP on CUDA or several workers, fp32 on one CPU).

    Args:
        train_set: Training rows.
        feature_spec: Preprocessing the model embeds.
        seed: Seed of initialisation and shuffling.
        epochs: Passes over the data.
        batch_size: Global batch size.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        hidden_units: Hidden widths, comma-separated.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        workers: Training processes (0 = one per GPU, else 1).
        model: Folder with ``weights.pt`` and ``training.json``.
    """
    from pipelines.training import steps

    params = {
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "hidden_units": hidden_units,
        "precision": precision,
        "workers": workers,
    }
    model.metadata.update(steps.train(train_set.path, feature_spec.path, model.path, params))


def evaluate(
    test_set: Input[Dataset],
    feature_spec: Input[Artifact],
    model: Input[Model],
    registry_dir: str,
    model_name: str,
    min_auc: float,
    gate_tolerance: float,
    metrics: Output[Metrics],
    report: Output[Artifact],
) -> bool:
    """Accuracy, AUC and log loss on the out-of-time test set, and the release gate.

    The gate passes when AUC >= ``min_auc`` and the model is at least as good as the registered
    production model (on the same test rows where possible).

    Args:
        test_set: Test rows.
        feature_spec: The feature spec (column order).
        model: The trained model.
        registry_dir: Registry holding the production model, if any.
        model_name: Registry/Triton model name.
        min_auc: The AUC floor.
        gate_tolerance: How much worse than production the candidate may be.
        metrics: KFP metrics (shown in the UI).
        report: Metrics and gate decision (JSON).

    Returns:
        Whether the gate passed (the reason is in ``report``'s metadata and file). A single
        return value on purpose: kfp.local 2.17 resolves a ``dsl.If`` on a task's ``Output``
        but not on a named output of a NamedTuple.
    """
    from pipelines.training import steps

    result = steps.evaluate(
        test_set.path,
        feature_spec.path,
        model.path,
        report.path,
        registry_dir,
        model_name,
        min_auc,
        gate_tolerance,
    )
    for name in ("accuracy", "auc", "log_loss"):
        metrics.log_metric(name, result["metrics"][name])
    metrics.log_metric("test_rows", result["metrics"]["rows"])
    gate = result["gate"]
    report.metadata.update({"gate_passed": gate["passed"], "gate_reason": gate["reason"]})
    return bool(gate["passed"])


def export(
    model: Input[Model],
    feature_spec: Input[Artifact],
    test_set: Input[Dataset],
    registry_dir: str,
    model_name: str,
    serving_profile: str,
    max_batch_size: int,
    cpu_backend: str,
    cpu_objective: str,
    cpu_max_abs_diff: float,
    cpu_max_metric_drop: float,
    cpu_threads: int,
    model_repository: Output[Model],
    model_repository_local: Output[Model],
    serving_selection: Output[Artifact],
    serving_metrics: Output[Metrics],
) -> NamedTuple("ExportOutputs", version=int):
    """Triton repositories: production (native backend) and local (Python backend).

    ``gpu`` profile: TorchScript on the PyTorch backend. ``cpu`` profile: fp32 eager, TorchScript,
    ONNX Runtime and dynamic int8 are measured on the profile's vCPUs and checked against the
    trained model on the test rows; the fastest inside the accuracy bound is served.

    Args:
        model: The trained model.
        feature_spec: The feature spec.
        test_set: Labelled rows for the CPU selection's accuracy check.
        registry_dir: Registry that assigns the version number.
        model_name: Triton model name.
        serving_profile: ``gpu`` (KIND_GPU) or ``cpu`` (KIND_CPU) instance group.
        max_batch_size: Triton ``max_batch_size``.
        cpu_backend: ``auto`` (measure and choose) or a candidate to pin (``onnxruntime``,
            ``torchscript``, ``torchscript_opt``, ``int8_dynamic``).
        cpu_objective: Latency to minimise, ``p50_b1``/``p95_b1``/``p50_b64``/``p95_b64``.
        cpu_max_abs_diff: Largest output difference from the trained model a candidate may have.
        cpu_max_metric_drop: Largest test-AUC drop a candidate may have.
        cpu_threads: vCPUs of the CPU serving profile (measurement and config threads).
        model_repository: ``<model>/config.pbtxt`` + ``<model>/<version>/model.pt|model.onnx``.
        model_repository_local: Same I/O with ``backend: "python"`` and ``model.py``.
        serving_selection: What is served and why: every candidate's figures (JSON).
        serving_metrics: The selection's figures as KFP metrics.

    Returns:
        ``version``: the Triton/registry version.
    """
    from collections import namedtuple

    from pipelines.training import steps

    result = steps.export(
        model.path,
        feature_spec.path,
        registry_dir,
        model_name,
        serving_profile,
        max_batch_size,
        model_repository.path,
        model_repository_local.path,
        test_path=test_set.path,
        selection_path=serving_selection.path,
        cpu={
            "backend": cpu_backend,
            "objective": cpu_objective,
            "max_abs_diff": cpu_max_abs_diff,
            "max_metric_drop": cpu_max_metric_drop,
            "threads": cpu_threads,
        },
    )
    selection = result.pop("selection")
    for name, value in result.pop("selection_metrics").items():
        serving_metrics.log_metric(name, value)
    model_repository.metadata.update(result)
    model_repository_local.metadata.update(
        {
            "model_name": model_name,
            "version": result["version"],
            "local_runtime": result["local_runtime"],
        }
    )
    serving_selection.metadata.update(
        {k: v for k, v in selection.items() if not isinstance(v, (dict, list))}
    )
    return namedtuple("ExportOutputs", ["version"])(result["version"])


def register(
    dataset: Input[Dataset],
    validation_report: Input[Artifact],
    feature_spec: Input[Artifact],
    model: Input[Model],
    evaluation: Input[Artifact],
    model_repository: Input[Model],
    model_repository_local: Input[Model],
    serving_selection: Input[Artifact],
    version: int,
    registry_dir: str,
    model_name: str,
    rows: int,
    seed: int,
    source_uri: str,
    test_fraction: float,
    min_auc: float,
    code_version: str,
    promote: bool,
    run_tag: str,
    feature_repo: str,
    lineage: Output[Artifact],
) -> NamedTuple("RegisterOutputs", record=str):
    """Register the version with its lineage; promote it to production when asked.

    Lineage: data SHA-256, parameters, metrics, gate decision, code version (git commit, else
    package version) and library digest, feature list, artifact paths and timestamps.

    Args:
        dataset: The ingested table (hashed).
        validation_report: Profile from validate (rows, time range).
        feature_spec: The feature spec.
        model: The trained model (training record).
        evaluation: Metrics and gate decision.
        model_repository: Production Triton repository.
        model_repository_local: Local Triton repository.
        serving_selection: The export's serving report (backend, CPU selection figures).
        version: Version from export.
        registry_dir: Registry folder.
        model_name: Model name.
        rows: Requested rows (lineage).
        seed: Data and training seed (lineage).
        source_uri: Data source, empty for synthetic (lineage).
        test_fraction: Held-out share (lineage).
        min_auc: Gate threshold (lineage).
        code_version: ``git:<sha>``/``package:<v>``; empty = resolve at run time.
        promote: Make this version the production version.
        run_tag: Identifier of this run (lets a runner find the record).
        feature_repo: Feature store of the training set (lineage, with the feature service).
        lineage: Copy of the registry record.

    Returns:
        ``record``: path of the registry record.
    """
    from collections import namedtuple

    from pipelines.training import steps

    result = steps.register(
        dataset.path,
        validation_report.path,
        feature_spec.path,
        model.path,
        evaluation.path,
        model_repository.path,
        model_repository_local.path,
        lineage.path,
        registry_dir,
        model_name,
        version,
        {"requested_rows": rows, "seed": seed, "source": source_uri or "synthetic"},
        {"test_fraction": test_fraction, "min_auc": min_auc, "pipeline": "credit-risk-training"},
        code_version,
        promote,
        run_tag,
        selection_path=serving_selection.path,
        feature_repo=feature_repo,
    )
    lineage.metadata.update(result)
    return namedtuple("RegisterOutputs", ["record"])(result["record"])


def materialize(
    dataset: Input[Dataset],
    feature_spec: Input[Artifact],
    lineage: Input[Artifact],
    feature_repo: str,
    report: Output[Artifact],
) -> None:
    """Register the version's feature service and load the online store (gate passed only).

    Args:
        dataset: The ingested table (rewritten as the offline source if it went missing).
        feature_spec: The feature order of the model.
        lineage: The registry record (names the feature service).
        feature_repo: Feature store: state folder, repository or ``feature_store*.yaml``.
        report: Service, source, per-view intervals and the read-back check (JSON).
    """
    from pipelines.training import steps

    report.metadata.update(
        steps.materialize(dataset.path, feature_spec.path, lineage.path, feature_repo, report.path)
    )


def encrypt(
    model_repository: Input[Model],
    lineage: Input[Artifact],
    registry_dir: str,
    model_name: str,
    version: int,
    encryption_backend: str,
    encryption_key: str,
    encrypted: Output[Artifact],
) -> None:
    """Envelope-encrypt the model repository and lineage (``pipelines/artifacts/__init__.py``).

    Args:
        model_repository: Production Triton repository.
        lineage: The lineage record.
        registry_dir: Registry (gets an ``<version>.encryption.json`` sidecar).
        model_name: Model name.
        version: Model version.
        encryption_backend: ``local`` (key file), ``vault`` (transit) or ``kms``.
        encryption_key: Key file / transit key / KMS key; empty for the library default.
        encrypted: ``model_repository.enc/``, ``lineage.json.enc`` and ``encryption.json``.
    """
    from pipelines.training import steps

    encrypted.metadata.update(
        steps.encrypt(
            model_repository.path,
            lineage.path,
            encrypted.path,
            registry_dir,
            model_name,
            version,
            encryption_backend,
            encryption_key,
        )
    )


COMPONENT_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        ingest,
        validate,
        features,
        train,
        evaluate,
        export,
        register,
        materialize,
        encrypt,
    )
}


# ---------------------------------------------------------------------------- build, compile


FEATURE_STORE_CODE = (
    "pipelines/features/store.py",
    "pipelines/features/repo/__init__.py",
    "pipelines/features/repo/definitions.py",
    "pipelines/features/repo/feature_store.yaml",
    "pipelines/features/repo/feature_store.prod.yaml",
)
"""The feature store library, definitions and both configs (the cluster default is the prod one)."""

EXTRA_EMBEDDED: dict[str, tuple[str, ...]] = {
    "encrypt": ("pipelines/artifacts/__init__.py",),
    "export": ("kernels/__init__.py", "pipelines/serving/cpu_tier.py"),
    "features": FEATURE_STORE_CODE,
    "register": ("pipelines/features/store.py",),
    "materialize": FEATURE_STORE_CODE,
}
"""Files beyond the step library that a step imports, embedded for that step only, which keeps
the cluster IR small (every embedded copy is repeated in each component's command): the envelope
library (62 KB) for encrypt, the CPU backend selection for export, the feature store library and
repository for features and materialize (register only names the feature service)."""


@contextlib.contextmanager
def _embedded_code(extra: tuple[str, ...] = ()) -> Iterator[str]:
    """A clean copy of the code the cluster pods import (no caches, no tests), as a folder.

    Args:
        extra: Repository-relative files added to :data:`provenance.STEP_LIBRARY`
            (see :data:`EXTRA_EMBEDDED`).
    """
    with tempfile.TemporaryDirectory(prefix="sovml-embed-") as tmp:
        for relative in (*provenance.STEP_LIBRARY, *extra):
            target = Path(tmp) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / relative, target)
        yield tmp


def build_components(
    target: str, image_registry: str | None = None, pip_index_url: str | None = None
) -> dict[str, Any]:
    """The nine components for ``target`` (``local`` or ``cluster``), keyed by task name."""
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


def _cluster_settings(name: str, task: Any) -> None:
    """Resources, GPU scheduling (train), the registry volume and feature-store settings."""
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


def build_pipeline(
    target: str = "local",
    image_registry: str | None = None,
    pip_index_url: str | None = None,
    code_digest: str | None = None,
) -> Any:
    """The pipeline for ``target``: same graph, parameters and defaults; per-target components.

    Args:
        target: ``local`` (kfp.local) or ``cluster`` (Kubeflow Pipelines on EKS).
        image_registry: In-region registry mirror prefixed to every image (cluster).
        pip_index_url: Package index the cluster pods install from (the in-region mirror).
        code_digest: Digest of ``pipelines/training`` set as an environment variable on the cached
            steps. kfp.local's cache key covers a component's own source, inputs and env but not
            the modules it imports; without this, editing ``pipelines/training`` would serve stale
            cached outputs. (On the cluster the embedded code is part of the command already.)
    """
    c = build_components(target, image_registry, pip_index_url)

    def configure(name: str, task: Any) -> Any:
        task.set_display_name(name)
        if name in UNCACHED:
            task.set_caching_options(enable_caching=False)
        elif code_digest:
            task.set_env_variable("SOVML_LIB_SHA256", code_digest)
        if target == "cluster":
            _cluster_settings(name, task)
        return task

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Credit-risk MLP: ingest, validate, features (Feast, point in time), train, "
        "evaluate, gate, export to Triton, register with lineage, materialize, encrypt.",
    )
    def credit_risk_training(
        rows: int = 20000,
        seed: int = 42,
        source_uri: str = "",
        source_sha256: str = "",
        min_rows: int = 200,
        min_positive_rate: float = 0.02,
        max_positive_rate: float = 0.6,
        test_fraction: float = 0.2,
        epochs: int = 8,
        batch_size: int = 256,
        learning_rate: float = 0.003,
        weight_decay: float = 0.0001,
        hidden_units: str = "64,32",
        precision: str = "auto",
        workers: int = 0,
        min_auc: float = 0.75,
        gate_tolerance: float = 0.0,
        model_name: str = "credit_risk",
        registry_dir: str = "build/pipelines/registry",
        feature_repo: str = "build/feature_store",
        serving_profile: str = "cpu",
        max_batch_size: int = 1024,
        cpu_backend: str = "auto",
        cpu_objective: str = "p50_b1",
        cpu_max_abs_diff: float = 0.01,
        cpu_max_metric_drop: float = 0.001,
        cpu_threads: int = CPU_PROFILE_VCPUS,
        promote: bool = True,
        code_version: str = "",
        run_tag: str = "",
        encryption_backend: str = "local",
        encryption_key: str = "",
    ) -> NamedTuple("TrainingOutputs", metrics=Metrics, evaluation=Artifact, gate_passed=bool):
        """Train, gate, export, register, serve the features online and encrypt the model.

        Args:
            rows: Synthetic rows to generate.
            seed: Seed of the data generator and of training.
            source_uri: Local Parquet/CSV to ingest instead of synthetic data.
            source_sha256: Expected SHA-256 of ``source_uri`` (optional).
            min_rows: Validation: fewest rows.
            min_positive_rate: Validation: lowest default rate.
            max_positive_rate: Validation: highest default rate.
            test_fraction: Share of the latest rows held out.
            epochs: Training epochs.
            batch_size: Global batch size.
            learning_rate: AdamW learning rate.
            weight_decay: AdamW weight decay.
            hidden_units: MLP hidden widths, comma-separated.
            precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
            workers: Training processes (0 = automatic).
            min_auc: Gate: AUC floor.
            gate_tolerance: Gate: allowed AUC shortfall against production.
            model_name: Registry and Triton model name.
            registry_dir: Registry folder (a shared volume on the cluster).
            feature_repo: Feature store: a local state folder (created from
                ``pipelines/features/repo/feature_store.yaml``), a Feast repository, or a
                ``feature_store*.yaml`` (the cluster default: the prod config).
            serving_profile: ``gpu`` or ``cpu`` Triton instance group.
            max_batch_size: Triton max batch size.
            cpu_backend: CPU profile: ``auto`` (served backend chosen by measurement) or a
                candidate to pin.
            cpu_objective: CPU profile: latency the choice minimises (``p50_b1``: median at
                batch 1).
            cpu_max_abs_diff: CPU profile: largest output difference from the trained model.
            cpu_max_metric_drop: CPU profile: largest test-AUC drop.
            cpu_threads: CPU profile: vCPUs per serving replica.
            promote: Promote a passing model to production.
            code_version: Code version for the lineage (empty: resolved at run time).
            run_tag: Run identifier recorded in the lineage.
            encryption_backend: ``local``, ``vault`` or ``kms``.
            encryption_key: Key reference for the backend (empty: library default).

        Returns:
            The test metrics, the evaluation report (metrics and gate decision with its reason)
            and whether the gate passed.
        """
        ingest_task = configure(
            "ingest",
            c["ingest"](rows=rows, seed=seed, source_uri=source_uri, source_sha256=source_sha256),
        )
        dataset = ingest_task.outputs["dataset"]
        validate_task = configure(
            "validate",
            c["validate"](
                dataset=dataset,
                min_rows=min_rows,
                min_positive_rate=min_positive_rate,
                max_positive_rate=max_positive_rate,
            ),
        )
        features_task = configure(
            "features",
            c["features"](dataset=dataset, test_fraction=test_fraction, feature_repo=feature_repo),
        )
        # Features reads the dataset, not the report: the ordering edge keeps bad data out.
        features_task.after(validate_task)
        spec = features_task.outputs["feature_spec"]
        train_task = configure(
            "train",
            c["train"](
                train_set=features_task.outputs["train_set"],
                feature_spec=spec,
                seed=seed,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                weight_decay=weight_decay,
                hidden_units=hidden_units,
                precision=precision,
                workers=workers,
            ),
        )
        model = train_task.outputs["model"]
        evaluate_task = configure(
            "evaluate",
            c["evaluate"](
                test_set=features_task.outputs["test_set"],
                feature_spec=spec,
                model=model,
                registry_dir=registry_dir,
                model_name=model_name,
                min_auc=min_auc,
                gate_tolerance=gate_tolerance,
            ),
        )
        with dsl.If(evaluate_task.outputs["Output"] == True):  # noqa: E712 - a KFP condition
            export_task = configure(
                "export",
                c["export"](
                    model=model,
                    feature_spec=spec,
                    test_set=features_task.outputs["test_set"],
                    registry_dir=registry_dir,
                    model_name=model_name,
                    serving_profile=serving_profile,
                    max_batch_size=max_batch_size,
                    cpu_backend=cpu_backend,
                    cpu_objective=cpu_objective,
                    cpu_max_abs_diff=cpu_max_abs_diff,
                    cpu_max_metric_drop=cpu_max_metric_drop,
                    cpu_threads=cpu_threads,
                ),
            )
            register_task = configure(
                "register",
                c["register"](
                    dataset=dataset,
                    validation_report=validate_task.outputs["report"],
                    feature_spec=spec,
                    model=model,
                    evaluation=evaluate_task.outputs["report"],
                    model_repository=export_task.outputs["model_repository"],
                    model_repository_local=export_task.outputs["model_repository_local"],
                    serving_selection=export_task.outputs["serving_selection"],
                    version=export_task.outputs["version"],
                    registry_dir=registry_dir,
                    model_name=model_name,
                    rows=rows,
                    seed=seed,
                    source_uri=source_uri,
                    test_fraction=test_fraction,
                    min_auc=min_auc,
                    code_version=code_version,
                    promote=promote,
                    run_tag=run_tag,
                    feature_repo=feature_repo,
                ),
            )
            configure(
                "materialize",
                c["materialize"](
                    dataset=dataset,
                    feature_spec=spec,
                    lineage=register_task.outputs["lineage"],
                    feature_repo=feature_repo,
                ),
            )
            configure(
                "encrypt",
                c["encrypt"](
                    model_repository=export_task.outputs["model_repository"],
                    lineage=register_task.outputs["lineage"],
                    registry_dir=registry_dir,
                    model_name=model_name,
                    version=export_task.outputs["version"],
                    encryption_backend=encryption_backend,
                    encryption_key=encryption_key,
                ),
            )
        outputs = NamedTuple(  # noqa: UP014
            "TrainingOutputs", metrics=Metrics, evaluation=Artifact, gate_passed=bool
        )
        return outputs(
            metrics=evaluate_task.outputs["metrics"],
            evaluation=evaluate_task.outputs["report"],
            gate_passed=evaluate_task.outputs["Output"],
        )

    return credit_risk_training


def compile_pipeline(
    target: str = "local",
    out: str | Path | None = None,
    image_registry: str | None = None,
    pip_index_url: str | None = None,
) -> Path:
    """Compile the pipeline for ``target`` to IR YAML and return the file's path.

    Args:
        target: ``local`` or ``cluster``.
        out: Destination; default ``build/pipelines/training[-cluster].yaml``.
        image_registry: In-region registry mirror for the images (cluster).
        pip_index_url: In-region package index for the cluster pods.
    """
    pipeline = build_pipeline(target, image_registry, pip_index_url)
    suffix = "" if target == "local" else f"-{target}"
    path = Path(out) if out else ROOT / "build" / "pipelines" / f"training{suffix}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        pipeline,
        str(path),
        pipeline_parameters=CLUSTER_DEFAULTS if target == "cluster" else None,
    )
    return path


EMBEDDED_ARCHIVE = re.compile(r"__KFP_EMBEDDED_ARCHIVE_B64 = '[A-Za-z0-9+/=]*'")
EMBEDDED_PLACEHOLDER = (
    "__KFP_EMBEDDED_ARCHIVE_B64 = '<embedded pipelines/training: see golden header>'"
)
VOLATILE_KEYS = ("sdkVersion",)
GOLDEN_HEADER = """\
# Golden compiled IR of pipelines/training/pipeline.py ({target} target), normalised for review:
# sdkVersion dropped and each embedded code archive (a gzip with a timestamp, so different on
# every compile) replaced by a placeholder; tests check the real archive holds pipelines/training.
# Regenerate: .venv/bin/python -m pipelines.training.pipeline --write-golden
# Deployable IR: sovml pipeline compile training --target {target}
"""


def normalise_ir(text: str) -> list[Any]:
    """Parsed IR documents without volatile fields (see :data:`GOLDEN_HEADER`)."""
    import yaml

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k not in VOLATILE_KEYS}
        if isinstance(node, list):
            return [clean(v) for v in node]
        if isinstance(node, str):
            return EMBEDDED_ARCHIVE.sub(EMBEDDED_PLACEHOLDER, node)
        return node

    return [clean(doc) for doc in yaml.safe_load_all(text) if doc is not None]


def golden_text(text: str, target: str) -> str:
    """The golden-file form of compiled IR ``text``."""
    import yaml

    body = yaml.safe_dump_all(normalise_ir(text), sort_keys=False, width=100)
    return GOLDEN_HEADER.format(target=target) + body


def write_golden() -> list[Path]:
    """Rewrite ``pipelines/training/compiled/*.yaml`` from the current code (see :func:`golden_text`)."""
    written = []
    for target, path in GOLDEN.items():
        with tempfile.TemporaryDirectory() as tmp:
            raw = compile_pipeline(target, Path(tmp) / "ir.yaml")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(golden_text(raw.read_text(), target))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.training.pipeline [--target local|cluster] [--out PATH] [--write-golden]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=TARGETS, default="local")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--write-golden", action="store_true", help="rewrite pipelines/training/compiled/"
    )
    args = parser.parse_args(argv)
    if args.write_golden:
        for path in write_golden():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    print(f"wrote {compile_pipeline(args.target, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
