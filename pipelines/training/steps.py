"""The body of every pipeline step, as plain functions of paths and parameters.

The KFP components in ``pipelines/training/pipeline.py`` call these and copy the returned dicts into
artifact metadata; tests call them directly. Each function reads its inputs from files and writes
its outputs to files, which is all a KFP artifact is, locally and on the cluster.

A failing step prints one ``SOVML-PIPELINE-ERROR: <step>: <reason>`` line per problem before
raising, so a runner can show the reason without the traceback (:func:`reported`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.serving.repository import CPU_PROFILE_VCPUS
from pipelines.training import data as data_lib
from pipelines.training import schema
from pipelines.training.registry import utc_now
from pipelines.training.validation import ERROR_MARKER, ValidationError


class StepError(RuntimeError):
    """A step failed for a reason a person can act on (message starts with the step name)."""


@contextlib.contextmanager
def reported(step: str) -> Iterator[None]:
    """Print the marker line(s) for any failure inside, then re-raise.

    The marker goes to stdout, which the KFP launcher streams into the task log (``kfp.local``
    and the cluster UI alike); the runner shows those lines instead of a traceback.
    """
    try:
        yield
    except ValidationError as exc:
        for problem in exc.problems:
            print(f"{ERROR_MARKER}{problem}", flush=True)
        raise
    except Exception as exc:
        text = str(exc) if str(exc).startswith(f"{step}:") else f"{step}: {exc}"
        for line in text.splitlines() or [f"{step}: {type(exc).__name__}"]:
            print(f"{ERROR_MARKER}{line}", flush=True)
        raise


def _write_json(path: str | Path, body: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def _read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------------ ingest


def ingest(
    rows: int, seed: int, source_uri: str, source_sha256: str, out_path: str
) -> dict[str, Any]:
    """Write the input table to ``out_path`` (Parquet).

    With an empty ``source_uri`` the table is generated (:func:`pipelines.training.data.generate`);
    otherwise it is read from that local Parquet/CSV file (``file://`` accepted). A non-empty
    ``source_sha256`` must match the source file, which pins the exact extract in the lineage.
    """
    with reported("ingest"):
        if not source_uri:
            sha = data_lib.write_table(data_lib.generate(rows, seed), out_path)
            return {"rows": rows, "seed": seed, "source": "synthetic", "sha256": sha}
        source = Path(source_uri.removeprefix("file://"))
        if not source.is_file():
            raise StepError(f"ingest: source {source_uri!r} is not a readable local file")
        source_sha = data_lib.sha256_file(source)
        if source_sha256 and source_sha != source_sha256:
            raise StepError(
                f"ingest: source {source} has SHA-256 {source_sha}, expected {source_sha256}"
            )
        if source.suffix.lower() == ".parquet":
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out_path)
            sha = source_sha
        else:
            sha = data_lib.write_table(data_lib.read_table(source), out_path)
        frame_rows = _parquet_rows(out_path)
        return {
            "rows": frame_rows,
            "source": str(source),
            "source_sha256": source_sha,
            "sha256": sha,
        }


def _parquet_rows(path: str | Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


# ---------------------------------------------------------------------------------- validate


def validate(
    dataset_path: str,
    report_path: str,
    min_rows: int,
    min_positive_rate: float,
    max_positive_rate: float,
) -> dict[str, Any]:
    """Check the table against :mod:`pipelines.training.schema` and the balance rules.

    Raises:
        ValidationError: Listing every broken rule (also printed as marker lines).
    """
    from pipelines.training import validation

    with reported("validate"):
        frame = data_lib.read_table(dataset_path)
        rules = validation.Rules(min_rows, min_positive_rate, max_positive_rate)
        profile = validation.validate(frame, rules)
        profile["sha256"] = data_lib.sha256_file(dataset_path)
        _write_json(report_path, profile)
        return {k: profile[k] for k in ("rows", "positive_rate", "sha256")}


# ---------------------------------------------------------------------------------- features


def features(
    dataset_path: str,
    train_path: str,
    test_path: str,
    spec_path: str,
    test_fraction: float,
    feature_repo: str = "",
) -> dict[str, Any]:
    """Out-of-time split, fit the preprocessing on the training rows, record the feature list.

    With ``feature_repo`` (the pipeline always sets it) the training set comes from the feature
    store: the table's features are written as the Feast offline source, the repository is
    applied, and every row's features are fetched with the point-in-time join of
    :func:`pipelines.features.store.historical_features` from entity rows (id, event time, label), so
    the model learns from exactly what the store serves. Empty: the table is used as it is (for
    in-process tests that need no Feast).
    """
    from pipelines.training import preprocessing as features_lib

    with reported("features"):
        frame = data_lib.read_table(dataset_path)
        store_meta: dict[str, Any] = {}
        if feature_repo:
            frame, store_meta = _training_set_from_store(frame, feature_repo)
        train, test, cutoff = features_lib.split_out_of_time(frame, test_fraction)
        spec = features_lib.fit(train, test, cutoff)
        data_lib.write_table(train, train_path)
        data_lib.write_table(test, test_path)
        spec.save(spec_path)
        return {"features": len(spec.features), **spec.split, **store_meta}


def _training_set_from_store(frame: Any, feature_repo: str) -> tuple[Any, dict[str, Any]]:
    """``frame``'s rows with their features re-read from the feature store (see features)."""
    from pipelines.features import store as store_lib

    store = store_lib.open_store(feature_repo, create=True)
    applied = store_lib.apply(store, frame)
    entity_rows = frame[[schema.ENTITY, schema.TIMESTAMP, schema.LABEL]]
    joined = store_lib.historical_features(store, entity_rows, list(schema.FEATURES))
    incomplete = joined[list(schema.FEATURES)].isna().any(axis=1)
    if incomplete.any():
        first = joined.loc[incomplete, schema.ENTITY].head(5).tolist()
        raise StepError(
            f"features: {int(incomplete.sum())} of {len(joined)} entity rows found no feature "
            f"values at their event time (outside a view's TTL?), e.g. customers {first}"
        )
    ordered = joined[[schema.ENTITY, schema.TIMESTAMP, *schema.FEATURES, schema.LABEL]]
    return ordered, {"feature_source": applied.source, "feature_project": applied.project}


# ------------------------------------------------------------------------------------- train

WEIGHTS_FILE = "weights.pt"
TRAINING_FILE = "training.json"


def train(
    train_path: str, spec_path: str, model_dir: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Train the MLP; writes ``weights.pt`` (state dict) and ``training.json`` to ``model_dir``."""
    import torch

    from pipelines.training import model as model_lib
    from pipelines.training import preprocessing as features_lib
    from pipelines.training import train as train_lib

    with reported("train"):
        spec = features_lib.FeatureSpec.load(spec_path)
        x, y = features_lib.matrices(data_lib.read_table(train_path), spec)
        tp = train_lib.TrainParams(**params)
        result = train_lib.train(x, y, spec, tp)
        if not train_lib.loss_is_finite(result.history):
            raise StepError(f"train: loss diverged (epoch losses {result.history})")
        out = Path(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(result.state, out / WEIGHTS_FILE)
        sha = model_lib.state_sha256(result.state)
        record = {
            "params": train_lib.params_dict(tp),
            "runtime": result.info,
            "history": [round(v, 6) for v in result.history],
            "weights_sha256": sha,
            "trained_at": utc_now(),
        }
        _write_json(out / TRAINING_FILE, record)
        return {
            "weights_sha256": sha,
            "final_loss": record["history"][-1],
            "device": result.info["device"],
            "precision": result.info["precision"],
            "world_size": result.info["world_size"],
            "distributed": result.info["distributed"],
            "seconds": result.info["seconds"],
        }


def load_model(model_dir: str | Path, spec: Any) -> Any:
    """The trained model as an eager :class:`~pipelines.training.model.Scorer` (eval mode, CPU)."""
    import torch

    from pipelines.training import model as model_lib

    record = _read_json(Path(model_dir) / TRAINING_FILE)
    net = model_lib.build(spec, record["params"]["hidden_units"])
    net.load_state_dict(torch.load(Path(model_dir) / WEIGHTS_FILE, weights_only=True))
    return model_lib.Scorer(net).eval()


def predict(scorer: Any, features: Any) -> Any:
    """Probabilities (NumPy float32, shape ``[n]``) from a Scorer, eager or TorchScript."""
    import torch

    with torch.inference_mode():
        return scorer(torch.from_numpy(features)).reshape(-1).numpy()


# ---------------------------------------------------------------------------------- evaluate


def evaluate(
    test_path: str,
    spec_path: str,
    model_dir: str,
    report_path: str,
    registry_dir: str,
    model_name: str,
    min_auc: float,
    tolerance: float,
) -> dict[str, Any]:
    """Metrics on the out-of-time test set and the gate decision (see :mod:`pipelines.training.gate`).

    Returns:
        ``{"metrics": {...}, "gate": {...}}``, also written to ``report_path``.
    """
    from pipelines.training import gate as gate_lib
    from pipelines.training import metrics as metrics_lib
    from pipelines.training import preprocessing as features_lib
    from pipelines.training.registry import Registry

    with reported("evaluate"):
        spec = features_lib.FeatureSpec.load(spec_path)
        test = data_lib.read_table(test_path)
        x, y = features_lib.matrices(test, spec)
        metrics = metrics_lib.evaluate(y, predict(load_model(model_dir, spec), x))

        production = Registry(registry_dir).production(model_name) if registry_dir else None
        prod_version = prod_auc = None
        comparison = "none"
        if production is not None:
            prod_version = int(production["version"])
            prod_auc, comparison = _production_auc(production, test)
        decision = gate_lib.decide(
            metrics["auc"], min_auc, prod_version, prod_auc, comparison, tolerance
        )
        report = {"metrics": metrics, "gate": decision.to_dict(), "min_auc": min_auc}
        _write_json(report_path, report)
        return report


def _production_auc(record: dict[str, Any], test: Any) -> tuple[float | None, str]:
    """Production's AUC on ``test`` if its model file is readable, else the recorded AUC."""
    from pipelines.training import metrics as metrics_lib
    from pipelines.training import model as model_lib

    path = Path(record.get("artifacts", {}).get("torchscript", ""))
    wanted = record.get("features", {}).get("list", [])
    if path.is_file() and wanted and all(c in test.columns for c in wanted):
        scorer = model_lib.load_torchscript(path)
        x = test[wanted].to_numpy(dtype="float32")
        y = test[schema.LABEL].to_numpy(dtype="float32")
        # Rounded like the candidate's AUC, so identical weights compare as equal.
        return round(metrics_lib.roc_auc(y, predict(scorer, x)), 6), "same-test-set"
    recorded = record.get("metrics", {}).get("auc")
    return (None, "none") if recorded is None else (float(recorded), "recorded-metrics")


# ------------------------------------------------------------------------------------ export


def export(
    model_dir: str,
    spec_path: str,
    registry_dir: str,
    model_name: str,
    profile: str,
    max_batch_size: int,
    repository_dir: str,
    local_repository_dir: str,
    test_path: str = "",
    selection_path: str = "",
    cpu: dict[str, Any] | None = None,
    timer: Any = None,
) -> dict[str, Any]:
    """The served model and both Triton repositories under the version the registry assigns.

    The version is the existing one when these exact weights were registered before (a rerun
    republishes, it does not mint a new version), else the next integer.

    ``gpu`` profile: TorchScript on Triton's PyTorch backend. ``cpu`` profile: the backend is
    chosen by measurement (:func:`pipelines.serving.cpu_tier.select_backend`): fp32 eager, TorchScript,
    ONNX Runtime and dynamic int8 are measured on the profile's vCPUs at batch 1 and 64 and checked
    against the trained model on the test rows (``test_path``); the fastest at the objective inside
    the accuracy bound is served (ONNX Runtime -> ``model.onnx``, TorchScript/int8 ->
    ``model.pt``).

    Args:
        test_path: Labelled rows for the accuracy check (AUC drop); without them only the output
            difference on a probe batch is bounded.
        selection_path: Where the selection report (JSON, every candidate's figures) is written.
        cpu: CPU-profile settings: ``backend`` (``auto`` or a candidate to pin), ``objective``,
            ``max_abs_diff``, ``max_metric_drop``, ``threads``; see :data:`CPU_DEFAULTS`.
        timer: Timing function for the measurement (tests make it deterministic).

    Returns:
        Flat metadata of the export (version, backend, files, hashes, the choice); with
        ``selection`` (the report) and ``selection_metrics`` (flat numbers for KFP ``Metrics``).
    """
    import numpy as np
    import torch

    from pipelines.serving import repository as triton
    from pipelines.training import model as model_lib
    from pipelines.training import preprocessing as features_lib
    from pipelines.training.registry import Registry

    with reported("export"):
        spec = features_lib.FeatureSpec.load(spec_path)
        record = _read_json(Path(model_dir) / TRAINING_FILE)
        state = torch.load(Path(model_dir) / WEIGHTS_FILE, weights_only=True)
        registry = Registry(registry_dir)
        version = registry.next_version(model_name, record["weights_sha256"])
        settings = {**CPU_DEFAULTS, **(cpu or {})}
        if (
            profile == "cpu"
            and settings["backend"] == "auto"
            and version in registry.versions(model_name)
        ):
            # A rerun republishes the registered version: keep the backend its lineage records
            # (a close race between two candidates must not flip what one version serves).
            recorded = registry.get(model_name, version).get("serving", {})
            if recorded.get("ran") and recorded.get("profile") == "cpu":
                settings["backend"] = recorded["served"]
                settings["pinned_by"] = f"registry version {version}"
        threads = int(settings["threads"]) if profile == "cpu" else None
        cfg = triton.ServingConfig(
            model_name=model_name,
            version=version,
            n_features=len(spec.features),
            profile=profile,
            max_batch_size=max_batch_size,
            preferred_batch_sizes=tuple(b for b in (64, 256) if b <= max_batch_size),
            cpu_threads=threads,
        )
        eager = load_model(model_dir, spec)
        # The probe: raw-scale rows like the feature store serves (gamma: positive, skewed).
        probe = np.random.default_rng(0).gamma(2.0, 2.0, size=(64, len(spec.features)))
        probe = probe.astype(np.float32)
        with tempfile.TemporaryDirectory(prefix="sovml-export-") as tmp:
            selection: dict[str, Any] = {"profile": profile, "ran": False}
            if profile == "cpu":
                chosen = _select_cpu_backend(eager, spec, probe, test_path, settings, tmp, timer)
                selection = {"profile": profile, "ran": True, **chosen.to_dict()}
                if "pinned_by" in settings:
                    selection["pinned_by"] = settings["pinned_by"]
                served, fallback = chosen.artifact, chosen.torchscript_fp32
                cfg = dataclasses.replace(cfg, backend=chosen.backend)
            else:
                scripted = model_lib.script(spec, record["params"]["hidden_units"], state)
                served = fallback = Path(tmp) / "model.pt"
                model_lib.save_torchscript(scripted, served)
                selection.update(
                    backend="pytorch", served="torchscript", artifact_format="torchscript"
                )
            # The fp32 TorchScript must score exactly like the eager model it came from.
            scripted = model_lib.load_torchscript(fallback)
            if not np.allclose(predict(scripted, probe), predict(eager, probe), atol=1e-6):
                raise StepError("export: TorchScript output differs from the trained model")
            paths = triton.write_repositories(
                served,
                cfg,
                repository_dir,
                local_repository_dir,
                torchscript_fallback=fallback if cfg.backend == "onnxruntime" else None,
            )
        torchscript = paths.model if paths.backend == "pytorch" else paths.local_torchscript
        assert torchscript is not None
        selection.update(
            served_file=paths.model.name,
            torchscript_file=str(torchscript.relative_to(torchscript.parents[2])),
            torchscript_in="model_repository" if paths.backend == "pytorch" else "local",
            local_runtime=paths.local_runtime,
            platform=_PLATFORMS[paths.backend],
        )
        # Paths inside a step's scratch folder mean nothing after it; keep the file names only.
        for body in (selection, *selection.get("candidates", {}).values()):
            for key in ("artifact", "torchscript_fp32"):
                if body.get(key):
                    body[key] = Path(body[key]).name
        if selection_path:
            _write_json(selection_path, selection)
        result = {
            "model_name": model_name,
            "version": version,
            "profile": profile,
            "backend": paths.backend,
            "platform": _PLATFORMS[paths.backend],
            "served_file": paths.model.name,
            "served_sha256": data_lib.sha256_file(paths.model),
            "torchscript_sha256": data_lib.sha256_file(torchscript),
            "config": str(paths.config),
            "torchscript": str(torchscript),
            "local_config": str(paths.local_config),
            "local_model_py": str(paths.local_model_py),
            "local_runtime": paths.local_runtime,
        }
        if selection["ran"]:
            from pipelines.serving import cpu_tier as cpu_inference

            result["cpu_choice"] = selection["chosen"]
            result["cpu_served"] = selection["served"]
            served_figures = selection["candidates"][selection["served"]]
            for batch, speedup in served_figures["speedup"].items():
                result[f"cpu_speedup_b{batch}"] = round(speedup, 3)
            metrics = cpu_inference.flat_metrics(selection)
        else:
            metrics = {}
        metrics["cpu_selection_ran"] = 1.0 if selection["ran"] else 0.0
        return {**result, "selection": selection, "selection_metrics": metrics}


CPU_DEFAULTS: dict[str, Any] = {
    "backend": "auto",
    "objective": "p50_b1",
    "max_abs_diff": 1e-2,
    "max_metric_drop": 1e-3,
    "threads": CPU_PROFILE_VCPUS,
}
"""CPU-profile export settings (the pipeline's ``cpu_*`` parameters): measure every candidate and
serve the fastest median at batch 1 whose probabilities stay within 0.01 of the trained model and
whose test AUC drops by at most 0.001, on the profile's 2 vCPUs."""
_PLATFORMS = {"pytorch": "pytorch_libtorch", "onnxruntime": "onnxruntime_onnx"}


def _select_cpu_backend(
    eager: Any,
    spec: Any,
    probe: Any,
    test_path: str,
    settings: dict[str, Any],
    out_dir: str,
    timer: Any,
) -> Any:
    """Run the CPU backend selection for the served model (see :func:`export`)."""
    from pipelines.serving import cpu_tier as cpu_inference
    from pipelines.serving import repository as triton
    from pipelines.training import preprocessing as features_lib

    backend = str(settings["backend"])
    if backend != "auto" and backend not in cpu_inference.CANDIDATES:
        raise StepError(
            f"export: cpu backend must be 'auto' or one of {cpu_inference.CANDIDATES}, "
            f"got {backend!r}"
        )
    config = cpu_inference.SelectionConfig(
        threads=int(settings["threads"]),
        objective=str(settings["objective"]),
        bound=cpu_inference.AccuracyBound(
            float(settings["max_abs_diff"]), float(settings["max_metric_drop"])
        ),
        allowed=None if backend == "auto" else (backend,),
        input_name=triton.INPUT_NAME,
        output_name=triton.OUTPUT_NAME,
    )
    validation = None
    sample = probe
    if test_path:
        x, y = features_lib.matrices(data_lib.read_table(test_path), spec)
        validation = (x, y)
        # Time on real rows: input values change nothing for these models, but costs nothing.
        sample = x[:256] if len(x) else probe
    kwargs = {"timer": timer} if timer is not None else {}
    try:
        return cpu_inference.select_backend(
            eager, sample, out_dir, validation=validation, metric="auc", config=config, **kwargs
        )
    except cpu_inference.SelectionError as exc:
        raise StepError(f"export: {exc}") from None


# ---------------------------------------------------------------------------------- register


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
    from pipelines.training import provenance
    from pipelines.training.preprocessing import FeatureSpec
    from pipelines.training.registry import Registry

    with reported("register"):
        spec = FeatureSpec.load(spec_path)
        training = _read_json(Path(model_dir) / TRAINING_FILE)
        evaluation = _read_json(eval_report_path)
        profile = _read_json(validation_report_path)
        if not evaluation["gate"]["passed"]:
            raise StepError("register: the gate rejected this model; refusing to register it")
        serving = _read_json(selection_path) if selection_path else {}
        served_file = serving.get("served_file", "model.pt")
        served = Path(repository_dir) / model_name / str(version) / served_file
        # The TorchScript file: the served one (libtorch), or the fp32 fallback beside an ONNX
        # model in the local repository; the gate scores production with it.
        ts_root = (
            local_repository_dir if serving.get("torchscript_in") == "local" else repository_dir
        )
        torchscript = Path(ts_root) / model_name / str(version) / "model.pt"
        registered_at = utc_now()
        record = {
            "status": "production" if promote else "registered",
            "run": {"run_tag": run_tag, "pipeline": pipeline_params.get("pipeline", "")},
            "code": {
                "version": code_version or provenance.code_version(),
                "lib_sha256": provenance.lib_digest(),
            },
            "data": {
                "sha256": data_lib.sha256_file(dataset_path),
                "rows": profile["rows"],
                "positive_rate": profile["positive_rate"],
                **data_params,
            },
            "features": {
                "list": spec.features,
                "transforms": spec.transforms,
                "spec_sha256": data_lib.sha256_file(spec_path),
                "split": spec.split,
            },
            "parameters": {**training["params"], **pipeline_params},
            "training": {"runtime": training["runtime"], "history": training["history"]},
            "metrics": evaluation["metrics"],
            "gate": evaluation["gate"],
            "model": {
                "weights_sha256": training["weights_sha256"],
                "torchscript_sha256": data_lib.sha256_file(torchscript),
                "served_sha256": data_lib.sha256_file(served),
            },
            "serving": serving,
            "artifacts": {
                "model_repository": str(Path(repository_dir).resolve()),
                "model_repository_local": str(Path(local_repository_dir).resolve()),
                "torchscript": str(torchscript.resolve()),
                "served": str(served.resolve()),
                "config": str((Path(repository_dir) / model_name / "config.pbtxt").resolve()),
            },
            "timestamps": {
                "data_from": profile["event_time_min"],
                "data_to": profile["event_time_max"],
                "trained_at": training["trained_at"],
                "registered_at": registered_at,
            },
        }
        if feature_repo:
            # Name only (no Feast import here): the service is a pure function of name and
            # version, and the materialize step registers it right after this step.
            from pipelines.features.store import feature_service_name

            record["features"]["feature_service"] = feature_service_name(model_name, version)
            record["features"]["feature_repo"] = feature_repo
        registry = Registry(registry_dir)
        path = registry.register(model_name, version, record)
        if promote:
            registry.promote(model_name, version)
        shutil.copyfile(path, lineage_path)
        return {"version": version, "record": str(path.resolve()), "promoted": promote}


# ------------------------------------------------------------------------------- materialize


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
    from pipelines.features import store as store_lib
    from pipelines.training.preprocessing import FeatureSpec

    with reported("materialize"):
        spec = FeatureSpec.load(spec_path)
        lineage = _read_json(lineage_path)
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
        # The serving path must return what training used: check the latest event's entity.
        latest = frame.sort_values([schema.TIMESTAMP, schema.ENTITY], kind="stable").iloc[-1]
        entity_id = int(latest[schema.ENTITY])
        request = store_lib.resolve_request(store, feature_service=service)
        online = store_lib.online_features(store, entity_id, request)
        expected = {f: float(latest[f]) for f in spec.features}
        if list(online) != spec.features or online != expected:
            raise StepError(
                f"materialize: online features of customer {entity_id} differ from its "
                f"training row: {online} != {expected}"
            )
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
        _write_json(report_path, report)
        return {
            "feature_service": service,
            "source": applied.source,
            "rows": rows,
            "views": len(intervals),
            "data_from": intervals[0].start.isoformat() if intervals else "",
            "data_to": intervals[0].end.isoformat() if intervals else "",
            "checked_entity": entity_id,
        }


# ----------------------------------------------------------------------------------- encrypt


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
        _write_json(Path(out_dir) / "encryption.json", manifest)
        sidecar = Registry(registry_dir).attach(model_name, version, "encryption", manifest)
        return {"backend": manifest["backend"], "sidecar": str(sidecar.resolve())}
