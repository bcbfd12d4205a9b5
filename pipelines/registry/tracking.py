"""Log one pipeline run to the tracking server and register its version.

After ``kfp.local`` finished (the local run), or as the cluster pipeline's last step (``track``),
:func:`track_pipeline_run` reads the run's files and :func:`track_run` writes one MLflow run per
pipeline run in the experiment named after the pipeline: its parameters (the run's arguments and the
trained model's), its metrics (the evaluate step's, fairness included when the step reports it), the
data digest and lineage links as tags, and as artifacts the lineage record, the evaluation report
and the served model file. A version that passed the gate is then registered (MLflow's registry,
``source`` the run's ``model`` artifacts) as a candidate and moved to challenger by the gate's
decision (:func:`pipelines.registry.governance.passed_gate`), tagged with the lineage record's path
and digest, the Triton repository's version number and the run tag.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.registry import governance
from pipelines.registry.mlflow_rest import MAX_TAG_VALUE, MlflowRest

MAX_PARAM = 6000
"""Longest parameter value MLflow stores; longer ones are cut (the lineage holds them whole)."""


@dataclass(frozen=True)
class TrackedRun:
    """What the tracking server holds about one pipeline run.

    Attributes:
        run_id: The MLflow run.
        experiment_id: Its experiment (one per pipeline).
        model_version: The registered version (None when the gate refused the model).
        state: The version's lifecycle state after registration ('' without a version).
    """

    run_id: str
    experiment_id: str
    model_version: int | None
    state: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _scalar_params(values: dict[str, Any]) -> dict[str, str]:
    """JSON scalars as MLflow parameter strings (objects and lists as compact JSON)."""
    params: dict[str, str] = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        params[str(key)] = text[:MAX_PARAM]
    return params


def _numeric(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Finite numbers of a (nested) report, keys joined with '.' (``fairness.dp_difference``)."""
    numbers: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            numbers.update(_numeric(value, f"{name}."))
        elif (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        ):
            numbers[name] = float(value)
    return numbers


TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}
"""An Optuna trial's state as an MLflow run status (any other state: ``FAILED``)."""
TRIAL_METRIC = "validation_auc"
"""The objective a trial is scored by (the tune step's ``objective``)."""


def _track_trial(
    client: MlflowRest, experiment_id: str, parent: str, run_tag: str, trial: dict[str, Any]
) -> str:
    """One tuning trial as a child run of ``parent``: its values, score, seconds and state."""
    number = int(trial["number"])
    name = f"{run_tag}-trial-{number}"
    state = str(trial.get("state") or "")
    tags = {
        "mlflow.runName": name,
        "mlflow.parentRunId": parent,
        "sovml.trial_number": str(number),
        "sovml.trial_state": state,
    }
    child = client.create_run(experiment_id, name, tags)
    metrics = {}
    if isinstance(trial.get("value"), (int, float)) and math.isfinite(float(trial["value"])):
        metrics[TRIAL_METRIC] = float(trial["value"])
    if isinstance(trial.get("seconds"), (int, float)):
        metrics["seconds"] = float(trial["seconds"])
    client.log_batch(child, _scalar_params(dict(trial.get("params") or {})), metrics, {})
    client.finish_run(child, TRIAL_STATUS.get(state, "FAILED"))
    return child


def track_run(
    client: MlflowRest,
    *,
    experiment: str,
    run_tag: str,
    succeeded: bool,
    arguments: dict[str, Any],
    metrics: dict[str, Any],
    gate: dict[str, Any],
    lineage_record: Path | None,
    evaluation_report: Path | None,
    served_model: Path | None,
    data_sha256: str,
    model_name: str,
    repository_version: int | None,
    trials: list[dict[str, Any]] | None = None,
) -> TrackedRun:
    """Log the run and, when the gate passed and a lineage record exists, register its version.

    Args:
        client: The tracking server.
        experiment: Experiment name (the pipeline's).
        run_tag: The pipeline run's tag (also the MLflow run's name).
        succeeded: Whether every step succeeded.
        arguments: The pipeline's arguments (parameters of the run).
        metrics: The evaluate step's metrics.
        gate: The evaluation gate's decision ``{"passed", "reason", ...}``.
        lineage_record: The registry's lineage record of the version (None: not registered).
        evaluation_report: The evaluate step's report file, when one was written.
        served_model: The file Triton serves, uploaded as the version's ``model`` artifact.
        data_sha256: Digest of the ingested table ('' when unknown).
        model_name: The registered model's name.
        repository_version: The version folder in the Triton repository.
        trials: The tune step's trials (``number``, ``state``, ``params``, ``value``,
            ``seconds``), each logged as a child run of this one.

    Raises:
        pipelines.registry.mlflow_rest.MlflowError: The server refused a call or is unreachable.
    """
    experiment_id = client.experiment_id(experiment)
    tags = {
        "sovml.run_tag": run_tag,
        "sovml.data_sha256": data_sha256,
        "sovml.gate_passed": str(bool(gate.get("passed"))).lower(),
        "sovml.gate_reason": str(gate.get("reason", ""))[:MAX_TAG_VALUE],
    }
    lineage: dict[str, Any] = {}
    if lineage_record is not None:
        lineage = json.loads(lineage_record.read_text())
        tags["sovml.lineage_record"] = str(lineage_record.resolve())
        tags["sovml.lineage_sha256"] = _sha256(lineage_record)
    run_id = client.create_run(experiment_id, run_tag, {"mlflow.runName": run_tag})
    params = _scalar_params(
        {**{f"pipeline.{k}": v for k, v in arguments.items()}, **lineage.get("parameters", {})}
    )
    client.log_batch(run_id, params, _numeric(metrics), tags)
    for trial in trials or []:
        _track_trial(client, experiment_id, run_id, run_tag, trial)
    for path, folder in ((lineage_record, "lineage"), (evaluation_report, "evaluation")):
        if path is not None and path.is_file():
            client.upload_artifact(run_id, path, folder)
    version = None
    state = ""
    if gate.get("passed") and lineage_record is not None and served_model is not None:
        client.upload_artifact(run_id, served_model, "model")
        source = f"{client.get_run(run_id)['info']['artifact_uri']}/model"
        client.ensure_registered_model(
            model_name, f"{model_name}: registered by the sovml training pipeline"
        )
        registered = client.create_model_version(
            model_name,
            source,
            run_id,
            {
                "lineage_record": tags["sovml.lineage_record"],
                "lineage_sha256": tags["sovml.lineage_sha256"],
                "repository_version": str(repository_version or ""),
                "run_tag": run_tag,
                "data_sha256": data_sha256,
                governance.STATE_TAG: governance.State.CANDIDATE.value,
            },
        )
        evidence = {
            "passed": bool(gate.get("passed")),
            "reason": str(gate.get("reason", ""))[:1024],
            "metrics": _numeric(metrics),
        }
        state = governance.passed_gate(client, registered, evidence).value
        version = registered.version
    client.finish_run(run_id, "FINISHED" if succeeded else "FAILED")
    return TrackedRun(run_id, experiment_id, version, state)


@dataclass(frozen=True)
class RunFiles:
    """Where a finished pipeline run's outputs are, as tracking reads them: the local run's
    folders, or the cluster's track step's input artifacts (one reading for both).

    Attributes:
        lineage: The register step's lineage record (None or missing: nothing registered).
        evaluation: The evaluate step's report.
        tuning: The tune step's record (its trials become child runs).
        dataset: The ingested table (digested when the lineage does not name its digest).
        repository: This process's copy of the export's production repository; the served
            file is found there by its place relative to the repository the lineage names (on
            the cluster each pod sees an artifact at a path of its own). None: the lineage's
            path as written.
    """

    lineage: Path | None
    evaluation: Path | None
    tuning: Path | None
    dataset: Path | None
    repository: Path | None = None


def _served_file(lineage: dict[str, Any], repository: Path | None) -> Path | None:
    artifacts = lineage.get("artifacts", {})
    served = artifacts.get("served")
    if not served:
        return None
    named = artifacts.get("model_repository")
    if repository is not None and named:
        try:
            return repository / Path(served).relative_to(named)
        except ValueError:
            return None  # outside the repository it names: not a file this run exported
    return Path(served)


def track_pipeline_run(
    client: MlflowRest,
    *,
    experiment: str,
    run_tag: str,
    succeeded: bool,
    arguments: dict[str, Any],
    metrics: dict[str, Any],
    gate: dict[str, Any],
    files: RunFiles,
    model_name: str,
    repository_version: int | None,
) -> TrackedRun:
    """:func:`track_run` from a finished run's files: the one path of the local run
    (:func:`track_local_run`) and the cluster's track step
    (:func:`pipelines.training.steps.release.track`)."""
    lineage: dict[str, Any] = {}
    if files.lineage is not None and files.lineage.is_file():
        lineage = json.loads(files.lineage.read_text())
    data_sha = lineage.get("data", {}).get("sha256", "")
    if not data_sha and files.dataset is not None and files.dataset.is_file():
        data_sha = _sha256(files.dataset)
    served = _served_file(lineage, files.repository)
    trials: list[dict[str, Any]] = []
    if files.tuning is not None and files.tuning.is_file():
        trials = json.loads(files.tuning.read_text()).get("trials", [])
    return track_run(
        client,
        experiment=experiment,
        run_tag=run_tag,
        succeeded=succeeded,
        arguments={k: v for k, v in arguments.items() if isinstance(v, (str, int, float, bool))},
        metrics=metrics,
        gate=gate,
        lineage_record=files.lineage if lineage else None,
        evaluation_report=files.evaluation,
        served_model=served,
        data_sha256=data_sha,
        model_name=str(lineage.get("model_name") or model_name or "credit_risk"),
        repository_version=repository_version,
        trials=trials,
    )


def track_local_run(
    tracking_uri: str,
    experiment: str,
    args: dict[str, Any],
    result: Any,
    evaluation_report: Path | None,
) -> TrackedRun:
    """:func:`track_pipeline_run` for a finished local run; fills the result's tracking fields.

    ``result`` is a :class:`pipelines.training.local_run.RunResult` (not imported: the run
    imports this module).
    """
    run_dir = result.run_dir
    tracked = track_pipeline_run(
        MlflowRest(tracking_uri),
        experiment=experiment,
        run_tag=result.run_tag,
        succeeded=result.succeeded,
        arguments=args,
        metrics=result.metrics,
        gate={"passed": bool(result.gate_passed), "reason": result.gate_reason},
        files=RunFiles(
            lineage=result.lineage_record,
            evaluation=evaluation_report,
            tuning=run_dir / "tune" / "tuning" if run_dir else None,
            dataset=run_dir / "ingest" / "dataset" if run_dir else None,
        ),
        model_name=str(args.get("model_name") or "credit_risk"),
        repository_version=result.version,
    )
    result.tracking_run_id = tracked.run_id
    result.registry_version = tracked.model_version
    result.lifecycle_state = tracked.state
    return tracked
