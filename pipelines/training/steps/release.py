"""The steps after export: register the version with its lineage, serve its features online
(materialize), envelope-encrypt the model and the lineage; on the cluster, track the run in
MLflow (the local run tracks from the host, through the same code).

The lineage record carries the ingest step's pseudonymization report (``privacy``: which
columns were pseudonymized, how many values, the key id and version; never a value), read from
the ingested table's metadata, so an auditor finds it beside the model.

Register and encrypt append their events (``model.registered``, ``model.promoted``,
``artifact.encrypted``) to the lifecycle log (:mod:`pipelines.audit`; the local run passes the
log in ``SOVML_AUDIT_LOG``); a log that cannot be written fails the step.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.training import data as data_lib
from pipelines.training import schema
from pipelines.training.registry import utc_now
from pipelines.training.steps.common import StepError, read_json, reported, write_json
from pipelines.training.steps.dataset import PRIVACY_METADATA_KEY
from pipelines.training.steps.modelling import TRAINING_FILE


@dataclass(frozen=True)
class _Evidence:
    """What the earlier steps wrote about the version, as the register step reads it.

    Attributes:
        spec: The feature spec (:class:`~pipelines.training.preprocessing.FeatureSpec`).
        training: The train step's record (parameters, runtime, history, weights digest).
        evaluation: The evaluate step's report (metrics and gate decision).
        profile: The validate step's profile of the table (rows, positive rate, time range).
        serving: The export step's serving report (empty without one).
        data_sha256: Digest of the ingested table.
        spec_sha256: Digest of the feature spec file.
        privacy: The ingest step's pseudonymization report, from the table's metadata.
    """

    spec: Any
    training: dict[str, Any]
    evaluation: dict[str, Any]
    profile: dict[str, Any]
    serving: dict[str, Any]
    data_sha256: str
    spec_sha256: str
    privacy: dict[str, Any]


def register(
    dataset_path: str,
    validation_report_path: str,
    spec_path: str,
    model_dir: str,
    eval_report_path: str,
    repository_dir: str,
    local_repository_dir: str,
    lineage_path: str,
    registry_dir: str,
    model_name: str,
    version: int,
    data_params: dict[str, Any],
    pipeline_params: dict[str, Any],
    code_version: str,
    promote: bool,
    run_tag: str,
    selection_path: str = "",
    feature_repo: str = "",
) -> dict[str, Any]:
    """Record the version with its lineage in the registry; optionally make it production.

    ``selection_path`` is the export's serving report: the backend served and, on the CPU
    profile, the backend selection with every candidate's figures (recorded under ``serving``).
    ``feature_repo`` is the feature store the training set came from: the lineage then names it
    and the version's feature service (``<model>_v<version>``, registered by the materialize
    step) under ``features``.

    Returns:
        ``{"version", "record", "promoted"}``; the record is also copied to ``lineage_path``.
    """
    from pipelines.training.registry import Registry

    with reported("register"):
        evidence = _read_evidence(
            dataset_path,
            spec_path,
            model_dir,
            eval_report_path,
            validation_report_path,
            selection_path,
        )
        artifacts = _artifact_paths(
            evidence.serving, repository_dir, local_repository_dir, model_name, version
        )
        record = {
            **_run_sections(promote, run_tag, pipeline_params.get("pipeline", ""), code_version),
            **_version_sections(evidence, artifacts, data_params, pipeline_params),
        }
        if feature_repo:
            _name_feature_service(record, model_name, version, feature_repo)
        registry = Registry(registry_dir)
        path = registry.register(model_name, version, record)
        if promote:
            registry.promote(model_name, version)
        shutil.copyfile(path, lineage_path)
        _record_registration(dataset_path, spec_path, path, artifacts, record, promote)
        return {"version": version, "record": str(path.resolve()), "promoted": promote}


def _record_registration(
    dataset_path: str,
    spec_path: str,
    record_path: Path,
    artifacts: dict[str, Path],
    record: dict[str, Any],
    promote: bool,
) -> None:
    """``model.registered`` (and ``model.promoted`` when promoted) in the lifecycle log."""
    from pipelines.audit import log as audit

    subject = f"{record_path.parent.parent.name} v{record_path.stem}"
    details = {
        "run_tag": record["run"]["run_tag"],
        "weights_sha256": record["model"]["weights_sha256"],
        "auc": record["metrics"].get("auc"),
        "gate_passed": bool(record["gate"].get("passed")),
    }
    audit.append(
        "model.registered",
        subject,
        inputs={"dataset": audit.file_ref(dataset_path), "feature_spec": audit.file_ref(spec_path)},
        outputs={
            "record": audit.file_ref(record_path),
            "served_model": audit.file_ref(artifacts["served"]),
        },
        details=details,
    )
    if promote:
        audit.append(
            "model.promoted",
            subject,
            inputs={"record": audit.file_ref(record_path)},
            details={"run_tag": details["run_tag"], "reason": "passed the gate (promote=true)"},
        )


def _read_evidence(
    dataset_path: str,
    spec_path: str,
    model_dir: str,
    eval_report_path: str,
    validation_report_path: str,
    selection_path: str,
) -> _Evidence:
    """The earlier steps' outputs; refuses a model the gate rejected."""
    from pipelines.training.preprocessing import FeatureSpec

    spec = FeatureSpec.load(spec_path)
    training = read_json(Path(model_dir) / TRAINING_FILE)
    evaluation = read_json(eval_report_path)
    profile = read_json(validation_report_path)
    if not evaluation["gate"]["passed"]:
        raise StepError("register: the gate rejected this model; refusing to register it")
    privacy = data_lib.table_metadata(dataset_path, PRIVACY_METADATA_KEY)
    if not isinstance(privacy, dict) or not isinstance(privacy.get("key"), dict):
        # Only ingest writes the report: a table without one was never shown pseudonymized.
        raise StepError(
            "register: the dataset carries no pseudonymization report (it did not come from "
            "the ingest step); refusing to register a model trained on it"
        )
    serving = read_json(selection_path) if selection_path else {}
    return _Evidence(
        spec,
        training,
        evaluation,
        profile,
        serving,
        data_sha256=data_lib.sha256_file(dataset_path),
        spec_sha256=data_lib.sha256_file(spec_path),
        privacy=privacy,
    )


def _artifact_paths(
    serving: dict[str, Any],
    repository_dir: str,
    local_repository_dir: str,
    model_name: str,
    version: int,
) -> dict[str, Path]:
    """Where the export wrote ``version`` (its serving report names the files), by the names of
    the lineage's ``artifacts`` section."""
    repository, local_repository = Path(repository_dir), Path(local_repository_dir)
    served = repository / model_name / str(version) / serving.get("served_file", "model.pt")
    # The TorchScript file: the served one (libtorch), or the fp32 fallback beside an ONNX
    # model in the local repository; the gate scores production with it.
    ts_root = local_repository if serving.get("torchscript_in") == "local" else repository
    return {
        "model_repository": repository,
        "model_repository_local": local_repository,
        "torchscript": ts_root / model_name / str(version) / "model.pt",
        "served": served,
        "config": repository / model_name / "config.pbtxt",
    }


def _run_sections(promote: bool, run_tag: str, pipeline: str, code_version: str) -> dict[str, Any]:
    """The record's status, run and code: what the version is to the registry, which run made
    it and from which code."""
    from pipelines.training import provenance

    return {
        "status": "production" if promote else "registered",
        "run": {"run_tag": run_tag, "pipeline": pipeline},
        "code": {
            "version": code_version or provenance.code_version(),
            "lib_sha256": provenance.lib_digest(),
        },
    }


def _version_sections(
    evidence: _Evidence,
    artifacts: dict[str, Path],
    data_params: dict[str, Any],
    pipeline_params: dict[str, Any],
) -> dict[str, Any]:
    """The record's data, privacy, features, parameters, training, metrics, gate, model,
    serving, artifacts and timestamps: what the version is made of and where it lies."""
    spec, training, profile = evidence.spec, evidence.training, evidence.profile
    registered_at = utc_now()
    return {
        "data": {
            "sha256": evidence.data_sha256,
            "rows": profile["rows"],
            "positive_rate": profile["positive_rate"],
            **data_params,
        },
        # Columns, kinds, counts, key id and version, recognizer versions: no value.
        "privacy": evidence.privacy,
        "features": {
            "list": spec.features,
            "transforms": spec.transforms,
            "spec_sha256": evidence.spec_sha256,
            "split": spec.split,
        },
        "parameters": {**training["params"], **pipeline_params},
        # The tune step's summary (trials, best trial, its validation AUC): where the
        # hyperparameters in "parameters" came from.
        "training": {
            "runtime": training["runtime"],
            "history": training["history"],
            "tuning": training.get("tuning"),
        },
        "metrics": evidence.evaluation["metrics"],
        "gate": evidence.evaluation["gate"],
        "model": {
            "weights_sha256": training["weights_sha256"],
            "torchscript_sha256": data_lib.sha256_file(artifacts["torchscript"]),
            "served_sha256": data_lib.sha256_file(artifacts["served"]),
        },
        "serving": evidence.serving,
        "artifacts": {name: str(path.resolve()) for name, path in artifacts.items()},
        "timestamps": {
            "data_from": profile["event_time_min"],
            "data_to": profile["event_time_max"],
            "trained_at": training["trained_at"],
            "registered_at": registered_at,
        },
    }


def _name_feature_service(
    record: dict[str, Any], model_name: str, version: int, feature_repo: str
) -> None:
    """Name the version's feature service and its store under the record's ``features``."""
    # Name only (no Feast import here): the service is a pure function of name and version,
    # and the materialize step registers it right after this step.
    from pipelines.features import feature_service_name

    record["features"]["feature_service"] = feature_service_name(model_name, version)
    record["features"]["feature_repo"] = feature_repo


def materialize(
    dataset_path: str,
    spec_path: str,
    lineage_path: str,
    feature_repo: str,
    report_path: str,
) -> dict[str, Any]:
    """Serve the registered version's features online: its feature service, then materialize.

    The offline source is rewritten from the dataset first (the same bytes the features step
    wrote, unless that step came from kfp.local's cache and the store was deleted since), the
    version's feature service (named in the lineage) is registered with the spec's feature
    order, and the whole time range of this table is loaded into the online store: a full
    reload, not an incremental one, because a rerun on other data (another seed) reuses the
    same 2025 timestamps and must still replace what is served. Finally the latest event's
    entity is read back online and compared with its training row.

    Returns:
        Flat metadata (service, source, range, entities, the checked entity); the full report,
        with per-view intervals, is written to ``report_path``.
    """
    from pipelines import features as store_lib
    from pipelines.training.preprocessing import FeatureSpec

    with reported("materialize"):
        spec = FeatureSpec.load(spec_path)
        lineage = read_json(lineage_path)
        service = lineage.get("features", {}).get("feature_service")
        if not service:
            raise StepError("materialize: the lineage names no feature service")
        model_name, version = service.rsplit("_v", 1)
        frame = data_lib.read_table(dataset_path)
        store = store_lib.open_store(feature_repo, create=True)
        applied = store_lib.apply(store, frame)
        store_lib.register_feature_service(store, model_name, int(version), spec.features)
        first, _, rows = store_lib.source_time_range(applied.source)
        intervals = store_lib.materialize(store, start=first)
        entity_id = _check_online_row(store, service, frame, spec.features)
        report = {
            "feature_service": service,
            "feature_repo": feature_repo,
            "project": applied.project,
            "source": applied.source,
            "rows": rows,
            "features": spec.features,
            "intervals": [
                {"view": m.view, "start": m.start.isoformat(), "end": m.end.isoformat()}
                for m in intervals
            ],
            "checked_entity": entity_id,
        }
        write_json(report_path, report)
        return {
            "feature_service": service,
            "source": applied.source,
            "rows": rows,
            "views": len(intervals),
            "data_from": intervals[0].start.isoformat() if intervals else "",
            "data_to": intervals[0].end.isoformat() if intervals else "",
            "checked_entity": entity_id,
        }


def _check_online_row(store: Any, service: str, frame: Any, features: list[str]) -> int:
    """Read the latest event's entity back online; fail unless it equals its training row.

    The serving path must return what training used. Returns the entity checked.
    """
    from pipelines import features as store_lib

    latest = frame.sort_values([schema.TIMESTAMP, schema.ENTITY], kind="stable").iloc[-1]
    entity_id = int(latest[schema.ENTITY])
    request = store_lib.resolve_request(store, feature_service=service)
    online = store_lib.online_features(store, entity_id, request)
    expected = {f: float(latest[f]) for f in features}
    if list(online) != features or online != expected:
        raise StepError(
            f"materialize: online features of customer {entity_id} differ from its "
            f"training row: {online} != {expected}"
        )
    return entity_id


def encrypt(
    repository_dir: str,
    lineage_path: str,
    out_dir: str,
    registry_dir: str,
    model_name: str,
    version: int,
    backend: str,
    key: str,
) -> dict[str, Any]:
    """Envelope-encrypt the production repository and the lineage; note it in the registry."""
    from pipelines.training import encryption
    from pipelines.training.registry import Registry

    with reported("encrypt"):
        manifest = encryption.encrypt_artifacts(
            {"model_repository": repository_dir, "lineage.json": lineage_path},
            out_dir,
            backend,
            key,
        )
        manifest["encrypted_at"] = utc_now()
        write_json(Path(out_dir) / "encryption.json", manifest)
        sidecar = Registry(registry_dir).attach(model_name, version, "encryption", manifest)
        _record_encryption(repository_dir, lineage_path, manifest, f"{model_name} v{version}")
        return {"backend": manifest["backend"], "sidecar": str(sidecar.resolve())}


def _record_encryption(
    repository_dir: str, lineage_path: str, manifest: dict[str, Any], subject: str
) -> None:
    """``artifact.encrypted`` in the lifecycle log: plaintexts kept by path, ciphertexts by
    digest only (a later rewrap legitimately replaces their manifests)."""
    from pipelines.audit import log as audit

    audit.append(
        "artifact.encrypted",
        subject,
        inputs={
            "model_repository": audit.file_ref(repository_dir),
            "lineage.json": audit.file_ref(lineage_path),
        },
        outputs={
            f"{name}.enc": audit.digest_ref(entry["ciphertext"])
            for name, entry in manifest["artifacts"].items()
        },
        details={"backend": manifest["backend"], "key": str(manifest["key"])[:1024]},
    )


def track(
    tracking_uri: str,
    experiment: str,
    run_tag: str,
    arguments: dict[str, Any],
    metrics: dict[str, Any],
    gate: dict[str, Any],
    paths: dict[str, str],
    model_name: str,
    version: int,
) -> dict[str, Any]:
    """The cluster run's tracking: its parameters, metrics, data digest, trials and artifacts
    logged to the tracking server and, when registered, its version in the model registry.

    The same code as the local run's (:func:`pipelines.registry.tracking.track_pipeline_run`).
    ``paths`` holds this pod's copies of the run's files: ``evaluation``, ``tuning``,
    ``dataset`` and, after a registration, ``lineage`` and ``model_repository`` ('' when absent).
    There is no run without tracking: an empty ``tracking_uri`` or a server that refuses fails
    the step.
    """
    from pipelines.registry.mlflow_rest import MlflowError, MlflowRest
    from pipelines.registry.tracking import RunFiles, track_pipeline_run

    with reported("track"):
        if not tracking_uri.strip():
            raise StepError("track: tracking_uri is empty; every run is tracked (MLflow's URL)")

        def given(key: str) -> Path | None:
            return Path(paths[key]) if paths.get(key) else None

        try:
            tracked = track_pipeline_run(
                MlflowRest(tracking_uri),
                experiment=experiment,
                run_tag=run_tag,
                succeeded=True,
                arguments=arguments,
                metrics=metrics,
                gate=gate,
                files=RunFiles(
                    lineage=given("lineage"),
                    evaluation=given("evaluation"),
                    tuning=given("tuning"),
                    dataset=given("dataset"),
                    repository=given("model_repository"),
                ),
                model_name=model_name,
                repository_version=version or None,
            )
        except (MlflowError, ValueError) as exc:
            raise StepError(f"track: {tracking_uri}: {exc}") from None
        return {
            "tracking_run_id": tracked.run_id,
            "experiment_id": tracked.experiment_id,
            "registry_version": tracked.model_version or 0,
            "lifecycle_state": tracked.state,
        }
