"""The demo's step list, its expected outcomes and the figures its summary table shows (the run
itself is `make demo`): a step whose outcome differs from its expectation is a failed step, judged
from evidence files, never from terminal text."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import typer

from infra.cli.app import app
from infra.demo import steps as demo


def _commands() -> set[str]:
    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def test_every_step_runs_a_registered_sovml_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "DEMO", tmp_path)
    steps = demo.steps()
    titles = [s.title for s in steps]
    assert len(titles) == len(set(titles))
    known = _commands()
    for step in steps:
        command = step.command() if callable(step.command) else step.command
        if command[1:3] == ["-m", "infra.cli.app"]:
            assert command[3] in known, f"{step.title}: unknown command {command[3]!r}"
    assert all(step.expect.what for step in steps), "every step declares its expected outcome"
    # The serving steps are part of the showcase, after the pipeline that exports the model.
    order = [s.title.split(":")[0] for s in steps]
    assert order.index("canary") > titles.index(
        "training pipeline on kfp.local (ingest -> ... -> encrypt)"
    )


def test_exported_repository_is_the_newest_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "DEMO", tmp_path)
    old = tmp_path / "pipeline" / "run-1" / "model_repository_local"
    new = tmp_path / "pipeline" / "run-2" / "model_repository_local"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    os.utime(old, (1, 1))
    assert demo.exported_repository() == str(new)


def test_parity_figure_counts_passed_rows() -> None:
    out = "\n".join(
        [
            "│ credit_risk │ 1 │ http │ 16 │ 1.2e-07 │ yes │",
            "│ credit_risk │ 1 │ grpc │ 16 │ 3.0e-03 │ NO │",
        ]
    )
    proc = subprocess.CompletedProcess([], 0, stdout=out, stderr="")
    assert "(1/2 <= 1e-5)" in demo.parity_figure(proc)


def test_load_figure_reads_the_bench_report(tmp_path: Path) -> None:
    report = tmp_path / "serve.json"
    result = {
        "name": "dynamic",
        "completed": 10000,
        "errors": 0,
        "throughput_rps": 1360.4,
        "latency_ms": {"p99": 16.8},
    }
    report.write_text(json.dumps({"results": [result]}))
    assert demo.load_figure(report) == "dynamic: 10000 req, 0 errors, 1360 req/s, p99 16.8 ms"
    assert demo.load_figure(tmp_path / "missing.json") == ""


def _proc(code: int = 0, stdout: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], code, stdout=stdout, stderr="")


def _canary_steps(tmp_path: Path, monkeypatch) -> dict[str, demo.Step]:
    monkeypatch.setattr(demo, "DEMO", tmp_path)
    monkeypatch.setattr(demo, "ABTEST", tmp_path / "abtest")
    return {s.title.split(",")[0]: s for s in demo.steps() if s.title.startswith("canary")}


def _evidence(path: Path, decision: str, families: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    look = {"reason": "LLR -18.35 (fail <= -3.91)"}
    path.write_text(
        json.dumps(
            {
                "decision": decision,
                "reason_families": families,
                "reason": "accuracy guard failed: LLR -18.35",
                "final_weight": 0.0 if decision == "rolled_back" else 100.0,
                "total_requests": 11276,
                "seconds": 10.9,
                "looks": [look],
            }
        )
    )


def test_the_worse_canary_must_be_rolled_back_by_the_accuracy_test(
    tmp_path: Path, monkeypatch
) -> None:
    step = _canary_steps(tmp_path, monkeypatch)["canary: candidate trained on shuffled labels"]
    assert step.expect.what == "decision rolled_back, by the accuracy test"
    (evidence,) = step.fresh
    assert "--run" in step.command and str(evidence.parent) in step.command  # type: ignore[operator]
    # Rolled back, but by the latency guard: the title's claim is false, so the step fails,
    # whatever the terminal said.
    _evidence(evidence, "rolled_back", ["latency"])
    outcome = demo.judge(step, _proc(0, "decision: ROLLED_BACK ... ok"), 11.0)
    assert not outcome.ok and "latency" in outcome.evidence and "expected" in outcome.figure
    _evidence(evidence, "rolled_back", ["accuracy", "latency"])
    assert not demo.judge(step, _proc(), 11.0).ok, "rolled back by the accuracy test alone"
    _evidence(evidence, "rolled_back", ["accuracy"])
    outcome = demo.judge(step, _proc(), 11.0)
    assert outcome.ok and outcome.figure.startswith("rolled_back (accuracy) at 0%")


def test_the_better_canary_must_be_promoted(tmp_path: Path, monkeypatch) -> None:
    step = _canary_steps(tmp_path, monkeypatch)["canary: better candidate"]
    (evidence,) = step.fresh
    for decision in ("rolled_back", "held"):
        _evidence(evidence, decision, ["latency"] if decision == "rolled_back" else ["budget"])
        assert not demo.judge(step, _proc(), 30.0).ok, decision
    _evidence(evidence, "promoted", [])
    assert demo.judge(step, _proc(), 30.0).ok
    evidence.unlink()
    missing = demo.judge(step, _proc(), 30.0)
    assert not missing.ok and "no evidence" in missing.evidence


def test_stale_evidence_is_removed_before_its_step_runs(tmp_path: Path, monkeypatch) -> None:
    """A canary that crashes before writing must not pass on the previous run's evidence."""
    step = _canary_steps(tmp_path, monkeypatch)["canary: better candidate"]
    (evidence,) = step.fresh
    _evidence(evidence, "promoted", [])
    crashing = demo.Step(step.title, ["false"], step.expect, fresh=step.fresh)
    _, outcome = demo.run_step(crashing, dict(os.environ))
    assert not evidence.exists() and not outcome.ok, outcome


def test_exit_expectations_check_status_and_files(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    expect = demo.exits(1, report)
    assert expect.what == "exit 1, writes report.html"
    assert expect.check(_proc(1)) == (False, f"exit 1; missing {report}")
    report.write_text("<html/>")
    assert expect.check(_proc(1))[0] and not expect.check(_proc(0))[0]


def _registry_steps(tmp_path: Path, monkeypatch) -> dict[str, demo.Step]:
    monkeypatch.setattr(demo, "DEMO", tmp_path)
    monkeypatch.setattr(demo, "ABTEST", tmp_path / "abtest")
    monkeypatch.setattr(demo, "AUDIT_LOG", tmp_path / "audit" / "lifecycle.jsonl")
    return {s.title: s for s in demo.steps()}


def _finished(log: Path, version: int | None) -> None:
    """The demo's lifecycle log as the pipeline step leaves it (only what the steps read)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    entry = {"event": "pipeline.run.finished", "details": {"registry_version": version}}
    log.write_text(json.dumps({"event": "pipeline.run.started"}) + "\n" + json.dumps(entry) + "\n")


def test_registry_steps_follow_the_run_its_approval_and_canary(tmp_path: Path, monkeypatch) -> None:
    """The registry steps name the version the pipeline step registered (from the demo's log),
    the approval comes before the canary that promotes it, and the champion is shown after."""
    steps = _registry_steps(tmp_path, monkeypatch)
    titles = list(steps)
    challenger, approve, better, champion = (
        next(t for t in titles if t.startswith(prefix))
        for prefix in (
            "registry: the run's version passed the gate",
            "registry: approve",
            "canary: better candidate",
            "registry: sovml model show, champion",
        )
    )
    pipeline = titles.index("training pipeline on kfp.local (ingest -> ... -> encrypt)")
    assert pipeline < titles.index(challenger) < titles.index(approve)
    assert titles.index(approve) < titles.index(better) < titles.index(champion)
    _finished(demo.AUDIT_LOG, 3)
    assert steps[challenger].command()[3:] == ["model", "show", "credit_risk", "3", "--json"]
    assert steps[approve].command()[3:7] == ["model", "approve", "credit_risk", "3"]
    assert steps[better].command()[-4:] == ["--model-version", "credit_risk:3", "--by", "demo"]
    _finished(demo.AUDIT_LOG, None)  # the gate refused: nothing registered, the steps fail
    assert steps[approve].command()[6] == "0"
    assert demo.registry_version(tmp_path / "missing.jsonl") == 0
    assert "model.approved" in demo.RUN_EVENTS


def _show(**body: object) -> subprocess.CompletedProcess[str]:
    return _proc(0, json.dumps({"model": "credit_risk", "version": 1, **body}))


def test_registry_expectations_read_the_json_answer(tmp_path: Path, monkeypatch) -> None:
    """Challenger needs the gate passed and tracked trials; champion needs the demo's approval
    and a promoting canary; a failed command or non-JSON answer never passes."""
    steps = _registry_steps(tmp_path, monkeypatch)
    first = next(s for t, s in steps.items() if t.startswith("registry: the run's version"))
    last = next(s for t, s in steps.items() if t.startswith("registry: sovml model show, champ"))
    gate = {"passed": True, "metrics": {"auc": 0.8123}}
    ok = demo.judge(first, _show(state="challenger", gate=gate, tuning_trials=4), 1.0)
    assert ok.ok and ok.figure == (
        "credit_risk v1 challenger; gate passed (AUC 0.812); 4 tuning trials tracked"
    )
    assert not demo.judge(first, _show(state="challenger", gate=gate, tuning_trials=0), 1.0).ok
    refused = {"passed": False}
    assert not demo.judge(first, _show(state="challenger", gate=refused, tuning_trials=4), 1).ok
    assert not demo.judge(first, _show(state="candidate", gate=gate, tuning_trials=4), 1.0).ok
    assert not demo.judge(first, _proc(0, "state: challenger"), 1.0).ok
    crowned = {"state": "champion", "gate": gate, "tuning_trials": 4}
    approval, canary = {"by": "demo"}, {"decision": "promoted", "run": "demo-better"}
    done = demo.judge(last, _show(**crowned, approval=approval, canary=canary), 1.0)
    assert done.ok and done.figure.endswith("approved by demo; canary promoted (demo-better)")
    assert not demo.judge(last, _show(**crowned, approval=None, canary=canary), 1.0).ok
    assert not demo.judge(last, _show(**crowned, approval={"by": "x"}, canary=canary), 1.0).ok
    held = {"decision": "held", "run": "demo-better"}
    assert not demo.judge(last, _show(**crowned, approval=approval, canary=held), 1.0).ok
    failed = subprocess.CompletedProcess([], 2, stdout=_show(**crowned).stdout, stderr="")
    assert not demo.judge(last, failed, 1.0).ok


def test_registry_steps_against_the_real_server(
    tmp_path: Path, monkeypatch, mlflow_server: str
) -> None:
    """The show and approve steps as the demo runs them (separate processes, the session's
    MLflow server as the demo's shared one): a registered challenger is shown, approved, and
    after a promotion shown as champion. Their wall time is the demo's added cost."""
    import time

    from pipelines.audit import log as audit
    from pipelines.registry import governance
    from pipelines.registry.mlflow_rest import MlflowRest
    from pipelines.registry.tracking import track_run

    steps = _registry_steps(tmp_path, monkeypatch)
    client = MlflowRest(mlflow_server)
    (tmp_path / "lineage.json").write_text("{}")
    (tmp_path / "model.pt").write_bytes(b"weights")
    tracked = track_run(
        client, experiment="demo-test", run_tag="demo-run", succeeded=True, arguments={},
        metrics={"auc": 0.8}, gate={"passed": True, "metrics": {"auc": 0.8}},
        lineage_record=tmp_path / "lineage.json", evaluation_report=None,
        served_model=tmp_path / "model.pt", data_sha256="",
        model_name="credit_risk", repository_version=1,
        trials=[{"number": 0, "state": "COMPLETE", "params": {"lr": 0.01}, "value": 0.8}],
    )  # fmt: skip
    # A real, hash-chained log: the approve step appends to it.
    details = {"outcome": "succeeded", "registry_version": tracked.model_version}
    audit.append("pipeline.run.finished", "training", details=details, log=demo.AUDIT_LOG)
    env = {
        **os.environ,
        "SOVML_TRACKING_URI": mlflow_server,
        "SOVML_AUDIT_LOG": str(demo.AUDIT_LOG),
    }
    started = time.perf_counter()
    outcomes = []
    for title in list(steps):
        if title.startswith("registry: sovml model show, champion"):
            # What the better canary's step does after its (real, long) canary promoted.
            outcome = governance.CanaryOutcome(
                "promoted",
                "all guards passed",
                "demo-better",
                {"sha256": "ab" * 32, "path": "x.json"},
                "cd" * 32,
            )
            governance.apply_canary(client, "credit_risk", tracked.model_version, "demo", outcome)
        if title.startswith("registry:"):
            outcomes.append(demo.run_step(steps[title], env)[1])
    seconds = time.perf_counter() - started
    assert [o.ok for o in outcomes] == [True, True, True], outcomes
    assert "1 tuning trials tracked" in outcomes[0].figure
    assert seconds < 30, seconds


def test_gate_figure_reads_only_the_stacks_check_all_judges(tmp_path: Path, monkeypatch) -> None:
    """Reports of other folders under build/ (fixtures, earlier runs) are not the step's: the
    figure names exactly the stacks in stacks/, and says when one has no report."""
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    for stack, ok in (("dev", True), ("insecure", False)):
        (tmp_path / "build" / stack).mkdir(parents=True)
        report = {"stack": stack, "ok": ok, "checkov": {"terraform_plan": {"passed": 7}}}
        (tmp_path / "build" / stack / "report.json").write_text(json.dumps(report))
    monkeypatch.setattr("infra.config.stackfile.list_stacks", lambda: ["dev", "prod-uae"])
    assert demo.gate_figure() == "dev: pass (7 checkov checks passed); prod-uae: no report"
