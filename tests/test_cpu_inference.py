"""The CPU inference tier: backend selection by measurement, and the CPU-profile export.

Latency is never asserted here (performance lives in ``benchmarks/cpu_inference.py``): every
selection runs with a stub timer that reports fixed per-call durations, which makes the choice
deterministic while the accuracy checks, ONNX export and repositories are all real.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipelines.serving import cpu_tier as ci
from pipelines.serving import repository as triton
from pipelines.training import data, metrics, steps
from pipelines.training import preprocessing as features
from pipelines.training.registry import Registry
from tests.triton_helpers import load_python_model, parse_model_configs

ROOT = Path(__file__).resolve().parents[1]
FAST_PLAN = ci.MeasurePlan(warmup=1, calibration=1, rounds=2, settle_seconds=0.0)

# Microseconds per call, per batch size: int8 fastest at both sizes, eager slowest at batch 1.
DEFAULT_US = {
    1: {
        "eager_fp32": 100.0,
        "torchscript": 80.0,
        "torchscript_opt": 70.0,
        "onnxruntime": 30.0,
        "int8_dynamic": 20.0,
    },
    64: {
        "eager_fp32": 400.0,
        "torchscript": 300.0,
        "torchscript_opt": 320.0,
        "onnxruntime": 200.0,
        "int8_dynamic": 150.0,
    },
}

ONNX_FASTEST_US = {
    1: {**DEFAULT_US[1], "onnxruntime": 15.0},
    64: {**DEFAULT_US[64], "onnxruntime": 100.0},
}


def stub_timer(table: dict[int, dict[str, float]]) -> ci.Timer:
    """A timer reporting ``table[batch][candidate]`` microseconds per call (nothing is called)."""

    def timer(name: str, batch: int, call: Callable[[], object], n: int) -> Sequence[float]:
        return [table[batch][name] * 1e-6] * n

    return timer


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small trained credit-risk model with its files, as the pipeline's steps leave them."""
    root = tmp_path_factory.mktemp("cpu-tier")
    paths = {
        name: str(root / name)
        for name in ("data.parquet", "train.parquet", "test.parquet", "spec.json", "model")
    }
    steps.ingest(1500, 5, "", "", paths["data.parquet"], "local", str(root / "key.json"))
    steps.features(
        paths["data.parquet"],
        paths["train.parquet"],
        paths["test.parquet"],
        paths["spec.json"],
        0.2,
    )
    steps.train(paths["train.parquet"], paths["spec.json"], paths["model"], {"epochs": 2})
    spec = features.FeatureSpec.load(paths["spec.json"])
    x, y = features.matrices(data.read_table(paths["test.parquet"]), spec)
    return {"root": root, "paths": paths, "spec": spec, "x": x, "y": y}


@pytest.fixture(scope="module")
def built(problem: dict[str, Any]) -> list[ci.Candidate]:
    """Every candidate of the trained model, built once (real exports, real files)."""
    scorer = steps.load_model(problem["paths"]["model"], problem["spec"])
    config = ci.SelectionConfig(input_name=triton.INPUT_NAME, output_name=triton.OUTPUT_NAME)
    return ci.build_candidates(scorer, problem["x"][:64], problem["root"] / "built", config)


def _select(
    built: list[ci.Candidate],
    problem: dict[str, Any],
    table: dict[int, dict[str, float]] = DEFAULT_US,
    **overrides: Any,
) -> ci.Selection:
    config = ci.SelectionConfig(plan=FAST_PLAN, **overrides)
    return ci.select_from(
        built,
        problem["x"][:64],
        validation=(problem["x"], problem["y"]),
        config=config,
        timer=stub_timer(table),
    )


# ----------------------------------------------------------------------------------- selection


def test_every_candidate_builds(built: list[ci.Candidate]) -> None:
    assert [c.name for c in built] == list(ci.CANDIDATES)
    assert {c.name: c.error for c in built} == dict.fromkeys(ci.CANDIDATES)
    onnx = next(c for c in built if c.name == "onnxruntime")
    assert onnx.notes["exporter"] == "dynamo" and onnx.notes["opset"] == ci.ONNX_OPSET
    assert onnx.notes["ir_version"] <= ci.MAX_ONNX_IR_VERSION


def test_selection_picks_the_fastest_candidate_within_the_bound(
    built: list[ci.Candidate], problem: dict[str, Any]
) -> None:
    loose = ci.AccuracyBound(max_abs_diff=1.0, max_metric_drop=1.0)
    selection = _select(built, problem, bound=loose)
    assert (selection.chosen, selection.served) == ("int8_dynamic", "int8_dynamic")
    assert selection.backend == "pytorch" and selection.artifact_format == "torchscript"
    assert selection.artifact.name == "int8_dynamic.pt" and selection.artifact.is_file()
    assert selection.torchscript_fp32.name == "torchscript.pt"
    int8 = selection.figures("int8_dynamic")
    assert int8.latency[1].p50_us == pytest.approx(20.0)
    assert int8.latency[64].p95_us == pytest.approx(150.0)
    assert int8.speedup == {1: pytest.approx(5.0), 64: pytest.approx(400 / 150)}
    assert all(f.within_bound for f in selection.candidates)
    # Every candidate has its figures: latency at both batch sizes, deviations, metric drop.
    for f in selection.candidates:
        assert set(f.latency) == {1, 64} and f.max_abs_diff is not None
        assert f.metric_drop is not None
    assert selection.figures("eager_fp32").max_abs_diff == 0.0
    assert selection.metric_name == "auc" and 0.5 < selection.reference_metric <= 1.0
    body = json.loads(json.dumps(selection.to_dict()))
    assert body["candidates"]["int8_dynamic"]["latency"]["1"]["p50_us"] == pytest.approx(20.0)


def test_candidate_outside_the_bound_is_rejected(
    built: list[ci.Candidate], problem: dict[str, Any]
) -> None:
    """int8 is fastest, but its outputs move by far more than a tight bound allows."""
    tight = ci.AccuracyBound(max_abs_diff=1e-5, max_metric_drop=1.0)
    selection = _select(built, problem, bound=tight)
    int8 = selection.figures("int8_dynamic")
    assert not int8.within_bound and int8.max_abs_diff > 1e-5
    assert selection.chosen == selection.served == "onnxruntime"
    assert selection.backend == "onnxruntime" and selection.artifact.suffix == ".onnx"


def test_metric_drop_outside_the_bound_is_rejected() -> None:
    def figures(name: str, us: float, drop: float, ok: bool) -> ci.CandidateFigures:
        form = ci.SERVING_FORM[name]
        return ci.CandidateFigures(
            name=name,
            backend=form[1] if form else None,
            artifact_format=form[0] if form else None,
            artifact=None,
            latency={1: ci.Latency(us, us, us, 10)},
            speedup={},
            max_abs_diff=0.0,
            metric=0.8 - drop,
            metric_drop=drop,
            within_bound=ok,
        )

    bound = ci.AccuracyBound(max_abs_diff=1.0, max_metric_drop=0.01)
    assert not ci.within(ci.Deviation(0.0, 0.7, 0.1), bound)
    assert ci.within(ci.Deviation(0.0, 0.79, 0.01), bound)
    rows = [
        figures("eager_fp32", 100, 0.0, True),
        figures("torchscript", 90, 0.0, True),
        figures("int8_dynamic", 10, 0.1, False),
    ]
    assert ci.decide(rows, "p50_b1") == ("torchscript", "torchscript")
    with pytest.raises(ci.SelectionError, match="no candidate can be served"):
        ci.decide(rows, "p50_b1", allowed=("int8_dynamic",))


def test_eager_win_is_served_as_torchscript(
    built: list[ci.Candidate], problem: dict[str, Any]
) -> None:
    table = {b: dict(t) for b, t in DEFAULT_US.items()}
    table[1].update(eager_fp32=5.0, torchscript=60.0, torchscript_opt=50.0)
    selection = _select(built, problem, table, bound=ci.AccuracyBound(1e-5, 1.0))
    assert selection.chosen == "eager_fp32"
    assert selection.served == "torchscript_opt" and selection.backend == "pytorch"
    assert selection.artifact.name == "torchscript_opt.pt"


def test_objective_and_pinned_backend(built: list[ci.Candidate], problem: dict[str, Any]) -> None:
    table = {b: dict(t) for b, t in DEFAULT_US.items()}
    table[64].update(torchscript=100.0)
    tight = ci.AccuracyBound(1e-5, 1.0)
    assert _select(built, problem, table, bound=tight, objective="p50_b64").chosen == "torchscript"
    pinned = _select(built, problem, bound=tight, allowed=("torchscript",))
    assert pinned.served == "torchscript"
    with pytest.raises(ValueError, match="among the measured batch sizes"):
        ci.SelectionConfig(objective="p50_b8")


def test_measure_interleaves_rounds_over_all_candidates(built: list[ci.Candidate]) -> None:
    seen: list[tuple[str, int, int]] = []

    def timer(name: str, batch: int, call: Callable[[], object], n: int) -> list[float]:
        seen.append((name, batch, n))
        return [DEFAULT_US[batch][name] * 1e-6] * n

    plan = ci.MeasurePlan(
        batch_sizes=(1,), warmup=2, calibration=1, rounds=2, block_warmup=1, settle_seconds=0
    )
    result = ci.measure(built, np.ones((4, 16), np.float32), plan, timer)
    assert result["onnxruntime"][1].p50_us == pytest.approx(30.0)
    blocks = [name for name, _, n in seen if n > 2]  # the timed blocks, in order
    names = list(ci.CANDIDATES)
    assert blocks == names + names[::-1]


def test_onnx_export_matches_eager_within_1e_5(
    built: list[ci.Candidate], problem: dict[str, Any]
) -> None:
    import onnx

    eager = next(c for c in built if c.name == "eager_fp32")
    onnx_candidate = next(c for c in built if c.name == "onnxruntime")
    assert eager.predict is not None and onnx_candidate.predict is not None
    x = problem["x"]
    for rows in (x[:1], x[:64], x):
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        got, want = onnx_candidate.predict(rows), eager.predict(rows)
        assert got.shape == want.shape == (len(rows), 1)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    proto = onnx.load(str(onnx_candidate.artifact))
    assert [i.name for i in proto.graph.input] == [triton.INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [triton.OUTPUT_NAME]
    assert proto.opset_import[0].version == ci.ONNX_OPSET


def test_metrics_take_every_output_shape_the_candidates_return() -> None:
    """The tier scores with the training pipeline's metrics: [n], [n, 1] and [n, k] outputs."""
    labels = np.array([0, 0, 1, 1])
    assert {"auc": metrics.roc_auc, "accuracy": metrics.accuracy} == ci.METRICS
    assert metrics.roc_auc(labels, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert metrics.roc_auc(labels, np.array([[0.2], [0.2], [0.2], [0.9]])) == pytest.approx(0.75)
    two_class = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    assert metrics.accuracy(labels, two_class) == pytest.approx(0.75)
    assert metrics.roc_auc(labels, two_class) == pytest.approx(0.875)
    assert metrics.accuracy(labels, np.array([0.1, 0.6, 0.7, 0.9])) == pytest.approx(0.75)
    assert metrics.accuracy(labels, np.array([[0.1], [0.6], [0.7], [0.9]])) == pytest.approx(0.75)


def test_one_class_labels_bound_the_output_difference_only(
    built: list[ci.Candidate], problem: dict[str, Any]
) -> None:
    """AUC is undefined (NaN) on rows of one class: no metric drop, the outputs still bounded."""
    x = problem["x"][:200]
    one_class = np.ones(len(x), dtype=np.int64)
    assert np.isnan(metrics.roc_auc(one_class, np.linspace(0, 1, len(x))))
    deviations = ci.check_accuracy(built, x, one_class, ci.METRICS["auc"])
    assert set(deviations) == set(ci.CANDIDATES)
    assert all(d.metric is None and d.metric_drop is None for d in deviations.values())
    assert deviations["eager_fp32"].max_abs_diff == 0.0
    assert deviations["onnxruntime"].max_abs_diff <= 1e-5
    tight = ci.AccuracyBound(max_abs_diff=1e-5, max_metric_drop=0.0)
    selection = ci.select_from(
        built,
        x[:64],
        validation=(x, one_class),
        config=ci.SelectionConfig(plan=FAST_PLAN, bound=tight),
        timer=stub_timer(DEFAULT_US),
    )
    assert selection.reference_metric is None
    assert selection.chosen == "onnxruntime" and not selection.figures("int8_dynamic").within_bound


# -------------------------------------------------------------------------- CPU-profile export


@pytest.fixture(scope="module")
def exported(problem: dict[str, Any]) -> dict[str, Any]:
    """The export step on the cpu profile (ONNX Runtime timed fastest), then registered."""
    paths, root = problem["paths"], problem["root"]
    out = {
        "registry": str(root / "registry"),
        "repo": str(root / "model_repository"),
        "local": str(root / "model_repository_local"),
        "selection": str(root / "serving_selection.json"),
    }
    result = steps.export(
        paths["model"],
        paths["spec.json"],
        out["registry"],
        "credit_risk",
        "cpu",
        1024,
        out["repo"],
        out["local"],
        test_path=paths["test.parquet"],
        selection_path=out["selection"],
        timer=stub_timer(ONNX_FASTEST_US),
    )
    # The evaluation/validation reports register() reads (gate passed, data profile).
    steps.validate(paths["data.parquet"], str(root / "validation.json"), 200, 0.02, 0.6)
    steps.evaluate(
        paths["test.parquet"],
        paths["spec.json"],
        paths["model"],
        str(root / "evaluation.json"),
        out["registry"],
        "credit_risk",
        0.5,
        0.0,
    )
    registered = steps.register(
        paths["data.parquet"],
        str(root / "validation.json"),
        paths["spec.json"],
        paths["model"],
        str(root / "evaluation.json"),
        out["repo"],
        out["local"],
        str(root / "lineage.json"),
        out["registry"],
        "credit_risk",
        result["version"],
        {},
        {},
        "",
        True,
        "cpu-tier-test",
        selection_path=out["selection"],
    )
    return {**out, "result": result, "record": json.loads(Path(registered["record"]).read_text())}


def _parse_configs(files: dict[str, Path]) -> dict[str, Any]:
    return parse_model_configs(files)


def test_cpu_export_writes_an_onnxruntime_repository(exported: dict[str, Any]) -> None:
    repo, local = Path(exported["repo"]), Path(exported["local"])
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == [
        "credit_risk/1/model.onnx",
        "credit_risk/config.pbtxt",
    ]
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == [
        "credit_risk/1/model.onnx",
        "credit_risk/1/model.pt",
        "credit_risk/1/model.py",
        "credit_risk/config.pbtxt",
    ]
    assert (repo / "credit_risk/1/model.onnx").read_bytes() == (
        local / "credit_risk/1/model.onnx"
    ).read_bytes()
    configs = _parse_configs(
        {"prod": repo / "credit_risk/config.pbtxt", "local": local / "credit_risk/config.pbtxt"}
    )
    prod, twin = configs["prod"], configs["local"]
    assert prod["platform"] == "onnxruntime_onnx" and prod["backend"] == "onnxruntime"
    assert prod["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]
    assert prod["parameters"]["intra_op_thread_count"] == {
        "string_value": str(triton.CPU_PROFILE_VCPUS)
    }
    assert prod["input"][0]["name"] == triton.INPUT_NAME
    assert prod["output"][0]["name"] == triton.OUTPUT_NAME
    assert twin["backend"] == "python"
    assert twin["parameters"]["ONNX_FILE"] == {"string_value": "model.onnx"}
    assert twin["parameters"]["TORCHSCRIPT_FILE"] == {"string_value": "model.pt"}
    for key in ("input", "output", "max_batch_size", "dynamic_batching", "instance_group"):
        assert prod[key] == twin[key]
    # The local config says which runtime the local server will use, and why.
    head = (local / "credit_risk/config.pbtxt").read_text().splitlines()[:5]
    assert any("At export:" in line for line in head)
    result = exported["result"]
    assert result["backend"] == "onnxruntime" and result["cpu_choice"] == "onnxruntime"
    assert result["selection_metrics"]["onnxruntime_b1_speedup"] == pytest.approx(100 / 15, 1e-3)
    assert result["selection_metrics"]["cpu_selection_ran"] == 1.0


def test_lineage_records_the_choice(exported: dict[str, Any]) -> None:
    record = exported["record"]
    serving = record["serving"]
    assert serving["ran"] is True and serving["profile"] == "cpu"
    assert serving["chosen"] == serving["served"] == "onnxruntime"
    assert serving["backend"] == "onnxruntime" and serving["platform"] == "onnxruntime_onnx"
    assert serving["objective"] == "p50_b1" and serving["threads"] == triton.CPU_PROFILE_VCPUS
    assert serving["bound"] == {"max_abs_diff": 0.01, "max_metric_drop": 0.001}
    assert set(serving["candidates"]) == set(ci.CANDIDATES)
    int8 = serving["candidates"]["int8_dynamic"]
    assert int8["latency"]["1"]["p50_us"] == pytest.approx(20.0)
    assert int8["artifact"] == "int8_dynamic.pt"  # no scratch paths in the lineage
    onnx = serving["candidates"]["onnxruntime"]
    assert onnx["within_bound"] is True and onnx["max_abs_diff"] <= 1e-5
    assert serving["environment"]["threads"] == triton.CPU_PROFILE_VCPUS
    repo = Path(exported["repo"])
    assert record["artifacts"]["served"] == str((repo / "credit_risk/1/model.onnx").resolve())
    assert record["model"]["served_sha256"] == data.sha256_file(repo / "credit_risk/1/model.onnx")
    # The gate scores production with TorchScript: the fp32 fallback beside the ONNX model.
    torchscript = Path(record["artifacts"]["torchscript"])
    assert torchscript == (Path(exported["local"]) / "credit_risk/1/model.pt").resolve()
    assert record["model"]["torchscript_sha256"] == data.sha256_file(torchscript)
    assert Registry(exported["registry"]).production("credit_risk")["version"] == 1


def test_rerun_keeps_the_recorded_backend(
    exported: dict[str, Any], problem: dict[str, Any]
) -> None:
    """Same weights again: same version and the backend its lineage records, whatever is faster."""
    paths, root = problem["paths"], problem["root"]
    table = {b: dict(t) for b, t in ONNX_FASTEST_US.items()}
    table[1].update(torchscript=1.0)  # TorchScript would now win by far
    again = steps.export(
        paths["model"],
        paths["spec.json"],
        exported["registry"],
        "credit_risk",
        "cpu",
        1024,
        str(root / "rerun" / "repo"),
        str(root / "rerun" / "local"),
        test_path=paths["test.parquet"],
        timer=stub_timer(table),
    )
    assert again["version"] == 1 and again["backend"] == "onnxruntime"
    assert again["selection"]["pinned_by"] == "registry version 1"


def _load_twin(version_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The local repository's model.py under a stand-in for triton_python_backend_utils."""
    return load_python_model(version_dir, monkeypatch)


@pytest.mark.parametrize("onnxruntime_importable", [True, False])
def test_local_twin_runs_onnx_or_falls_back_to_torchscript(
    exported: dict[str, Any],
    problem: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    onnxruntime_importable: bool,
) -> None:
    local = Path(exported["local"]) / "credit_risk"
    config = _parse_configs({"local": local / "config.pbtxt"})["local"]
    module = _load_twin(local / "1", monkeypatch)
    if not onnxruntime_importable:
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    served = module.TritonPythonModel()
    served.initialize(
        {
            "model_config": json.dumps(config),
            "model_instance_kind": "CPU",
            "model_instance_device_id": "0",
            "model_repository": str(local),
            "model_version": "1",
        }
    )
    assert served.runtime == ("onnxruntime" if onnxruntime_importable else "torchscript")
    assert ("not importable" in served.fallback_reason) != onnxruntime_importable
    x = problem["x"]
    requests = [[module.pb_utils.Tensor("features__0", x[:3])]]
    requests.append([module.pb_utils.Tensor("features__0", x[3:10])])
    responses = served.execute(requests)
    got = np.concatenate([r.output_tensors[0].as_numpy() for r in responses])
    assert got.shape == (10, 1)
    eager = steps.load_model(problem["paths"]["model"], problem["spec"])
    np.testing.assert_allclose(got.reshape(-1), steps.predict(eager, x[:10]), atol=1e-5)


# ------------------------------------------------------------------------------ consistency


def test_cpu_profile_vcpus_match_the_serving_component() -> None:
    source = (ROOT / "components" / "serving.py").read_text()
    match = re.search(r'cpu_limit="\d+" if gpu else "(\d+)"', source)
    assert match, "components/serving.py no longer sets the CPU profile's limit inline"
    assert int(match.group(1)) == triton.CPU_PROFILE_VCPUS


def test_pipeline_cpu_defaults_match_the_export_step() -> None:
    golden = next(
        yaml.safe_load_all((ROOT / "pipelines/training/compiled/training.yaml").read_text())
    )
    params = golden["root"]["inputDefinitions"]["parameters"]
    defaults = {
        key: params[f"cpu_{key}"]["defaultValue"]
        for key in ("backend", "objective", "max_abs_diff", "max_metric_drop", "threads")
    }
    assert defaults == steps.CPU_DEFAULTS


def test_serving_config_rejects_onnxruntime_on_gpu() -> None:
    with pytest.raises(ValueError, match="cpu profile only"):
        triton.ServingConfig("m", 1, 4, profile="gpu", backend="onnxruntime")
    cfg = triton.ServingConfig("m", 1, 4, backend="onnxruntime", cpu_threads=2)
    with pytest.raises(ValueError, match="TorchScript fallback"):
        triton.write_repositories("model.onnx", cfg, "a", "b")


def test_export_step_embeds_exactly_the_cpu_tier_package() -> None:
    """The cluster's export pod imports the whole package, and nothing beyond the step library."""
    import ast

    from pipelines.training import packaging as pipeline
    from pipelines.training import provenance

    package = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "pipelines/serving/cpu_tier").glob("*.py")
    )
    assert sorted(pipeline.EXTRA_EMBEDDED["export"]) == package
    embedded = {*provenance.STEP_LIBRARY, *package}
    for relative in package:
        for node in ast.walk(ast.parse((ROOT / relative).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
                top = node.module.split(".")[0]
                if top in ("pipelines", "kernels", "components", "infra", "policies"):
                    as_module = node.module.replace(".", "/") + ".py"
                    as_package = node.module.replace(".", "/") + "/__init__.py"
                    assert as_module in embedded or as_package in embedded, (relative, node.module)
