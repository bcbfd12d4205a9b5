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
quantiles (gauges, the same numbers ``/metrics`` showed as long as no request arrives and the
traffic is younger than the summary's 48 s window; re-read afterwards to prove it) and the
window's size as the ``_count`` increase over the template's ``offset``. The traffic is sent
within that offset of the evaluation time, after Prometheus has scraped for longer than it, so
the offset sample precedes the traffic (count 0) and Prometheus' window size is the whole count,
as the local side's. Errors: the SPRT's statistic is linear in Triton's cumulative counters,
which Prometheus stores as they were. The 1 s scrape interval only shortens the waits.

A limit this module pins rather than hides: Triton 2.51 counts only requests that reached its
scheduler, so requests refused before (a malformed input: HTTP 400; also, measured by hand, a
full queue: 503 "Exceeds maximum queue size") are in neither counter. The cluster's error guard
cannot see them; the local decision, counting client-side errors, does.
"""

from __future__ import annotations

import json
import math
import operator
import re
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.serving import request_rate_query
from infra.config.stackfile import load_stack
from pipelines.serving.load import InferClients, Job, Outcome, run_jobs
from pipelines.serving.metrics import ModelMetrics, scrape
from pipelines.serving.repository import ModelConfig, python_parameters, write_local_repository
from pipelines.serving.triton import TritonServer
from policies.promotion import (
    DEFAULT,
    FAIL,
    LOWER,
    PASS,
    UPPER,
    LatencyWindow,
    analysis_checks,
    bound_query,
    burn_min_requests,
    burn_verdict,
    error_llr,
    error_verdict,
    latency_verdict,
    latency_verdict_query,
    quantile_bound,
    selector,
    triton_metrics_args,
)
from tests.prometheus import PrometheusServer, running_prometheus, scrape_job
from tests.system import require_binary
from tests.triton_helpers import require_triton, tiny_mlp

pytestmark = pytest.mark.slow

STACK = "prod-uae"
IN, OUT, DIM = "features__0", "probability__0", 4
POISON = 1e6
"""A feature value the canary refuses (raises inside the model: a counted backend failure)."""
CANARY_DELAY_MS = 10.0
"""The canary's deliberate extra latency: far past max(1.5 x, + 1 ms) of the stable p99."""
CANARY_INSTANCES = 4
"""Model instances of the canary, so its sleep does not throttle the traffic."""
REQUESTS = {"stable": 6000, "canary": 2400}
"""Enough for the bounds: the stable window makes level 0.996 a valid upper bound (so a busy
host's rarest hiccups stay out of it), the canary's level 0.98 a valid lower bound."""
CLIENTS = {"stable": 2, "canary": CANARY_INSTANCES}
"""Client threads per role, each role on its own pool so the slow canary does not hold back the
stable traffic; two for the stable variant on this 2-core host keep its tail flat."""
POISONED = 48
"""Canary requests with a poisoned row: 2 %, so the error SPRT's LLR ends far past its FAIL
boundary (48 ln 4 - 2352 x 0.0152 = 30.8 >= 4.6)."""
REL_TOL = 1e-9
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
ANALYSIS = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"


# --- the cluster's side, from the synth record --------------------------------------------------
@dataclass(frozen=True)
class ClusterAnalysis:
    """What the program declares for the first served model of :data:`STACK`."""

    model: str
    variants: dict[str, str]
    """Role (``stable``/``canary``) -> the pod label value the Rollout sets."""
    variant_label: str
    """The series label the ServiceMonitor copies the pod label into."""
    pod_label_meta: str
    """The Kubernetes SD meta label the ServiceMonitor reads it from."""
    queries: dict[str, str]
    """AnalysisTemplate metric name -> PromQL."""
    success: dict[str, str]
    """AnalysisTemplate metric name -> success condition (PASS)."""
    failure: dict[str, str]
    """AnalysisTemplate metric name -> failure condition (FAIL)."""
    consecutive: dict[str, int]
    """AnalysisTemplate metric name -> consecutiveSuccessLimit."""


def cluster_analysis(record: dict[str, Any]) -> ClusterAnalysis:
    """The rollout, its analysis and Triton's ServiceMonitor, read from a synth record."""
    model = record["config"]["served_models"][0][0]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in record["resources"]:
        by_type.setdefault(r["type"], []).append(r["inputs"])
    (rollout,) = [r for r in by_type[ROLLOUT] if r["metadata"]["name"] == f"triton-{model}"]
    canary = rollout["spec"]["strategy"]["canary"]
    variants = {
        role: canary[f"{role}Metadata"]["labels"]["sovereign-ml/variant"]
        for role in ("stable", "canary")
    }
    (template,) = [
        a for a in by_type[ANALYSIS] if a["metadata"]["name"] == f"triton-{model}-promotion"
    ]
    metrics = template["spec"]["metrics"]
    (monitor,) = [m for m in by_type[MONITOR] if m["metadata"]["name"] == "triton"]
    (relabel,) = monitor["spec"]["endpoints"][0]["relabelings"]
    (meta,) = relabel["sourceLabels"]
    return ClusterAnalysis(
        model=model,
        variants=variants,
        variant_label=relabel["targetLabel"],
        pod_label_meta=meta,
        queries={m["name"]: m["provider"]["prometheus"]["query"] for m in metrics},
        success={m["name"]: m["successCondition"] for m in metrics},
        failure={m["name"]: m["failureCondition"] for m in metrics},
        consecutive={m["name"]: m["consecutiveSuccessLimit"] for m in metrics},
    )


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


@dataclass(frozen=True)
class Emulation:
    """What the local setup reproduces of the cluster, derived from the stack config and
    :func:`selector` rather than from the record, which must agree with it
    (:func:`test_the_record_queries_are_built_by_policies_promotion`)."""

    model: str
    """The stack's first served model (from its config)."""
    variants: dict[str, str]
    """Role -> variant label value, as the Rollout's stable/canary metadata set them."""
    variant_label: str
    """The label the analysis queries select a variant by (read from :func:`selector`)."""

    def selector(self, role: str) -> str:
        """The cluster's selector of one role's series."""
        return selector(self.model, self.variants[role])


def emulation() -> Emulation:
    """The model of :data:`STACK` and the variant label the queries use."""
    cfg, _raw, _secrets = load_stack(STACK)
    marker = "variant-value"
    (label,) = [k for k, v in re.findall(r'(\w+)="([^"]*)"', selector("m", marker)) if v == marker]
    return Emulation(cfg.served_models[0][0], {"stable": "stable", "canary": "canary"}, label)


# --- the local side: Triton and its repository ---------------------------------------------------
def guarded_mlp(path: Path, seed: int) -> Path:
    """A tiny MLP that raises on any feature >= :data:`POISON` (TorchScript, for the twin)."""
    import torch
    from torch import nn

    class Guarded(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.poison = POISON  # an attribute: TorchScript does not close over globals

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool((x >= self.poison).any()):
                raise RuntimeError("poisoned row")
            return self.inner(x)

    plain = tiny_mlp(path.with_suffix(".inner.pt"), seed=seed, in_dim=DIM)
    with warnings.catch_warnings():
        # torch >= 2.13 deprecates torch.jit; the local twin still serves TorchScript.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Guarded(torch.jit.load(str(plain)))).save(str(path))
    return path


def local_name(model: str, variant: str) -> str:
    """The local model name of one variant (one Triton serves both, as ``sovml abtest`` does)."""
    return f"{model}-{variant}"


def scrape_config(target: str, local: Emulation) -> dict[str, Any]:
    """Triton's scrape job, relabelled to the labels the cluster's series carry.

    On the cluster both variants are pods of one Rollout serving one model name; the Rollout
    labels them ``sovereign-ml/variant`` (``stableMetadata`` / ``canaryMetadata``) and the
    ServiceMonitor copies that pod label (``__meta_kubernetes_pod_label_sovereign_ml_variant``)
    onto every series as ``variant``. There is no Kubernetes service discovery here and one
    Triton serves both variants under two model names, so ``metric_relabel_configs`` rebuild the
    same labels from the model name: ``model="<m>-canary"`` becomes ``model="<m>"`` with
    ``variant="canary"``. The queries then select exactly what they select on the cluster (one
    target: the per-pod grouping sees one pod per variant).
    """
    names = "|".join(re.escape(v) for v in local.variants.values())
    pattern = f"({re.escape(local.model)})-({names})"
    return scrape_job(
        "triton",
        [target],
        interval="1s",
        metric_relabel_configs=[
            {
                "source_labels": ["model"],
                "regex": pattern,
                "target_label": local.variant_label,
                "replacement": "$2",
            },
            {"source_labels": ["model"], "regex": pattern, "target_label": "model",
             "replacement": "$1"},
        ],
    )  # fmt: skip


def per_variant(server: TritonServer, local: Emulation) -> dict[str, ModelMetrics]:
    """Triton's metrics as ``sovml abtest`` reads them (:func:`scrape`), keyed by role."""
    parsed = scrape(server.metrics_url)
    return {role: parsed[local_name(local.model, v)] for role, v in local.variants.items()}


def window(metrics: ModelMetrics) -> LatencyWindow:
    """A role's latency window as the local run builds it; every request since the pre-traffic
    scrape (count 0) is in it, as in Prometheus' offset difference."""
    return LatencyWindow(dict(metrics.quantiles_us), metrics.summary_count)


@dataclass
class Observation:
    """Everything measured once per module: both deciders' inputs and outputs."""

    setup: Emulation
    cluster: ClusterAnalysis
    server: TritonServer
    prom: PrometheusServer
    at: float
    """The instant every query is evaluated at."""
    local: dict[str, ModelMetrics]
    """Triton's metrics per role after the traffic (cumulative since load)."""
    local_after_queries: dict[str, ModelMetrics]
    client_errors: dict[str, int]
    client_requests: dict[str, int]
    promql: dict[str, float]
    """AnalysisTemplate metric name -> value Prometheus returned for its query."""
    request_rate: float
    scrape_labels: dict[str, str]

    def query(self, expr: str) -> Any:
        """``expr`` evaluated at :attr:`at`."""
        return self.prom.query(expr, self.at)

    def value(self, expr: str) -> float:
        """The one value of ``expr`` at :attr:`at`."""
        return self.prom.query_value(expr, self.at)


def _send(server: TritonServer, clients: int, jobs: list[Job]) -> list[Outcome]:
    """``jobs`` through ``clients`` gRPC clients of their own."""
    with InferClients("grpc", server.grpc_url, clients, IN, OUT) as pool:
        return run_jobs(pool, jobs)


def _counted(server: TritonServer, setup: Emulation, sent: dict[str, int]) -> bool:
    """True once Triton's counters include every request sent (they update on release, which
    can trail the response the client already has)."""
    now = per_variant(server, setup)
    return all(now[role].requests == sent[role] for role in sent)


@pytest.fixture(scope="module")
def observation(
    tmp_path_factory: pytest.TempPathFactory, stack_records: dict[str, dict[str, Any]]
) -> Iterator[Observation]:
    require_triton()
    require_binary("prometheus")
    root = tmp_path_factory.mktemp("analysis")
    setup = emulation()
    repo = root / "repository"
    builds = {
        "stable": (tiny_mlp(root / "stable.pt", seed=1, in_dim=DIM), 0.0, 1),
        "canary": (guarded_mlp(root / "canary.pt", seed=2), CANARY_DELAY_MS, CANARY_INSTANCES),
    }
    for role, (script, delay_ms, instances) in builds.items():
        config = ModelConfig(
            local_name(setup.model, setup.variants[role]),
            "python",
            IN,
            DIM,
            OUT,
            1,
            # No dynamic batching: each request is one execution, so a poisoned row fails
            # only its own request.
            max_batch_size=8,
            dynamic_batching=False,
            instance_count=instances,
            parameters=python_parameters(delay_ms=delay_ms),
        )
        write_local_repository(script, repo, config)
    models = [local_name(setup.model, v) for v in setup.variants.values()]
    with (
        TritonServer(repo, models, extra_args=triton_metrics_args()) as server,
        running_prometheus(
            [scrape_config(f"127.0.0.1:{server.metrics_port}", setup)], interval="1s"
        ) as prom,
    ):
        # The queries come from the stack's synth record (shared by the session).
        cluster = cluster_analysis(stack_records[STACK])
        yield _observe(setup, cluster, server, prom)


def _observe(
    setup: Emulation, cluster: ClusterAnalysis, server: TritonServer, prom: PrometheusServer
) -> Observation:
    """Scrapes before any traffic for longer than the window offset, the traffic, a scrape after
    it, then both deciders' numbers at one instant."""
    offset = DEFAULT.window_offset_s
    success = f'nv_inference_request_success{{model="{setup.model}"}}'
    # 1. Samples before any traffic, older than the offset once the queries run.
    before = prom.wait_for_samples(success, count=len(setup.variants))
    assert all(value == 0 for _, value in before), before
    first = time.time()
    prom.wait_until(lambda: time.time() > first + offset + 2, "scrapes older than the offset", 60)

    # 2. Traffic through the client sovml abtest uses, both roles at once, each on its own
    # clients; poisoned rows spread over the canary's.
    rng = np.random.default_rng(0)
    jobs: dict[str, list[Job]] = {}
    for role, count in REQUESTS.items():
        name = local_name(setup.model, setup.variants[role])
        rows = rng.normal(size=(count, 1, DIM)).astype(np.float32)
        if role == "canary":
            rows[:: count // POISONED, 0, 0] = POISON
        jobs[role] = [Job(name, r) for r in rows]
    started = time.time()
    with ThreadPoolExecutor(len(jobs)) as pool:
        sent = {role: pool.submit(_send, server, CLIENTS[role], js) for role, js in jobs.items()}
        outcomes = {role: future.result() for role, future in sent.items()}
    client_errors = {role: sum(not o.ok for o in outs) for role, outs in outcomes.items()}
    assert all(o.sent for outs in outcomes.values() for o in outs)
    prom.wait_until(lambda: _counted(server, setup, REQUESTS), "Triton counting every request")

    # 3. What sovml abtest reads, then a Prometheus scrape that started after it.
    local = per_variant(server, setup)
    counted_at = time.time()
    prom.wait_until(
        lambda: prom.last_scrape_after(success, counted_at), "a scrape after the traffic", 10
    )

    # 4. The AnalysisTemplate's queries (the record's strings), all evaluated at one instant,
    # whose offset sample precedes the traffic.
    at = time.time()
    assert at - offset < started, f"the traffic took {at - started:.0f}s, past the {offset}s offset"
    observation = Observation(
        setup=setup,
        cluster=cluster,
        server=server,
        prom=prom,
        at=at,
        local=local,
        local_after_queries={},
        client_errors=client_errors,
        client_requests=dict(REQUESTS),
        promql={name: prom.query_value(q, at) for name, q in cluster.queries.items()},
        request_rate=prom.query_value(request_rate_query(setup.model), at),
        scrape_labels=before[0][0],
    )
    observation.local_after_queries = per_variant(server, setup)
    return observation


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
    """The template's error SPRT statistic from Triton's counters equals the local LLR from the
    client's counts, and both FAIL the canary; the same query on the stable series PASSes."""
    obs, c = observation, observation.cluster
    failures = obs.client_errors["canary"]
    local_llr = error_llr(DEFAULT, failures, obs.client_requests["canary"] - failures)
    got = obs.promql["error-rate-sprt"]
    assert math.isclose(got, local_llr, rel_tol=REL_TOL), (got, local_llr)
    assert argo_verdict("error-rate-sprt", c, got) == error_verdict(DEFAULT, local_llr) == FAIL
    stable_query = c.queries["error-rate-sprt"].replace(
        obs.setup.selector("canary"), obs.setup.selector("stable")
    )
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
        obs.setup.selector("canary"), obs.setup.selector("stable")
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
    after = obs.local_after_queries
    assert {r: after[r].quantiles_us for r in after} == {
        r: obs.local[r].quantiles_us for r in local
    }
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
    """A limit of the cluster's error guard: Triton 2.51 counts only requests that reached
    scheduling, so a malformed request (refused with 400) moves neither counter, while the
    local decision counts it as a client-side error. This pins that behaviour; runs last."""
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
