"""Credit-risk training pipeline (Kubeflow Pipelines v2).

ingest -> validate -> features -> tune -> train -> evaluate -> [gate passed] export -> register
-> materialize, encrypt [-> track, on the cluster; refused: track alone]

The training set comes from the Feast feature store (``pipelines/features/``): the features step
writes the offline source and joins every row's features point in time; after a registration,
materialize registers the version's feature service and loads the online store.

This module is the graph: the parameters and their defaults, and how the steps' artifacts flow,
in three named stages (:func:`_prepare_data`, :func:`_train_and_evaluate`, :func:`_release`).
The steps themselves are the components of ``pipelines/training/tasks.py``; how each becomes a
component per target is ``pipelines/training/packaging.py``. The same graph runs locally with
``kfp.local`` and compiles for the cluster (``pipelines/training/compilation.py``):

* ``compile_pipeline(target="local")`` (the default): lightweight components that run in the
  current virtualenv (``pipelines.training`` on ``PYTHONPATH``); see
  ``pipelines/training/local_run.py``.
* ``compile_pipeline(target="cluster")``: pinned images, ``pipelines.training`` embedded in every
  component, exact-pinned runtime packages, CPU/memory requests and limits, and for ``train`` a
  ``nvidia.com/gpu`` limit. When ``kfp-kubernetes`` is installed, also the GPU-pool toleration
  and node selector for ``train`` and the registry volume for the steps that use the registry
  (without it they are left out, with a warning). See ``pipelines/training/images.py`` for how
  code and images reach the pod.

Compile, or regenerate the golden IR (``pipelines/training/compiled/training.yaml`` and
``training-cluster.yaml``)::

    .venv/bin/python -m pipelines.training.pipeline [--target local|cluster] [--out PATH]
    .venv/bin/python -m pipelines.training.pipeline --write-golden
"""

import sys
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Metrics

from pipelines.pushgateway import DEFAULT_URL as PUSHGATEWAY_URL
from pipelines.training.gate import DEFAULT_LIMITS
from pipelines.training.images import EXIT_TASK, REGISTRY_MOUNT, TRACKING_URI
from pipelines.training.packaging import build_components, cluster_settings
from pipelines.training.steps.exporting import CPU_DEFAULTS

PIPELINE_NAME = "credit-risk-training"

CLUSTER_DEFAULTS: dict[str, Any] = {
    "serving_profile": "gpu",
    "registry_dir": REGISTRY_MOUNT,
    "encryption_backend": "vault",
    "feature_repo": "pipelines/features/repo/feature_store.prod.yaml",
    "pushgateway": PUSHGATEWAY_URL,
    "tracking_uri": TRACKING_URI,
}
"""Pipeline-parameter defaults that differ on the cluster (a GPU Triton profile, the registry on
a shared volume, keys in Vault transit, the feature store on S3 + Redis, whose config is resolved
inside the code embedded in the pod, the run's outcome pushed to the monitoring pushgateway,
the run tracked by the cluster's MLflow server); everything else defaults the same as locally."""

# Steps that read or write state outside their artifacts (the registry, the key service, the online
# store) must run every time; the others are pure functions of their inputs and may be served from
# the cache. features also writes the feature store's offline source and registry, but only as a
# function of its inputs: a cached run leaves them as the original run did, and materialize (never
# cached) rewrites the source from the dataset should it have gone missing since.
UNCACHED = ("evaluate", "export", "register", "materialize", "encrypt", "track")


class TrainingOutputs(NamedTuple):
    """What a run of the pipeline returns."""

    metrics: Metrics
    """The test metrics (accuracy, AUC, log loss, test rows)."""
    evaluation: Artifact
    """The evaluation report: metrics and the gate decision with its reason."""
    gate_passed: bool
    """Whether the gate passed."""


class _Tasks:
    """Adds the steps' tasks to the pipeline being traced, each configured for the target.

    A step's inputs from other steps' outputs are wired explicitly (:meth:`add`); each of its
    other inputs takes the pipeline parameter of the same name, so a parameter reaches every step
    that declares it and the stages below show only how artifacts flow.

    Args:
        components: The components of ``target`` by task name (:func:`build_components`).
        target: ``local`` or ``cluster``.
        code_digest: See :func:`build_pipeline`.
        parameters: The pipeline function's ``locals()`` while KFP traces it: its parameters, by
            name (nothing else there is named like a step input).
    """

    def __init__(
        self,
        components: dict[str, Any],
        target: str,
        code_digest: str | None,
        parameters: dict[str, Any],
    ) -> None:
        self._components = components
        self.target = target
        self._code_digest = code_digest
        self._parameters = parameters

    def add(self, name: str, **wired: Any) -> Any:
        """Add step ``name``'s task with ``wired`` inputs (other steps' outputs); return it."""
        component = self._components[name]
        inputs = component.component_spec.inputs or {}
        given = {k: v for k, v in self._parameters.items() if k in inputs and k not in wired}
        task = component(**given, **wired)
        task.set_display_name(name)
        if name in UNCACHED:
            task.set_caching_options(enable_caching=False)
        elif self._code_digest:
            task.set_env_variable("SOVML_LIB_SHA256", self._code_digest)
        if self.target == "cluster":
            cluster_settings(name, task)
        return task


class _Prepared(NamedTuple):
    """The data stage's outputs."""

    dataset: Any
    """The ingested table."""
    validation_report: Any
    """Its profile from validate."""
    train_set: Any
    """Training rows from the feature store."""
    test_set: Any
    """Out-of-time test rows."""
    feature_spec: Any
    """Feature list and preprocessing."""


def _prepare_data(tasks: _Tasks) -> _Prepared:
    """ingest -> validate -> features: the table, its profile and the training set."""
    dataset = tasks.add("ingest").outputs["dataset"]
    validate = tasks.add("validate", dataset=dataset)
    features = tasks.add("features", dataset=dataset)
    # Features reads the dataset, not the report: the ordering edge keeps bad data out.
    features.after(validate)
    return _Prepared(
        dataset,
        validate.outputs["report"],
        features.outputs["train_set"],
        features.outputs["test_set"],
        features.outputs["feature_spec"],
    )


def _train_and_evaluate(tasks: _Tasks, data: _Prepared) -> tuple[Any, Any, Any]:
    """tune -> train -> evaluate: the model, the evaluate task (metrics, fairness, report, gate
    decision) and the tuning record."""
    tune = tasks.add("tune", train_set=data.train_set, feature_spec=data.feature_spec)
    train = tasks.add(
        "train",
        train_set=data.train_set,
        feature_spec=data.feature_spec,
        tuning=tune.outputs["tuning"],
    )
    model = train.outputs["model"]
    evaluate = tasks.add(
        "evaluate", test_set=data.test_set, feature_spec=data.feature_spec, model=model
    )
    return model, evaluate, tune.outputs["tuning"]


def _release(tasks: _Tasks, data: _Prepared, model: Any, evaluation: Any) -> dict[str, Any]:
    """export -> register -> materialize and encrypt: what runs once the gate has passed.

    Returns what the cluster's track step reads of it: the lineage, the production repository,
    the version, and the last tasks (track runs after them)."""
    export = tasks.add(
        "export", model=model, feature_spec=data.feature_spec, test_set=data.test_set
    )
    exported = {
        name: export.outputs[name]
        for name in ("model_repository", "model_repository_local", "serving_selection", "version")
    }
    register = tasks.add(
        "register",
        dataset=data.dataset,
        validation_report=data.validation_report,
        feature_spec=data.feature_spec,
        model=model,
        evaluation=evaluation,
        **exported,
    )
    lineage = register.outputs["lineage"]
    materialize = tasks.add(
        "materialize", dataset=data.dataset, feature_spec=data.feature_spec, lineage=lineage
    )
    encrypt = tasks.add(
        "encrypt",
        model_repository=exported["model_repository"],
        lineage=lineage,
        version=exported["version"],
    )
    return {
        "lineage": lineage,
        "model_repository": exported["model_repository"],
        "version": exported["version"],
        "after": (materialize, encrypt),
    }


def _track(tasks: _Tasks, tuned: Any, evaluate: Any, dataset: Any, **registered: Any) -> None:
    """The cluster run's last step: the run in MLflow and, with ``registered``, its version."""
    after = registered.pop("after", ())
    task = tasks.add(
        "track",
        dataset=dataset,
        tuning=tuned,
        metrics=evaluate.outputs["metrics"],
        evaluation=evaluate.outputs["report"],
        kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        **registered,
    )
    task.after(*after)


def _graph(tasks: _Tasks) -> TrainingOutputs | None:
    """The pipeline's graph for the target: on the cluster under the exit handler, without
    pipeline outputs; locally the bare body and its outputs.

    On the cluster the exit task (:data:`EXIT_TASK`) runs once the body has ended, succeeded or
    failed, and adds the run to the training-pipeline SLO's counter on the pushgateway (the
    ``pushgateway`` parameter). KFP refuses pipeline outputs returned from inside an exit
    handler, and the local run reads them (:mod:`pipelines.training.local_run`), so the local
    graph has no exit handler: the local run records its outcome itself, as a textfile.
    """
    if tasks.target != "cluster":
        return _body(tasks)
    exit_task = tasks.add(EXIT_TASK, pipeline_name=PIPELINE_NAME)
    with dsl.ExitHandler(exit_task, name="run"):
        _body(tasks)
    return None


def _body(tasks: _Tasks) -> TrainingOutputs:
    """The three stages, the release gated on the evaluation, on the cluster the run tracked on
    either branch of the gate; returns the pipeline outputs."""
    data = _prepare_data(tasks)
    model, evaluate, tuned = _train_and_evaluate(tasks, data)
    with dsl.If(evaluate.outputs["Output"] == True):  # noqa: E712 - a KFP condition
        released = _release(tasks, data, model, evaluate.outputs["report"])
        if tasks.target == "cluster":
            _track(tasks, tuned, evaluate, data.dataset, **released)
    if tasks.target == "cluster":
        # The local run tracks from the host after kfp.local (one code path, no second log).
        with dsl.Else():
            _track(tasks, tuned, evaluate, data.dataset)
    return TrainingOutputs(
        metrics=evaluate.outputs["metrics"],
        evaluation=evaluate.outputs["report"],
        gate_passed=evaluate.outputs["Output"],
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
    components = build_components(target, image_registry, pip_index_url)

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
        tune_trials: int = 4,
        tune_timeout_s: float = 300.0,
        tune_epochs: int = 2,
        min_auc: float = 0.75,
        gate_tolerance: float = 0.0,
        max_parity_difference: float = DEFAULT_LIMITS.max_parity_difference,
        max_odds_difference: float = DEFAULT_LIMITS.max_odds_difference,
        biased_data: bool = False,
        model_name: str = "credit_risk",
        registry_dir: str = "build/pipelines/registry",
        feature_repo: str = "build/feature_store",
        serving_profile: str = "cpu",
        max_batch_size: int = 1024,
        cpu_backend: str = CPU_DEFAULTS["backend"],
        cpu_objective: str = CPU_DEFAULTS["objective"],
        cpu_max_abs_diff: float = CPU_DEFAULTS["max_abs_diff"],
        cpu_max_metric_drop: float = CPU_DEFAULTS["max_metric_drop"],
        cpu_threads: int = CPU_DEFAULTS["threads"],
        promote: bool = True,
        code_version: str = "",
        run_tag: str = "",
        encryption_backend: str = "local",
        encryption_key: str = "",
        pseudonymization_key: str = "",
        pushgateway: str = "",
        tracking_uri: str = "",
    ) -> TrainingOutputs:
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
            tune_trials: Tuning: Optuna trials over the search space (0: train with the given
                hyperparameters, untuned).
            tune_timeout_s: Tuning: seconds after which no new trial starts.
            tune_epochs: Tuning: training epochs per trial.
            min_auc: Gate: AUC floor.
            gate_tolerance: Gate: allowed AUC shortfall against production.
            max_parity_difference: Gate: largest demographic parity difference over the
                sensitive attribute.
            max_odds_difference: Gate: largest equalized odds difference over it.
            biased_data: Generate the deliberately biased variant of the synthetic data (the
                fairness gate must refuse its model).
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
            pseudonymization_key: The stack's HMAC_256 KMS key the ingest step MACs with when
                ``encryption_backend`` is ``kms`` (``alias/sovml-<stack>-pseudonymization``;
                empty: the dev stack's); the other backends use ``encryption_key``.
            pushgateway: Pushgateway the exit task pushes the run's outcome to (cluster; empty:
                none).
            tracking_uri: MLflow server the track step logs the run to (cluster; the local run
                tracks from the host: ``$SOVML_TRACKING_URI`` or the embedded server).

        Returns:
            The test metrics, the evaluation report (metrics and gate decision with its reason)
            and whether the gate passed (local target; the cluster run's are its tasks').
        """
        return _graph(_Tasks(components, target, code_digest, parameters=locals()))

    if target == "cluster":
        # The cluster graph returns nothing (see _graph); KFP reads the outputs from the
        # signature, so the signature must say so.
        credit_risk_training.__annotations__["return"] = None
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description="Credit-risk MLP: ingest, validate, features (Feast, point in time), tune "
        "(Optuna), train, evaluate with fairness (fairlearn), gate, export to Triton, register "
        "with lineage, materialize, encrypt.",
    )(credit_risk_training)


if __name__ == "__main__":
    from pipelines.training.compilation import main

    sys.exit(main())
