"""The cluster pipeline's tracking: the ``track`` step logs the run to MLflow and registers its
version through the local run's own code (:func:`pipelines.registry.tracking.track_pipeline_run`),
on both branches of the gate; its pod carries every module that code imports; its default server
is the one ``components/mlflow.py`` deploys."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.registry import governance
from pipelines.registry.mlflow_rest import MlflowRest
from pipelines.training import compilation, images, packaging, steps
from pipelines.training.steps import StepError

ROOT = Path(__file__).resolve().parents[1]
ELSEWHERE = "/s3/bucket/export/model_repository"
"""Where the register pod saw the repository (the lineage names this path)."""


@pytest.fixture(scope="module")
def cluster_ir(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The cluster IR, compiled once (about 8 s): pipeline spec, platform spec."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = compilation.compile_pipeline("cluster", tmp_path_factory.mktemp("ir") / "c.yaml")
    return list(yaml.safe_load_all(path.read_text()))


def _run_files(tmp_path: Path, version: int = 3) -> dict[str, str]:
    """A finished run's files as the track pod sees them; the lineage names the register pod's
    paths, the repository is this pod's copy."""
    repository = tmp_path / "model_repository"
    served = repository / "credit_risk" / str(version) / "model.pt"
    served.parent.mkdir(parents=True)
    served.write_bytes(b"torchscript")
    lineage = tmp_path / "lineage"
    body = {
        "model_name": "credit_risk",
        "parameters": {"learning_rate": 0.003, "hidden_units": "64,32"},
        "data": {"sha256": "aa" * 32},
        "artifacts": {
            "model_repository": ELSEWHERE,
            "served": f"{ELSEWHERE}/credit_risk/{version}/model.pt",
        },
    }
    lineage.write_text(json.dumps(body))
    evaluation = tmp_path / "report"
    evaluation.write_text(json.dumps({"metrics": {"auc": 0.8}, "gate": {"passed": True}}))
    tuning = tmp_path / "tuning"
    trials = [
        {"number": n, "state": "COMPLETE", "params": {"learning_rate": lr}, "value": v}
        for n, lr, v in ((0, 0.003, 0.79), (1, 0.01, 0.81))
    ]
    tuning.write_text(json.dumps({"trials": trials}))
    dataset = tmp_path / "dataset"
    dataset.write_bytes(b"table")
    return {
        "dataset": str(dataset),
        "tuning": str(tuning),
        "evaluation": str(evaluation),
        "lineage": str(lineage),
        "model_repository": str(repository),
    }


def _track(url: str, paths: dict[str, str], passed: bool, tag: str) -> dict[str, Any]:
    return steps.track(
        url,
        "cluster-tests",
        tag,
        {"rows": 2000, "seed": 42},
        {"auc": 0.8, "demographic_parity_difference": 0.04},
        {"passed": passed, "reason": "auc 0.80 >= 0.75" if passed else "parity 0.32 > 0.10"},
        paths,
        "credit_risk_cluster",
        3 if passed else 0,
    )


def test_track_step_logs_and_registers_like_the_local_run(
    mlflow_server: str, tmp_path: Path
) -> None:
    """A passed run: parameters, metrics, data digest (from the lineage), trials as child runs,
    artifacts; the served model found in this pod's copy of the repository; the version a
    challenger with the repository version and lineage digest."""
    client = MlflowRest(mlflow_server)
    result = _track(mlflow_server, _run_files(tmp_path), True, "kfp-passed")
    assert result["lifecycle_state"] == "challenger" and result["registry_version"] >= 1
    run = client.get_run(result["tracking_run_id"])
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert params["pipeline.rows"] == "2000" and params["hidden_units"] == "64,32"
    assert tags["sovml.data_sha256"] == "aa" * 32 and tags["sovml.gate_passed"] == "true"
    assert client.list_artifacts(result["tracking_run_id"], "model") == ["model/model.pt"]
    children = client.child_runs(result["experiment_id"], result["tracking_run_id"])
    assert len(children) == 2
    name = json.loads((tmp_path / "lineage").read_text())["model_name"]
    version = client.get_model_version(name, result["registry_version"])
    assert version.tags["repository_version"] == "3"
    assert governance.state_of(version) is governance.State.CHALLENGER


def test_track_step_after_a_refusal_logs_and_registers_nothing(
    mlflow_server: str, tmp_path: Path
) -> None:
    """The gate's other branch: no lineage, no repository; the run is logged, the data digest
    taken from the table, nothing registered."""
    paths = _run_files(tmp_path)
    paths.update(lineage="", model_repository="")
    result = _track(mlflow_server, paths, False, "kfp-refused")
    assert (result["registry_version"], result["lifecycle_state"]) == (0, "")
    run = MlflowRest(mlflow_server).get_run(result["tracking_run_id"])
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["sovml.data_sha256"] == hashlib.sha256(b"table").hexdigest()
    assert tags["sovml.gate_passed"] == "false" and run["info"]["status"] == "FINISHED"


def test_track_step_refuses_to_run_untracked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No server named, or one that does not answer: the step fails, naming why."""
    paths = _run_files(tmp_path)
    with pytest.raises(StepError, match=r"^track: tracking_uri is empty; every run is tracked"):
        _track(" ", paths, True, "kfp-x")
    assert "SOVML-PIPELINE-ERROR: track: tracking_uri is empty" in capsys.readouterr().out
    with pytest.raises(StepError, match=r"^track: http://127\.0\.0\.1:9: .*unreachable"):
        _track("http://127.0.0.1:9", paths, True, "kfp-x")


def test_a_served_file_outside_the_named_repository_is_not_uploaded(tmp_path: Path) -> None:
    """The relocation only follows paths inside the repository the lineage names."""
    from pipelines.registry.tracking import _served_file

    repo = tmp_path / "repo"
    lineage = {"artifacts": {"model_repository": ELSEWHERE, "served": "/etc/passwd"}}
    assert _served_file(lineage, repo) is None
    lineage["artifacts"]["served"] = f"{ELSEWHERE}/m/1/model.pt"
    assert _served_file(lineage, repo) == repo / "m" / "1" / "model.pt"
    assert _served_file(lineage, None) == Path(f"{ELSEWHERE}/m/1/model.pt")


def test_cluster_graph_tracks_on_both_branches(cluster_ir: list[dict[str, Any]]) -> None:
    """After a registration track waits for materialize and encrypt and gets the lineage and
    repository; after a refusal it runs without them; its server defaults to the cluster's."""
    spec = cluster_ir[0]
    root = spec["root"]["inputDefinitions"]["parameters"]
    assert root["tracking_uri"]["defaultValue"] == images.TRACKING_URI
    branches = {
        name: comp["dag"]["tasks"]
        for name, comp in spec["components"].items()
        if "dag" in comp and any(t.startswith("track") for t in comp["dag"]["tasks"])
    }
    assert len(branches) == 2, branches.keys()
    passed, refused = sorted(branches.values(), key=len, reverse=True)
    track = passed["track"]
    assert set(track["dependentTasks"]) >= {"materialize", "encrypt", "register"}
    assert {"lineage", "model_repository"} <= set(track["inputs"]["artifacts"])
    assert track["inputs"]["parameters"]["kfp_run_id"] == {
        "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
    }
    (other,) = refused.values()
    assert set(refused) == {"track-2"} and "lineage" not in other["inputs"]["artifacts"]
    # The refused branch is the gate's negation: exactly one of the two runs.
    conditions = {
        task: body["triggerPolicy"]["condition"]
        for comp in spec["components"].values()
        for task, body in comp.get("dag", {}).get("tasks", {}).items()
        if task.startswith("condition-") and "triggerPolicy" in body
    }
    gate = "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
    assert sorted(conditions.values()) == [f"!({gate})", gate]
    inputs = spec["components"]["comp-track"]["inputDefinitions"]["artifacts"]
    assert inputs["lineage"]["isOptional"] is True
    assert "isOptional" not in inputs["evaluation"]


def test_local_graph_has_no_track_step(tmp_path: Path) -> None:
    """The local run tracks from the host: a track task in kfp.local would log every run twice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = compilation.compile_pipeline("local", tmp_path / "l.yaml")
    executors = next(yaml.safe_load_all(path.read_text()))["deploymentSpec"]["executors"]
    assert not [e for e in executors if e.startswith("exec-track")]


def test_track_pod_imports_its_code_from_the_embedded_copy_alone(
    cluster_ir: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Unpack the track executor's embedded archive and import the step's modules from it with
    the repository out of reach: a module the pod lacks fails here, not in the cluster."""
    from tests.test_training_compiled import _embedded_files

    command = cluster_ir[0]["deploymentSpec"]["executors"]["exec-track"]["container"]["command"]
    for relative, content in _embedded_files(command[-1]).items():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    probe = (
        "import pipelines, pipelines.registry.tracking, pipelines.training.steps as s; "
        "assert s.track; print(pipelines.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(str(tmp_path))
    assert set(packaging.TRACKING_LIBRARY) <= set(_embedded_files(command[-1]))


def test_default_server_is_the_components_service() -> None:
    """pipelines never import components: the URL is written twice and held equal here."""
    from components.mlflow import NAME, PORT
    from infra.tracking import NAMESPACE

    assert f"http://{NAME}.{NAMESPACE}.svc:{PORT}" == images.TRACKING_URI
