"""The fleet gate's cheap parts: shard assignment, merging shard reports, the pre-commit mapping,
the CI workflow and hook definitions (they must call commands that exist)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import typer
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra.cli.app import app
from infra.cli.gate import stacks_for_files
from infra.config.stackfile import ROOT
from infra.gate import fleet_reports as fr

runner = CliRunner()
ENV = {"COLUMNS": "200"}
NAMES = st.from_regex(r"[a-z][a-z0-9-]{2,20}", fullmatch=True)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env=ENV)


def error_lines(result: Any) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


# --- shards -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/2", "--shard 0/2: K must be 1 to 2"),
        ("3/2", "--shard 3/2: K must be 1 to 2"),
        ("1/0", "--shard 1/0: N must be 1 to 1000"),
        ("0/0", "--shard 0/0: N must be 1 to 1000"),
        ("1/1001", "--shard 1/1001: N must be 1 to 1000"),
        ("1/x", "--shard '1/x': expected K/N, e.g. 1/4"),
        ("-1/2", "--shard '-1/2': expected K/N, e.g. 1/4"),
        ("1/2/3", "--shard '1/2/3': expected K/N, e.g. 1/4"),
        ("", "--shard '': expected K/N, e.g. 1/4"),
        (
            "\uff11/\uff12",
            "--shard '\uff11/\uff12': expected K/N, e.g. 1/4",
        ),  # full-width digits are not digits here
        ("1.0/2", "--shard '1.0/2': expected K/N, e.g. 1/4"),
    ],
)
def test_bad_shards_are_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(fr.FleetReportError) as info:
        fr.parse_shard(text)
    assert str(info.value) == message
    result = invoke("check", "--all", "--shard", text, "--no-checkov")
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [f"error: {message}"]
    assert "Traceback" not in result.output


def test_a_shard_needs_all_stacks() -> None:
    result = invoke("check", "dev", "--shard", "1/2", "--no-checkov")
    assert result.exit_code == 2
    assert error_lines(result) == ["error: --shard needs --all (a shard is a part of every stack)"]


def test_good_shards_parse() -> None:
    assert fr.parse_shard("1/1") == (1, 1)
    assert fr.parse_shard("4/4") == (4, 4)
    assert fr.parse_shard(" 2/3 ") == (2, 3)


@settings(max_examples=50, deadline=None)
@given(st.lists(NAMES, unique=True, max_size=60), st.integers(1, 9), NAMES)
def test_shards_partition_the_fleet_stably(stacks: list[str], n: int, newcomer: str) -> None:
    assume(newcomer not in stacks)  # stack names are file names: a newcomer is a new name
    parts = [fr.select_shard(stacks, k, n) for k in range(1, n + 1)]
    assert sorted(s for p in parts for s in p) == sorted(stacks)  # every stack, exactly once
    assert parts == [fr.select_shard(list(stacks), k, n) for k in range(1, n + 1)]
    # A new tenant never moves an existing stack to another shard.
    grown = [fr.select_shard([*stacks, newcomer], k, n) for k in range(1, n + 1)]
    for before, after in zip(parts, grown, strict=True):
        assert [s for s in after if s in stacks] == before


# --- merging ----------------------------------------------------------------------------------


def _entry(stack: str, ok: bool = True) -> dict[str, Any]:
    finding = {"source": "rule", "id": "SOV-RES-001", "resource": f"urn:{stack}:bucket",
               "message": "outside the zone", "status": "failed", "justification": "",
               "file": ""}  # fmt: skip
    report = {"stack": stack, "ok": ok, "seconds": 1.0, "findings": [] if ok else [finding],
              "errors": []}  # fmt: skip
    return {"stack": stack, "status": "checked", "ok": ok, "reason": "", "report": report}


def _shards(tmp: Path, stacks: list[str], n: int, inputs: str = "g") -> list[Path]:
    dirs = []
    for k in range(1, n + 1):
        mine = [_entry(s, ok=not s.startswith("bad")) for s in fr.select_shard(stacks, k, n)]
        doc = fr.fleet_doc(mine, gate_inputs=inputs, shard=(k, n), seconds={"total": 1.0})
        dirs.append(tmp / f"shard-{k}")
        fr.write_fleet(doc, dirs[-1])
    return dirs


STACKS = ["dev", "staging", "prod-uae", *(f"t{i:03d}" for i in range(20))]


def test_shard_reports_merge_into_one_fleet_report(tmp_path: Path) -> None:
    dirs = _shards(tmp_path, STACKS, 3)
    out = tmp_path / "merged"
    result = invoke("gate", "merge", *map(str, dirs), "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "report.json").read_text())
    assert [e["stack"] for e in doc["stacks"]] == sorted(STACKS)
    assert doc["shards"] == [1, 2, 3] and doc["shard"] is None and doc["ok"] is True
    sarif = json.loads((out / "report.sarif").read_text())
    assert len(sarif["runs"]) == 1 and sarif["version"] == "2.1.0"
    suites = ET.parse(out / "report.junit.xml").getroot()
    assert suites.tag == "testsuites" and len(suites) == len(STACKS)


def test_a_failing_stack_makes_the_merge_exit_1_with_its_finding_in_sarif(tmp_path: Path) -> None:
    dirs = _shards(tmp_path, [*STACKS, "bad-one"], 2)
    out = tmp_path / "merged"
    result = invoke("gate", "merge", *map(str, dirs), "--out", str(out))
    assert result.exit_code == 1, result.output
    results = json.loads((out / "report.sarif").read_text())["runs"][0]["results"]
    assert [r["message"]["text"] for r in results] == [
        "bad-one: urn:bad-one:bucket: outside the zone"
    ]
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "build/bad-one/resources.json"
    )


def _merge_error(*paths: Path) -> str:
    result = invoke("gate", "merge", *map(str, paths), "--out", str(paths[0].parent / "m"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.output
    return lines[0]


def test_merge_refuses_a_shard_given_twice(tmp_path: Path) -> None:
    a, b = _shards(tmp_path, STACKS, 2)
    assert "shard 1/2 again" in _merge_error(a, a, b)


def test_merge_refuses_a_missing_shard(tmp_path: Path) -> None:
    a, _, c = _shards(tmp_path, STACKS, 3)
    assert _merge_error(a, c).endswith("shard(s) 2/3 missing")


def test_merge_refuses_shards_of_different_splits(tmp_path: Path) -> None:
    a, b = _shards(tmp_path / "two", STACKS, 2)
    x, *_ = _shards(tmp_path / "three", STACKS, 3)
    assert "does not belong to a split into 2" in _merge_error(a, b, x)


def test_merge_refuses_overlapping_stacks(tmp_path: Path) -> None:
    a, b = _shards(tmp_path, STACKS, 2)
    doc = json.loads((b / "report.json").read_text())
    stolen = json.loads((a / "report.json").read_text())["stacks"][0]
    doc["stacks"].append(stolen)
    (b / "report.json").write_text(json.dumps(doc))
    line = _merge_error(a, b)
    assert f"stack {stolen['stack']} belongs to shard 1/2" in line or "is also in" in line


def test_merge_refuses_a_stack_reported_twice_within_its_shard(tmp_path: Path) -> None:
    a, b = _shards(tmp_path, STACKS, 2)
    doc = json.loads((a / "report.json").read_text())
    doc["stacks"].append(doc["stacks"][0])
    (a / "report.json").write_text(json.dumps(doc))
    assert f"stack {doc['stacks'][0]['stack']} is also in" in _merge_error(a, b)


def test_merge_refuses_shards_judged_by_other_gate_inputs(tmp_path: Path) -> None:
    a, _ = _shards(tmp_path / "one", STACKS, 2, inputs="g1")
    _, b = _shards(tmp_path / "two", STACKS, 2, inputs="g2")
    assert "judged with other gate inputs" in _merge_error(a, b)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "not JSON"),
        ("[]", "not a sovml-fleet-report version 1"),
        ('{"kind": "sovml-fleet-report", "version": 2}', "not a sovml-fleet-report version 1"),
        ('{"kind": "sovml-fleet-report", "version": 1, "shard": null}', "not a shard's report"),
        ('{"kind": "sovml-fleet-report", "version": 1, "shard": [1, "2"]}', "not a shard's"),
        ('{"kind": "sovml-fleet-report", "version": 1, "shard": [1, 1], "stacks": [{}]}',
         "malformed stack entries"),
        ('{"kind": "sovml-fleet-report", "version": 1, "shard": [1, 1], "stacks": '
         '[{"stack": "a", "ok": "yes", "status": "checked", "report": null}]}',
         "malformed stack entries"),
    ],
)  # fmt: skip
def test_merge_refuses_what_is_not_a_shard_report(
    tmp_path: Path, content: str, expected: str
) -> None:
    (tmp_path / "report.json").write_text(content)
    assert expected in _merge_error(tmp_path)


def test_merge_refuses_a_folder_without_a_report(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert _merge_error(tmp_path / "empty").endswith("no fleet report (report.json) there")


def test_an_unsharded_fleet_report_is_not_merged(tmp_path: Path) -> None:
    doc = fr.fleet_doc([_entry("dev")], gate_inputs="g", shard=None, seconds={})
    fr.write_fleet(doc, tmp_path)
    assert "not a shard's report" in _merge_error(tmp_path)


# --- the pre-commit mapping -------------------------------------------------------------------


def test_changed_stack_files_name_their_stacks() -> None:
    assert stacks_for_files(["stacks/Pulumi.dev.yaml", "README.md"]) == ["dev"]
    assert stacks_for_files(["stacks/Pulumi.staging.yaml", "stacks/Pulumi.dev.yaml"]) == [
        "dev",
        "staging",
    ]


def test_program_and_policy_changes_check_every_stack() -> None:
    from infra.config.stackfile import list_stacks

    every = list_stacks()
    for changed in ("components/network.py", "policies/suppressions.yaml", "infra/platform.py",
                    "stacks/templates/smb.yaml", "Pulumi.yaml"):  # fmt: skip
        assert stacks_for_files([changed]) == every, changed


def test_other_files_and_lookalikes_check_nothing() -> None:
    assert stacks_for_files(["README.md", "tests/test_gate.py", "docs/x.md"]) == []
    # A deleted stack, a stack file outside stacks/, and the project file's near-namesakes.
    assert stacks_for_files(["stacks/Pulumi.gone.yaml"]) == []
    assert stacks_for_files(["tests/fixtures/stacks/Pulumi.insecure.yaml"]) == []
    assert stacks_for_files(["elsewhere/Pulumi.dev.yaml"]) == []


def test_the_hook_with_nothing_affected_exits_0() -> None:
    result = invoke("gate", "hook", "README.md")
    assert result.exit_code == 0, result.output
    assert "nothing to check" in result.output


# --- the CI workflow and the hook definition call real commands -------------------------------


def _click_paths() -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.add(path)
        for name, child in (getattr(command, "commands", None) or {}).items():
            walk(child, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


def _sovml_commands(text: str) -> list[list[str]]:
    """Every ``sovml ...`` invocation in a shell line, as words up to the first option."""
    out = []
    for match in re.finditer(r"(?:^|[\s/])sovml((?:\s+[a-z][a-z-]*)+)", text):
        out.append(match[1].split())
    return out


def _resolves(words: list[str], paths: set[tuple[str, ...]]) -> bool:
    longest = max((len(p) for p in paths if tuple(words[: len(p)]) == p), default=0)
    return longest > 0


def test_the_workflow_runs_real_commands_pinned_actions_and_every_shard() -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "gate.yml").read_text())
    paths = _click_paths()
    n = int(doc["env"]["SHARDS"])
    shard_job, merge_job = doc["jobs"]["shard"], doc["jobs"]["merge"]
    assert shard_job["strategy"]["matrix"]["shard"] == list(range(1, n + 1))
    assert merge_job["needs"] == "shard"
    runs = [s["run"] for job in doc["jobs"].values() for s in job["steps"] if "run" in s]
    commands = [c for r in runs for c in _sovml_commands(r)]
    assert commands, runs
    for words in commands:
        assert _resolves(words, paths), words
    check = next(r for r in runs if "check" in r)
    assert "--all --shard ${{ matrix.shard }}/${{ env.SHARDS }}" in check
    assert any(c[:2] == ["gate", "merge"] for c in commands)
    for job in doc["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    uploads = [s for s in merge_job["steps"] if "upload-sarif" in s.get("uses", "")]
    assert uploads[0]["with"]["sarif_file"] == "build/fleet/report.sarif"
    assert merge_job["permissions"]["security-events"] == "write"


def test_the_pre_commit_hook_calls_a_real_command() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "sovml-check"]
    words = hook["entry"].split()
    assert words[0] == "sovml" and (*words[1:],) in _click_paths()
    assert hook["pass_filenames"] is True
    pattern = re.compile(hook["files"])
    assert pattern.search("stacks/Pulumi.acme.yaml")
    assert pattern.search("components/network.py")
    assert not pattern.search("README.md")
