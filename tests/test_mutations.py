"""The mutation corpus (tests/mutations/): every bad change is refused by its named rule.

The base (prod-uae, synthesized once per session) must pass; each mutation is declared for real
under the synth mocks, appended to the base, and must be refused by the rule it names, offline
and by the CrossGuard pack (one process for the whole corpus).
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.mutations.corpus import MUTATIONS
from tests.mutations.runner import BASE_STACK, Corpus, pack_refusals

ROOT = Path(__file__).resolve().parents[1]
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
MINIMUM = 40


@pytest.fixture(scope="module")
def corpus(stack_records: dict[str, dict[str, Any]]) -> Corpus:
    return Corpus(stack_records[BASE_STACK])


def test_the_corpus_is_large_and_names_are_unique() -> None:
    assert len(MUTATIONS) >= MINIMUM
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_is_refused_offline_by_its_rule(mutation: Any, corpus: Corpus) -> None:
    found = corpus.added_refusals(mutation)
    assert mutation.rule in found, f"{mutation.name}: refused by {sorted(found) or 'nothing'}"


def test_the_crossguard_pack_refuses_the_same(corpus: Corpus, tmp_path: Path) -> None:
    if not POLICY_PYTHON.exists():
        pytest.skip(".venv-policy is missing (make setup creates it)")
    paths = [str(tmp_path / "base.json")]
    Path(paths[0]).write_text(json.dumps(corpus.base))
    for i, m in enumerate(MUTATIONS):
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(corpus.mutated(m)))
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


def test_the_harness_judges_a_record_alike_after_others(corpus: Corpus, tmp_path: Path) -> None:
    """Several records in one harness process share the resource policies' verdicts: each still
    gets exactly the reports, in the same order, it gets alone (the corpus's first and last
    mutations, and the base with one key's rotation turned off under the same URN, each judged
    after the base and the others)."""
    if not POLICY_PYTHON.exists():
        pytest.skip(".venv-policy is missing (make setup creates it)")
    base = tmp_path / "base.json"
    base.write_text(json.dumps(corpus.base))
    edited = copy.deepcopy(corpus.base)
    key = next(r for r in edited["resources"] if r["type"] == "aws:kms/key:Key")
    key["inputs"]["enableKeyRotation"] = False
    records = [corpus.mutated(MUTATIONS[0]), corpus.mutated(MUTATIONS[-1]), edited]
    paths = []
    for record in records:
        paths.append(tmp_path / f"{len(paths)}.json")
        paths[-1].write_text(json.dumps(record))

    def harness(*records: Path) -> Any:
        argv = [str(POLICY_PYTHON), "-m", "policies.crossguard_harness", *map(str, records)]
        return json.loads(subprocess.run(argv, cwd=ROOT, capture_output=True, check=True).stdout)

    together = harness(base, *paths)
    for path in paths:
        alone = harness(path)
        assert alone and together[str(path)] == alone
    rotation = [v for v in together[str(paths[-1])] if v["urn"] == key["urn"]]
    assert any("rotation" in v["message"] for v in rotation), rotation
