"""The mutation corpus (tests/mutations/): every bad change is refused by its named rule.

The base (prod-uae, synthesized once per session) must pass; each mutation is declared for real
under the synth mocks, appended to the base, and must be refused by the rule it names, offline
and by the CrossGuard pack (one process for the whole corpus).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.mutations.corpus import MUTATIONS
from tests.mutations.runner import BASE_STACK, added_refusals, mutated, pack_refusals

ROOT = Path(__file__).resolve().parents[1]
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
MINIMUM = 40


@pytest.fixture(scope="module")
def base(stack_records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return stack_records[BASE_STACK]


def test_the_corpus_is_large_and_names_are_unique() -> None:
    assert len(MUTATIONS) >= MINIMUM
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_is_refused_offline_by_its_rule(mutation: Any, base: dict[str, Any]) -> None:
    found = added_refusals(base, mutation)
    assert mutation.rule in found, f"{mutation.name}: refused by {sorted(found) or 'nothing'}"


def test_the_crossguard_pack_refuses_the_same(base: dict[str, Any], tmp_path: Path) -> None:
    if not POLICY_PYTHON.exists():
        pytest.skip(".venv-policy is missing (make setup creates it)")
    paths = [str(tmp_path / "base.json")]
    Path(paths[0]).write_text(json.dumps(base))
    for i, m in enumerate(MUTATIONS):
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(mutated(base, m)))
        paths.append(str(path))
    proc = subprocess.run(
        [str(POLICY_PYTHON), "-m", "policies.crossguard_harness", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(proc.stdout)
    before = pack_refusals(results[paths[0]])
    for path, m in zip(paths[1:], MUTATIONS, strict=True):
        added = {rule for rule, _, _ in pack_refusals(results[path]) - before}
        assert m.rule in added, f"{m.name}: the pack added {sorted(added) or 'nothing'}"
