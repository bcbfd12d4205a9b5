"""The hourly drift job of each served model (the CronJob in components/monitoring.py).

    python -m pipelines.monitoring.drift_job --model credit-risk \\
        --reference s3://B/credit-risk/reference_profile.npz \\
        --window s3://B/inference-logs/credit-risk/ --threshold 0.2 \\
        --pushgateway http://prometheus-pushgateway.monitoring.svc:9091 \\
        --kfp-endpoint http://ml-pipeline.kubeflow.svc:8888 --retrain-pipeline training

Loads the training reference profile, reads the logged inference inputs of the window (Parquet
or CSV files under a prefix), runs the exact drift kernels, pushes per-feature scores to the
Prometheus pushgateway (``sovml_drift_psi`` and friends, which the FeatureDrift alert reads) and,
when any feature's PSI crosses the threshold, submits a retraining run to Kubeflow Pipelines.
Locations may be local paths too, which is how the tests and the demo run it.

The decision (``drift.decided``) is recorded in the lifecycle log (:mod:`pipelines.audit`) before
any retraining is submitted, and the submission (``retraining.submitted``, an automated action)
after it; a log that cannot be written ends the job with exit 1 and no submission.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kernels.drift import (
    STATISTICS,
    DriftError,
    DriftResult,
    ReferenceProfile,
    check_threshold,
    drift,
)
from pipelines import pushgateway
from pipelines.audit import log as audit
from pipelines.monitoring.compare import DEFAULT_STATISTIC, DEFAULT_THRESHOLD, decide, numeric_rows
from pipelines.monitoring.tables import read_window

DRIFT_JOB = "drift"
"""The pushgateway ``job`` of the drift scores (the group is per model)."""


@dataclass(frozen=True)
class JobResult:
    """What one run found and did.

    Attributes:
        model: The served model whose inputs were checked.
        rows: Rows in the window.
        drifted: Features whose PSI crossed the threshold (or with no value in the window).
        result: Every feature's statistics.
        retrain_requested: Whether a retraining run was submitted.
    """

    model: str
    rows: int
    drifted: tuple[str, ...]
    result: DriftResult
    retrain_requested: bool


def _fetch(location: str, workdir: Path) -> Path:
    """A local path for ``location`` (downloading ``s3://`` objects or prefixes)."""
    if not location.startswith("s3://"):
        return Path(location)
    import boto3

    bucket, _, key = location[5:].partition("/")
    s3 = boto3.client("s3")
    if not key.endswith("/"):
        target = workdir / Path(key).name
        s3.download_file(bucket, key, str(target))
        return target
    folder = workdir / "window"
    folder.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for obj in page.get("Contents", []):
            name = Path(obj["Key"]).name
            if name.endswith((".parquet", ".csv")):
                s3.download_file(bucket, obj["Key"], str(folder / name))
    return folder


def exposition(model: str, result: DriftResult, names: tuple[str, ...]) -> str:
    """Prometheus text exposition of the per-feature scores."""
    lines = []
    for stat in STATISTICS:
        lines.append(f"# TYPE sovml_drift_{stat} gauge")
        for name, value in zip(names, result.statistic(stat), strict=True):
            lines.append(f'sovml_drift_{stat}{{model="{model}",feature="{name}"}} {value:.10g}')
    return "\n".join(lines) + "\n"


def push(gateway: str, model: str, body: str) -> None:
    """Replace this model's group (``job="drift"``, ``model``) on the pushgateway."""
    pushgateway.push(gateway, DRIFT_JOB, {"model": model}, body)


def submit_retraining(endpoint: str, pipeline: str, model: str) -> None:
    """Start a run of the compiled training pipeline on Kubeflow Pipelines."""
    import kfp

    from pipelines.training.compilation import compile_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / f"{pipeline}.yaml"
        compile_pipeline(target="cluster", out=package)
        kfp.Client(host=endpoint).create_run_from_pipeline_package(
            str(package), arguments={}, run_name=f"drift-retrain-{model}"
        )


def run(
    model: str,
    reference: str,
    window: str,
    threshold: float,
    *,
    pushgateway: str | None = None,
    kfp_endpoint: str | None = None,
    retrain_pipeline: str = "training",
    submit: Callable[[str, str, str], None] = submit_retraining,
) -> JobResult:
    """One drift check: scores pushed, retraining requested when the threshold is crossed."""
    with tempfile.TemporaryDirectory() as tmp:
        profile = ReferenceProfile.load(_fetch(reference, Path(tmp)))
        names = profile.names
        current = read_window(_fetch(window, Path(tmp)), names or None)
    result = drift(profile, current, allow_empty_features=True)
    decision = decide(numeric_rows(result, threshold, DEFAULT_STATISTIC))
    if pushgateway:
        push(pushgateway, model, exposition(model, result, result.feature_names))
    requested = decision.retrain and kfp_endpoint is not None
    audit.append(
        "drift.decided",
        model,
        details={
            "retrain": decision.retrain,
            "drifted": ", ".join(decision.drifted)[:1024],
            "statistic": DEFAULT_STATISTIC,
            "threshold": threshold,
            "rows": int(current.shape[0]),
            "window": window[:1024],
            "reference": reference[:1024],
        },
    )
    if requested:
        submit(kfp_endpoint, retrain_pipeline, model)  # type: ignore[arg-type]
        audit.append(
            "retraining.submitted",
            model,
            details={
                "pipeline": retrain_pipeline,
                "endpoint": str(kfp_endpoint)[:1024],
                "automated": True,
                "trigger": "drift.decided",
            },
        )
    return JobResult(model, current.shape[0], decision.drifted, result, requested)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the CronJob: exit 0 either way; drift is a signal, not a job failure."""
    p = argparse.ArgumentParser(prog="drift-job", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--window", required=True)
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--pushgateway")
    p.add_argument("--kfp-endpoint")
    p.add_argument("--retrain-pipeline", default="training")
    a = p.parse_args(argv)
    try:
        # A NaN or infinite threshold would switch detection off without a word.
        check_threshold(a.threshold, DEFAULT_STATISTIC)
    except DriftError as exc:
        p.error(f"--threshold: {exc}")
    try:
        res = run(
            a.model,
            a.reference,
            a.window,
            a.threshold,
            pushgateway=a.pushgateway,
            kfp_endpoint=a.kfp_endpoint,
            retrain_pipeline=a.retrain_pipeline,
        )
    except (OSError, ValueError, audit.AuditError) as exc:
        print(f"drift-job: {exc}", file=sys.stderr)
        return 1
    verdict = (
        f"drift on {', '.join(res.drifted)} -> retraining requested"
        if res.retrain_requested
        else ("drift on " + ", ".join(res.drifted) if res.drifted else "no drift")
    )
    print(f"drift-job {res.model}: {res.rows} rows; {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
