"""One real Triton, one real Prometheus and the traffic between them, shared by a test session.

``tests/test_prometheus_analysis.py`` compares the cluster's canary analysis with the local
``sovml abtest`` on this traffic; ``tests/test_dashboards.py`` evaluates every dashboard panel
on the same Prometheus. Starting Triton, loading two models and sending ~8 400 requests takes
most of a minute, so ``tests/conftest.py`` does it once per session (fixture ``traffic``).

Besides Triton's scrape (:func:`scrape_config`), the Prometheus loads the monitoring
component's rule groups for :data:`STACK` (recording rules and alerts, as the cluster's
PrometheusRule holds them) and scrapes :mod:`tests.synthetic_exporter` for the series no
process here produces for real (see there). Neither touches Triton's series, which the analysis
queries read.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.monitoring import alert_rules
from components.serving import request_rate_query
from infra.config.stackfile import load_stack
from pipelines.serving.load import InferClients, Job, Outcome, run_jobs
from pipelines.serving.metrics import ModelMetrics, scrape
from pipelines.serving.repository import ModelConfig, python_parameters, write_local_repository
from pipelines.serving.triton import TritonServer
from policies.promotion import DEFAULT, LatencyWindow, selector, triton_metrics_args
from tests.prometheus import PrometheusServer, running_prometheus, scrape_job
from tests.promtool_rules import stack_args, write_rules
from tests.synthetic_exporter import exporter_jobs, running_exporter, set_mesh_traffic
from tests.system import require_binary
from tests.triton_helpers import require_triton, tiny_mlp

STACK = "prod-uae"
IN, OUT, DIM = "features__0", "probability__0", 4
POISON = 1e6
"""A feature value the canary refuses (raises inside the model: a counted backend failure)."""
CANARY_DELAY_MS = 50.0
"""The canary's deliberate extra latency. The sleep is a floor under every canary latency, so
the canary FAILs while the stable upper bound (its ~p99.6) stays under 50 / 1.5 = 33 ms. A 10 ms
delay was not enough on a loaded CI host: the stable p99 reached 14.5 ms and the verdict was
UNDECIDED. Idle here the stable p99.6 is 5-10 ms."""
CANARY_INSTANCES = 12
"""Model instances of the canary, so its sleep does not throttle the traffic: 2400 requests
through 12 take ~11 s here (a Python-backend stub each, ~150 MB PSS)."""
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


@contextlib.contextmanager
def observed_traffic(root: Path, record: dict[str, Any]) -> Iterator[Observation]:
    """Triton serving both variants, Prometheus scraping it (and the synthetic exporter) with
    the rules of ``record`` (:data:`STACK`'s synth record) loaded, the traffic sent and measured.
    """
    require_triton()
    require_binary("prometheus")
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
    # The cluster's PrometheusRule spec for this stack, so recorded SLO series come from Triton.
    rules = write_rules(root / "rules.yaml", alert_rules(stack_args(record)))
    with (
        running_exporter() as exporter,
        TritonServer(repo, models, extra_args=triton_metrics_args()) as server,
        running_prometheus(
            [scrape_config(f"127.0.0.1:{server.metrics_port}", setup), *exporter_jobs(exporter)],
            rule_files=[rules],
            interval="1s",
        ) as prom,
    ):
        # The queries come from the stack's synth record (shared by the session).
        yield _observe(setup, cluster_analysis(record), server, prom)


PRE_TRAFFIC_S = 8.0
"""Seconds of scrapes (all 0) before the traffic. The queries' instant must lie in
(first scrape + offset, traffic start + offset): its offset sample then is one of these. The
rest of the offset is waited out after the traffic, so the reads after it (one try of
:func:`_bracketed_read` takes ~1.5 s) have this long. Waiting the whole offset before the
traffic, as before, cost the traffic's duration again (~12 s)."""
SAME_WINDOW_TRIES = 5
"""Reads of Triton's window around a scrape before giving up (one read pair fails only when the
summary moved to its next age bucket between them)."""


def _bracketed_read(
    server: TritonServer,
    setup: Emulation,
    prom: PrometheusServer,
    success: str,
    counted_at: float,
) -> tuple[dict[str, ModelMetrics], float]:
    """Triton's metrics as ``sovml abtest`` reads them, and an instant whose latest scrape holds
    the same window: every scrape a query at that instant can read started after one read and
    ended before a second, equal read.

    No request arrives after the traffic, yet the summary's quantiles still change when its
    sliding window moves to the next age bucket, which drops the observations older than that
    bucket (19694 -> 19340 us at level 0.998, seen on a loaded machine). The window only ever
    loses observations, so two equal reads hold the same window in between, and so does the
    scrape that ran between them. A move between the reads makes them differ: read again.
    """
    for _ in range(SAME_WINDOW_TRIES):
        before = per_variant(server, setup)
        read_at = time.time()
        prom.wait_until(
            lambda t=read_at: prom.last_scrape_after(success, t)
            and prom.last_scrape_after("istio_requests_total", counted_at),
            "a scrape after the traffic",
            10,
        )
        at = time.time()  # its latest scrape started after ``before``
        # Prometheus scrapes a target one scrape after another: once one started after ``at``,
        # every scrape the queries at ``at`` can read has read Triton, before the second read.
        prom.wait_until(
            lambda t=at: prom.last_scrape_after(success, t), "a scrape after the instant", 10
        )
        if per_variant(server, setup) == before:
            return before, at
    raise AssertionError(f"Triton's summary window moved in each of {SAME_WINDOW_TRIES} reads")


def _observe(
    setup: Emulation, cluster: ClusterAnalysis, server: TritonServer, prom: PrometheusServer
) -> Observation:
    """Scrapes before any traffic (:data:`PRE_TRAFFIC_S`), the traffic, scrapes until the first
    ones are older than the window offset, then both deciders' numbers at one instant."""
    offset = DEFAULT.window_offset_s
    success = f'nv_inference_request_success{{model="{setup.model}"}}'
    # 1. Samples before any traffic, the queries' offset samples once they run (the mesh's
    # synthetic counters too, at 0).
    zero = {v: (0, 0) for v in setup.variants.values()}
    set_mesh_traffic(setup.model, "serving", zero, refused=False)
    before = prom.wait_for_samples(success, count=len(setup.variants))
    assert all(value == 0 for _, value in before), before
    first = time.time()
    prom.wait_until(lambda: time.time() > first + PRE_TRAFFIC_S, "scrapes before the traffic", 30)

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
    # The queries' offset sample must exist: wait out the rest of the offset after the traffic
    # rather than before it (the instant must then come within PRE_TRAFFIC_S, see there).
    prom.wait_until(lambda: time.time() > first + offset + 1, "scrapes older than the offset", 60)

    # 3. The mesh's counts of the same outcomes (synthetic: no Envoy runs between these clients
    # and Triton), then what sovml abtest reads and a Prometheus scrape of the same window.
    set_mesh_traffic(
        setup.model,
        "serving",
        {
            setup.variants[role]: (REQUESTS[role] - client_errors[role], client_errors[role])
            for role in REQUESTS
        },
    )
    counted_at = time.time()
    local, at = _bracketed_read(server, setup, prom, success, counted_at)

    # 4. The AnalysisTemplate's queries (the record's strings), all evaluated at one instant,
    # whose offset sample precedes the traffic.
    assert first + offset < at < started + offset, (
        f"the instant is {at - started:.1f}s after the traffic started, {at - first:.1f}s after "
        f"the first scrape: both must be within the {offset}s offset (past it: the traffic or "
        "the reads after it were too slow)"
    )
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
