"""Every alert the platform declares has a runbook, and every runbook has an alert.

The alerts are read from each stack's synth record (the ``PrometheusRule`` the cluster would
load, as ``tests/test_prometheus_rules.py`` reads it). A runbook is ``docs/runbooks/<Alert>.md``
with the sections Meaning, Confirm, Mitigate and Escalate, each non-empty; the alert's
``runbook_url`` annotation names that file under the stack's runbook base.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from components._alerts import DEFAULT_RUNBOOK_BASE, runbook_url
from infra.config.stackfile import ROOT, list_stacks
from tests.promtool_rules import recorded_groups

RUNBOOKS = ROOT / "docs" / "runbooks"
SECTIONS = ("Meaning", "Confirm", "Mitigate", "Escalate")


def recorded_alerts(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every alerting rule (one per window pair for burn-rate alerts) of a stack's record."""
    return [r for g in recorded_groups(record["resources"]) for r in g["rules"] if "alert" in r]


def runbook_problems(alert_names: set[str], folder: Path) -> list[str]:
    """What is wrong with the runbooks in ``folder`` for these alerts (empty: nothing)."""
    problems = []
    pages = {p.stem: p for p in folder.glob("*.md")}
    for name in sorted(alert_names - set(pages)):
        problems.append(f"{name}: no runbook {folder.name}/{name}.md")
    for name in sorted(set(pages) - alert_names):
        problems.append(f"{name}.md: a runbook without an alert")
    for name in sorted(alert_names & set(pages)):
        text = pages[name].read_text()
        if not text.startswith(f"# {name}\n"):
            problems.append(f"{name}.md: the title is not '# {name}'")
        found = re.findall(r"^## (.+?)\s*$", text, flags=re.M)
        if tuple(found) != SECTIONS:
            problems.append(f"{name}.md: sections {found}, expected {list(SECTIONS)}")
        for section, body in zip(found, re.split(r"^## .+$", text, flags=re.M)[1:], strict=False):
            if not body.strip():
                problems.append(f"{name}.md: section {section} is empty")
    return problems


@pytest.mark.parametrize("stack", list_stacks())
def test_every_alert_has_a_complete_runbook_and_links_it(
    stack: str, stack_records: dict[str, dict[str, Any]]
) -> None:
    record = stack_records[stack]
    rules = recorded_alerts(record)
    assert rules, f"{stack}: no alerts recorded"
    assert runbook_problems({r["alert"] for r in rules}, RUNBOOKS) == []
    base = record["config"]["runbook_base_url"]
    for rule in rules:
        annotations = rule["annotations"]
        assert annotations["runbook_url"] == runbook_url(base, rule["alert"]), rule["alert"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        if base == DEFAULT_RUNBOOK_BASE:  # a repository-relative link must resolve here
            assert (ROOT / annotations["runbook_url"]).is_file(), annotations["runbook_url"]


def test_the_automated_actions_are_annotated(stack_records: dict[str, dict[str, Any]]) -> None:
    rules = {r["alert"]: r for r in recorded_alerts(stack_records["prod-uae"])}
    drift = rules["FeatureDrift"]["annotations"]["automated_action"]
    assert "submitted a run of the training pipeline" in drift
    pools = [p for p in stack_records["prod-uae"]["config"]["node_pools"] if p["gpu"]]
    gpu = rules["GpuSaturated"]["annotations"]["automated_action"]
    if pools:
        assert f"({pools[0]['min_size']}-{pools[0]['max_size']} nodes)" in gpu, gpu


def _write(folder: Path, name: str, sections: tuple[str, ...] = SECTIONS, body: str = "x") -> None:
    text = f"# {name}\n\n" + "".join(f"## {s}\n\n{body}\n\n" for s in sections)
    (folder / f"{name}.md").write_text(text)


def test_a_complete_runbook_set_has_no_problems(tmp_path: Path) -> None:
    _write(tmp_path, "A")
    assert runbook_problems({"A"}, tmp_path) == []


def test_an_alert_without_a_runbook_fails(tmp_path: Path) -> None:
    _write(tmp_path, "A")
    assert runbook_problems({"A", "B"}, tmp_path) == [f"B: no runbook {tmp_path.name}/B.md"]


def test_a_runbook_without_an_alert_fails(tmp_path: Path) -> None:
    _write(tmp_path, "A")
    _write(tmp_path, "Gone")
    assert runbook_problems({"A"}, tmp_path) == ["Gone.md: a runbook without an alert"]


def test_a_missing_or_empty_section_fails(tmp_path: Path) -> None:
    _write(tmp_path, "A", sections=("Meaning", "Confirm", "Mitigate"))
    _write(tmp_path, "B", body="")
    assert runbook_problems({"A", "B"}, tmp_path) == [
        "A.md: sections ['Meaning', 'Confirm', 'Mitigate'], expected "
        "['Meaning', 'Confirm', 'Mitigate', 'Escalate']",
        *[f"B.md: section {s} is empty" for s in SECTIONS],
    ]
