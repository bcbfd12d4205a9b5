"""``sovml evidence``: controls judged from the gate's results, the pack, the page in a browser.

Three layers: the mapping from check results to control statuses on fabricated results (pass,
fail, accepted by a suppression, not run, a tool that did not run); the command on the real
``dev`` and ``prod-uae`` records (the session's ``stack_records``, written where the command
finds them, so the fingerprint lets it reuse them) and on a prod-uae record with an injected
violation; and the HTML rendered by a real headless Chromium, asserted on its DOM.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli.app import app
from infra.evidence import catalogue as cat
from infra.evidence.evaluate import CONTROL_FAILED, GAP, SATISFIED, evaluate, evaluate_control
from infra.evidence.pack import pack_document
from infra.evidence.page import render_page
from infra.evidence.results import (
    ACCEPTED,
    FAILED,
    NOT_RUN,
    PASSED,
    CheckResult,
    Finding,
    GateResults,
)
from infra.gate import checkov as checkov_runner
from tests.system import require_binary

runner = CliRunner()
ENV = {"COLUMNS": "200"}
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def control(checks: tuple[str, ...], tests: tuple[str, ...] = ()) -> cat.Control:
    return cat.Control("T-1", "ISO27001", "title", "source", "", checks, tests, "note")


def ran(*results: CheckResult) -> GateResults:
    tools = {"rules": "ran", "schema": "ran", "checkov": "ran"}
    return GateResults({r.id: r for r in results}, tools)


def passed(check_id: str, kind: str = cat.RULE) -> CheckResult:
    return CheckResult(check_id, kind, PASSED, judged=3)


# --- the mapping ----------------------------------------------------------------------------


def test_all_checks_passed_is_satisfied() -> None:
    result = evaluate_control(control(("SOV-ENC-001", "CKV_AWS_58")), ran(
        passed("SOV-ENC-001"), passed("CKV_AWS_58", cat.CHECKOV)))  # fmt: skip
    assert (result.status, result.reason) == (SATISFIED, "2 check(s) ran and passed")


def test_a_failed_check_fails_the_control_naming_check_and_resources() -> None:
    bad = CheckResult("SOV-NET-001", cat.RULE, FAILED, judged=1,
                      failures=(Finding("urn:eks-cluster", "public endpoint"),))  # fmt: skip
    result = evaluate_control(control(("SOV-NET-001", "CKV_AWS_39")), ran(bad))
    # Failed outranks the gap of CKV_AWS_39, which did not run.
    assert result.status == CONTROL_FAILED
    assert result.reason == "failed: SOV-NET-001 on urn:eks-cluster"


def test_many_failing_resources_are_counted_not_all_named() -> None:
    failures = tuple(Finding(f"r{i}", "m") for i in range(5))
    bad = CheckResult("SOV-TAG-001", cat.RULE, FAILED, judged=5, failures=failures)
    result = evaluate_control(control(("SOV-TAG-001",)), ran(bad))
    assert result.reason == "failed: SOV-TAG-001 on r0, r1, r2 and 2 more"


def test_a_check_that_did_not_run_is_a_gap_with_its_reason() -> None:
    result = evaluate_control(control(("SOV-ENC-001", "CKV_AWS_36")), ran(passed("SOV-ENC-001")))
    assert result.status == GAP
    assert result.reason == (
        "CKV_AWS_36 did not run: no resource in the record is of a type CKV_AWS_36 judges"
    )


def test_a_rule_with_no_result_and_a_tool_that_did_not_run_are_gaps() -> None:
    tools = {"rules": "ran", "schema": "ran", "checkov": "skipped (--no-checkov)"}
    results = GateResults({}, tools)
    result = evaluate_control(control(("SOV-AUD-001", "CKV_AWS_35")), results)
    assert result.status == GAP
    assert result.reason == (
        "SOV-AUD-001 did not run: SOV-AUD-001 is not in this build's rule set; "
        "CKV_AWS_35 did not run: checkov did not run: skipped (--no-checkov)"
    )


def test_tests_alone_are_a_gap_naming_them() -> None:
    result = evaluate_control(control((), ("tests/test_layout.py::test_x",)), ran())
    assert result.status == GAP and "tests/test_layout.py::test_x" in result.reason


def test_accepted_failures_satisfy_and_are_listed_as_exceptions() -> None:
    ok = CheckResult("CKV_K8S_23", cat.CHECKOV, ACCEPTED, judged=9,
                     accepted=(Finding("DaemonSet.kube-system.x", "reviewed"),))  # fmt: skip
    result = evaluate_control(control(("CKV_K8S_23",)), ran(ok))
    assert result.status == SATISFIED
    assert result.reason == "1 check(s) ran and passed; reviewed exceptions on CKV_K8S_23"


def test_a_not_run_result_from_the_gate_itself_is_a_gap() -> None:
    idle = CheckResult("SOV-ENC-007", cat.RULE, NOT_RUN, reason="no resource of its types")
    result = evaluate_control(control(("SOV-ENC-007",)), ran(idle))
    assert result.status == GAP
    assert result.reason == "SOV-ENC-007 did not run: no resource of its types"


# --- the command on real records ------------------------------------------------------------


def _seed(build: Path, record: dict[str, Any]) -> None:
    """Put ``record`` where the command looks: its fingerprint lets the command reuse it."""
    path = build / record["stack"] / "resources.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def _run(build: Path, stack: str, *args: str) -> Any:
    return runner.invoke(app, ["evidence", stack, "--build-dir", str(build), *args], env=ENV)


needs_checkov = pytest.mark.skipif(
    not checkov_runner.CHECKOV.is_file(), reason="checkov is not installed: run `make setup`"
)


@pytest.fixture(scope="module")
def prod_pack(
    tmp_path_factory: pytest.TempPathFactory, stack_records: dict[str, dict[str, Any]]
) -> tuple[Any, Path]:
    """``sovml evidence prod-uae`` once, with checkov: (the CLI result, the output folder)."""
    if not checkov_runner.CHECKOV.is_file():
        pytest.skip("checkov is not installed: run `make setup`")
    build = tmp_path_factory.mktemp("evidence")
    _seed(build, stack_records["prod-uae"])
    return _run(build, "prod-uae"), build / "prod-uae" / "evidence"


@pytest.mark.slow
@needs_checkov
def test_prod_uae_pack_is_written_and_passes(
    prod_pack: tuple[Any, Path], stack_records: dict[str, dict[str, Any]]
) -> None:
    result, out = prod_pack
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "evidence.json").read_text())
    record = stack_records["prod-uae"]
    assert doc["schema"] == "sovml-evidence/1" and doc["stack"] == "prod-uae"
    assert doc["record"]["fingerprint"] == record["fingerprint"]["digest"]
    assert "reused" in doc["record"]["obtained"]
    assert doc["config"]["zone"] == "uae" and doc["config"]["region"] == "me-central-1"
    assert doc["config"]["environment"] == "prod"
    assert doc["tools"]["checkov"] and doc["tools"]["pulumi-aws"]
    ran_all = {"rules": "ran", "schema": "ran", "checkov": "ran"}
    assert doc["gate"] == {"tools": ran_all, "errors": []}
    assert doc["failed"] == []
    statuses = {c["id"]: c["status"] for c in doc["controls"]}
    assert statuses["PDPL-22"] == statuses["PDPL-23"] == statuses["ISO27001-A.8.24"] == SATISFIED
    assert all(statuses[c] == SATISFIED for c in statuses if c.startswith("CIS-EKS-"))
    # Logging and monitoring rest on the audit-trail rules and checkov's CloudTrail checks.
    assert statuses["ISO27001-A.8.15"] == statuses["ISO27001-A.8.16"] == SATISFIED
    # Secure development is proven by tests in CI, not by the record: always a gap here.
    gaps = {g["control"] for g in doc["gaps"]}
    assert gaps == {"ISO27001-A.8.25", "ISO27001-A.8.29"}
    total = doc["summary"]["all"]
    assert total["controls"] == len(doc["controls"]) == total["satisfied"] + total["gap"]
    # The device plugin's reviewed root exception is shown, with its justification.
    sec = next(c for c in doc["controls"] if c["id"] == "CIS-EKS-4.5.2")
    root = next(x for x in sec["checks"] if x["id"] == "CKV_K8S_23")
    assert root["status"] == ACCEPTED and "device plugin" in root["accepted"][0]["text"]
    assert f"record {doc['record']['fingerprint']}" in result.output


@pytest.mark.slow
@needs_checkov
def test_dev_pack_lists_its_reviewed_public_endpoint(
    tmp_path: Path, stack_records: dict[str, dict[str, Any]]
) -> None:
    _seed(tmp_path, stack_records["dev"])
    result = _run(tmp_path, "dev", "--format", "json", "--out", str(tmp_path / "pack"))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "pack" / "evidence.html").exists()
    doc = json.loads((tmp_path / "pack" / "evidence.json").read_text())
    assert doc["config"]["environment"] == "dev" and doc["failed"] == []
    ctl = next(c for c in doc["controls"] if c["id"] == "CIS-EKS-5.4.2")
    endpoint = next(x for x in ctl["checks"] if x["id"] == "CKV_AWS_39")
    assert ctl["status"] == SATISFIED and endpoint["status"] == ACCEPTED


def _make_endpoint_public(record: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(record)
    cluster = next(r for r in bad["resources"] if r["type"] == "aws:eks/cluster:Cluster")
    cluster["inputs"]["vpcConfig"]["endpointPublicAccess"] = True
    cluster["inputs"]["vpcConfig"]["publicAccessCidrs"] = ["0.0.0.0/0"]
    return bad


def test_an_injected_violation_fails_its_controls_with_exit_1(
    tmp_path: Path, stack_records: dict[str, dict[str, Any]]
) -> None:
    _seed(tmp_path, _make_endpoint_public(stack_records["prod-uae"]))
    result = _run(tmp_path, "prod-uae", "--no-checkov", "--format", "json")
    assert result.exit_code == 1, result.output
    assert "error: CIS-EKS-5.4.2 failed: failed: SOV-NET-001 on urn:" in result.output
    doc = json.loads((tmp_path / "prod-uae" / "evidence" / "evidence.json").read_text())
    failed = {f["control"] for f in doc["failed"]}
    assert {"CIS-EKS-5.4.1", "CIS-EKS-5.4.2", "ISO27001-A.8.20"} <= failed
    assert doc["gate"]["tools"]["checkov"] == "skipped (--no-checkov)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "error: nosuch: "),
        (["../etc"], "error: stack name ../etc: "),
        (["prod-uae", "--out", "{file}/x"], "is not a folder"),
        (["prod-uae", "--format", "pdf"], "Invalid value"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "file").write_text("x")
    args = [a.replace("{file}", str(tmp_path / "file")) for a in args]
    result = runner.invoke(app, ["evidence", *args, "--build-dir", str(tmp_path)], env=ENV)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_checkov_missing_writes_the_pack_with_gaps_and_exits_3(
    tmp_path: Path, stack_records: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = functools.partial(checkov_runner.run_checkov, checkov=tmp_path / "no-checkov")
    monkeypatch.setattr(checkov_runner, "run_checkov", missing)
    _seed(tmp_path, stack_records["prod-uae"])
    result = _run(tmp_path, "prod-uae", "--format", "json")
    assert result.exit_code == 3, result.output
    assert "not found: run `make setup`" in result.output and "gaps in the pack" in result.output
    doc = json.loads((tmp_path / "prod-uae" / "evidence" / "evidence.json").read_text())
    assert doc["gate"]["errors"] and "CIS-EKS-4.2.1" in {g["control"] for g in doc["gaps"]}


def test_an_invalid_catalogue_is_an_internal_error(
    tmp_path: Path, stack_records: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "catalogue.toml"
    broken.write_text("[frameworks]\n")
    monkeypatch.setattr(cat.load_catalogue, "__defaults__", (broken,))
    _seed(tmp_path, stack_records["prod-uae"])
    result = _run(tmp_path, "prod-uae", "--no-checkov")
    assert result.exit_code == 3, result.output
    assert "error: control catalogue: " in result.output and "no [frameworks" in result.output


# --- the page in a real browser -------------------------------------------------------------


class _Dom(HTMLParser):
    """Text of the elements tests look for, from the DOM Chromium dumped."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.counts: dict[tuple[str, str], str] = {}
        self.failed_items: list[str] = []
        self._open: list[tuple[str, dict[str, str | None]]] = []
        self._framework = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-framework"):
            self._framework = str(a["data-framework"])
        self._open.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for tag, a in self._open:
            if a.get("id") in ("stack", "fingerprint", "zone", "region"):
                self.ids[str(a["id"])] = self.ids.get(str(a["id"]), "") + data
            if tag == "td" or tag == "th":
                count = a.get("data-count")
                if count and self._open[-1] == (tag, a):
                    self.counts[(self._framework, str(count))] = data.strip()
            if tag == "ul" and a.get("id") == "failed" and data.strip():
                self.failed_items.append(data.strip())


def rendered_dom(page: Path, tmp_path: Path) -> _Dom:
    """``page`` loaded by headless Chromium; its DOM after rendering, parsed."""
    chromium = require_binary("chromium")
    dump = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "<html" in dump.stdout, dump.stderr[-2000:]
    dom = _Dom()
    dom.feed(dump.stdout)
    return dom


@pytest.mark.slow
@needs_checkov
def test_the_prod_uae_page_renders_its_identity_and_counts(
    prod_pack: tuple[Any, Path], tmp_path: Path
) -> None:
    _, out = prod_pack
    doc = json.loads((out / "evidence.json").read_text())
    dom = rendered_dom(out / "evidence.html", tmp_path)
    assert dom.ids["stack"] == "prod-uae"
    assert dom.ids["fingerprint"] == doc["record"]["fingerprint"]
    assert (dom.ids["zone"], dom.ids["region"]) == ("uae", "me-central-1")
    for f in [*doc["frameworks"], {"id": "all", **doc["summary"]["all"]}]:
        for key in ("controls", "satisfied", "failed", "gap"):
            assert dom.counts[(f["id"], key)] == str(f[key]), (f["id"], key)
    assert dom.failed_items == []


def test_an_injected_failure_is_named_on_the_rendered_page(
    tmp_path: Path, stack_records: dict[str, dict[str, Any]]
) -> None:
    record = stack_records["prod-uae"]
    catalogue = cat.load_catalogue()
    results = ran(*(passed(i, cat.check_kind(i)) for i in catalogue.check_ids()))
    results.checks["SOV-ENC-004"] = CheckResult(
        "SOV-ENC-004", cat.RULE, FAILED, judged=1,
        failures=(Finding("urn:pulumi:prod-uae::x::aws:eks/cluster:Cluster::c", "no <key>"),),
    )  # fmt: skip
    controls = evaluate(catalogue, results)
    doc = pack_document(catalogue, controls, results, record, obtained="test",
                        generated=NOW, checkov=False)  # fmt: skip
    page = tmp_path / "evidence.html"
    page.write_text(render_page(doc))
    dom = rendered_dom(page, tmp_path)
    assert "CIS-EKS-5.3.1" in dom.failed_items and "ISO27001-A.8.24" in dom.failed_items
    assert dom.counts[("CIS-EKS", "failed")] == "1"
    assert dom.counts[("all", "failed")] == str(len(doc["failed"])) == "3"
    assert dom.ids["fingerprint"] == record["fingerprint"]["digest"]


def test_the_page_is_self_contained_and_escapes_values(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    catalogue = cat.load_catalogue()
    results = ran(CheckResult("SOV-ENC-001", cat.RULE, FAILED, judged=1,
                              failures=(Finding("<script>alert(1)</script>", "x"),)))  # fmt: skip
    record = stack_records["prod-uae"]
    controls = evaluate(catalogue, results)
    doc = pack_document(
        catalogue, controls, results, record, obtained="t", generated=NOW, checkov=False
    )
    page = render_page(doc)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "src=" not in page and "<link" not in page and "@import" not in page
