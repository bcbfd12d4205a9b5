"""The body of every pipeline step, as plain functions of paths and parameters.

The KFP components in ``pipelines/training.py`` call these and copy the returned dicts into
artifact metadata; tests call them directly. Each function reads its inputs from files and writes
its outputs to files, which is all a KFP artifact is, locally and on the cluster.

A failing step prints one ``SOVML-PIPELINE-ERROR: <step>: <reason>`` line per problem before
raising, so a runner can show the reason without the traceback (:func:`reported`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.lib import data as data_lib
from pipelines.lib import schema
from pipelines.lib.registry import utc_now
from pipelines.lib.validation import ERROR_MARKER, ValidationError


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

    With an empty ``source_uri`` the table is generated (:func:`pipelines.lib.data.generate`);
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
    """Check the table against :mod:`pipelines.lib.schema` and the balance rules.

    Raises:
        ValidationError: Listing every broken rule (also printed as marker lines).
    """
    from pipelines.lib import validation

    with reported("validate"):
        frame = data_lib.read_table(dataset_path)
        rules = validation.Rules(min_rows, min_positive_rate, max_positive_rate)
        profile = validation.validate(frame, rules)
        profile["sha256"] = data_lib.sha256_file(dataset_path)
        _write_json(report_path, profile)
        return {k: profile[k] for k in ("rows", "positive_rate", "sha256")}


# ---------------------------------------------------------------------------------- features


def features(
    dataset_path: str, train_path: str, test_path: str, spec_path: str, test_fraction: float
) -> dict[str, Any]:
    """Out-of-time split, fit the preprocessing on the training rows, record the feature list."""
    from pipelines.lib import features as features_lib

    with reported("features"):
        frame = data_lib.read_table(dataset_path)
        train, test, cutoff = features_lib.split_out_of_time(frame, test_fraction)
        spec = features_lib.fit(train, test, cutoff)
        data_lib.write_table(train, train_path)
        data_lib.write_table(test, test_path)
        spec.save(spec_path)
        return {"features": len(spec.features), **spec.split}


# ------------------------------------------------------------------------------------- train

WEIGHTS_FILE = "weights.pt"
TRAINING_FILE = "training.json"


def train(
    train_path: str, spec_path: str, model_dir: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Train the MLP; writes ``weights.pt`` (state dict) and ``training.json`` to ``model_dir``."""
    import torch

    from pipelines.lib import features as features_lib
    from pipelines.lib import model as model_lib
    from pipelines.lib import train as train_lib

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
    """The trained model as an eager :class:`~pipelines.lib.model.Scorer` (eval mode, CPU)."""
    import torch

    from pipelines.lib import model as model_lib

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
    """Metrics on the out-of-time test set and the gate decision (see :mod:`pipelines.lib.gate`).

    Returns:
        ``{"metrics": {...}, "gate": {...}}``, also written to ``report_path``.
    """
    from pipelines.lib import features as features_lib
    from pipelines.lib import gate as gate_lib
    from pipelines.lib import metrics as metrics_lib
    from pipelines.lib.registry import Registry

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
    from pipelines.lib import metrics as metrics_lib
    from pipelines.lib import model as model_lib

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
) -> dict[str, Any]:
    """TorchScript + both Triton repositories under the version the registry assigns.

    The version is the existing one when these exact weights were registered before (a rerun
    republishes, it does not mint a new version), else the next integer.
    """
    import numpy as np
    import torch

    from pipelines.lib import features as features_lib
    from pipelines.lib import model as model_lib
    from pipelines.lib import triton
    from pipelines.lib.registry import Registry

    with reported("export"):
        spec = features_lib.FeatureSpec.load(spec_path)
        record = _read_json(Path(model_dir) / TRAINING_FILE)
        state = torch.load(Path(model_dir) / WEIGHTS_FILE, weights_only=True)
        version = Registry(registry_dir).next_version(model_name, record["weights_sha256"])
        scripted = model_lib.script(spec, record["params"]["hidden_units"], state)

        # The scripted graph must score exactly like the eager model it came from.
        probe = np.random.default_rng(0).gamma(2.0, 2.0, size=(64, len(spec.features)))
        probe = probe.astype(np.float32)
        eager = predict(load_model(model_dir, spec), probe)
        if not np.allclose(predict(scripted, probe), eager, atol=1e-6):
            raise StepError("export: TorchScript output differs from the trained model")

        cfg = triton.ServingConfig(
            model_name=model_name,
            version=version,
            n_features=len(spec.features),
            profile=profile,
            max_batch_size=max_batch_size,
            preferred_batch_sizes=tuple(b for b in (64, 256) if b <= max_batch_size),
        )
        with tempfile.TemporaryDirectory(prefix="sovml-export-") as tmp:
            ts_path = Path(tmp) / "model.pt"
            model_lib.save_torchscript(scripted, ts_path)
            paths = triton.write_repositories(ts_path, cfg, repository_dir, local_repository_dir)
        return {
            "model_name": model_name,
            "version": version,
            "profile": profile,
            "torchscript_sha256": data_lib.sha256_file(paths.model),
            "config": str(paths.config),
            "torchscript": str(paths.model),
            "local_config": str(paths.local_config),
            "local_model_py": str(paths.local_model_py),
        }


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
) -> dict[str, Any]:
    """Record the version with its lineage in the registry; optionally make it production.

    Returns:
        ``{"version", "record", "promoted"}``; the record is also copied to ``lineage_path``.
    """
    from pipelines.lib import provenance
    from pipelines.lib.features import FeatureSpec
    from pipelines.lib.registry import Registry

    with reported("register"):
        spec = FeatureSpec.load(spec_path)
        training = _read_json(Path(model_dir) / TRAINING_FILE)
        evaluation = _read_json(eval_report_path)
        profile = _read_json(validation_report_path)
        if not evaluation["gate"]["passed"]:
            raise StepError("register: the gate rejected this model; refusing to register it")
        torchscript = Path(repository_dir) / model_name / str(version) / "model.pt"
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
            },
            "artifacts": {
                "model_repository": str(Path(repository_dir).resolve()),
                "model_repository_local": str(Path(local_repository_dir).resolve()),
                "torchscript": str(torchscript.resolve()),
                "config": str((Path(repository_dir) / model_name / "config.pbtxt").resolve()),
            },
            "timestamps": {
                "data_from": profile["event_time_min"],
                "data_to": profile["event_time_max"],
                "trained_at": training["trained_at"],
                "registered_at": registered_at,
            },
        }
        registry = Registry(registry_dir)
        path = registry.register(model_name, version, record)
        if promote:
            registry.promote(model_name, version)
        shutil.copyfile(path, lineage_path)
        return {"version": version, "record": str(path.resolve()), "promoted": promote}


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
    from pipelines.lib import encryption
    from pipelines.lib.registry import Registry

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
