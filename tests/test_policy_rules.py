"""Every policy rule: pass and fail fixtures with counts, offline and through CrossGuard."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from policies.rules import RULES, Context, evaluate
from policies.zones import ZONES
from tests.policy_cases import CASES, as_record

ROOT = Path(__file__).resolve().parents[1]
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
NAMES = {r.id: r.name for r in RULES}


@pytest.mark.parametrize(
    ("rule_id", "label", "resources", "expected"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES]
)
def test_rule_case(rule_id: str, label: str, resources: list, expected: int) -> None:
    found = [v for v in evaluate(resources, Context()) if v.rule_id == rule_id]
    assert len(found) == expected, [v.message for v in found]
    for v in found:
        assert v.message and v.severity in ("critical", "high", "medium", "low")


def test_every_rule_has_pass_and_fail_fixtures() -> None:
    for r in RULES:
        counts = [c[3] for c in CASES if c[0] == r.id]
        assert 0 in counts, f"{r.id} has no passing fixture"
        assert any(n > 0 for n in counts), f"{r.id} has no failing fixture"


def test_rule_ids_and_names_are_unique_and_kebab_case() -> None:
    assert len({r.id for r in RULES}) == len(RULES)
    assert len({r.name for r in RULES}) == len(RULES)
    for r in RULES:
        assert r.name == r.name.lower() and " " not in r.name and "_" not in r.name


def test_rule_context_reads_the_one_zone_table() -> None:
    for name, zone in ZONES.items():
        assert Context(zone=name).regions == zone.region_names
    assert Context(zone="atlantis").regions == ()


def test_dev_may_have_public_endpoint_to_listed_cidrs() -> None:
    from tests.policy_fixtures import _eks

    res = [_eks(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24"])]
    assert not [v for v in evaluate(res, Context(environment="dev")) if v.rule_id == "SOV-NET-001"]


def test_taggable_list_is_current() -> None:
    from policies.gen_taggable import OUT, render, taggable_types

    assert OUT.read_text() == render(taggable_types()), "run python -m policies.gen_taggable"


def test_crossguard_policies_report_the_same_violations(tmp_path: Path) -> None:
    """The pack, run by its own venv's pulumi_policy, agrees with the offline gate case by case."""
    assert POLICY_PYTHON.exists(), ".venv-policy missing: run make setup"
    paths = []
    for i, (_, _, resources, _) in enumerate(CASES):
        p = tmp_path / f"case{i}.json"
        p.write_text(json.dumps(as_record(resources)))
        paths.append(str(p))
    proc = subprocess.run(
        [str(POLICY_PYTHON), "-m", "policies.crossguard_harness", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(proc.stdout)
    for path, (rule_id, label, resources, expected) in zip(paths, CASES, strict=True):
        by_policy = Counter(v["policy"] for v in results[path])
        offline = Counter(v.rule_name for v in evaluate(resources, Context()))
        assert by_policy == offline, f"{rule_id} {label}: crossguard {by_policy} offline {offline}"
        assert by_policy[NAMES[rule_id]] == expected, f"{rule_id} {label}"


def test_policy_pack_layout_is_valid_for_the_cli() -> None:
    pack = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    # PolicyPackProject in pulumi/sdk/go/common/workspace: these keys only.
    assert set(pack) <= {
        "runtime",
        "version",
        "main",
        "description",
        "author",
        "website",
        "license",
    }
    assert pack["runtime"]["name"] == "python"
    venv = (ROOT / "policies" / pack["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == (ROOT / ".venv-policy").resolve()
    assert (ROOT / "policies" / "__main__.py").exists()
    reqs = (ROOT / "policies" / "requirements.txt").read_text()
    assert "pulumi-policy==" in reqs


def test_pack_main_builds_a_policy_per_rule() -> None:
    code = (
        "from policies.crossguard import policies; ps = policies(); "
        "print(len(ps), len({p.name for p in ps}))"
    )
    out = subprocess.run(
        [str(POLICY_PYTHON), "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(len(RULES)), str(len(RULES))]
