"""The KFP training pipeline on kfp.local: one real run, its artifacts, the gate, bad data, the CLI.

The expensive part, one full local run on a small table, happens once per module
(``pipeline_run``); the other pipeline runs reuse its step cache or stop at validate. The
compiled IR is checked in ``tests/test_training_compiled.py``, the step library in-process in
``tests/test_training_steps.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from infra.cli.pipeline import pipeline_app
from pipelines.serving import repository as triton
from pipelines.training import data, local_run, model, schema, steps, train
from pipelines.training import pipeline as training
from pipelines.training import preprocessing as features
from pipelines.training.registry import Registry
from tests.conftest import TRAINING_ARGS
from tests.triton_helpers import load_python_model, parse_model_configs

pytestmark = pytest.mark.slow

ROWS = 2000
EPOCHS = 3
ARGS = {"rows": ROWS, "seed": 7, "epochs": EPOCHS, "min_auc": 0.7}
assert ARGS == TRAINING_ARGS  # the session's shared run is this module's run


@pytest.fixture(autouse=True)
def _tracking(mlflow_server: str) -> str:
    """Every run here logs to the session's MLflow server (``SOVML_TRACKING_URI``)."""
    return mlflow_server


@pytest.fixture(scope="module")
def workdir(training_workdir: Path) -> Path:
    """Output folder (runs, cache, registry, keys) shared with the session's pipeline run."""
    return training_workdir


@pytest.fixture(scope="module")
def pipeline_run(training_run: local_run.RunResult) -> local_run.RunResult:
    """One full local run of the training pipeline on a small synthetic table (the session's)."""
    return training_run


@pytest.fixture(scope="module")
def triton_configs(pipeline_run: local_run.RunResult, tmp_path_factory: pytest.TempPathFactory):
    """Both exported configs, plus GPU-profile renderings, parsed as Triton ModelConfig.

    The parse runs in a subprocess: ``tritonclient.grpc``'s protos must not share a process with
    other gRPC server protos (duplicate symbols), whatever else the test session imported.
    """
    assert pipeline_run.model_repository and pipeline_run.model_repository_local
    extra = tmp_path_factory.mktemp("configs")
    files = {
        "production": pipeline_run.model_repository / "credit_risk" / "config.pbtxt",
        "local": pipeline_run.model_repository_local / "credit_risk" / "config.pbtxt",
    }
    for backend in ("libtorch", "python"):
        path = extra / f"gpu-{backend}.pbtxt"
        cfg = triton.ServingConfig("credit_risk", 3, len(schema.FEATURES), profile="gpu")
        path.write_text(triton.render_config(cfg, backend))
        files[f"gpu-{backend}"] = path
    return parse_model_configs(files)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(pipeline_app, name="pipeline")

    @app.callback()
    def root() -> None:
        """Test wrapper, as infra/cli/app.py registers the pipeline app."""

    return app


# ----------------------------------------------------------------------------------- full local run


def test_full_local_run_completes(pipeline_run: local_run.RunResult) -> None:
    assert pipeline_run.succeeded, pipeline_run.errors
    assert [s.status for s in pipeline_run.steps.values()] == ["done"] * 10
    assert pipeline_run.gate_passed is True
    assert pipeline_run.metrics["auc"] > 0.75
    assert set(pipeline_run.metrics) >= {"accuracy", "auc", "log_loss"}
    assert pipeline_run.version == 1


def _serving(run: local_run.RunResult) -> dict[str, Any]:
    """The lineage's serving section: on the cpu profile the backend was chosen by measurement
    (``pipelines/serving/cpu_tier/``), so the tests below accept whichever won."""
    assert run.lineage_record is not None
    return json.loads(run.lineage_record.read_text())["serving"]


def test_export_writes_both_triton_repositories(pipeline_run: local_run.RunResult) -> None:
    repo, local = pipeline_run.model_repository, pipeline_run.model_repository_local
    assert repo is not None and local is not None
    assert repo.name == "model_repository" and local.name == "model_repository_local"
    served = _serving(pipeline_run)["served_file"]
    assert served == (
        "model.onnx" if _serving(pipeline_run)["backend"] == "onnxruntime" else "model.pt"
    )
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == [
        f"credit_risk/1/{served}",
        "credit_risk/config.pbtxt",
    ]
    # Beside an ONNX model, the local repository keeps the fp32 TorchScript fallback.
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == [
        *sorted({f"credit_risk/1/{served}", "credit_risk/1/model.pt"}),
        "credit_risk/1/model.py",
        "credit_risk/config.pbtxt",
    ]
    # The local repository serves the very same bytes.
    assert (repo / f"credit_risk/1/{served}").read_bytes() == (
        local / f"credit_risk/1/{served}"
    ).read_bytes()


def test_config_pbtxt_parses_as_triton_model_config(
    triton_configs: dict[str, Any], pipeline_run: local_run.RunResult
) -> None:
    prod, local = triton_configs["production"], triton_configs["local"]
    backend = _serving(pipeline_run)["backend"]
    platform = {"pytorch": "pytorch_libtorch", "onnxruntime": "onnxruntime_onnx"}[backend]
    assert prod["platform"] == platform and prod["backend"] == backend
    assert local["backend"] == "python"
    for cfg in (prod, local):
        assert cfg["name"] == "credit_risk"
        assert cfg["max_batch_size"] == 1024
        assert cfg["input"] == [
            {"name": "features__0", "data_type": "TYPE_FP32", "dims": [str(len(schema.FEATURES))]}
        ]
        assert cfg["output"] == [
            {"name": "probability__0", "data_type": "TYPE_FP32", "dims": ["1"]}
        ]
        assert cfg["dynamic_batching"]["preferred_batch_size"] == [64, 256]
        assert cfg["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]
    for backend in ("libtorch", "python"):
        assert triton_configs[f"gpu-{backend}"]["instance_group"][0]["kind"] == "KIND_GPU"
    # Same inputs, outputs, batching and instances in both repositories.
    for key in ("input", "output", "max_batch_size", "dynamic_batching", "instance_group"):
        assert prod[key] == local[key]


def _test_rows(run: local_run.RunResult) -> tuple[np.ndarray, np.ndarray, features.FeatureSpec]:
    assert run.run_dir is not None
    spec = features.FeatureSpec.load(_artifact(run, "features", "feature_spec"))
    x, y = features.matrices(data.read_table(_artifact(run, "features", "test_set")), spec)
    return x, y, spec


def _artifact(run: local_run.RunResult, task: str, name: str) -> Path:
    """An artifact of ``run``, following kfp.local's cache to the run that produced it."""
    assert run.run_dir is not None
    here = run.run_dir / task / name
    if here.exists():
        return here
    # Cached steps leave no folder in this run; the cache entry points at the original one.
    found = sorted(run.run_dir.parent.glob(f"*/{task}/{name}"))
    assert found, f"no {task}/{name} under {run.run_dir.parent}"
    return found[0]


def test_torchscript_predicts_like_the_trained_model(pipeline_run: local_run.RunResult) -> None:
    assert pipeline_run.model_repository is not None and pipeline_run.lineage_record is not None
    x, y, spec = _test_rows(pipeline_run)
    record = json.loads(pipeline_run.lineage_record.read_text())
    serving = record["serving"]
    eager = steps.load_model(_artifact(pipeline_run, "train", "model"), spec)
    in_process = steps.predict(eager, x)
    # The TorchScript file (served, or the fp32 fallback beside an ONNX model) is fp32 unless
    # the CPU selection chose dynamic int8, which only has to stay inside the recorded bound.
    scripted = model.load_torchscript(record["artifacts"]["torchscript"])
    fp32 = serving["served"] != "int8_dynamic"
    atol = 1e-6 if fp32 else serving["bound"]["max_abs_diff"]
    np.testing.assert_allclose(steps.predict(scripted, x), in_process, rtol=0, atol=atol)
    from pipelines.training import metrics

    if fp32:
        auc = round(metrics.roc_auc(y, steps.predict(scripted, x)), 6)
        assert auc == pytest.approx(pipeline_run.metrics["auc"])
    if serving["backend"] == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(record["artifacts"]["served"])
        onnx_out = session.run(None, {triton.INPUT_NAME: x})[0].reshape(-1)
        np.testing.assert_allclose(onnx_out, in_process, rtol=0, atol=1e-5)


def test_python_backend_model_scores_like_torchscript(
    pipeline_run: local_run.RunResult,
    triton_configs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """model.py under a stand-in for triton_python_backend_utils, two requests in one batch."""
    assert pipeline_run.model_repository_local is not None
    version_dir = pipeline_run.model_repository_local / "credit_risk" / "1"

    module = load_python_model(version_dir, monkeypatch)

    served = module.TritonPythonModel()
    served.initialize(
        {
            "model_config": json.dumps(triton_configs["local"]),
            "model_instance_kind": "CPU",
            "model_instance_device_id": "0",
            "model_repository": str(version_dir.parent),
            "model_version": "1",
        }
    )
    x, _, _ = _test_rows(pipeline_run)
    tensor = module.pb_utils.Tensor
    requests = [[tensor("features__0", x[:3])], [tensor("features__0", x[3:10])]]
    responses = served.execute(requests)
    got = np.concatenate([r.output_tensors[0].as_numpy() for r in responses])
    assert [r.output_tensors[0].as_numpy().shape for r in responses] == [(3, 1), (7, 1)]
    scripted = model.load_torchscript(version_dir / "model.pt")
    # ONNX Runtime (importable in this venv) may round differently from TorchScript.
    atol = 1e-5 if served.runtime == "onnxruntime" else 1e-7
    np.testing.assert_allclose(got.reshape(-1), steps.predict(scripted, x[:10]), atol=atol)


def test_lineage_record(pipeline_run: local_run.RunResult) -> None:
    assert pipeline_run.lineage_record is not None
    record = json.loads(pipeline_run.lineage_record.read_text())
    dataset = _artifact(pipeline_run, "ingest", "dataset")
    assert record["data"]["sha256"] == data.sha256_file(dataset)
    assert record["data"]["seed"] == 7 and record["data"]["requested_rows"] == ROWS
    assert record["features"]["list"] == list(schema.FEATURES)
    assert record["parameters"]["epochs"] == EPOCHS and record["parameters"]["min_auc"] == 0.7
    assert record["metrics"]["auc"] == pytest.approx(pipeline_run.metrics["auc"])
    assert record["gate"]["passed"] is True
    assert re.match(r"^(git:[0-9a-f]{40}|package:\S+|unknown)$", record["code"]["version"])
    assert set(record["timestamps"]) == {"data_from", "data_to", "trained_at", "registered_at"}
    assert record["run"]["run_tag"] == pipeline_run.run_tag
    assert record["status"] == "production"
    # The cpu profile (the local default) chose its backend by measurement and recorded why.
    serving = record["serving"]
    assert serving["profile"] == "cpu" and serving["ran"] is True
    assert serving["chosen"] in serving["candidates"] and serving["served"] in serving["candidates"]
    assert serving["candidates"][serving["served"]]["within_bound"] is True
    registry = Registry(pipeline_run.lineage_record.parents[2])
    production = registry.production("credit_risk")
    assert production is not None and production["version"] == 1
    # The training set came from the feature store; the version's feature service is named.
    assert record["features"]["feature_service"] == "credit_risk_v1"
    assert record["features"]["feature_repo"] == str(pipeline_run.feature_repo)
    # The sensitive attribute was judged, never a feature; the limits judged are recorded.
    assert schema.SENSITIVE not in record["features"]["list"]
    judged = record["gate"]["fairness"]
    assert judged["limits"] == {"max_parity_difference": 0.1, "max_odds_difference": 0.15}
    assert set(judged["figures"]["by_group"]) == set(schema.SENSITIVE_GROUPS.values())
    assert judged["figures"]["demographic_parity_difference"] <= 0.1


def test_tune_step_chose_what_train_used(pipeline_run: local_run.RunResult) -> None:
    """Four seeded Optuna trials (the default budget); the best one's values trained the model."""
    tuning = json.loads(_artifact(pipeline_run, "tune", "tuning").read_text())
    assert len(tuning["trials"]) == 4 and tuning["sampler"] == "TPESampler"
    assert tuning["trials"][0]["params"]["learning_rate"] == 0.003  # the given values: trial 0
    assert tuning["best"]["value"] == max(t["value"] for t in tuning["trials"])
    trained = json.loads((_artifact(pipeline_run, "train", "model") / "training.json").read_text())
    for name, value in tuning["chosen"].items():
        assert trained["params"][name] == value, name
    assert pipeline_run.lineage_record is not None
    record = json.loads(pipeline_run.lineage_record.read_text())
    assert record["training"]["tuning"]["best_trial"] == tuning["best"]["number"]


def test_features_get_returns_what_the_model_trained_on(
    pipeline_run: local_run.RunResult, workdir: Path
) -> None:
    """After the run, ``sovml features get`` serves the latest event's training row."""
    from infra.cli.features import features_app

    assert pipeline_run.feature_service == "credit_risk_v1"
    assert pipeline_run.feature_repo == workdir / "feature_store"
    spec = features.FeatureSpec.load(_artifact(pipeline_run, "features", "feature_spec"))
    test_rows = data.read_table(_artifact(pipeline_run, "features", "test_set"))
    latest = test_rows.iloc[-1]  # the split sorts by event time: the data's latest event
    app = typer.Typer()
    app.add_typer(features_app, name="features")
    app.callback()(lambda: None)
    result = CliRunner().invoke(
        app,
        [
            "features",
            "get",
            str(int(latest[schema.ENTITY])),
            "--repo",
            str(pipeline_run.feature_repo),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["feature_service"] == "credit_risk_v1"
    assert list(body["features"]) == spec.features
    assert body["features"] == {f: float(latest[f]) for f in spec.features}


def test_artifacts_are_envelope_encrypted(pipeline_run: local_run.RunResult, workdir: Path) -> None:
    from pipelines import artifacts

    assert pipeline_run.encrypted is not None and pipeline_run.model_repository is not None
    manifest = json.loads((pipeline_run.encrypted / "encryption.json").read_text())
    assert manifest["backend"] == "local"
    assert all(entry["verified"] for entry in manifest["artifacts"].values())
    key = artifacts.LocalKeyFile(workdir / "keys" / "artifact-key.json")
    back = workdir / "decrypted"
    artifacts.decrypt_path(pipeline_run.encrypted / "model_repository.enc", key, out=back)
    assert data.sha256_tree(back) == data.sha256_tree(pipeline_run.model_repository)


def test_pipeline_weights_match_an_in_process_retrain(pipeline_run: local_run.RunResult) -> None:
    """The train step is a pure function of its inputs: retraining here gives the same weights."""
    model_dir = _artifact(pipeline_run, "train", "model")
    recorded = json.loads((model_dir / steps.TRAINING_FILE).read_text())
    spec = features.FeatureSpec.load(_artifact(pipeline_run, "features", "feature_spec"))
    x, y = features.matrices(
        data.read_table(_artifact(pipeline_run, "features", "train_set")), spec
    )
    again = train.train(x, y, spec, train.TrainParams(**recorded["params"]))
    assert model.state_sha256(again.state) == recorded["weights_sha256"]


# ----------------------------------------------------------------------------------------- the gate


def test_model_below_threshold_is_not_exported(
    pipeline_run: local_run.RunResult, workdir: Path
) -> None:
    """Same inputs with a stricter gate: cached up to train, rejected, nothing exported."""
    assert pipeline_run.succeeded
    rejected = local_run.run_local({**ARGS, "min_auc": 0.999}, workdir)
    assert rejected.succeeded
    statuses = {name: s.status for name, s in rejected.steps.items()}
    assert statuses == {
        "ingest": "cached",
        "validate": "cached",
        "features": "cached",
        "tune": "cached",
        "train": "cached",
        "evaluate": "done",
        "export": "skipped",
        "register": "skipped",
        "materialize": "skipped",
        "encrypt": "skipped",
    }
    assert rejected.gate_passed is False
    assert "below the threshold 0.9990" in rejected.gate_reason
    assert rejected.run_dir is not None and not (rejected.run_dir / "export").exists()
    assert rejected.model_repository is None and rejected.lineage_record is None
    assert Registry(workdir / "registry").versions("credit_risk") == [1]


def test_gate_compares_with_production_on_the_same_test_set(
    pipeline_run: local_run.RunResult, tmp_path: Path
) -> None:
    """A weaker candidate loses against the registered production model."""
    x_train_set = data.read_table(_artifact(pipeline_run, "features", "train_set"))
    spec_path = _artifact(pipeline_run, "features", "feature_spec")
    weak = tmp_path / "weak"
    # One tiny epoch at a tiny learning rate: barely better than the initial weights.
    steps.train(
        str(_artifact(pipeline_run, "features", "train_set")),
        str(spec_path),
        str(weak),
        {"seed": 1, "epochs": 1, "learning_rate": 1e-5, "hidden_units": "4"},
    )
    assert len(x_train_set) > 0
    report = steps.evaluate(
        str(_artifact(pipeline_run, "features", "test_set")),
        str(spec_path),
        str(weak),
        str(tmp_path / "report.json"),
        str(pipeline_run.lineage_record.parents[2]),  # type: ignore[union-attr]
        "credit_risk",
        0.0,
        0.0,
    )
    decision = report["gate"]
    assert decision["passed"] is False
    assert decision["comparison"] == "same-test-set" and decision["production_version"] == 1
    assert "worse than production v1" in decision["reason"]


# ----------------------------------------------------------------------------------------- bad data


def _bad_table(tmp_path: Path, kind: str) -> Path:
    frame = data.generate(1000, 3)
    if kind == "missing":
        frame = frame.drop(columns=["age"])
    else:
        frame["income"] = np.nan
    path = tmp_path / f"{kind}.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_nan_column_fails_validate_and_exports_nothing(tmp_path: Path) -> None:
    source = _bad_table(tmp_path, "nan")
    result = local_run.run_local({"source_uri": str(source), "epochs": 1}, tmp_path / "out")
    assert not result.succeeded
    assert result.failed_step == "validate"
    assert result.errors == [
        "validate: column 'income' rule 'not-null': 1000 of 1000 values are NaN"
    ]
    assert result.steps["train"].status == "skipped"
    assert result.run_dir is not None and not (result.run_dir / "export").exists()
    assert not list((tmp_path / "out").rglob("model_repository*"))
    assert Registry(tmp_path / "out" / "registry").versions("credit_risk") == []


def test_missing_column_fails_the_cli_with_a_readable_message(tmp_path: Path) -> None:
    source = _bad_table(tmp_path, "missing")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        _cli(),
        [
            "pipeline",
            "run",
            "training",
            "--local",
            "--source",
            str(source),
            "--output-dir",
            str(out),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "training failed in step 'validate'" in result.output
    assert "validate: column 'age' rule 'present': column is missing" in result.output
    assert "Traceback" not in result.output
    assert not list(out.rglob("model_repository*"))


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_compiles_the_cluster_variant(tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"
    result = CliRunner().invoke(
        _cli(), ["pipeline", "compile", "training", "--target", "cluster", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    first = next(yaml.safe_load_all(out.read_text()))
    assert first["pipelineInfo"]["name"] == training.PIPELINE_NAME


def test_cli_run_needs_local(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["pipeline", "run", "training"])
    assert result.exit_code == 2
    assert "only --local runs are supported" in result.output


# -------------------------------------------------------------------------------------- real Triton


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_real_triton_serves_the_exported_model(
    pipeline_run: local_run.RunResult, protocol: str
) -> None:
    """The pipeline's own local repository on the real Triton server (``sovml serve``'s server):
    ready, the repository's config and metadata, and scores equal to the trained model's."""
    from pipelines.serving.load import InferClients
    from pipelines.serving.triton import TritonServer
    from tests.triton_helpers import require_triton

    require_triton()
    assert pipeline_run.model_repository_local is not None
    x, _, spec = _test_rows(pipeline_run)
    rows = x[:64]
    expected = steps.predict(
        steps.load_model(_artifact(pipeline_run, "train", "model"), spec), rows
    )
    with TritonServer(pipeline_run.model_repository_local, ["credit_risk"]) as server:
        url = server.http_url if protocol == "http" else server.grpc_url
        if protocol == "http":
            import tritonclient.http as client_lib
        else:
            import tritonclient.grpc as client_lib
        client = client_lib.InferenceServerClient(url)
        try:
            assert client.is_server_ready() and client.is_model_ready("credit_risk")
            kwargs = {"as_json": True} if protocol == "grpc" else {}
            cfg = client.get_model_config("credit_risk", **kwargs)
            cfg = cfg.get("config", cfg)
            meta = client.get_model_metadata("credit_risk", **kwargs)
        finally:
            client.close()
        assert cfg["backend"] == "python" and int(cfg["max_batch_size"]) == 1024
        assert cfg["input"][0]["name"] == triton.INPUT_NAME
        assert [str(d) for d in cfg["input"][0]["dims"]] == [str(len(schema.FEATURES))]
        assert meta["versions"] == ["1"] and meta["outputs"][0]["name"] == triton.OUTPUT_NAME
        with InferClients(protocol, url, 1, triton.INPUT_NAME, triton.OUTPUT_NAME) as clients:
            batch = clients.infer(0, "credit_risk", rows).reshape(-1)
            single = np.concatenate(
                [clients.infer(0, "credit_risk", r[None, :]) for r in rows[:8]]
            ).reshape(-1)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(single, expected[:8], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------- the lifecycle log


def test_the_run_records_its_events_in_the_lifecycle_log(
    pipeline_run: local_run.RunResult, _lifecycle_log: Path
) -> None:
    """Start, registration, promotion, encryption and finish, in order, from the parent and the
    step subprocesses (which found the log through SOVML_AUDIT_LOG), on one intact chain."""
    from pipelines.audit.verify import verify

    tag = pipeline_run.run_tag
    entries = [json.loads(line) for line in _lifecycle_log.read_text().splitlines()]
    start = next(
        i
        for i, e in enumerate(entries)
        if e["event"] == "pipeline.run.started" and e["details"]["run_tag"] == tag
    )
    mine = entries[start : start + 5]
    assert [e["event"] for e in mine] == [
        "pipeline.run.started",
        "model.registered",
        "model.promoted",
        "artifact.encrypted",
        "pipeline.run.finished",
    ]
    assert [e["seq"] for e in mine] == list(range(mine[0]["seq"], mine[0]["seq"] + 5))
    finished = mine[-1]
    assert finished["details"]["outcome"] == "succeeded" and finished["details"]["version"] == 1
    assert set(finished["outputs"]) >= {"model_repository", "lineage_record", "encrypted"}
    assert "dataset" in finished["inputs"]
    registered = mine[1]
    assert registered["subject"] == "credit_risk v1"
    assert registered["outputs"]["record"]["path"] == str(pipeline_run.lineage_record)
    assert registered["inputs"]["dataset"]["sha256"] == finished["inputs"]["dataset"]["sha256"]
    result = verify(_lifecycle_log)
    assert result.intact, result.broken
    assert result.checked >= 8
