"""Canary analysis end to end on the real Triton server, with the default promotion criteria.

One server serves the demo variants (``pipelines.serving.canary.demo.build_demo_repository``: a
seeded MLP, the same MLP trained on shuffled labels, and the trained one sleeping 10 ms per
execution).
Effect sizes are chosen so each run is decisive at the stated rates within a few thousand
requests: about 40 points of accuracy move the SPRT's log-likelihood ratio to about +-6 to -12
at the first look (boundaries +-3.0), and a 10 ms sleep puts the candidate's p99 at several
times the baseline's (guard: 1.25). Each run is bounded in requests and seconds.

The two accuracy scenarios run with the p99 guard widened to :data:`NOISE_P99_RATIO`: two
identical models' p99 over a few hundred requests on this shared 2-core machine differed by up to
1.28x in one CI-like run (8.06 ms vs 6.30 ms), which at the default 1.25 rolls a canary back for
noise, not for what those tests are about. The latency scenario keeps the default guard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.serving.canary.demo import DemoRepository, build_demo_repository
from pipelines.serving.canary.evidence import AbTestResult
from pipelines.serving.canary.run import RunSettings, run_abtest
from pipelines.serving.triton import TritonServer
from policies.promotion import DEFAULT, PromotionCriteria
from tests.triton_helpers import require_triton

pytestmark = pytest.mark.slow
MAX_SECONDS = 90.0
MAX_REQUESTS = 30_000
NOISE_P99_RATIO = 3.0
"""p99 guard of the accuracy scenarios: far above scheduling noise, far below the slow variant's
ratio (several times the baseline's)."""
ACCURACY_CRITERIA = replace(DEFAULT, max_p99_latency_ratio=NOISE_P99_RATIO)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRepository:
    require_triton()
    return build_demo_repository(tmp_path_factory.mktemp("abtest") / "repo", seed=0)


@pytest.fixture(scope="module")
def server(demo: DemoRepository) -> Iterator[TritonServer]:
    models = [demo.name(v) for v in ("trained", "shuffled", "slow")]
    with TritonServer(demo.root, models) as srv:
        yield srv


def _run(
    server: TritonServer,
    demo: DemoRepository,
    scenario: str,
    out: Path,
    criteria: PromotionCriteria = DEFAULT,
) -> AbTestResult:
    baseline, candidate = demo.pair(scenario)
    return run_abtest(
        server.endpoints,
        baseline,
        candidate,
        demo.data.test_x,
        demo.data.test_y,
        criteria=criteria,
        settings=RunSettings(seed=1, max_requests=MAX_REQUESTS, max_seconds=MAX_SECONDS),
        run_name=scenario,
        out_dir=out,
    )


def test_worse_accuracy_is_rolled_back(
    server: TritonServer, demo: DemoRepository, tmp_path: Path
) -> None:
    result = _run(server, demo, "worse-accuracy", tmp_path, ACCURACY_CRITERIA)
    assert result.decision == "rolled_back", result.reason
    assert result.final_weight == 0
    (look,) = result.looks
    assert look.weight == DEFAULT.steps[0] and look.llr <= look.lower
    assert look.requests[result.candidate] >= DEFAULT.min_requests_per_step
    assert look.accuracy[result.candidate] < look.accuracy[result.baseline] - 0.2
    assert not look.guards, "rolled back by the SPRT, not by a guard"
    assert result.seconds < MAX_SECONDS and result.total_requests <= MAX_REQUESTS
    evidence = json.loads((tmp_path / "worse-accuracy.json").read_text())
    assert evidence["decision"] == "rolled_back"
    assert "alpha = 0.05" in evidence["procedure"] and "beta = 0.05" in evidence["procedure"]
    assert evidence["looks"][0]["accuracy_ci95"][result.candidate][1] < 0.7


def test_better_candidate_is_promoted_step_by_step(
    server: TritonServer, demo: DemoRepository, tmp_path: Path
) -> None:
    result = _run(server, demo, "better", tmp_path, ACCURACY_CRITERIA)
    assert result.decision == "promoted", result.reason
    assert [look.weight for look in result.looks] == list(DEFAULT.steps)
    assert all(look.decision == "promote" for look in result.looks)
    assert result.looks[0].llr >= result.looks[0].upper
    for look in result.looks:
        assert look.p99_ratio <= ACCURACY_CRITERIA.max_p99_latency_ratio
        assert look.errors[result.candidate] == 0
        assert look.requests[result.candidate] >= DEFAULT.min_requests_per_step
    assert result.final_weight == 100 and result.seconds < MAX_SECONDS
    assert (tmp_path / "better.json").is_file()


def test_slower_candidate_is_rolled_back_on_p99(
    server: TritonServer, demo: DemoRepository, tmp_path: Path
) -> None:
    result = _run(server, demo, "worse-latency", tmp_path)
    assert result.decision == "rolled_back", result.reason
    look = result.looks[-1]
    assert look.p99_ratio > DEFAULT.max_p99_latency_ratio
    assert any("p99 ratio" in g for g in look.guards)
    assert look.p99_ms[result.candidate] > 10.0, "the 10 ms sleep shows in Triton's p99"
    assert result.seconds < MAX_SECONDS
