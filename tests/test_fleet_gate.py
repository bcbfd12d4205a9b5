"""The fleet gate against the per-stack loop: same verdicts, no state carried between stacks,
unchanged stacks skipped only while nothing the verdict depends on changed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from infra.config.stackfile import ROOT, STACKS, load_stack
from infra.gate import checkov as checkov_runner
from infra.gate import fleet, run
from infra.gate.findings import Finding, load_suppressions
from infra.synth.runner import SynthError, synthesize
from infra.tenants.create import TenantRequest, create_tenant

FIXTURES = ROOT / "tests" / "fixtures" / "stacks"


def _tenant(stacks: Path, name: str) -> None:
    create_tenant(
        TenantRequest(
            name=name,
            emails=("ops@example.com",),
            alert_webhook="https://hooks.example.com/p",
            oidc_issuer="https://login.example.ae/realms/ml",
            oidc_jwks_uri="https://login.example.ae/realms/ml/certs",
            account_id="111122223333",
        ),
        stacks,
    )


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev, staging and two SMB tenants, plus a stack whose config is invalid."""
    out = tmp_path_factory.mktemp("fleet-stacks")
    for name in ("dev", "staging"):
        shutil.copy(STACKS / f"Pulumi.{name}.yaml", out / f"Pulumi.{name}.yaml")
    shutil.copy(FIXTURES / "Pulumi.bad-residency.yaml", out / "Pulumi.bad-residency.yaml")
    for name in ("acme", "globex"):
        _tenant(out, name)
    return out


def _key(f: Finding) -> tuple[str, ...]:
    return (f.source, f.id, f.resource, f.status, f.file, f.message, f.justification)


# --- no state from one stack reaches the next -------------------------------------------------


def test_a_b_a_in_one_process_gives_a_byte_identical_record(stacks: Path, tmp_path: Path) -> None:
    first = synthesize("dev", stacks_dir=stacks, build_dir=tmp_path / "1").path.read_bytes()
    synthesize("acme", stacks_dir=stacks, build_dir=tmp_path / "2")
    with pytest.raises(SynthError):
        synthesize("bad-residency", stacks_dir=stacks, build_dir=tmp_path / "2")
    again = synthesize("dev", stacks_dir=stacks, build_dir=tmp_path / "3").path.read_bytes()
    assert again == first


def test_a_bad_stack_in_the_fleet_leaves_the_others_judged(stacks: Path, tmp_path: Path) -> None:
    result = fleet.run_fleet(
        ["bad-residency", "staging"], stacks_dir=stacks, build_dir=tmp_path, checkov=False,
        suppressions=load_suppressions(), jobs=1,
    )  # fmt: skip
    bad, staging = result.outcomes
    assert bad.status == fleet.ERROR and bad.problems and bad.report is None
    assert "Pulumi.bad-residency.yaml" in bad.reason
    alone = run.run_gate("staging", stacks_dir=stacks, build_dir=tmp_path / "alone",
                         checkov=False)  # fmt: skip
    assert staging.status == fleet.CHECKED and staging.report is not None
    assert sorted(map(_key, staging.report.findings)) == sorted(map(_key, alone.findings))
    assert not (tmp_path / "bad-residency" / "report.json").exists()


# --- faithful: the same findings as the per-stack loop ----------------------------------------


@pytest.mark.skipif(not checkov_runner.CHECKOV.is_file(), reason="needs .venv-checkov")
def test_the_fleet_finds_what_the_per_stack_loop_finds(
    stacks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two tenants through the same checkov workers: each must get its own findings. Tenants, the
    # smallest stacks, keep checkov's share of the suite small (dev added a minute and no path).
    names = ["acme", "globex"]
    sup = load_suppressions()
    result = fleet.run_fleet(
        names, stacks_dir=stacks, build_dir=tmp_path / "fleet", suppressions=sup, jobs=2
    )
    assert [o.status for o in result.outcomes] == [fleet.CHECKED] * 2
    for outcome in result.outcomes:  # both through the per-stack loop (today's path) as well
        name, got = outcome.stack, outcome.report
        assert got is not None
        want = run.run_gate(name, stacks_dir=stacks, build_dir=tmp_path / "loop", suppressions=sup)
        assert want.checkov and got.checkov == want.checkov, name
        assert sorted(map(_key, got.findings)) == sorted(map(_key, want.findings)), name
        assert got.errors == want.errors == []
        assert set(got.suppressions_used) == set(want.suppressions_used)
        assert (got.resources, got.schema_validated) == (want.resources, want.schema_validated)
        fleet_doc = json.loads((tmp_path / "fleet" / name / "report.json").read_text())
        loop_doc = json.loads((tmp_path / "loop" / name / "report.json").read_text())
        assert set(fleet_doc) == set(loop_doc)
    # Files read as in the per-stack run: relative to the stack's own folder, never the tree's.
    acme = result.outcomes[0].report
    assert acme is not None and any(f.file for f in acme.findings)
    assert all(f.file in ("", "tfplan.json") or f.file.startswith("k8s/") for f in acme.findings)


_DENY_ALL = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: apps}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""
_POD = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: apps}
spec:
  containers:
    - name: web
      image: nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000
"""


def _ckv2_k8s_6(report: Any) -> list[str]:
    return sorted(f.result for f in report.findings if f.check_id == "CKV2_K8S_6")


@pytest.mark.skipif(not checkov_runner.CHECKOV.is_file(), reason="needs .venv-checkov")
def test_one_stacks_objects_never_satisfy_anothers_graph_checks(tmp_path: Path) -> None:
    """A Pod with no NetworkPolicy fails CKV2_K8S_6 in the fleet as alone, whatever the other
    stacks hold: scanned in one checkov run, the other stack's deny-all policy passed it."""
    from infra.gate import fleet_checkov

    for stack, files in (("guarded", {"np.yaml": _DENY_ALL, "pod.yaml": _POD}),
                         ("bare", {"pod.yaml": _POD})):  # fmt: skip
        (tmp_path / stack / "k8s").mkdir(parents=True)
        for name, text in files.items():
            (tmp_path / stack / "k8s" / name).write_text(text)
    alone = checkov_runner.run_checkov(tmp_path / "bare", frameworks=("kubernetes",))
    scans = fleet_checkov.scan_fleet(tmp_path, ["guarded", "bare"])
    assert _ckv2_k8s_6(alone) == ["failed"]
    assert _ckv2_k8s_6(scans["bare"]) == ["failed"]
    assert _ckv2_k8s_6(scans["guarded"]) == ["passed"]
    bare = scans["bare"]
    assert not isinstance(bare, str)
    assert sorted(bare.findings, key=repr) == sorted(alone.findings, key=repr)


@pytest.mark.skipif(not checkov_runner.CHECKOV.is_file(), reason="needs .venv-checkov")
def test_a_lost_checkov_worker_is_an_error_for_its_stack_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.gate import fleet_checkov

    for stack in ("one", "two"):
        (tmp_path / stack / "k8s").mkdir(parents=True)
        (tmp_path / stack / "k8s" / "pod.yaml").write_text(_POD)
    # A scan that never answers: the timeout ends the worker, the next scan gets a new one.
    real = fleet_checkov._Worker.ask
    calls: list[int] = []

    def ask(self: Any, argv: list[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
        calls.append(1)
        if len(calls) == 1:
            return real(self, ["--definitely-not-an-option"], cwd, timeout)
        return real(self, argv, cwd, timeout)

    monkeypatch.setattr(fleet_checkov._Worker, "ask", ask)
    scans = fleet_checkov.scan_fleet(tmp_path, ["one", "two"], parallel=1)
    errors = [s for s in scans.values() if isinstance(s, str)]
    assert len(errors) == 1 and "checkov kubernetes" in errors[0]
    assert sum(not isinstance(s, str) for s in scans.values()) == 1


@pytest.mark.skipif(not checkov_runner.CHECKOV.is_file(), reason="needs .venv-checkov")
def test_workers_are_replaced_after_their_scans_without_a_false_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker stops after SCANS_PER_WORKER scans; the next scan goes to a new one. Left to exit
    on its own, a worker was sent the next request while exiting: 4 of 503 stacks got an error."""
    from infra.gate import fleet_checkov

    monkeypatch.setattr(fleet_checkov, "SCANS_PER_WORKER", 1)
    names = ["one", "two", "three"]
    for stack in names:
        (tmp_path / stack / "k8s").mkdir(parents=True)
        (tmp_path / stack / "k8s" / "pod.yaml").write_text(_POD)
    scans = fleet_checkov.scan_fleet(tmp_path, names, parallel=1)
    assert [isinstance(s, str) for s in scans.values()] == [False] * 3, scans


@pytest.mark.skipif(not checkov_runner.CHECKOV.is_file(), reason="needs .venv-checkov")
def test_a_worker_answering_garbage_or_a_scan_never_run_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No stack passes checkov without checkov's report: garbage from the worker, or a scan its
    thread never took, is an error for that stack, never an empty (passing) scan."""
    from infra.gate import fleet_checkov

    build = tmp_path / "build"
    for stack in ("one", "two"):
        (build / stack / "k8s").mkdir(parents=True)
        (build / stack / "k8s" / "pod.yaml").write_text(_POD)
    liar = tmp_path / "liar.py"
    liar.write_text("import sys\nfor _ in sys.stdin:\n    print('{\"rc\": 0', flush=True)\n")
    monkeypatch.setattr(fleet_checkov, "WORKER", liar)
    scans = fleet_checkov.scan_fleet(build, ["one", "two"])
    assert all(isinstance(s, str) and "answered something else" in s for s in scans.values())
    monkeypatch.undo()
    monkeypatch.setattr(fleet_checkov, "_serve", lambda *args: None)  # threads that take nothing
    scans = fleet_checkov.scan_fleet(build, ["one", "two"])
    assert all(isinstance(s, str) and "never ran" in s for s in scans.values())


@pytest.mark.skipif(not checkov_runner.CHECKOV.is_file(), reason="needs .venv-checkov")
def test_each_stack_is_told_once_with_its_result_and_a_failing_listener_fails_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``on_done`` hears every stack once: scanned ones as their last scan ends, one with nothing
    to scan and one whose scan failed, each with what scan_fleet returns for it."""
    import threading

    from infra.gate import fleet_checkov

    for stack in ("one", "two", "lost"):
        (tmp_path / stack / "k8s").mkdir(parents=True)
        (tmp_path / stack / "k8s" / "pod.yaml").write_text(_POD)
        (tmp_path / stack / "tfplan.json").write_text('{"format_version": "1.2"}')
    (tmp_path / "empty").mkdir()
    real = fleet_checkov._Worker.ask

    def ask(self: Any, argv: list[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
        if cwd.name == "lost":
            raise RuntimeError("an unexpected failure")  # that scan is the stack's error
        return real(self, argv, cwd, timeout)

    monkeypatch.setattr(fleet_checkov._Worker, "ask", ask)
    told: list[tuple[str, Any, str]] = []
    lock = threading.Lock()

    def on_done(stack: str, result: Any) -> None:
        with lock:
            told.append((stack, result, threading.current_thread().name))

    names = ["one", "two", "lost", "empty"]
    scans = fleet_checkov.scan_fleet(tmp_path, names, parallel=1, on_done=on_done)
    assert sorted(t[0] for t in told) == sorted(names)
    for stack, result, _ in told:
        assert result is scans[stack] or result == scans[stack], stack
    assert isinstance(scans["lost"], str)
    assert not isinstance(scans["one"], str) and not isinstance(scans["empty"], str)
    # Scanned stacks are told from the scanning thread, while the scans go on.
    assert {t[2] for t in told if t[0] in ("one", "two")} != {threading.current_thread().name}

    def broken(stack: str, result: Any) -> None:
        raise ValueError(f"listener failed on {stack}")

    with pytest.raises(ValueError, match="listener failed on"):
        fleet_checkov.scan_fleet(tmp_path, ["one"], parallel=1, on_done=broken)
    # Without checkov every stack is still told, with the error that kept it from judging.
    told.clear()
    missing = tmp_path / "nowhere" / "checkov"
    scans = fleet_checkov.scan_fleet(tmp_path, names, checkov=missing, on_done=on_done)
    assert sorted((t[0], t[1]) for t in told) == sorted(scans.items())
    assert all(isinstance(v, str) and "not found" in v for v in scans.values())


# --- skipping ---------------------------------------------------------------------------------


def _fleet(stacks: Path, build: Path, names: list[str], **kw: Any) -> dict[str, str]:
    result = fleet.run_fleet(
        names, stacks_dir=stacks, build_dir=build, checkov=False,
        suppressions=load_suppressions(), jobs=1, **kw,
    )  # fmt: skip
    return {o.stack: o.status for o in result.outcomes}


@pytest.fixture(scope="module")
def checked(stacks: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Own copies of the stacks and a build folder where dev and staging were checked once."""
    own = tmp_path_factory.mktemp("skip-stacks")
    for name in ("dev", "staging"):
        shutil.copy(stacks / f"Pulumi.{name}.yaml", own / f"Pulumi.{name}.yaml")
    build = tmp_path_factory.mktemp("skip-build")
    assert _fleet(own, build, ["dev", "staging"]) == {"dev": "checked", "staging": "checked"}
    return own, build


def test_unchanged_stacks_are_skipped(checked: tuple[Path, Path]) -> None:
    own, build = checked
    assert _fleet(own, build, ["dev", "staging"]) == {"dev": "skipped", "staging": "skipped"}
    assert _fleet(own, build, ["dev"], force=True) == {"dev": "checked"}


def test_a_changed_stack_file_checks_that_stack_only(checked: tuple[Path, Path]) -> None:
    own, build = checked
    path = own / "Pulumi.staging.yaml"
    path.write_text(path.read_text() + "\n# a comment changes the bytes, so the fingerprint\n")
    assert _fleet(own, build, ["dev", "staging"]) == {"dev": "skipped", "staging": "checked"}


def test_changed_gate_inputs_check_again(
    checked: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    own, build = checked
    real = fleet.gate_inputs
    monkeypatch.setattr(fleet, "gate_inputs", lambda checkov: real(checkov) + "-other-checkov")
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}
    monkeypatch.undo()
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}  # back: judged again, then it holds
    assert _fleet(own, build, ["dev"]) == {"dev": "skipped"}


def test_the_skip_reads_the_judged_fingerprint_from_gate_json_and_trusts_no_edit_of_it(
    checked: tuple[Path, Path],
) -> None:
    own, build = checked
    assert _fleet(own, build, ["dev"]) in ({"dev": "skipped"}, {"dev": "checked"})
    gate_path = build / "dev" / fleet.GATE_FILE
    gate = json.loads(gate_path.read_text())
    record = json.loads((build / "dev" / "resources.json").read_text())
    assert gate["record"] == record["fingerprint"]
    # A record that is no longer read for the decision: the copy decides (skipped as before).
    assert _fleet(own, build, ["dev"]) == {"dev": "skipped"}
    # A file taken off the copy's list, digest kept: the recomputed digest differs.
    files = dict(gate["record"]["files"])
    files.pop(next(iter(files)))
    gate_path.write_text(json.dumps({**gate, "record": {**gate["record"], "files": files}}))
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}
    # A copy with another digest than the gate fingerprint was made from: the record decides.
    gate = json.loads(gate_path.read_text())
    forged = {**gate["record"], "digest": "0" * 64}
    gate_path.write_text(json.dumps({**gate, "record": forged}))
    gate = fleet._read_gate(build / "dev")
    assert gate is not None
    assert (
        fleet._judged_fingerprint(gate, build / "dev" / "resources.json", fleet.gate_inputs(False))
        is None
    )
    assert _fleet(own, build, ["dev"]) == {"dev": "skipped"}  # the record's own copy holds
    # No record on disk: judged again, and the record written again.
    (build / "dev" / "resources.json").unlink()
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}
    assert (build / "dev" / "resources.json").is_file()


def _bench() -> Any:
    """benchmarks/fleet.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "benchmarks" / "fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fleet_benchmark_extrapolates_the_loop_by_kind_of_stack() -> None:
    bench = _bench()
    times = {"dev": 9.0, "prod-uae": 12.0, "tenant-0000": 4.0, "tenant-0001": 6.0}
    names = ["dev", "prod-uae", *(f"tenant-{i:04d}" for i in range(10))]
    assert bench.extrapolate(times, names) == (9.0 + 12.0 + 10 * 5.0, 5.0)
    # Without a sampled tenant, every unsampled stack counts the mean of what was sampled.
    assert bench.extrapolate({"dev": 9.0, "prod-uae": 12.0}, names) == (21.0 + 10 * 10.5, 10.5)


def test_the_fleet_benchmark_makes_valid_tenants_and_a_change_the_gate_sees(
    checked: tuple[Path, Path], tmp_path: Path
) -> None:
    """What `make bench` times must be what it says: its tenants pass config validation (they
    once lacked the issuer prod tenants need, and the benchmark stopped), and its simulated
    edit of a shared component makes the gate check the stack again."""
    bench = _bench()
    names = bench.generate(tmp_path / "generated", 2)
    assert {"tenant-0000", "tenant-0001"} <= set(names)
    for name in names:
        load_stack(name, tmp_path / "generated")
    own, build = checked
    assert _fleet(own, build, ["dev"]) in ({"dev": "skipped"}, {"dev": "checked"})
    assert _fleet(own, build, ["dev"]) == {"dev": "skipped"}
    assert bench.change_shared_input(build, ["dev"]) == 1
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}


def test_an_edited_report_or_one_without_its_tools_is_never_trusted(
    checked: tuple[Path, Path],
) -> None:
    own, build = checked
    assert _fleet(own, build, ["dev"]) in ({"dev": "skipped"}, {"dev": "checked"})
    report = build / "dev" / "report.json"
    doc = json.loads(report.read_text())
    report.write_text(json.dumps({**doc, "seconds": 0.0}))
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}
    # A report where a tool did not run, with gate.json forged to match it: judged again.
    doc = json.loads(report.read_text())
    _forge(build / "dev", {**doc, "errors": ["checkov timed out"]})
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}
    (build / "dev" / fleet.GATE_FILE).unlink()
    assert _fleet(own, build, ["dev"]) == {"dev": "checked"}


def _forge(out: Path, doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=2) + "\n"
    (out / "report.json").write_text(text)
    gate = json.loads((out / fleet.GATE_FILE).read_text())
    gate["report"] = hashlib.sha256(text.encode()).hexdigest()
    (out / fleet.GATE_FILE).write_text(json.dumps(gate))


def test_a_failed_verdict_stands_and_still_fails(checked: tuple[Path, Path]) -> None:
    own, build = checked
    _fleet(own, build, ["staging"])
    doc = json.loads((build / "staging" / "report.json").read_text())
    finding = {"source": "rule", "id": "SOV-RES-001", "resource": "urn:x", "message": "m",
               "status": "failed", "justification": "", "file": ""}  # fmt: skip
    _forge(build / "staging", {**doc, "ok": False, "findings": [finding]})
    result = fleet.run_fleet(
        ["staging"], stacks_dir=own, build_dir=build, checkov=False,
        suppressions=load_suppressions(), jobs=1,
    )  # fmt: skip
    (outcome,) = result.outcomes
    assert outcome.status == fleet.SKIPPED and "(FAILED) stands" in outcome.reason
    assert outcome.report is not None and not outcome.report.ok
    assert [f.id for f in outcome.report.failures] == ["SOV-RES-001"]
    assert not fleet.stack_doc(outcome)["ok"]


def test_the_gate_inputs_follow_suppressions_and_checkov(tmp_path: Path) -> None:
    sup = tmp_path / "s.yaml"
    sup.write_text("suppressions: []\n")
    a = fleet.gate_inputs(True, sup)
    sup.write_text("suppressions: [] # reviewed\n")
    assert fleet.gate_inputs(True, sup) != a
    assert fleet.gate_inputs(False, sup) != fleet.gate_inputs(True, sup)
