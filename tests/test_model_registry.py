"""Tracking and the registry against the real MLflow server (the session's ``mlflow_server``):
run logging, registration, lifecycle moves, approvals, the refusal of an unapproved champion,
``sovml model`` and the gate's check of a production stack's served versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli.app import app
from pipelines.audit.verify import verify
from pipelines.registry import governance
from pipelines.registry.governance import Decision, GovernanceError
from pipelines.registry.mlflow_rest import MlflowError, MlflowRest
from pipelines.registry.tracking import track_run
from policies.approvals import export_problem, served_version_problems

runner = CliRunner()


@pytest.fixture
def client(mlflow_server: str) -> MlflowRest:
    """A REST client of the session's server."""
    return MlflowRest(mlflow_server)


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own lifecycle log."""
    path = tmp_path / "lifecycle.jsonl"
    monkeypatch.setenv("SOVML_AUDIT_LOG", str(path))
    return path


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _register(client: MlflowRest, tmp_path: Path, model: str, passed: bool = True) -> Any:
    """A pipeline run's outputs as files, logged and registered through ``track_run``."""
    lineage = tmp_path / f"{model}-lineage.json"
    lineage.write_text(json.dumps({"parameters": {"lr": 0.01, "hidden": [16, 8]}}))
    evaluation = tmp_path / f"{model}-evaluation.json"
    evaluation.write_text(json.dumps({"metrics": {"auc": 0.81}}))
    served = tmp_path / f"{model}-model.pt"
    served.write_bytes(b"weights")
    return track_run(
        client,
        experiment="tests",
        run_tag=f"run-{model}",
        succeeded=True,
        arguments={"rows": 2000, "seed": 7},
        metrics={"auc": 0.81, "accuracy": 0.75, "fairness": {"dp_difference": 0.02}},
        gate={"passed": passed, "reason": "auc 0.81 >= 0.7"},
        lineage_record=lineage,
        evaluation_report=evaluation,
        served_model=served,
        data_sha256="ab" * 32,
        model_name=model,
        repository_version=4,
    )


def test_run_logged_and_version_registered(client: MlflowRest, tmp_path: Path) -> None:
    """Parameters, metrics (nested ones flattened), data digest, lineage link and artifacts are
    on the run; the version points at the run's model artifacts and passed to challenger."""
    tracked = _register(client, tmp_path, "reg_logged")
    run = client.get_run(tracked.run_id)
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert params["pipeline.rows"] == "2000" and params["hidden"] == "[16, 8]"
    assert metrics == {"auc": 0.81, "accuracy": 0.75, "fairness.dp_difference": 0.02}
    assert tags["sovml.data_sha256"] == "ab" * 32
    assert tags["sovml.lineage_sha256"] == governance_digest(tmp_path / "reg_logged-lineage.json")
    assert run["info"]["status"] == "FINISHED"
    assert client.list_artifacts(tracked.run_id, "lineage") == ["lineage/reg_logged-lineage.json"]
    assert client.list_artifacts(tracked.run_id, "model") == ["model/reg_logged-model.pt"]
    version = client.get_model_version("reg_logged", tracked.model_version)
    assert version.run_id == tracked.run_id and version.source.endswith("/model")
    assert version.tags["repository_version"] == "4"
    assert governance.state_of(version).value == tracked.state == "challenger"
    assert governance.gate_evidence(version)["metrics"]["auc"] == 0.81


def governance_digest(path: Path) -> str:
    """SHA-256 of a file (what the run's lineage tag must hold)."""
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tuning_trials_are_child_runs_with_their_state(client: MlflowRest, tmp_path: Path) -> None:
    """A complete trial ends FINISHED with its score, a pruned one KILLED, a failed one FAILED
    without a score; each carries its values and its number, under the pipeline's run."""
    trials = [
        {"number": 0, "state": "COMPLETE", "params": {"learning_rate": 0.01}, "value": 0.8,
         "seconds": 1.5},
        {"number": 1, "state": "PRUNED", "params": {"learning_rate": 0.1}, "value": 0.6},
        {"number": 2, "state": "FAIL", "params": {"hidden_units": "64,32"}, "value": None},
    ]  # fmt: skip
    tracked = track_run(
        client,
        experiment="tests",
        run_tag="run-trials",
        succeeded=True,
        arguments={},
        metrics={},
        gate={"passed": False, "reason": "not judged here"},
        lineage_record=None,
        evaluation_report=None,
        served_model=None,
        data_sha256="",
        model_name="reg_trials",
        repository_version=None,
        trials=trials,
    )
    children = client.child_runs(tracked.experiment_id, tracked.run_id)
    got = {}
    for c in children:
        # MLflow leaves out an empty list (a failed trial has no score).
        tags = {t["key"]: t["value"] for t in c["data"].get("tags", [])}
        metrics = {m["key"]: m["value"] for m in c["data"].get("metrics", [])}
        params = {p["key"]: p["value"] for p in c["data"].get("params", [])}
        got[int(tags["sovml.trial_number"])] = (c["info"]["status"], metrics, params)
    assert got == {
        0: ("FINISHED", {"validation_auc": 0.8, "seconds": 1.5}, {"learning_rate": "0.01"}),
        1: ("KILLED", {"validation_auc": 0.6}, {"learning_rate": "0.1"}),
        2: ("FAILED", {}, {"hidden_units": "64,32"}),
    }


def test_gate_refusal_logs_the_run_registers_nothing(client: MlflowRest, tmp_path: Path) -> None:
    """A model the gate refused is tracked, never registered."""
    tracked = _register(client, tmp_path, "reg_refused", passed=False)
    assert tracked.model_version is None and tracked.state == ""
    tags = {t["key"]: t["value"] for t in client.get_run(tracked.run_id)["data"]["tags"]}
    assert tags["sovml.gate_passed"] == "false"
    assert client.model_versions("reg_refused") == []


def test_lifecycle_with_approval(client: MlflowRest, tmp_path: Path, audit_log: Path) -> None:
    """challenger -> (approve) -> champion -> archived when replaced; an unapproved version is
    refused as champion; a rollback records why and restores the approved predecessor."""
    first = _register(client, tmp_path, "reg_flow").model_version
    (tmp_path / "second").mkdir()
    second = _register(client, tmp_path / "second", "reg_flow").model_version
    assert (first, second) == (1, 2)
    with pytest.raises(GovernanceError, match="reg_flow v1: cannot promote to champion: the "):
        governance.promote(client, "reg_flow", first, "ops", "promote")
    record = governance.approve(
        client, "reg_flow", first, Decision("ana", "gate and fairness ok", {"ticket": "CR-1"})
    )
    with pytest.raises(GovernanceError, match="already approved by ana"):
        governance.approve(client, "reg_flow", first, Decision("bob", "again", {}))
    with pytest.raises(GovernanceError, match="the canary decided 'hold'"):
        governance.promote(client, "reg_flow", first, "ops", "hold")
    governance.promote(client, "reg_flow", first, "ops", "promote")
    assert governance.champion(client, "reg_flow").version == first
    governance.approve(client, "reg_flow", second, Decision("ana", "better auc", {}))
    governance.promote(client, "reg_flow", second, "ops", "promote")
    states = {v.version: governance.state_of(v).value for v in client.model_versions("reg_flow")}
    assert states == {1: "archived", 2: "champion"}
    with pytest.raises(GovernanceError, match="--reason must say why"):
        governance.rollback(client, "reg_flow", Decision("ops", "", {}), restore=first)
    governance.rollback(client, "reg_flow", Decision("ops", "p99 regression", {}), restore=first)
    versions = {v.version: v for v in client.model_versions("reg_flow")}
    assert governance.state_of(versions[2]).value == "archived"
    assert governance.record_of(versions[2], "rollback")["reason"] == "p99 regression"
    assert "champion" in versions[1].aliases
    events = _events(audit_log)
    assert [e["event"] for e in events] == [
        "model.approved",
        "model.promoted",
        "model.approved",
        "model.promoted",
        "model.rolled_back",
    ]
    assert events[0]["subject"] == "reg_flow v1" and events[0]["hash"] == record["log_entry"]
    assert events[0]["details"]["gate.metrics.auc"] == 0.81
    assert events[0]["details"]["ticket"] == "CR-1" and events[0]["actor"]
    assert verify(audit_log).intact


def test_rejected_version_is_terminal(client: MlflowRest, tmp_path: Path, audit_log: Path) -> None:
    """A rejection needs a reason, is logged, and nothing approves or promotes it afterwards."""
    number = _register(client, tmp_path, "reg_reject").model_version
    with pytest.raises(GovernanceError, match="--reason must say why"):
        governance.reject(client, "reg_reject", number, Decision("ana", " ", {}))
    governance.reject(client, "reg_reject", number, Decision("ana", "biased on age", {}))
    with pytest.raises(GovernanceError, match="is rejected: only a challenger"):
        governance.approve(client, "reg_reject", number, Decision("bob", "ok", {}))
    with pytest.raises(GovernanceError, match="cannot reject a version in state rejected"):
        governance.reject(client, "reg_reject", number, Decision("ana", "again", {}))
    assert [e["event"] for e in _events(audit_log)] == ["model.rejected"]


def test_unreachable_server_is_named() -> None:
    """No answer is an environment error, distinguishable from MLflow's refusals."""
    with pytest.raises(MlflowError) as caught:
        MlflowRest("http://127.0.0.1:9").registered_models()
    assert caught.value.unreachable and "unreachable" in str(caught.value)


def _sovml(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_approve_list_show_export_and_gate(
    client: MlflowRest, tmp_path: Path, audit_log: Path
) -> None:
    """``sovml model`` end to end, then the export judged as the gate judges it."""
    number = _register(client, tmp_path, "reg_cli").model_version
    export = tmp_path / "approvals.json"
    assert _sovml("model", "export", "--out", str(export))[0] == 0
    body = json.loads(export.read_text())
    assert export_problem(body) is None
    refused = served_version_problems(True, ["reg-cli"], {"reg-cli": number}, body)
    assert [p.message for p in refused] == [
        f"reg-cli version {number} has no approval record (approve it: sovml model approve "
        f"reg_cli {number} --by NAME --reason TEXT, then sovml model export)"
    ]
    code, _, err = _sovml("model", "approve", "reg_cli", str(number), "--reason", "ok")
    assert (code, err.strip()) == (2, "error: --by must name who decides (one printable line)")
    code, _, err = _sovml("model", "approve", "reg_cli", "99", "--by", "ana", "--reason", "ok")
    assert code == 2 and "RESOURCE_DOES_NOT_EXIST" in err
    code, out, _ = _sovml(
        "model", "approve", "reg_cli", str(number), "--by", "ana", "--reason", "ok",
        "--canary-decision", "promote",
    )  # fmt: skip
    assert code == 0 and out.startswith(f"approved reg_cli v{number} by ana at ")
    code, out, _ = _sovml("model", "list", "--model", "reg_cli", "--json")
    listed = json.loads(out)
    assert code == 0 and [(i["version"], i["state"]) for i in listed] == [(number, "challenger")]
    assert listed[0]["approval"]["evidence"]["canary_decision"] == "promote"
    code, out, _ = _sovml("model", "show", "reg_cli", str(number))
    assert code == 0 and "state: challenger" in out
    assert _sovml("model", "export", "--out", str(export))[0] == 0
    body = json.loads(export.read_text())
    assert served_version_problems(True, ["reg-cli"], {"reg-cli": number}, body) == []
    code, _, err = _sovml("model", "reject", "reg_cli", str(number), "--by", "x", "--reason", "y")
    assert code == 0
    code, _, err = _sovml("model", "promote", "reg_cli", str(number), "--by", "ops",
                          "--canary-decision", "promote")  # fmt: skip
    assert code == 2 and "cannot promote a version in state rejected" in err


def test_cli_unreachable_server_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configured server that does not answer: exit 3, one line, before anything is done."""
    monkeypatch.setenv("SOVML_TRACKING_URI", "http://127.0.0.1:9")
    code, _, err = _sovml("model", "list")
    assert code == 3
    assert err.strip() == "error: SOVML_TRACKING_URI=http://127.0.0.1:9 does not answer /health"


def test_pipeline_run_registers_its_version(training_run: Any, client: MlflowRest) -> None:
    """The session's real pipeline run logged to MLflow and registered a challenger linked to
    its lineage record."""
    assert training_run.gate_passed and training_run.tracking_run_id
    version = client.get_model_version("credit_risk", training_run.registry_version)
    assert governance.state_of(version).value == "challenger"
    lineage = json.loads(training_run.lineage_record.read_text())
    assert version.tags["lineage_sha256"] == governance_digest(training_run.lineage_record)
    assert version.tags["data_sha256"] == lineage["data"]["sha256"]
    assert version.tags["repository_version"] == str(training_run.version)
    run = client.get_run(training_run.tracking_run_id)
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["auc"] == pytest.approx(training_run.metrics["auc"])
    # Every tuning trial is a child run of the pipeline's run, with its values and score.
    tuning = json.loads((training_run.run_dir / "tune" / "tuning").read_text())
    children = client.child_runs(run["info"]["experiment_id"], training_run.tracking_run_id)
    assert len(children) == len(tuning["trials"]) > 0
    by_number = {
        int(next(t["value"] for t in c["data"]["tags"] if t["key"] == "sovml.trial_number")): c
        for c in children
    }
    for trial in tuning["trials"]:
        child = by_number[trial["number"]]
        params = {p["key"]: p["value"] for p in child["data"]["params"]}
        shown = {k: v if isinstance(v, str) else json.dumps(v) for k, v in trial["params"].items()}
        assert params == shown
        scores = {m["key"]: m["value"] for m in child["data"].get("metrics", [])}
        if trial["value"] is not None:
            assert scores["validation_auc"] == pytest.approx(trial["value"])
        expected = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(trial["state"], "FAILED")
        assert child["info"]["status"] == expected


def _canary(decision: str, reason: str = "accuracy +0.02, p99 within bounds") -> Any:
    from pipelines.registry.governance import CanaryOutcome

    return CanaryOutcome(
        decision=decision,
        reason=reason,
        run=f"demo-{decision}",
        report={"sha256": "cd" * 32, "path": f"build/abtest/demo-{decision}.json"},
        log_entry="ef" * 32,
    )


def test_canary_moves_the_registry(client: MlflowRest, tmp_path: Path, audit_log: Path) -> None:
    """The canary's decisions move the version through the one table: promoted -> champion
    (only once approved; the old champion archived), rolled back -> rejected with its reason
    (no manual promotion afterwards), held -> unchanged; each recorded on the version."""
    numbers = []
    for i in range(3):
        (tmp_path / str(i)).mkdir()
        numbers.append(_register(client, tmp_path / str(i), "reg_canary").model_version)
    first, second, third = numbers
    with pytest.raises(GovernanceError, match="reg_canary v1: cannot promote to champion: the "):
        governance.apply_canary(client, "reg_canary", first, "ops", _canary("promoted"))
    assert governance.state_of(client.get_model_version("reg_canary", first)).value == "challenger"
    with pytest.raises(GovernanceError, match="unknown canary decision 'promote'"):
        governance.apply_canary(client, "reg_canary", first, "ops", _canary("promote"))
    with pytest.raises(GovernanceError, match="--by must name who decides"):
        governance.apply_canary(client, "reg_canary", first, " ", _canary("held"))
    for number in numbers:
        governance.approve(client, "reg_canary", number, Decision("ana", "gate ok", {}))
    assert governance.apply_canary(client, "reg_canary", first, "ops", _canary("promoted")) == (
        governance.State.CHAMPION
    )
    assert governance.apply_canary(client, "reg_canary", second, "ops", _canary("held")) == (
        governance.State.CHALLENGER
    )
    lost = _canary("rolled_back", "accuracy -0.10\nbelow the baseline")
    assert governance.apply_canary(client, "reg_canary", third, "ops", lost) == (
        governance.State.REJECTED
    )
    with pytest.raises(GovernanceError, match="cannot promote a version in state rejected"):
        governance.promote(client, "reg_canary", third, "ops", "promote")
    governance.apply_canary(client, "reg_canary", second, "ops", _canary("promoted"))
    versions = {v.version: v for v in client.model_versions("reg_canary")}
    states = {n: governance.state_of(v).value for n, v in versions.items()}
    assert states == {first: "archived", second: "champion", third: "rejected"}
    assert "champion" in versions[second].aliases
    promotion = governance.record_of(versions[second], "promotion")
    assert promotion["canary_decision"] == "promote"
    assert promotion["evidence"]["canary"]["report"]["sha256"] == "cd" * 32
    assert governance.record_of(versions[second], "canary")["decision"] == "promoted"
    rejection = governance.record_of(versions[third], "rejection")
    assert rejection["reason"] == "the canary rolled it back: accuracy -0.10 below the baseline"
    assert rejection["evidence"]["canary"]["log_entry"] == "ef" * 32
    events = [(e["event"], e["subject"]) for e in _events(audit_log)]
    assert events[3:] == [
        ("model.promoted", "reg_canary v1"),
        ("model.rejected", "reg_canary v3"),
        ("model.promoted", "reg_canary v2"),
    ]
    assert _events(audit_log)[-1]["details"]["replaces"] == first
    assert _events(audit_log)[-1]["details"]["canary.report.sha256"] == "cd" * 32
    assert verify(audit_log).intact


def _fake_canary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, decision: str) -> list[str]:
    """``sovml abtest``'s model building, Triton and traffic replaced by a canary that decides
    ``decision`` at once (the registry side is what these tests judge); returns the calls."""
    import contextlib
    from types import SimpleNamespace

    from infra.cli import serve
    from pipelines.serving.canary import run as canary_run
    from pipelines.serving.canary.evidence import AbTestResult

    calls: list[str] = []

    def pair(*_: Any) -> Any:
        calls.append("built")
        return tmp_path, ("base", "cand"), (None, None)

    @contextlib.contextmanager
    def serving(*_: Any) -> Any:
        yield SimpleNamespace(endpoints=None), SimpleNamespace(update=lambda _: None)

    def run_abtest(*_: Any, **kw: Any) -> AbTestResult:
        evidence = Path(kw["out_dir"]) / f"{kw['run_name']}.json"
        evidence.write_text(json.dumps({"decision": decision}))
        return AbTestResult(
            kw["run_name"], "base", "cand", decision, "every guard passed", [], 100.0, 1.0, 10,
            evidence_path=str(evidence),
        )  # fmt: skip

    monkeypatch.setattr(serve, "_demo_pair", pair)
    monkeypatch.setattr(serve, "_serving", serving)
    monkeypatch.setattr(canary_run, "run_abtest", run_abtest)
    return calls


def test_cli_abtest_moves_the_version(
    client: MlflowRest, tmp_path: Path, audit_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sovml abtest --model-version``: bad options and an unapproved version are refused
    (exit 2) before any model is built; an approved one is champion after a promoting canary,
    and ``sovml model show`` says so, with the canary's evidence."""
    calls = _fake_canary(monkeypatch, tmp_path, "promoted")
    number = _register(client, tmp_path, "reg_abtest").model_version
    target = f"reg_abtest:{number}"
    base = ("abtest", "--run", "t", "--out-dir", str(tmp_path))
    for extra, message in [
        (("--model-version", "reg_abtest"), "--model-version must be MODEL:VERSION (e.g. "
         "credit_risk:3), not 'reg_abtest'"),
        (("--model-version", "reg_abtest:0", "--by", "ops"), "--model-version must be "
         "MODEL:VERSION (e.g. credit_risk:3), not 'reg_abtest:0'"),
        (("--model-version", target), "--model-version needs --by (who runs the canary, one "
         "printable line)"),
        (("--by", "ops"), "--by names who moves a registry version: it goes with "
         "--model-version"),
        (("--model-version", target, "--by", "ops"), f"reg_abtest v{number}: cannot promote to "
         "champion: the version has no approval (sovml model approve MODEL VERSION --by NAME "
         "--reason TEXT)"),
        (("--model-version", "reg_abtest:99", "--by", "ops"), "RESOURCE_DOES_NOT_EXIST"),
    ]:  # fmt: skip
        code, _, err = _sovml(*base, *extra)
        assert (code, calls) == (2, []), (extra, err)
        assert message in err and err.startswith("error: ") and err.count("\n") == 1
    governance.approve(client, "reg_abtest", number, Decision("ana", "gate ok", {}))
    code, out, err = _sovml(*base, "--model-version", target, "--by", "ops")
    assert (code, calls) == (0, ["built"]), err
    assert f"registry: reg_abtest v{number} is champion" in out
    code, out, _ = _sovml("model", "show", "reg_abtest", str(number), "--json")
    shown = json.loads(out)
    assert (code, shown["state"], shown["aliases"]) == (0, "champion", ["champion"])
    assert shown["canary"]["report"]["path"] == str(tmp_path / "t.json")
    assert shown["promotion"]["by"] == "ops" and shown["tuning_trials"] == 0
    events = _events(audit_log)
    assert [(e["event"], e["subject"]) for e in events[-2:]] == [
        ("model.promoted", "cand vs base"),
        ("model.promoted", f"reg_abtest v{number}"),
    ]
    assert events[-2]["details"]["model_version"] == target
    assert shown["canary"]["log_entry"] == events[-2]["hash"]


def test_cli_abtest_without_a_version_touches_no_registry(
    tmp_path: Path, audit_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --model-version the canary runs as before: no tracking server is needed (a
    configured one that does not answer is never asked) and nothing is moved."""
    calls = _fake_canary(monkeypatch, tmp_path, "rolled_back")
    monkeypatch.setenv("SOVML_TRACKING_URI", "http://127.0.0.1:9")
    code, out, err = _sovml("abtest", "--run", "plain", "--out-dir", str(tmp_path))
    assert (code, calls) == (0, ["built"]), err
    assert "registry:" not in out
    assert [e["event"] for e in _events(audit_log)] == ["model.rolled_back"]
    assert "model_version" not in _events(audit_log)[0]["details"]


def test_cli_abtest_rollback_rejects_the_version(
    client: MlflowRest, tmp_path: Path, audit_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A canary that rolled back an approved challenger rejects it, with the canary's reason."""
    _fake_canary(monkeypatch, tmp_path, "rolled_back")
    number = _register(client, tmp_path, "reg_abtest_rb").model_version
    governance.approve(client, "reg_abtest_rb", number, Decision("ana", "gate ok", {}))
    code, out, err = _sovml(
        "abtest", "--run", "rb", "--out-dir", str(tmp_path),
        "--model-version", f"reg_abtest_rb:{number}", "--by", "ops",
    )  # fmt: skip
    assert code == 0 and f"registry: reg_abtest_rb v{number} is rejected" in out, err
    version = client.get_model_version("reg_abtest_rb", number)
    rejection = governance.record_of(version, "rejection")
    assert rejection["reason"] == "the canary rolled it back: every guard passed"
    code, _, err = _sovml("abtest", "--run", "rb2", "--out-dir", str(tmp_path),
                          "--model-version", f"reg_abtest_rb:{number}", "--by", "ops")  # fmt: skip
    assert code == 2 and "cannot promote a version in state rejected" in err
