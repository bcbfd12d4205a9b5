"""The twelve KFP components of the training pipeline, as lightweight-component functions
(the cluster-only ``track`` in :mod:`pipelines.training.cluster_tasks`).

Each body imports what it needs inside the function (the lightweight-component rule: KFP copies
the function's source, not its module, into the component) and delegates to
:mod:`pipelines.training.steps`, which holds the logic and is tested in-process; the body only
moves paths and parameters in and metadata out. Changing a body or its docstring changes the
compiled IR (``pipelines/training/compiled/``).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output, PipelineTaskFinalStatus

from pipelines.training.cluster_tasks import track


def ingest(
    rows: int,
    seed: int,
    source_uri: str,
    source_sha256: str,
    encryption_backend: str,
    encryption_key: str,
    pseudonymization_key: str,
    biased_data: bool,
    dataset: Output[Dataset],
) -> None:
    """Generate the synthetic credit-risk table, or read a local extract; pseudonymize it.

    Every direct identifier (Emirates ID, phone, e-mail, name) is replaced by a keyed-hash token
    before the table is written: no later step sees a raw one.

    Args:
        rows: Rows to generate (ignored when ``source_uri`` is set).
        seed: Generator seed.
        source_uri: Optional local Parquet/CSV file to ingest instead of generating.
        source_sha256: Optional expected SHA-256 of ``source_uri``.
        encryption_backend: Key service of the pseudonymization key (``local``, ``vault``,
            ``kms``).
        encryption_key: Key file (local) or transit key (vault): the HMAC key's source.
        pseudonymization_key: The HMAC_256 KMS key (kms; empty: the dev stack's alias).
        biased_data: Generate the deliberately biased variant (the fairness gate's proof).
        dataset: The pseudonymized table as Parquet.
    """
    from pipelines.training import steps

    # A KMS key has one usage: kms MACs with its own HMAC key, never the encryption key.
    key = pseudonymization_key if encryption_backend == "kms" else encryption_key
    dataset.metadata.update(
        steps.ingest(
            rows,
            seed,
            source_uri,
            source_sha256,
            dataset.path,
            encryption_backend,
            key,
            biased=biased_data,
        )
    )


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


def tune(
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
    tune_trials: int,
    tune_timeout_s: float,
    tune_epochs: int,
    tuning: Output[Artifact],
) -> None:
    """Tune the declared search space with Optuna (TPE, seeded) on the training rows.

    Each trial trains on the earlier training rows for ``tune_epochs`` and is scored by its AUC
    on the latest ones; the given hyperparameters are trial 0. The best trial's values feed the
    train step (``tune_trials`` = 0: the given values, untuned).

    Args:
        train_set: Training rows.
        feature_spec: The feature spec.
        seed: Seed of the sampler and of every trial's training.
        epochs: Training epochs (recorded; the trials use ``tune_epochs``).
        batch_size: Given batch size (trial 0).
        learning_rate: Given learning rate (trial 0).
        weight_decay: Given weight decay (trial 0).
        hidden_units: Given hidden widths (trial 0).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        workers: Final training's processes (the trials use one each).
        tune_trials: Trials to run (0: no tuning).
        tune_timeout_s: Seconds after which no new trial starts.
        tune_epochs: Epochs per trial.
        tuning: Every trial's values and score, the best and the chosen values (JSON).
    """
    from pipelines.training import steps

    given = {
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "hidden_units": hidden_units,
        "precision": precision,
        "workers": workers,
    }
    budget = {"trials": tune_trials, "timeout_s": tune_timeout_s, "epochs": tune_epochs}
    tuning.metadata.update(
        steps.tune(train_set.path, feature_spec.path, tuning.path, given, budget)
    )


def train(
    train_set: Input[Dataset],
    feature_spec: Input[Artifact],
    tuning: Input[Artifact],
    seed: int,
    epochs: int,
    precision: str,
    workers: int,
    model: Output[Model],
) -> None:
    """Train the PyTorch MLP (seeded; AMP + DDP on CUDA or several workers, fp32 on one CPU)
    with the hyperparameters the tune step chose.

    Args:
        train_set: Training rows.
        feature_spec: Preprocessing the model embeds.
        tuning: The tune step's record: its chosen learning rate, weight decay, batch size and
            hidden widths.
        seed: Seed of initialisation and shuffling.
        epochs: Passes over the data.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        workers: Training processes (0 = one per GPU, else 1).
        model: Folder with ``weights.pt`` and ``training.json``.
    """
    from pipelines.training import steps

    fixed = {"seed": seed, "epochs": epochs, "precision": precision, "workers": workers}
    model.metadata.update(
        steps.train(train_set.path, feature_spec.path, model.path, fixed, tuning_path=tuning.path)
    )


def evaluate(
    test_set: Input[Dataset],
    feature_spec: Input[Artifact],
    model: Input[Model],
    registry_dir: str,
    model_name: str,
    min_auc: float,
    gate_tolerance: float,
    max_parity_difference: float,
    max_odds_difference: float,
    metrics: Output[Metrics],
    report: Output[Artifact],
) -> bool:
    """Accuracy, AUC, log loss and group fairness on the out-of-time test set; the release gate.

    The gate passes when AUC >= ``min_auc``, the demographic parity and equalized odds
    differences over the sensitive attribute are within their thresholds (fairlearn), and the
    model is at least as good as the registered production model (on the same test rows where
    possible).

    Args:
        test_set: Test rows.
        feature_spec: The feature spec (column order).
        model: The trained model.
        registry_dir: Registry holding the production model, if any.
        model_name: Registry/Triton model name.
        min_auc: The AUC floor.
        gate_tolerance: How much worse than production the candidate may be.
        max_parity_difference: Largest demographic parity difference accepted.
        max_odds_difference: Largest equalized odds difference accepted.
        metrics: KFP metrics (shown in the UI).
        report: Metrics, fairness figures and gate decision (JSON).

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
        limits={
            "max_parity_difference": max_parity_difference,
            "max_odds_difference": max_odds_difference,
        },
    )
    for name in ("accuracy", "auc", "log_loss"):
        metrics.log_metric(name, result["metrics"][name])
    metrics.log_metric("test_rows", result["metrics"]["rows"])
    fairness = result["fairness"]
    for name in ("demographic_parity_difference", "equalized_odds_difference"):
        if fairness[name] is not None:
            metrics.log_metric(name, fairness[name])
    for group, figures in fairness["by_group"].items():
        for name in ("accuracy", "auc"):
            if figures[name] is not None:
                metrics.log_metric(f"{name}_{fairness['attribute']}_{group}", figures[name])
    gate = result["gate"]
    report.metadata.update(
        {"gate_passed": gate["passed"], "gate_reason": gate["reason"], "fairness": fairness}
    )
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


def outcome(pipeline_name: str, pushgateway: str, status: PipelineTaskFinalStatus) -> str:
    """The exit task: add the run's outcome to the training-pipeline SLO's counter.

    Runs after every other step, whatever their outcome (``dsl.ExitHandler``), and pushes
    ``sovml_pipeline_runs_total`` to the pushgateway (``pipelines/training/outcome.py``). A
    cancelled run is not counted; without a pushgateway (the local run, which writes a textfile
    instead) nothing is pushed.

    Args:
        pipeline_name: The ``pipeline`` label.
        pushgateway: Pushgateway base URL; empty: push nothing.
        status: The final status of the pipeline's body (injected by KFP).

    Returns:
        ``succeeded``, ``failed``, or ``not counted`` (cancelled, or no pushgateway).
    """
    from pipelines.training import outcome as runs

    succeeded = runs.succeeded_of_state(status.state)
    if succeeded is None or not pushgateway:
        print(f"outcome: {status.state}, not pushed")
        return "not counted"
    counts = runs.push_run(pushgateway, pipeline_name, succeeded)
    print(f"outcome: {status.state}, pushed {counts}")
    return "succeeded" if succeeded else "failed"


COMPONENT_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        ingest,
        validate,
        features,
        tune,
        train,
        evaluate,
        export,
        register,
        materialize,
        encrypt,
        track,
        outcome,
    )
}
"""The component functions by task name, in pipeline order (the exit task last)."""
