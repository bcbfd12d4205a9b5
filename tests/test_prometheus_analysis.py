"""The cluster's canary analysis and the local ``sovml abtest`` decide the same on the same traffic.

On the cluster, Argo Rollouts' ``AnalysisTemplate`` (``components/serving.py``) asks Prometheus
for each guard's statistic with PromQL built by :mod:`policies.promotion`
(:func:`~policies.promotion.analysis_checks`); locally, ``sovml abtest`` reads Triton's own
``/metrics`` (:mod:`pipelines.serving.metrics`) and client-side error counts and calls the same
module's verdict functions. Here both run against one real Triton server:

* Triton (``.venv-triton``) serves the two variants of the model the ``prod-uae`` stack serves,
  as two model names (as ``sovml abtest`` does), with the summary levels the cluster's pods
  export (:func:`~policies.promotion.triton_metrics_args`): ``stable`` is a tiny seeded MLP,
  ``canary`` the same kind of model wrapped to raise on poisoned rows (a real backend failure,
  which Triton counts) and slowed by the local twin's ``DELAY_MS``.
* A real Prometheus scrapes Triton's metrics port every second and relabels the series the way
  the cluster's ServiceMonitor does (see :func:`scrape_config`).
* Inferences go to both variants through the client ``sovml abtest`` uses
  (:mod:`pipelines.serving.load`), a few of them poisoned on the canary.
* The exact query strings of the synthesized AnalysisTemplate are evaluated through the HTTP API;
  their values must equal what the local functions compute from the metrics text (to 1e-9
  relative), and the template's success/failure conditions must give the local verdicts: the
  slow canary FAILs the latency guard and its poisoned rows FAIL the error guard and the SLO
  fast-burn guard (2 % failed > 14.4 x the 0.1 % budget), while the reversed comparison (the same
  traffic, the stable variant as candidate) PASSes all three.

Why the comparison is exact, not approximate. Latency: the guard reads Triton's summary
quantiles (gauges: the numbers ``/metrics`` showed, as long as no request arrives and the
summary's sliding window does not move to its next age bucket; the scrape the queries read is
taken between two equal reads of ``/metrics``, see ``tests/triton_traffic.py``) and the
window's size as the ``_count`` increase over the template's ``offset``. The evaluation time
lies within that offset of the traffic's start and past it from Prometheus' first scrape, so
the offset sample precedes the traffic (count 0) and Prometheus' window size is the whole count,
as the local side's. Errors: the SPRT's statistic is linear in Triton's cumulative counters,
which Prometheus stores as they were. The 1 s scrape interval only shortens the waits.

The error guards read Istio's ``istio_requests_total`` (:mod:`policies.gateway_metrics`), which
no process here produces: the synthetic exporter serves it with the counts the clients observed
(plus gateway refusals the guards must ignore), so their queries are real and their series are
not. Why the mesh: Triton 2.51 counts only requests that reached its scheduler, so requests
refused before (a malformed input: HTTP 400; also, measured by hand, a full queue: 503 "Exceeds
maximum queue size") are in neither of its counters (pinned by the last test); the sidecar and
the gateway in front of it see every response code.
"""

from __future__ import annotations

import json
import math
import operator
import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from policies.gateway_metrics import REQUESTS_METRIC, gateway_selector, sprt_selector
from policies.promotion import (
    DEFAULT,
    FAIL,
    LOWER,
    PASS,
    UPPER,
    analysis_checks,
    bound_query,
    burn_min_requests,
    burn_verdict,
    error_llr,
    error_verdict,
    latency_verdict,
    latency_verdict_query,
    quantile_bound,
)
from tests.triton_traffic import (
    CANARY_DELAY_MS,
    DIM,
    IN,
    POISONED,
    REL_TOL,
    ClusterAnalysis,
    Observation,
    local_name,
    per_variant,
    window,
)

pytestmark = pytest.mark.slow


def condition_holds(condition: str, value: float) -> bool:
    """An AnalysisTemplate condition of the form ``result[0] <op> <number>``."""
    match = re.fullmatch(r"result\[0\] (<=|>=|==|<|>) (-?[0-9.]+(?:e-?\d+)?)", condition)
    assert match, f"condition not understood by this test: {condition!r}"
    ops = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt}
    ops[">"] = operator.gt
    return bool(ops[match.group(1)](value, float(match.group(2))))


def argo_verdict(metric: str, cluster: ClusterAnalysis, value: float) -> str:
    """What Argo makes of one measurement: PASS (success), FAIL (failure) or UNDECIDED."""
    if condition_holds(cluster.failure[metric], value):
        return FAIL
    return PASS if condition_holds(cluster.success[metric], value) else "undecided"


@pytest.fixture(scope="module")
def observation(traffic: Observation) -> Observation:
    """The session's Triton traffic (``tests/conftest.py``), measured once for both modules."""
    return traffic


# --- tests ----------------------------------------------------------------------------------------
def test_the_record_queries_are_built_by_policies_promotion(observation: Observation) -> None:
    """The strings evaluated below are the synthesized template's, built by the same functions
    and criteria the local decision uses, and the local emulation matches the record."""
    c, setup = observation.cluster, observation.setup
    assert (c.model, c.variants, c.variant_label) == (
        setup.model,
        setup.variants,
        setup.variant_label,
    ), "the Rollout or ServiceMonitor changed: update the emulation (scrape_config)"
    assert c.pod_label_meta == "__meta_kubernetes_pod_label_sovereign_ml_variant"
    checks = analysis_checks(DEFAULT, c.model)
    assert c.queries == {k.name: k.query for k in checks}
    assert c.success == {k.name: k.success_condition for k in checks}
    assert c.failure == {k.name: k.failure_condition for k in checks}
    assert c.consecutive == {k.name: k.successes_needed for k in checks}
    assert list(c.queries) == ["accuracy-sprt", "latency-p99", "error-rate-sprt", "slo-fast-burn"]


def test_scraped_series_carry_the_cluster_labels(observation: Observation) -> None:
    labels, c = observation.scrape_labels, observation.cluster
    assert labels["model"] == c.model and labels[c.variant_label] in c.variants.values(), labels


def test_failures_reached_triton_and_the_client_alike(observation: Observation) -> None:
    """Poisoned rows fail inside the model: Triton counts exactly the failures the client saw
    (the errors ``sovml abtest`` tallies), and the stable variant has none."""
    local = observation.local
    assert observation.client_errors == {"stable": 0, "canary": POISONED}
    assert {role: local[role].failure for role in local} == {"stable": 0, "canary": POISONED}
    assert {role: local[role].requests for role in local} == observation.client_requests


def test_error_guard_the_same_statistic_and_verdict(observation: Observation) -> None:
    """The template's error SPRT statistic from the mesh's counters (synthetic series holding the
    client's outcomes and gateway refusals) equals the local LLR from the client's counts, and
    both FAIL the canary; the same query on the stable series PASSes. The refusals (401, 429)
    count for neither side."""
    obs, c = observation, observation.cluster
    failures = obs.client_errors["canary"]
    local_llr = error_llr(DEFAULT, failures, obs.client_requests["canary"] - failures)
    got = obs.promql["error-rate-sprt"]
    assert math.isclose(got, local_llr, rel_tol=REL_TOL), (got, local_llr)
    assert argo_verdict("error-rate-sprt", c, got) == error_verdict(DEFAULT, local_llr) == FAIL
    stable_query = c.queries["error-rate-sprt"].replace(
        sprt_selector(c.model, "canary", "serving"), sprt_selector(c.model, "stable", "serving")
    )
    assert stable_query != c.queries["error-rate-sprt"]
    stable = obs.value(stable_query)
    assert stable == error_llr(DEFAULT, 0, obs.client_requests["stable"])
    assert argo_verdict("error-rate-sprt", c, stable) == error_verdict(DEFAULT, stable) == PASS


def test_slo_burn_guard_aborts_the_failing_candidate_only(observation: Observation) -> None:
    """The template's fast-burn ratio over 5 minutes is the canary's failed share of the same
    traffic (both counters' increases are extrapolated alike, so the ratio is exact up to
    float rounding), above 14.4 x the SLO's budget with more than the request floor: FAIL. The
    healthy stable variant as candidate: ratio 0, PASS (no false abort)."""
    obs, c = observation, observation.cluster
    failures, requests = obs.client_errors["canary"], obs.client_requests["canary"]
    assert requests >= burn_min_requests(DEFAULT) == 551
    got = obs.promql["slo-fast-burn"]
    assert math.isclose(got, failures / requests, rel_tol=1e-6), (got, failures / requests)
    assert got > DEFAULT.burn_threshold == 0.0144
    assert argo_verdict("slo-fast-burn", c, got) == burn_verdict(DEFAULT, failures, requests)
    assert burn_verdict(DEFAULT, failures, requests) == FAIL
    stable_query = c.queries["slo-fast-burn"].replace(
        gateway_selector(c.model, "canary", "serving"),
        gateway_selector(c.model, "stable", "serving"),
    )
    assert stable_query != c.queries["slo-fast-burn"]
    stable = obs.value(stable_query)
    assert stable == 0.0
    verdict = burn_verdict(DEFAULT, 0, obs.client_requests["stable"])
    assert argo_verdict("slo-fast-burn", c, stable) == verdict == PASS


@pytest.mark.parametrize("alpha", ["pass", "fail"])
@pytest.mark.parametrize("side", [LOWER, UPPER])
@pytest.mark.parametrize("role", ["stable", "canary"])
def test_latency_bounds_are_the_same_numbers(
    observation: Observation, role: str, side: str, alpha: str
) -> None:
    """Each order-statistic bound: Prometheus (per pod, window from the offset) equals the local
    :func:`quantile_bound` on ``/metrics`` exactly, and the level it picked is a real one."""
    obs = observation
    a = DEFAULT.latency_pass_alpha if alpha == "pass" else DEFAULT.latency_fail_alpha
    local = quantile_bound(window(obs.local[role]), a, side)
    assert math.isfinite(local), (role, side, alpha, obs.local[role].summary_count)
    got = obs.value(bound_query(obs.setup.selector(role), a, side, DEFAULT.window_offset_s))
    assert math.isclose(got, local, rel_tol=REL_TOL), (got, local)
    assert local in obs.local[role].quantiles_us.values()


def test_latency_guard_the_same_verdict_both_ways(observation: Observation) -> None:
    """The template's latency verdict equals the local one on the same summaries: the slow canary
    FAILs; the same traffic with the roles swapped (a faster candidate) PASSes; each variant
    against itself gets the same verdict both ways, whatever it is."""
    obs, c = observation, observation.cluster
    local = {role: window(m) for role, m in obs.local.items()}
    verdicts = {
        (cand, base): latency_verdict(DEFAULT, local[base], local[cand]).verdict
        for cand in local
        for base in local
    }
    got = {
        (cand, base): obs.value(
            latency_verdict_query(DEFAULT, obs.setup.selector(cand), obs.setup.selector(base))
        )
        for cand, base in verdicts
    }
    codes = {PASS: 1.0, FAIL: -1.0, "undecided": 0.0}
    assert {k: codes[v] for k, v in verdicts.items()} == got, (verdicts, got)
    judged = latency_verdict(DEFAULT, local["stable"], local["canary"])
    summaries = {r: (w.requests, dict(w.quantiles_us)) for r, w in local.items()}
    assert verdicts["canary", "stable"] == FAIL, (judged, summaries)
    assert verdicts["stable", "canary"] == PASS, summaries
    assert obs.promql["latency-p99"] == got["canary", "stable"]
    assert argo_verdict("latency-p99", c, obs.promql["latency-p99"]) == FAIL
    # The queries took no requests: Triton's counters, the summary's observation count included,
    # are where they were. Its quantiles are not compared: with no request at all they still
    # change when the window moves to its next age bucket (see ``_bracketed_read``).
    after = obs.local_after_queries
    assert set(after) == set(local)
    for role, metrics in after.items():
        was = obs.local[role]
        assert (metrics.requests, metrics.summary_count) == (was.requests, was.summary_count), role
    assert obs.local["canary"].quantile_us(0.98) >= CANARY_DELAY_MS * 1000


def test_accuracy_guard_without_evidence_is_undecided(observation: Observation) -> None:
    """The accuracy LLR is a gauge the labelled-outcome job pushes (none here): the query answers
    0, no evidence, which is neither condition: the metric waits (then holds)."""
    assert observation.promql["accuracy-sprt"] == 0.0
    assert argo_verdict("accuracy-sprt", observation.cluster, 0.0) == "undecided"


def test_keda_request_rate_sees_the_traffic(observation: Observation) -> None:
    assert observation.request_rate > 0


def test_requests_refused_before_the_model_are_not_triton_failures(
    observation: Observation,
) -> None:
    """Why the error guards read the mesh: Triton 2.51 counts only requests that reached
    scheduling, so a malformed request (refused with 400) moves neither of its counters, while
    the local decision counts it as a client-side error, and so does the pod's sidecar (a 4xx
    that is not a gateway refusal is a failure). This pins that behaviour; runs last."""
    server, setup = observation.server, observation.setup
    name = local_name(setup.model, setup.variants["canary"])
    before = per_variant(server, setup)["canary"]
    body = {"inputs": [{"name": IN, "shape": [1, DIM - 1], "datatype": "FP32",
                        "data": [0.0] * (DIM - 1)}]}  # fmt: skip
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{name}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400
    after = per_variant(server, setup)["canary"]
    assert (after.success, after.failure) == (before.success, before.failure)
    assert REQUESTS_METRIC in observation.cluster.queries["error-rate-sprt"]
    assert 'response_code=~"[45].."' in observation.cluster.queries["error-rate-sprt"]


def test_a_window_that_moves_between_the_reads_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scrape the queries read sits between two equal reads of Triton's window: a pair that
    differs (the summary moved to its next age bucket) is read again, and a window that moves on
    every try fails the fixture instead of comparing numbers from different windows."""
    import tests.triton_traffic as traffic
    from pipelines.serving.metrics import ModelMetrics

    class Prom:
        waits = 0

        def wait_until(self, check: Any, what: str, timeout_s: float) -> None:
            self.waits += 1

    def window(p999: float) -> dict[str, ModelMetrics]:
        return {"canary": ModelMetrics(success=2400.0, quantiles_us={0.998: p999})}

    reads = iter([window(19694.0), window(19340.0), window(19340.0), window(19340.0)])
    monkeypatch.setattr(traffic, "per_variant", lambda server, setup: next(reads))
    prom = Prom()
    local, _ = traffic._bracketed_read(None, None, prom, "up", 0.0)  # type: ignore[arg-type]
    assert local == window(19340.0) and prom.waits == 4  # two tries, two waits each
    moving = iter(window(float(n)) for n in range(2 * traffic.SAME_WINDOW_TRIES))
    monkeypatch.setattr(traffic, "per_variant", lambda server, setup: next(moving))
    with pytest.raises(AssertionError, match="moved in each of"):
        traffic._bracketed_read(None, None, Prom(), "up", 0.0)  # type: ignore[arg-type]
