"""``sovml pipeline``: compile the KFP pipelines to IR YAML and run them locally with kfp.local.

Registered in ``infra/cli/app.py`` with ``app.add_typer(pipeline_app, name="pipeline")``::

    sovml pipeline compile training [--target local|cluster] [--out PATH]
    sovml pipeline run training --local [--rows N] [--seed S] [--output-dir build/pipelines]

Exit codes as in :mod:`infra.cli.common`: 0 success, 1 the run failed (or the gate rejected the
model with ``--fail-on-reject``), 2 bad input (an argument out of range, an ``--out`` or
``--output-dir`` that cannot be one, a missing ``--source``), 3 the lifecycle log
(:mod:`pipelines.audit`) cannot be written. ``compile --out`` replaces only a
file KFP compiled before, never another file that happens to be there.
"""

from __future__ import annotations

import math
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from infra.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    bounded_message,
    consoles,
    fail,
    folder_problem,
    joined,
    shown_path,
    styled,
)
from infra.config.problems import MAX_LISTED
from pipelines.training.tuning import MAX_TRIALS as MAX_TUNE_TRIALS

pipeline_app = typer.Typer(
    help="Compile the KFP pipelines and run them locally (kfp.local).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


MAX_ROWS = 10_000_000
"""Synthetic rows a local run may generate: far above any local use, far below exhausting RAM."""
MAX_EPOCHS = 1_000
FAIRNESS_SHOWN = ("demographic_parity_difference", "equalized_odds_difference")
"""The evaluate step's fairness metrics the run summary shows."""
MAX_SEED = 2**32 - 1
"""NumPy's generators take seeds up to 2**32 - 1; a larger one would fail inside the run."""
IR_SUFFIXES = (".yaml", ".yml")
IR_HEADER = b"# PIPELINE DEFINITION"
"""The first line of every file the KFP compiler writes: ``--out`` replaces only such a file."""


def _finite_unit(value: float) -> float:
    """A typer callback: ``value`` must be a finite number in [0, 1] (an AUC)."""
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise typer.BadParameter(f"{value!r} is not a number from 0 to 1")
    return value


def _compiled_before(path: Path) -> bool:
    """Whether ``path`` is a regular file KFP compiled (its first line says so): safe to replace."""
    if not path.is_file():  # a FIFO or a device: never opened, never replaced
        return False
    try:
        with path.open("rb") as file:
            return file.readline(64).rstrip() == IR_HEADER
    except OSError:
        return False


class PipelineName(StrEnum):
    """Pipelines this command knows."""

    training = "training"


class Target(StrEnum):
    """Where a compiled pipeline is meant to run."""

    local = "local"
    cluster = "cluster"


class Profile(StrEnum):
    """Triton instance group of the exported model."""

    cpu = "cpu"
    gpu = "gpu"


@pipeline_app.command("compile")
def compile_cmd(
    pipeline: Annotated[PipelineName, typer.Argument(help="Pipeline to compile.")],
    target: Annotated[Target, typer.Option(help="local (kfp.local) or cluster (KFP on EKS).")] = (
        Target.local
    ),
    out: Annotated[Path | None, typer.Option(help="IR YAML to write.")] = None,
    image_registry: Annotated[
        str | None, typer.Option(help="In-region registry mirror for the images (cluster).")
    ] = None,
    pip_index_url: Annotated[
        str | None, typer.Option(help="In-region package index for the pods (cluster).")
    ] = None,
) -> None:
    """Compile a pipeline to KFP IR YAML (default build/pipelines/<pipeline>[-cluster].yaml)."""
    from pipelines.training.compilation import compile_pipeline

    console, err = consoles()
    if out is not None:
        if out.suffix not in IR_SUFFIXES or out.is_dir():
            fail(err, f"--out {out}: must name a .yaml file")
        if problem := folder_problem(out.parent):
            fail(err, f"--out {out}: {problem}")
        if out.exists() and not _compiled_before(out):
            fail(err, f"--out {out}: exists and is not a compiled pipeline; not replacing it")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = compile_pipeline(target.value, out, image_registry, pip_index_url)
    except OSError as exc:  # the folder named by --out (or build/) cannot be written
        fail(err, f"{exc.filename or out}: {exc.strerror or exc}")
    except RuntimeError as exc:  # kfp-kubernetes missing: the environment, not the input
        fail(err, str(exc), code=EXIT_INTERNAL)
    for warning in caught:
        if "kfp-kubernetes" in str(warning.message):
            err.print(joined(styled("warning:", "yellow"), f" {warning.message}"))
    console.print(
        joined(styled(pipeline.value, "green"), f" ({target.value}) -> {shown_path(path)}")
    )


_STATUS_STYLE = {
    "done": "green",
    "cached": "cyan",
    "failed": "red",
    "skipped": "dim",
    "running": "yellow",
    "pending": "dim",
}


def _progress(console: Console) -> Any:
    """A listener for :func:`pipelines.training.local_run.run_local`: one line per step event."""
    status = console.status("starting kfp.local ...")
    status.start()

    def listen(step: Any) -> None:
        if step.status == "running":
            status.update(joined(styled(step.name, "bold"), " running ..."))
            return
        took = f"{step.seconds:6.1f}s" if step.seconds is not None else "       "
        note = styled(f" ({step.note})", "dim") if step.note else ""
        console.print(
            joined(
                f"  {step.name:<11} {took}  ",
                styled(step.status, _STATUS_STYLE.get(step.status, "")),
                note,
            )
        )

    listen.stop = status.stop  # type: ignore[attr-defined]
    return listen


def _summary(console: Console, result: Any, output_dir: Path) -> None:
    if result.metrics:
        table = Table()
        table.add_column("test metric (out-of-time)")
        table.add_column("value", justify="right")
        # The fairness figures the gate judged (over the sensitive attribute) beside the rest.
        shown_names = ("auc", "accuracy", "log_loss", *FAIRNESS_SHOWN, "test_rows")
        for name in shown_names:
            if name in result.metrics:
                value = result.metrics[name]
                shown = f"{int(value)}" if name == "test_rows" else f"{value:.4f}"
                table.add_row(name, shown)
        console.print(table)
    if result.gate_passed is not None:
        verdict = styled("PASSED", "green") if result.gate_passed else styled("REJECTED", "yellow")
        console.print(joined("gate: ", verdict, f": {result.gate_reason}"), soft_wrap=True)
    rows = [
        ("model version", result.version),
        ("model repository", result.model_repository),
        ("local repository", result.model_repository_local),
        ("lineage record", result.lineage_record),
        ("tracking run", result.tracking_run_id),
        (
            "registry version",
            (
                f"{result.registry_version} ({result.lifecycle_state})"
                if result.registry_version
                else None
            ),
        ),
        ("feature service", result.feature_service),
        ("feature store", result.feature_repo if result.feature_service else None),
        ("encrypted", result.encrypted),
        ("registry", output_dir / "registry"),
        ("run folder", result.run_dir),
        ("log", result.log_path),
    ]
    for label, value in rows:
        if value is None:
            continue
        shown = shown_path(value) if isinstance(value, Path) else str(value)
        # soft_wrap: paths stay whole (copy-pasteable) instead of being cut at the width.
        console.print(joined(styled(f"{label + ':':<18}", "bold"), shown), soft_wrap=True)
    cached = sum(1 for s in result.steps.values() if s.status == "cached")
    reused = f", {cached} step(s) from cache" if cached else ""
    console.print(f"finished in {result.seconds:.1f}s{reused}")


def _failure(err: Console, pipeline: str, result: Any) -> None:
    """Where the run failed, the reasons its steps printed, and the full log's path."""
    where = f"step '{result.failed_step}'" if result.failed_step else "the pipeline"
    err.print(styled(f"{pipeline} failed in {where}", "red"))
    for line in (result.errors or ["(no reason printed; see the log)"])[:MAX_LISTED]:
        err.print(styled(f"  {bounded_message(line)}", "red"), soft_wrap=True)
    err.print(f"full log: {shown_path(result.log_path)}")


@pipeline_app.command("run")
def run_cmd(
    pipeline: Annotated[PipelineName, typer.Argument(help="Pipeline to run.")],
    local: Annotated[
        bool, typer.Option("--local", help="Run on this machine with kfp.local (required).")
    ] = False,
    rows: Annotated[
        int, typer.Option(min=1, max=MAX_ROWS, help="Synthetic rows to generate.")
    ] = 20000,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed of data generation and training.")
    ] = 42,
    output_dir: Annotated[
        Path, typer.Option(help="Runs, cache, registry, keys and logs go here.")
    ] = Path("build/pipelines"),
    epochs: Annotated[int, typer.Option(min=1, max=MAX_EPOCHS, help="Training epochs.")] = 8,
    min_auc: Annotated[
        float, typer.Option(callback=_finite_unit, help="Gate: lowest acceptable test AUC (0-1).")
    ] = 0.75,
    profile: Annotated[Profile, typer.Option(help="Triton instance group.")] = Profile.cpu,
    source: Annotated[
        Path | None, typer.Option(help="Ingest this Parquet/CSV file instead of synthetic data.")
    ] = None,
    cache: Annotated[bool, typer.Option(help="Reuse unchanged steps of earlier runs.")] = True,
    fail_on_reject: Annotated[
        bool, typer.Option(help="Exit 1 when the gate rejects the model.")
    ] = False,
    tune_trials: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_TUNE_TRIALS, help="Optuna trials before training (0: no tuning)."
        ),
    ] = 4,
    biased: Annotated[
        bool,
        typer.Option(
            "--biased",
            help="Generate the deliberately biased data (the fairness gate must refuse it).",
        ),
    ] = False,
) -> None:
    """Run a pipeline locally, step by step, and summarise metrics, gate and artifacts."""
    from pipelines.training import local_run

    # Bound to the streams of this moment: the local runner redirects stdout while it runs, and
    # progress must still reach the terminal.
    console, err = consoles()
    if not local:
        err.print(
            joined(
                styled("only --local runs are supported from here", "red"),
                "; for the cluster, compile with "
                "`sovml pipeline compile training --target cluster` and submit the YAML to KFP",
            )
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    if problem := folder_problem(output_dir):
        fail(err, f"--output-dir {output_dir}: {problem}")
    arguments: dict[str, Any] = {
        "rows": rows,
        "seed": seed,
        "epochs": epochs,
        "min_auc": min_auc,
        "serving_profile": profile.value,
        "tune_trials": tune_trials,
        "biased_data": biased,
    }
    if source is not None:
        if not source.is_file():
            err.print(styled(f"--source {source}: no such file", "red"))
            raise typer.Exit(EXIT_BAD_INPUT)
        arguments.update(local_run.source_arguments(source))

    data = f"source={shown_path(source)}" if source is not None else f"rows={rows}"
    console.print(
        joined(
            styled(pipeline.value, "bold"),
            f" on kfp.local: {data} seed={seed} epochs={epochs} -> {shown_path(output_dir)}",
        ),
        soft_wrap=True,
    )
    from pipelines.audit.log import AuditError
    from pipelines.registry.mlflow_rest import MlflowError
    from pipelines.registry.server import TrackingServerError

    listener = _progress(console)
    try:
        result = local_run.run_local(arguments, output_dir, cache=cache, listener=listener)
    except AuditError as exc:  # the run's events must be recorded: an environment error
        listener.stop()
        fail(err, str(exc), EXIT_INTERNAL)
    except (TrackingServerError, MlflowError) as exc:  # no run without tracking: environment
        listener.stop()
        fail(err, f"tracking: {exc}", EXIT_INTERNAL)
    finally:
        listener.stop()
    _summary(console, result, output_dir)
    if not result.succeeded:
        _failure(err, pipeline.value, result)
        raise typer.Exit(EXIT_NEGATIVE)
    if fail_on_reject and result.gate_passed is False:
        raise typer.Exit(EXIT_NEGATIVE)
