"""The control catalogue (``policies/controls/catalogue.toml``) is reviewed data that holds up.

Integrity of the real file: ids unique, every control with a source and a note, every framework
the issue asks for present and used, every check id real (our rule registry, checkov's own
registry listed by the installed checkov, our custom checks, named test functions that exist).
And the loader's one validation path refuses each kind of defect with a message naming it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from infra.evidence import catalogue as cat
from infra.gate import checkov as checkov_runner
from infra.gate.checkov_launch import launch

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_FRAMEWORKS = {"UAE-PDPL", "ISO27001", "CIS-EKS"}


@pytest.fixture(scope="module")
def catalogue() -> cat.Catalogue:
    return cat.load_catalogue()


def _raw() -> dict[str, Any]:
    return tomllib.loads(cat.CATALOGUE.read_text())


# --- the real catalogue -------------------------------------------------------------------------


def test_every_required_framework_is_declared_and_used(catalogue: cat.Catalogue) -> None:
    assert {f.id for f in catalogue.frameworks} == REQUIRED_FRAMEWORKS
    used = {c.framework for c in catalogue.controls}
    assert used == REQUIRED_FRAMEWORKS
    for f in catalogue.frameworks:
        assert f.title and f.source and f.url.startswith("https://"), f


def test_ids_are_unique_and_every_control_has_a_source_and_a_note(
    catalogue: cat.Catalogue,
) -> None:
    ids = [c.id for c in catalogue.controls]
    assert len(ids) == len(set(ids)) >= 30
    for c in catalogue.controls:
        assert c.source and c.note and c.title, c.id
        assert not c.url or c.url.startswith("https://"), c.id
        assert c.checks or c.tests, c.id


def test_the_pdpl_articles_and_annex_a_controls_the_issue_names_are_mapped(
    catalogue: cat.Catalogue,
) -> None:
    ids = {c.id for c in catalogue.controls}
    assert {"PDPL-22", "PDPL-23"} <= ids
    annex_a = {"A.5.23", "A.8.9", "A.8.15", "A.8.16", "A.8.20", "A.8.21", "A.8.22", "A.8.24"}
    assert {f"ISO27001-{a}" for a in annex_a} <= ids
    assert "Article 22" in next(c.source for c in catalogue.controls if c.id == "PDPL-22")
    assert "Article 23" in next(c.source for c in catalogue.controls if c.id == "PDPL-23")


def test_every_rule_id_is_in_the_registry(catalogue: cat.Catalogue) -> None:
    rules = [i for i in catalogue.check_ids() if cat.check_kind(i) == cat.RULE]
    assert {i for i in rules if i not in cat.known_rule_ids()} == set()
    # The audit-trail rules back the logging and monitoring controls.
    assert {"SOV-AUD-001", "SOV-AUD-002", "SOV-AUD-003"} <= set(rules)


def _checkov_registry() -> set[str]:
    """Every check id the installed checkov knows for the frameworks the gate runs."""
    ids: set[str] = set()
    for framework in ("terraform", "kubernetes"):  # terraform_plan shares terraform's checks
        # Forked from this process's checkov server, as the gate's scans are.
        rc, listing, err = launch(
            [str(checkov_runner.CHECKOV), "-l", "--framework", framework],
            checkov_runner.checkov_env(), ROOT, checkov_runner.checkov_python(),
        ).result(120)  # fmt: skip
        assert rc == 0, err
        ids |= set(re.findall(r"\|\s*(CKV2?_[A-Z0-9]+_\d+)\s*\|", listing))
    return ids


def _custom_checks() -> set[str]:
    """Ids of our own checkov checks (policies/checkov, one class per file)."""
    found = set()
    for path in (ROOT / "policies" / "checkov").glob("*.py"):
        found |= set(re.findall(r'id="(CKV_SOV_\d+)"', path.read_text()))
    return found


@pytest.mark.skipif(not checkov_runner.CHECKOV.is_file(), reason="checkov is not installed")
def test_every_checkov_id_is_in_checkovs_registry_or_ours(catalogue: cat.Catalogue) -> None:
    registry = _checkov_registry()
    assert len(registry) > 500 and "CKV_AWS_58" in registry and "CKV_K8S_16" in registry
    wanted = {i for i in catalogue.check_ids() if cat.check_kind(i) == cat.CHECKOV}
    custom = _custom_checks()
    assert custom >= {"CKV_SOV_2", "CKV_SOV_5"}
    assert sorted(wanted - registry - custom) == []


def test_every_named_test_exists(catalogue: cat.Catalogue) -> None:
    missing = []
    for ref in sorted({t for c in catalogue.controls for t in c.tests}):
        file, name = ref.split("::")
        path = ROOT / file
        tree = ast.parse(path.read_text()) if path.is_file() else ast.Module([], [])
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(ref)
    assert missing == []


# --- the loader refuses defects -----------------------------------------------------------------


def _with(control: dict[str, Any]) -> dict[str, Any]:
    doc = _raw()
    doc["controls"] = [*doc["controls"], control]
    return doc


GOOD = {"id": "X-1", "framework": "ISO27001", "title": "t", "source": "s", "note": "n",
        "checks": ["SOV-ENC-001"]}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": " "}, "control X-1: source must be a non-empty string"),
        ({"note": None}, "control X-1: note must be a non-empty string"),
        ({"framework": "GDPR"}, "control X-1: framework 'GDPR' is not declared"),
        ({"checks": ["SOV-ENC-999"]}, "control X-1: rule SOV-ENC-999 is not in the rule set"),
        ({"checks": ["ckv_aws_1"]}, "'ckv_aws_1' is no known check id"),
        ({"checks": ["SOV-ENC-001", "SOV-ENC-001"]}, "control X-1: checks names SOV-ENC-001 twice"),
        ({"checks": ["tests/test_x.py::test_y"]}, "control X-1: tests/test_x.py::test_y is a test"),
        ({"tests": ["CKV_AWS_1"]}, "control X-1: 'CKV_AWS_1' is not a test"),
        ({"checks": [], "tests": []}, "control X-1: names neither checks nor tests"),
        ({"evidence": "trust me"}, "control X-1: unknown key(s) evidence"),
        ({"id": "PDPL-22"}, "control PDPL-22: the id is used twice"),
    ],
)
def test_each_defect_is_refused_with_its_reason(change: dict[str, Any], message: str) -> None:
    control = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(cat.CatalogueError) as info:
        cat.parse_catalogue(_with(control))
    assert message in str(info.value)


def test_a_framework_without_controls_or_a_source_is_refused() -> None:
    doc = _raw()
    doc["frameworks"]["GDPR"] = {"title": "t", "source": "s", "url": "https://x"}
    with pytest.raises(cat.CatalogueError, match=r"framework\(s\) GDPR have no control"):
        cat.parse_catalogue(doc)
    doc = _raw()
    del doc["frameworks"]["CIS-EKS"]["source"]
    with pytest.raises(cat.CatalogueError, match="framework CIS-EKS: source must be"):
        cat.parse_catalogue(doc)


def test_a_rule_id_must_be_in_the_rule_set() -> None:
    doc = _with({**GOOD, "checks": ["SOV-AUD-001"]})
    assert cat.parse_catalogue(doc).controls[-1].checks == ("SOV-AUD-001",)
    rules = cat.known_rule_ids() - {"SOV-ENC-001"}
    with pytest.raises(cat.CatalogueError, match="rule SOV-ENC-001 is not in the rule set"):
        cat.parse_catalogue(_with(GOOD), rules)


def test_an_unreadable_or_invalid_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(cat.CatalogueError, match="No such file"):
        cat.load_catalogue(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[controls]\n")
    with pytest.raises(cat.CatalogueError, match="not valid TOML"):
        cat.load_catalogue(bad)
