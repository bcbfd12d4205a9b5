"""The cluster's canary analysis and the local ``sovml abtest`` read the same numbers.

On the cluster, Argo Rollouts' ``AnalysisTemplate`` (``components/serving.py``) asks Prometheus
for the canary's error rate and its p99 latency relative to the stable pods, with PromQL built
by :mod:`policies.promotion`. Locally, ``sovml abtest`` decides from Triton's own ``/metrics``
(:mod:`pipelines.serving.metrics`) and client-side error counts, through
:func:`pipelines.serving.canary.decisions.guard_failures`. Here both run against one real Triton
server:

* Triton (``.venv-triton``) serves the two variants of the model the ``prod-uae`` stack serves,
  as two model names (as ``sovml abtest`` does): ``stable`` is a tiny seeded MLP, ``canary`` the
  same kind of model wrapped to raise on poisoned rows (a real backend failure, which Triton
  counts) and slowed by the local twin's ``DELAY_MS``.
* A real Prometheus scrapes Triton's metrics port every second and relabels the series the way
  the cluster's ServiceMonitor does (see :func:`scrape_config`).
* Inferences go to both variants through the client ``sovml abtest`` uses
  (:mod:`pipelines.serving.load`), a few of them poisoned on the canary.
* The exact query strings of the synthesized AnalysisTemplate are evaluated through the HTTP
  API and must equal, to 1e-9 relative, what :mod:`pipelines.serving.metrics` computes from the
  metrics text; the template's success conditions and the local guards must then agree.

Why the comparison is exact, not approximate: ``rate()`` needs two samples in its window, so
Prometheus must have scraped once before any traffic (every counter is then 0; Triton creates
them when the model loads) and once after the last request was counted. The queries' 5 minute
window then spans the server's whole life, its first sample is 0, and Prometheus does not
extrapolate a counter below zero, so every series of the one target gets the same end
extrapolation: the ratio of rates is exactly the ratio of the counters, i.e. failures over
requests since load, which is what ``triton_metrics`` reports. The p99 is a gauge (Triton's
summary over a sliding window of 60 s whose buckets hold at least the last 48 s), so the scrape
after the traffic reads the value ``/metrics`` showed, as long as no request arrives in between;
the test re-reads ``/metrics`` afterwards to prove it did not move. The 1 s scrape interval only
shortens the waits; nothing depends on when a scrape happens beyond those two.

A limit this module pins rather than hides: Triton 2.51 counts only requests that reached its
scheduler, so requests refused before (a malformed input: HTTP 400; also, measured by hand, a
full queue: 503 "Exceeds maximum queue size") are in neither counter. The cluster's error rate
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.serving import request_rate_query
from infra.config.stackfile import load_stack
from pipelines.serving.canary.decisions import guard_failures
from pipelines.serving.load import InferClients, Job, run_jobs
from pipelines.serving.metrics import ModelMetrics, scrape
from pipelines.serving.repository import ModelConfig, python_parameters, write_local_repository
from pipelines.serving.triton import TritonServer
from policies.promotion import (
    DEFAULT,
    accuracy_delta_query,
    error_rate_query,
    p99_latency_ratio_query,
    selector,
)
from tests.prometheus import PrometheusServer, running_prometheus, scrape_job
from tests.system import require_binary
from tests.triton_helpers import require_triton, tiny_mlp

pytestmark = pytest.mark.slow

STACK = "prod-uae"
IN, OUT, DIM = "features__0", "probability__0", 4
POISON = 1e6
"""A feature value the canary refuses (raises inside the model: a counted backend failure)."""
CANARY_DELAY_MS = 3.0
"""The canary's deliberate extra latency: its p99 lands well past 1.25 x the stable one."""
REQUESTS = {"stable": 60, "canary": 80}
POISONED = 4
"""Canary requests with a poisoned row: 4 / 80 = 5 %, past the 1 % error-rate guard."""
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
    conditions: dict[str, str]
    """AnalysisTemplate metric name -> success condition."""


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
        conditions={m["name"]: m["successCondition"] for m in metrics},
    )


def condition_holds(condition: str, value: float) -> bool:
    """An AnalysisTemplate ``successCondition`` of the form ``result[0] <op> <number>``."""
    match = re.fullmatch(r"result\[0\] (<=|>=|<|>) (-?[0-9.]+(?:e-?\d+)?)", condition)
    assert match, f"condition not understood by this test: {condition!r}"
    ops = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
    return bool(ops[match.group(1)](value, float(match.group(2))))


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
    ``variant="canary"``. The queries then select exactly what they select on the cluster.
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


@dataclass
class Observation:
    """Everything measured once per module: both deciders' inputs and outputs."""

    setup: Emulation
    cluster: ClusterAnalysis
    server: TritonServer
    local: dict[str, ModelMetrics]
    """Triton's metrics per role after the traffic (cumulative since load)."""
    local_after_queries: dict[str, ModelMetrics]
    client_errors: dict[str, int]
    client_requests: dict[str, int]
    promql: dict[str, float]
    """AnalysisTemplate metric name -> value Prometheus returned for its query."""
    stable_error_rate: float
    accuracy_delta: Any
    request_rate: float
    scrape_labels: dict[str, str]


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
        "stable": (tiny_mlp(root / "stable.pt", seed=1, in_dim=DIM), 0.0),
        "canary": (guarded_mlp(root / "canary.pt", seed=2), CANARY_DELAY_MS),
    }
    for role, (script, delay_ms) in builds.items():
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
            instance_count=1,
            parameters=python_parameters(delay_ms=delay_ms),
        )
        write_local_repository(script, repo, config)
    models = [local_name(setup.model, v) for v in setup.variants.values()]
    with (
        TritonServer(repo, models) as server,
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
    """Baseline scrape, traffic, a scrape after it, then both deciders' numbers."""
    success = f'nv_inference_request_success{{model="{setup.model}"}}'
    # 1. A scrape before any traffic: every counter's first sample in the window is 0.
    before = prom.wait_for_samples(success, count=len(setup.variants))
    assert all(value == 0 for _, value in before), before

    # 2. Traffic through the client sovml abtest uses; poisoned rows spread over the canary's.
    rng = np.random.default_rng(0)
    jobs: list[tuple[str, Job]] = []
    for role, count in REQUESTS.items():
        name = local_name(setup.model, setup.variants[role])
        for i in range(count):
            rows = rng.normal(size=(1, DIM)).astype(np.float32)
            if role == "canary" and i % (count // POISONED) == 0:
                rows[0, 0] = POISON
            jobs.append((role, Job(name, rows)))
    jobs = [jobs[i] for i in rng.permutation(len(jobs))]
    with InferClients("grpc", server.grpc_url, 2, IN, OUT) as clients:
        outcomes = run_jobs(clients, [job for _, job in jobs])
    client_errors = {role: 0 for role in REQUESTS}
    for (role, _), outcome in zip(jobs, outcomes, strict=True):
        assert outcome.sent
        client_errors[role] += not outcome.ok
    prom.wait_until(lambda: _counted(server, setup, REQUESTS), "Triton counting every request")

    # 3. What sovml abtest reads, then a Prometheus scrape that started after it.
    local = per_variant(server, setup)
    counted_at = time.time()
    prom.wait_until(
        lambda: prom.last_scrape_after(success, counted_at), "a scrape after the traffic", 10
    )

    # 4. The AnalysisTemplate's queries (the record's strings), all evaluated at one instant.
    at = time.time()
    promql = {
        name: prom.query_value(q, at)
        for name, q in cluster.queries.items()
        if name != "accuracy-delta"
    }
    stable = selector(setup.model, setup.variants["stable"])
    return Observation(
        setup=setup,
        cluster=cluster,
        server=server,
        local=local,
        local_after_queries=per_variant(server, setup),
        client_errors=client_errors,
        client_requests=dict(REQUESTS),
        promql=promql,
        stable_error_rate=prom.query_value(error_rate_query(stable), at),
        accuracy_delta=prom.query(cluster.queries["accuracy-delta"], at),
        request_rate=prom.query_value(request_rate_query(setup.model), at),
        scrape_labels=before[0][0],
    )


# --- tests ----------------------------------------------------------------------------------------
def test_the_record_queries_are_built_by_policies_promotion(observation: Observation) -> None:
    """The strings evaluated below are the synthesized template's, built by the same functions
    and thresholds the local decision uses, and the local emulation matches the record."""
    c, setup = observation.cluster, observation.setup
    assert (c.model, c.variants, c.variant_label) == (
        setup.model,
        setup.variants,
        setup.variant_label,
    ), "the Rollout or ServiceMonitor changed: update the emulation (scrape_config)"
    assert c.pod_label_meta == "__meta_kubernetes_pod_label_sovereign_ml_variant"
    canary = selector(c.model, c.variants["canary"])
    stable = selector(c.model, c.variants["stable"])
    assert c.queries == {
        "error-rate": error_rate_query(canary),
        "p99-latency-ratio": p99_latency_ratio_query(canary, stable),
        "accuracy-delta": accuracy_delta_query(canary, stable),
    }
    assert c.conditions["error-rate"] == f"result[0] <= {DEFAULT.max_error_rate}"
    assert c.conditions["p99-latency-ratio"] == f"result[0] <= {DEFAULT.max_p99_latency_ratio}"


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


def test_error_rate_query_equals_the_local_error_rate(observation: Observation) -> None:
    local = observation.local
    canary = local["canary"].failure / local["canary"].requests
    client = observation.client_errors["canary"] / observation.client_requests["canary"]
    assert canary == client == POISONED / REQUESTS["canary"]
    assert math.isclose(observation.promql["error-rate"], canary, rel_tol=REL_TOL), (
        observation.promql["error-rate"],
        canary,
    )
    assert observation.stable_error_rate == 0.0


def test_p99_ratio_query_equals_the_local_ratio(observation: Observation) -> None:
    local = observation.local
    p99_ms = {role: local[role].quantile_us(0.99) / 1000 for role in local}
    assert all(math.isfinite(v) and v > 0 for v in p99_ms.values()), p99_ms
    # As sovml abtest divides (pipelines/serving/canary/decisions.py guard_failures).
    ratio = p99_ms["canary"] / max(p99_ms["stable"], 1e-6)
    got = observation.promql["p99-latency-ratio"]
    assert math.isclose(got, ratio, rel_tol=REL_TOL), (got, ratio, p99_ms)
    assert p99_ms["canary"] >= CANARY_DELAY_MS, "the canary's delay shows in Triton's p99"
    after = observation.local_after_queries
    assert {r: after[r].quantiles_us for r in after} == {r: local[r].quantiles_us for r in local}


def test_both_deciders_reach_the_same_verdict(observation: Observation) -> None:
    """The template's success conditions on Prometheus' answers and the local guards on
    Triton's metrics fail the same guards: the canary is rolled back by both."""
    c, local = observation.cluster, observation.local
    cluster_failed = {
        name
        for name, value in observation.promql.items()
        if not condition_holds(c.conditions[name], value)
    }
    guards = guard_failures(
        DEFAULT,
        observation.client_errors["canary"],
        observation.client_requests["canary"],
        local["stable"].quantile_us(0.99) / 1000,
        local["canary"].quantile_us(0.99) / 1000,
    )
    local_failed = {
        name
        for name, marker in (("error-rate", "error rate"), ("p99-latency-ratio", "p99 ratio"))
        if any(marker in g for g in guards)
    }
    assert cluster_failed == local_failed == {"error-rate", "p99-latency-ratio"}, guards


def test_other_queries_the_cluster_renders_are_valid_promql(observation: Observation) -> None:
    """The accuracy query selects a gauge only the monitoring job pushes (none here: an empty
    answer, not an error); KEDA's request rate sees the traffic of both variants."""
    assert observation.accuracy_delta == []
    assert observation.request_rate > 0


def test_requests_refused_before_the_model_are_not_triton_failures(
    observation: Observation,
) -> None:
    """A limit of the cluster's error-rate query: Triton 2.51 counts only requests that reached
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
