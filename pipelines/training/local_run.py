"""Run the training pipeline on this machine with ``kfp.local`` and collect what it produced.

``kfp.local`` (``SubprocessRunner(use_venv=False)``) runs every step as a subprocess of the current
virtualenv and streams its log to stdout. :func:`run_local` captures that stream into a log file,
turns it into per-step events (running, done, cached, failed, skipped) for a progress display,
picks out the ``SOVML-PIPELINE-ERROR:`` lines that say why a step failed, and after the run reads
the metrics, gate decision, model repositories and lineage record from the run's artifacts.

Layout under ``output_dir`` (default ``build/pipelines``)::

    runs/<pipeline>-<timestamp>/<task>/<output>   artifacts of each run (kfp.local's layout)
    runs/.kfp_cache/                              kfp.local's step cache (same inputs -> reuse)
    registry/<model>/...                          the model registry
                                                  (pipelines/training/registry.py)
    feature_store/                                the Feast state (registry, SQLite, Parquet),
                                                  except for the default output folder: see
                                                  :func:`default_feature_repo`
    keys/artifact-key.json                        local envelope key (mode 0600)
    logs/<run_tag>.log                            full log of each run
    metrics/sovml_pipeline_runs.prom              runs by outcome (pipelines/training/outcome.py)

Every run appends ``pipeline.run.started`` and ``pipeline.run.finished`` to the lifecycle log
(:mod:`pipelines.audit`), resolved once here and exported as ``SOVML_AUDIT_LOG`` to the step
subprocesses, whose register and encrypt steps append to the same log in between.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.audit import log as audit
from pipelines.audit.entries import MAX_TEXT
from pipelines.training import images, outcome, provenance
from pipelines.training.provenance import CODE_ROOT
from pipelines.training.validation import ERROR_MARKER

DEFAULT_OUTPUT = CODE_ROOT / "build" / "pipelines"
DEFAULT_MLFLOW = CODE_ROOT / "build" / "mlflow"
"""The embedded tracking server's store for runs in :data:`DEFAULT_OUTPUT` (where ``sovml
model`` looks too)."""
STEPS = tuple(name for name in images.STEPS if name not in images.CLUSTER_ONLY)
"""The local pipeline's task names, in pipeline order (track and the exit task are the
cluster's only)."""
GATED = ("export", "register", "materialize", "encrypt")
"""Steps inside the ``dsl.If`` on the gate decision."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([\w-]+)'")
_FINISHED = re.compile(r"Task '([\w-]+)' finished with status (SUCCESS|FAILURE)")
_CACHE_HIT = re.compile(r"Task ([\w-]+) cache hit")
_SKIP_CONDITION = re.compile(r"Skipping conditional task ([\w-]+)")
_SKIP_UPSTREAM = re.compile(r"Skipping task ([\w-]+): upstream")


@dataclass
class StepState:
    """What happened to one step.

    Attributes:
        name: Task name.
        status: ``pending``, ``running``, ``done``, ``cached``, ``failed`` or ``skipped``.
        seconds: Wall time (running steps only).
        note: Why it was skipped, if it was.
    """

    name: str
    status: str = "pending"
    seconds: float | None = None
    note: str = ""
    started: float = field(default=0.0, repr=False)


Listener = Callable[[StepState], None]


@dataclass
class RunResult:
    """Outcome of one local run.

    Attributes:
        succeeded: The pipeline finished without a failed step (a gate rejection is a success).
        run_tag: Identifier of this run (also in the lineage record).
        run_dir: ``runs/<pipeline>-<timestamp>`` of this run.
        seconds: Wall time of the whole run.
        steps: Per-step states, in pipeline order.
        errors: The reasons a step printed before failing.
        failed_step: The first step that failed, if any.
        metrics: Test metrics (accuracy, auc, log_loss, test_rows).
        gate_passed: The gate decision (None when the run stopped before evaluate).
        gate_reason: Why.
        version: Registered model version, when exported.
        model_repository: Production Triton repository, when exported.
        model_repository_local: Local (Python-backend) Triton repository, when exported.
        lineage_record: Registry record of the version, when registered.
        encrypted: Folder with the encrypted artifacts, when encrypted.
        log_path: Full log of the run.
        feature_repo: Feature store the run trained from (and materialized to).
        feature_service: Feature service of the registered version, when materialized.
        tracking_run_id: The MLflow run this run was logged to.
        registry_version: The MLflow registry's version of the model, when registered.
        lifecycle_state: That version's lifecycle state (``challenger`` after a passed gate).
    """

    succeeded: bool
    run_tag: str
    run_dir: Path | None
    seconds: float
    steps: dict[str, StepState]
    errors: list[str]
    failed_step: str | None
    metrics: dict[str, float]
    gate_passed: bool | None
    gate_reason: str
    version: int | None
    model_repository: Path | None
    model_repository_local: Path | None
    lineage_record: Path | None
    encrypted: Path | None
    log_path: Path
    feature_repo: Path | None = None
    feature_service: str | None = None
    tracking_run_id: str | None = None
    registry_version: int | None = None
    lifecycle_state: str = ""


class _LogTap(io.TextIOBase):
    """A write-only text stream: keeps the log, and turns lines into step events."""

    def __init__(self, log: io.TextIOBase, on_line: Callable[[str], None]) -> None:
        self._log = log
        self._on_line = on_line
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._log.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._on_line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self._log.flush()


class _Tracker:
    """Step states from kfp.local's log lines."""

    def __init__(self, listener: Listener | None) -> None:
        self.steps = {name: StepState(name) for name in STEPS}
        self.errors: list[str] = []
        self.failed: str | None = None
        self._listener = listener

    def _set(self, name: str, status: str, note: str = "") -> None:
        step = self.steps.get(name)
        if step is None:
            return
        if status == "running":
            step.started = time.perf_counter()
        elif step.status == "running":
            step.seconds = time.perf_counter() - step.started
        step.status = status
        step.note = note
        if self._listener is not None:
            self._listener(step)

    def line(self, text: str) -> None:
        if ERROR_MARKER in text:
            self.errors.append(text.split(ERROR_MARKER, 1)[1].strip())
        elif m := _EXECUTING.search(text):
            self._set(m.group(1), "running")
        elif m := _FINISHED.search(text):
            ok = m.group(2) == "SUCCESS"
            self._set(m.group(1), "done" if ok else "failed")
            if not ok and self.failed is None:
                self.failed = m.group(1)
        elif m := _CACHE_HIT.search(text):
            self._set(m.group(1), "cached")
        elif _SKIP_CONDITION.search(text):
            for name in GATED:
                self._set(name, "skipped", "gate rejected the model")
        elif m := _SKIP_UPSTREAM.search(text):
            self._set(m.group(1), "skipped", "an earlier step failed")

    def finish(self, succeeded: bool) -> None:
        """Mark what never started: skipped after a failure or a rejection."""
        for step in self.steps.values():
            if step.status == "pending":
                self._set(step.name, "skipped", "not reached" if not succeeded else "gate")


class _RootLogTo(logging.Handler):
    """Sends kfp.local's messages logged outside its own logger context (cache hits, skips)."""

    def __init__(self, stream: io.TextIOBase) -> None:
        super().__init__(logging.INFO)
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        self._stream.write(f"{record.getMessage()}\n")


@contextlib.contextmanager
def _environment(root: Path, audit_log: Path) -> Iterator[None]:
    """Repository root on PYTHONPATH for the step subprocesses (they import pipelines.training),
    and this run's lifecycle log in ``SOVML_AUDIT_LOG`` (their events go to the same chain)."""
    old_path = os.environ.get("PYTHONPATH")
    values = {
        "PYTHONPATH": os.pathsep.join([str(root), *([old_path] if old_path else [])]),
        audit.LOG_ENV: str(audit_log),
    }
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def default_feature_repo(output_dir: Path) -> Path:
    """Feature store of a run into ``output_dir``.

    The default output folder uses ``build/feature_store``, where ``sovml features`` looks, so
    ``sovml features get ID`` after ``sovml pipeline run training --local`` reads what the run
    trained on. Any other output folder (tests, the demo, experiments) keeps its own store
    beside its registry, so it never replaces what the default one serves.
    """
    from pipelines import features

    if output_dir.resolve() == DEFAULT_OUTPUT.resolve():
        return features.DEFAULT_REPO
    return output_dir / "feature_store"


def code_digest() -> str:
    """Digest of the code the local steps import: ``pipelines/training``, the feature store, the
    pseudonymization and the key services.

    kfp.local's cache key does not cover imported modules (see ``build_pipeline``); the
    features step also imports ``pipelines/features/`` and ``pipelines/features/repo``, ingest
    ``pipelines/privacy/`` and ``pipelines/artifacts/keys/``.
    """
    import hashlib

    digest = hashlib.sha256(provenance.lib_digest().encode())
    library = CODE_ROOT / "pipelines" / "features"
    # ingest imports the pseudonymization and the key services: their code is its output too.
    imported = [CODE_ROOT / "pipelines" / "privacy", CODE_ROOT / "pipelines" / "artifacts" / "keys"]
    for file in [
        *sorted(library.glob("*.py")),
        *sorted((library / "repo").glob("*.py")),
        *(f for folder in imported for f in sorted(folder.glob("*.py"))),
    ]:
        digest.update(file.name.encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def source_arguments(source: Path) -> dict[str, str]:
    """The pipeline parameters that ingest the local file ``source``: its path and SHA-256.

    The digest goes into the step's inputs, so a changed file is a cache miss, not stale data.
    """
    from pipelines.training.data import sha256_file

    return {"source_uri": str(source.resolve()), "source_sha256": sha256_file(source)}


def new_run_tag() -> str:
    """``YYYYmmddTHHMMSSZ-<8 hex>``: sortable and unique."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def run_local(
    arguments: dict[str, Any] | None = None,
    output_dir: str | Path = DEFAULT_OUTPUT,
    cache: bool = True,
    listener: Listener | None = None,
    run_tag: str | None = None,
    tracking_uri: str | None = None,
) -> RunResult:
    """Run the training pipeline with ``kfp.local`` and return what happened.

    Args:
        arguments: Pipeline parameters (see ``pipelines/training/pipeline.py``); ``registry_dir``,
            ``feature_repo``, ``encryption_key``, ``code_version`` and ``run_tag`` default to
            this run's layout.
        output_dir: Root of runs, cache, registry, keys and logs.
        cache: Reuse step outputs of earlier runs with identical inputs (kfp.local's cache).
        listener: Called on every step state change (for progress displays).
        run_tag: Run identifier; a new one by default.
        tracking_uri: The MLflow server to log to; None: ``$SOVML_TRACKING_URI``, else the
            embedded server started for the run (:func:`pipelines.registry.server.tracking_server`,
            its store under ``build/mlflow`` for the default output folder, else
            ``<output_dir>/mlflow``). There is no run without tracking.

    Returns:
        The :class:`RunResult`; a failed step does not raise, it is in ``succeeded``/``errors``.

    Raises:
        pipelines.audit.log.AuditError: The lifecycle log cannot be written (before the run
            starts, or when recording its end).
        pipelines.registry.server.TrackingServerError: No tracking server could be reached or
            started (checked before the run starts).
        pipelines.registry.mlflow_rest.MlflowError: The server refused or dropped a call while
            logging the finished run (its end is recorded in the lifecycle log first).
    """
    from pipelines.registry.server import TrackingServerError, tracking_server

    out = Path(output_dir).resolve()
    if tracking_uri is not None:
        from pipelines.registry.mlflow_rest import MlflowRest

        if not MlflowRest(tracking_uri).health():
            raise TrackingServerError(f"tracking server {tracking_uri} does not answer /health")
        return _run_tracked(arguments, out, cache, listener, run_tag, tracking_uri)
    store = DEFAULT_MLFLOW if out == DEFAULT_OUTPUT.resolve() else out / "mlflow"
    with tracking_server(store) as url:
        return _run_tracked(arguments, out, cache, listener, run_tag, url)


def _run_tracked(
    arguments: dict[str, Any] | None,
    out: Path,
    cache: bool,
    listener: Listener | None,
    run_tag: str | None,
    tracking_uri: str,
) -> RunResult:
    """:func:`run_local` once its tracking server answers."""
    from pipelines.training.pipeline import PIPELINE_NAME

    tag = run_tag or new_run_tag()
    runs = out / "runs"
    log_path = out / "logs" / f"{tag}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = _run_arguments(out, tag, arguments)
    audit_log = audit.log_path()
    subject = f"{PIPELINE_NAME} run {tag}"
    audit.append(
        "pipeline.run.started",
        subject,
        inputs=_source_inputs(args),
        details={**_run_details(args), "output_dir": str(out)},
        log=audit_log,
    )
    tracker = _Tracker(listener)
    started = time.perf_counter()
    before = set(runs.glob(f"{PIPELINE_NAME}-*")) if runs.is_dir() else set()
    with open(log_path, "w") as log, _captured(log, tracker, audit_log):
        outputs, succeeded = _run_pipeline(args, runs, cache, log)
    tracker.finish(succeeded)
    created = sorted(set(runs.glob(f"{PIPELINE_NAME}-*")) - before)
    run_dir = created[-1] if created else None
    result = _collect(
        succeeded, tag, run_dir, time.perf_counter() - started, tracker, outputs, log_path
    )
    result.feature_repo = Path(args["feature_repo"])
    # The training-pipeline success SLO's counter (components/_alerts.py).
    outcome.record_run(out / "metrics", PIPELINE_NAME, succeeded)
    try:
        from pipelines.registry.tracking import track_local_run

        evaluation = outputs.get("evaluation")
        track_local_run(
            tracking_uri, PIPELINE_NAME, args, result, evaluation and Path(evaluation.path)
        )
    finally:
        # The run's end is recorded even when tracking failed (its details then lack the ids).
        _record_finish(audit_log, subject, result, outputs)
    return result


_DETAIL_ARGUMENTS = ("rows", "seed", "epochs", "min_auc", "serving_profile", "code_version")


def _run_details(args: dict[str, Any]) -> dict[str, Any]:
    """The run's scalar parameters worth an auditor's eye (the rest are in the lineage)."""
    details = {name: args[name] for name in _DETAIL_ARGUMENTS if name in args}
    details["run_tag"] = args["run_tag"]
    if args.get("source_uri"):
        details["source_uri"] = str(args["source_uri"])[:MAX_TEXT]
    return details


def _source_inputs(args: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The ingested file's digest (a user's file may change later: digest only, path in the
    details); synthetic data is a function of rows and seed, which the details hold."""
    source = args.get("source_uri")
    if not source:
        return {}
    if args.get("source_sha256"):
        return {"source": {"sha256": str(args["source_sha256"])}}
    return {"source": audit.digest_ref(source)} if Path(source).is_file() else {}


def _record_finish(
    audit_log: Path, subject: str, result: RunResult, outputs: dict[str, Any]
) -> None:
    """``pipeline.run.finished``: the outcome, the data digest and the outputs' digests."""
    inputs: dict[str, dict[str, str]] = {}
    produced: dict[str, dict[str, str]] = {}
    if result.run_dir is not None and (result.run_dir / "ingest" / "dataset").is_file():
        inputs["dataset"] = audit.file_ref(result.run_dir / "ingest" / "dataset")
    elif result.lineage_record is not None and result.lineage_record.is_file():
        data_sha = json.loads(result.lineage_record.read_text()).get("data", {}).get("sha256")
        if data_sha:  # ingest came from the cache: the lineage holds its digest
            inputs["dataset"] = {"sha256": data_sha}
    evaluation = outputs.get("evaluation")
    if evaluation is not None and Path(evaluation.path).is_file():
        produced["evaluation"] = audit.file_ref(evaluation.path)
    for name in ("model_repository", "model_repository_local", "lineage_record"):
        path = getattr(result, name)
        if path is not None and path.exists():
            produced[name] = audit.file_ref(path)
    if result.encrypted is not None and result.encrypted.exists():
        # Digest only: a later `sovml artifact rewrap` legitimately replaces the manifests.
        produced["encrypted"] = audit.digest_ref(result.encrypted)
    details: dict[str, Any] = {
        "outcome": "succeeded" if result.succeeded else "failed",
        "gate_passed": result.gate_passed,
        "gate_reason": result.gate_reason[:MAX_TEXT],
        "version": result.version,
        "failed_step": result.failed_step,
        "seconds": round(result.seconds, 3),
        "tracking_run_id": result.tracking_run_id,
        "registry_version": result.registry_version,
    }
    if "auc" in result.metrics:
        details["auc"] = float(result.metrics["auc"])
    audit.append(
        "pipeline.run.finished",
        subject,
        inputs=inputs,
        outputs=produced,
        details=details,
        log=audit_log,
    )


def _run_arguments(out: Path, tag: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """``arguments`` over this run's layout: registry, feature store, key, code version, tag."""
    return {
        "registry_dir": str(out / "registry"),
        "feature_repo": str(default_feature_repo(out)),
        "encryption_key": str(out / "keys" / "artifact-key.json"),
        "code_version": provenance.code_version(CODE_ROOT),
        "run_tag": tag,
        **(arguments or {}),
    }


@contextlib.contextmanager
def _captured(log: io.TextIOBase, tracker: _Tracker, audit_log: Path) -> Iterator[None]:
    """Everything kfp.local prints or logs inside goes to ``log`` and, line by line, to
    ``tracker``; the step subprocesses find the repository on ``PYTHONPATH`` and the lifecycle
    log in ``SOVML_AUDIT_LOG``."""
    tap = _LogTap(log, tracker.line)
    root_logger = logging.getLogger()
    handler = _RootLogTo(tap)
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    try:
        with (
            _environment(CODE_ROOT, audit_log),
            contextlib.redirect_stdout(tap),
            contextlib.redirect_stderr(tap),
            warnings.catch_warnings(),
        ):
            # kfp.local warns that a non-"python" image may not match this venv; by design
            # the local runner ignores images (the torch image is for the cluster).
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            yield
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)


def _run_pipeline(
    args: dict[str, Any], runs: Path, cache: bool, log: io.TextIOBase
) -> tuple[dict[str, Any], bool]:
    """Run the local build of the pipeline on kfp.local: its outputs, and whether it succeeded.

    A failed step does not raise: kfp.local's message goes to ``log``.
    """
    import kfp.local

    from pipelines.training import pipeline as training

    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(runs),
        raise_on_error=True,
        enable_caching=cache,
    )
    pipeline = training.build_pipeline("local", code_digest=code_digest())
    try:
        return dict(pipeline(**args).outputs), True
    except RuntimeError as exc:
        log.write(f"\n{exc}\n")
        return {}, False


def _collect(
    succeeded: bool,
    tag: str,
    run_dir: Path | None,
    seconds: float,
    tracker: _Tracker,
    outputs: dict[str, Any],
    log_path: Path,
) -> RunResult:
    """Read metrics, gate decision and the gated steps' artifacts of this run."""
    metrics: dict[str, float] = {}
    if outputs.get("metrics") is not None:
        metrics = dict(outputs["metrics"].metadata)
    gate_passed = outputs.get("gate_passed")
    gate_reason = ""
    if outputs.get("evaluation") is not None:
        gate_reason = str(outputs["evaluation"].metadata.get("gate_reason", ""))
    version = repo = local_repo = record = encrypted = service = None
    # The gated steps are never cached, so their artifacts are always in this run's folder.
    if run_dir is not None and gate_passed:
        export_out = run_dir / "export" / "executor_output.json"
        if export_out.is_file():
            version = json.loads(export_out.read_text()).get("parameterValues", {}).get("version")
        candidates = {
            "repo": run_dir / "export" / "model_repository",
            "local": run_dir / "export" / "model_repository_local",
            "encrypted": run_dir / "encrypt" / "encrypted",
        }
        repo = candidates["repo"] if candidates["repo"].is_dir() else None
        local_repo = candidates["local"] if candidates["local"].is_dir() else None
        encrypted = candidates["encrypted"] if candidates["encrypted"].is_dir() else None
        materialize_report = run_dir / "materialize" / "report"
        if materialize_report.is_file():
            service = json.loads(materialize_report.read_text()).get("feature_service")
        register_out = run_dir / "register" / "executor_output.json"
        if register_out.is_file():
            params = json.loads(register_out.read_text()).get("parameterValues", {})
            record = Path(params["record"]) if params.get("record") else None
    return RunResult(
        succeeded=succeeded,
        run_tag=tag,
        run_dir=run_dir,
        seconds=seconds,
        steps=tracker.steps,
        errors=tracker.errors,
        failed_step=tracker.failed,
        metrics=metrics,
        gate_passed=gate_passed,
        gate_reason=gate_reason,
        version=int(version) if version is not None else None,
        model_repository=repo,
        model_repository_local=local_repo,
        lineage_record=record,
        encrypted=encrypted,
        log_path=log_path,
        feature_service=service,
    )
