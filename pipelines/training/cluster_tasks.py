"""The KFP component only the cluster graph runs: ``track``, the run logged to MLflow.

The local run tracks from the host once ``kfp.local`` has finished
(:func:`pipelines.registry.tracking.track_local_run`); on the cluster no host waits for the run,
so its last step does it, through the same :func:`pipelines.registry.tracking.track_pipeline_run`.
Like every component body it imports inside the function (KFP copies the function's source) and
delegates to :mod:`pipelines.training.steps`.
"""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model


def track(
    dataset: Input[Dataset],
    tuning: Input[Artifact],
    metrics: Input[Metrics],
    evaluation: Input[Artifact],
    tracking_uri: str,
    run_tag: str,
    kfp_run_id: str,
    model_name: str,
    rows: int,
    seed: int,
    epochs: int,
    tune_trials: int,
    min_auc: float,
    max_parity_difference: float,
    max_odds_difference: float,
    lineage: Input[Artifact] = None,
    model_repository: Input[Model] = None,
    version: int = 0,
) -> int:
    """Log the cluster run to MLflow and register its version (the local run does the same
    from the host, through the same code): parameters, metrics, data digest, tuning trials as
    child runs, the lineage record, evaluation report and served model as artifacts.

    Runs last on both branches of the gate: after a registration with ``lineage`` and
    ``model_repository`` (the version is registered and moved to challenger), after a refusal
    without them (the run is logged, nothing registered).

    Args:
        dataset: The ingested table (its digest, when no lineage names it).
        tuning: The tune step's record (every trial a child run).
        metrics: The evaluate step's metrics (the run's metrics).
        evaluation: The evaluate step's report (the gate's decision, logged as an artifact).
        tracking_uri: The MLflow server (the cluster's Service); empty fails the step.
        run_tag: The run's tag (empty: ``kfp-<run id>``).
        kfp_run_id: The Kubeflow run's id (injected by KFP).
        model_name: The registered model's name.
        rows: Requested rows (a parameter of the run).
        seed: Seed (a parameter of the run).
        epochs: Training epochs (a parameter of the run).
        tune_trials: Tuning budget (a parameter of the run).
        min_auc: Gate's AUC floor (a parameter of the run).
        max_parity_difference: Gate's parity limit (a parameter of the run).
        max_odds_difference: Gate's equalized-odds limit (a parameter of the run).
        lineage: The register step's lineage record (absent: the gate refused).
        model_repository: The production Triton repository (the served model's file).
        version: The Triton/registry version from export (0: none).

    Returns:
        The registry's version number (0: nothing registered).
    """
    from pipelines.training import steps

    result = steps.track(
        tracking_uri,
        "credit-risk-training",
        run_tag or f"kfp-{kfp_run_id}",
        {
            "rows": rows,
            "seed": seed,
            "epochs": epochs,
            "tune_trials": tune_trials,
            "min_auc": min_auc,
            "max_parity_difference": max_parity_difference,
            "max_odds_difference": max_odds_difference,
            "model_name": model_name,
        },
        dict(metrics.metadata),
        {
            "passed": bool(evaluation.metadata.get("gate_passed")),
            "reason": str(evaluation.metadata.get("gate_reason", "")),
        },
        {
            "dataset": dataset.path,
            "tuning": tuning.path,
            "evaluation": evaluation.path,
            "lineage": lineage.path if lineage is not None else "",
            "model_repository": model_repository.path if model_repository is not None else "",
        },
        model_name,
        version,
    )
    print(f"tracked: {result}")
    return int(result["registry_version"])
