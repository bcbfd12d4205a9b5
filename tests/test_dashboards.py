"""Dashboards as code: the SDK JSON round-trips; every panel query runs on a real Prometheus.

The Prometheus is the one ``tests/test_prometheus_analysis.py`` compares the canary analysis on
(the session fixture ``traffic``, :mod:`tests.triton_traffic`): it scrapes a real Triton that
served both variants of ``prod-uae``'s model, 6000 requests to ``stable`` and 2400 to the slowed
``canary``, 48 of which failed inside the model, and it holds the monitoring component's rule
groups for that stack, so the SLO panels read ratios recorded from Triton's counters. Every
serving, platform and SLO panel must return series and, where the traffic fixes them, the
values it implies (traffic shares, error ratios, batch size, the canary's slower p99).

What is not real, and why (:mod:`tests.synthetic_exporter`): the feature server's process
gauges come from ``prometheus_client`` in the test process (the library Feast's ``--metrics``
serves) rather than from ``feast serve``; the drift scores are two fixed gauges, as no drift
job or pushgateway runs here. DCGM GPU gauges and firing alerts cannot exist in a test run
(:data:`PARSE_ONLY`): their queries must still run and answer a vector.
"""

from __future__ import annotations

import json

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from components._dashboards import DATASOURCE, dashboards, panel_queries, to_json
from components.dashboards import SIDECAR_LABEL, Dashboards, DashboardsArgs
from components.monitoring import grafana_values
from policies.rules import Context, evaluate
from policies.rules.helm_charts import helm_pods
from policies.rules.kubernetes import _read_only, _restricted
from tests.component_mocks import children_named_after, of_type, record
from tests.policy_fixtures import _ns, _prom
from tests.synthetic_exporter import (
    FEAST_P50_MS,
    FEAST_P99_MS,
    MODEL,
    PSI,
    ROLLOUT_DESIRED,
    ROLLOUT_UPDATED,
    _ExporterServer,
    _Handler,
)
from tests.tenant_cost import TENANTS, expected_hourly, record_unit_prices
from tests.triton_traffic import CANARY_DELAY_MS, STACK, Observation

THRESHOLD = 0.2
PARSE_ONLY = {
    # No GPU and no DCGM exporter on a test machine: these series cannot exist locally.
    ("sovml-gpu", "GPU utilisation"),
    ("sovml-gpu", "Framebuffer used"),
    ("sovml-gpu", "Power"),
    ("sovml-gpu", "Temperature"),
    # No alert reaches "firing" in the seconds this test runs (every rule has a `for`).
    ("sovml-platform", "Firing alerts"),
}
"""Panels whose metrics the local data cannot have: their queries must still parse."""
SYNTHETIC = {
    ("sovml-drift", "PSI per feature"),
    ("sovml-drift", "Features over the threshold"),
    ("sovml-serving", "Canary weight (updated / desired replicas)"),
    ("sovml-feature-store", "Request latency p50"),
    ("sovml-feature-store", "Request latency p99"),
    ("sovml-platform", "Cost per tenant (USD/h)"),
    ("sovml-platform", "Projected monthly cost per tenant"),
}
"""Panels over the fixed series of :mod:`tests.synthetic_exporter` (drift gauges, Argo Rollouts'
replica gauges, Feast's latency histogram, kube-state-metrics' requests of two tenants priced by
the stack's recorded cost rules); all other panels with
series read what the real Triton, Prometheus and a real ``prometheus_client`` exported."""
AVAILABILITY = 'slo:sli_error:ratio_rate1h{slo="model-availability"}'


@pytest.fixture(scope="module")
def board(traffic: Observation) -> tuple[Observation, float]:
    """The session's traffic and the instant to evaluate panels at: the first rule evaluation
    after the analysis queries' instant, so the recorded SLO ratios include the whole traffic
    (every panel then reads one consistent moment, seconds after the traffic)."""
    prom = traffic.prom
    stamps: list[float] = []

    def evaluated() -> bool:
        stamps[:] = [v for _, v in prom.query(f"timestamp({AVAILABILITY})")]  # type: ignore[misc]
        return bool(stamps) and min(stamps) > traffic.at

    prom.wait_until(evaluated, "a rule evaluation after the traffic", 15)
    return traffic, min(stamps)


def _documents() -> dict[str, dict]:
    return {uid: json.loads(to_json(d)) for uid, d in dashboards(THRESHOLD).items()}


PANELS = [
    (uid, title, expr)
    for uid, doc in _documents().items()
    for title, exprs in panel_queries(doc)
    for expr in exprs
]


def test_the_json_round_trips_through_the_sdk_model() -> None:
    for uid, board in dashboards(THRESHOLD).items():
        text = to_json(board)
        again = model.Dashboard.from_json(json.loads(text))
        assert json.dumps(again, cls=JSONEncoder, indent=2, sort_keys=True) + "\n" == text, uid
        assert again.uid == uid and again.panels, uid


def test_the_expected_dashboards_exist() -> None:
    assert sorted(_documents()) == [
        "sovml-drift",
        "sovml-feature-store",
        "sovml-gpu",
        "sovml-platform",
        "sovml-serving",
    ]


def test_every_panel_has_a_query_on_the_prometheus_data_source() -> None:
    for uid, doc in _documents().items():
        for panel in doc["panels"]:
            exprs = [t.get("expr") for t in panel.get("targets") or []]
            assert exprs and all(exprs), f"{uid}: panel {panel.get('title')!r} has no query"
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE.uid}, uid
    assert {(u, t) for u, t, _ in PANELS} >= PARSE_ONLY | SYNTHETIC, "a listed panel is gone"


@pytest.mark.slow
@pytest.mark.parametrize(("uid", "title", "expr"), PANELS, ids=[f"{u}:{t}" for u, t, _ in PANELS])
def test_panel_query_runs_on_real_prometheus(
    board: tuple[Observation, float], uid: str, title: str, expr: str
) -> None:
    obs, at = board
    result = obs.prom.query(expr, at)  # raises PrometheusQueryError unless status is success
    assert isinstance(result, list), f"{uid}/{title}: not an instant vector: {result!r}"
    if (uid, title) in PARSE_ONLY:
        return
    assert result, f"{uid}/{title}: no series for {expr!r}"


def _by_variant(board: tuple[Observation, float], panel: str) -> dict[str, float]:
    obs, at = board
    (expr,) = dict(panel_queries(_documents()["sovml-serving"]))[panel]
    result = obs.prom.query(expr, at)
    assert isinstance(result, list) and all(s["model"] == obs.setup.model for s, _ in result)
    return {labels["variant"]: value for labels, value in result}  # type: ignore[misc]


@pytest.mark.slow
def test_serving_panels_show_the_traffic_triton_served(board: tuple[Observation, float]) -> None:
    """Per variant, from Triton's counters: each variant's share of the requests, the canary's
    failed share (both counters' rates are extrapolated alike over one scrape, so the ratios are
    exact up to rounding), one inference per successful execution (no dynamic batching), and the
    canary's p99 above its deliberate delay and the stable one's."""
    obs = board[0]
    sent = obs.client_requests
    total = sum(sent.values())
    share = _by_variant(board, "Traffic share (observed canary weight)")
    assert share == pytest.approx({r: n / total for r, n in sent.items()}, rel=1e-9)
    rate = _by_variant(board, "Request rate")
    assert rate["stable"] / rate["canary"] == pytest.approx(sent["stable"] / sent["canary"])
    errors = _by_variant(board, "Error ratio")
    assert errors["stable"] == 0.0
    assert errors["canary"] == pytest.approx(obs.client_errors["canary"] / sent["canary"], rel=1e-9)
    # Triton counts the execution of a failed request but not its inference: the canary's
    # batch size is its success share (measured: 0.98), the stable variant's exactly 1.
    batch = {"stable": 1.0, "canary": 1 - obs.client_errors["canary"] / sent["canary"]}
    assert _by_variant(board, "Batch size") == pytest.approx(batch, rel=1e-9)
    p50, p99 = _by_variant(board, "p50 latency"), _by_variant(board, "p99 latency")
    assert p99["canary"] >= CANARY_DELAY_MS > p99["stable"], p99
    assert all(0 < p50[r] <= p99[r] for r in sent), (p50, p99)


@pytest.mark.slow
def test_platform_and_slo_panels_read_the_recorded_ratios(
    board: tuple[Observation, float],
) -> None:
    """The recorded availability SLO ratio (1h) is the failed share of all the model's
    requests; the feature server, scraped every second, has burnt nothing; every job is up."""
    obs, at = board
    queries = {
        (uid, title): exprs[0]
        for uid, doc in _documents().items()
        for title, exprs in panel_queries(doc)
    }
    up = obs.prom.query(queries["sovml-platform", "Targets up"], at)
    assert {s["job"]: v for s, v in up} == {
        "triton": 1.0,
        "feast": 1.0,
        "drift": 1.0,
        "argo-rollouts": 1.0,
        "kube-state-metrics": 1.0,
        "istio": 1.0,
    }  # type: ignore[misc]
    ratios = obs.prom.query(queries["sovml-platform", "SLO error ratio (1h)"], at)
    by_slo = {s["slo"]: v for s, v in ratios}  # type: ignore[misc]
    failed = obs.client_errors["canary"] / sum(obs.client_requests.values())
    assert by_slo["model-availability"] == pytest.approx(failed, rel=1e-9)
    assert by_slo["feature-server-availability"] == 0.0
    assert 0.0 <= by_slo["model-latency"] <= 1.0
    # No pipeline run wrote its outcome counter here: that SLO has no series (and no panel).
    assert set(by_slo) == {"model-availability", "model-latency", "feature-server-availability"}
    feast = obs.prom.query(
        queries["sovml-feature-store", "Feature server SLO error ratio (1h)"], at
    )
    assert [v for _, v in feast] == [0.0]  # type: ignore[misc]
    by_model = obs.prom.query(queries["sovml-platform", "Inference requests/s by model"], at)
    assert [s["model"] for s, v in by_model if v > 0] == [obs.setup.model]  # type: ignore[misc]


@pytest.mark.slow
def test_drift_threshold_panel_counts_the_drifted_feature(board: tuple[Observation, float]) -> None:
    obs, at = board
    queries = dict(panel_queries(_documents()["sovml-drift"]))
    over = sum(psi > THRESHOLD for psi in PSI.values())
    assert obs.prom.query(queries["Features over the threshold"][0], at) == [
        ({"model": MODEL}, over)
    ]


@pytest.mark.slow
def test_canary_weight_and_feature_latency_panels_read_their_sources(
    board: tuple[Observation, float],
) -> None:
    """The canary weight is the controller's updated / desired replicas; Feast's p50 and p99
    are what histogram_quantile makes of the exporter's fixed shape of requests."""
    obs, at = board
    serving = dict(panel_queries(_documents()["sovml-serving"]))
    (weight,) = obs.prom.query(serving["Canary weight (updated / desired replicas)"][0], at)
    assert weight == (
        {"namespace": "serving", "name": "credit-risk"},
        ROLLOUT_UPDATED / ROLLOUT_DESIRED,
    )
    features = dict(panel_queries(_documents()["sovml-feature-store"]))
    for title, expected in (("Request latency p50", FEAST_P50_MS), ("p99", FEAST_P99_MS)):
        key = title if title in features else f"Request latency {title}"
        ((labels, value),) = obs.prom.query(features[key][0], at)
        assert labels == {"endpoint": "/get-online-features"}
        assert value == pytest.approx(expected, rel=1e-9), key


@pytest.mark.slow
def test_cost_per_tenant_panels_price_the_tenants_requests(
    board: tuple[Observation, float], stack_records: dict[str, dict]
) -> None:
    """The session's Prometheus records the stack's cost rules over kube-state-metrics' series
    of :data:`tests.tenant_cost.PODS`: each tenant's running pods' requests at the unit prices
    the program derives for prod-uae (a GPU trainer with a sidecar and a CPU pod in one tenant,
    one CPU pod in the other); the finished pod and the platform pod cost nothing."""
    obs, at = board
    prices = record_unit_prices(stack_records[STACK]["config"])
    assert prices is not None and prices.gpu_hour == 1.032  # g5.2xlarge on demand, 1 GPU
    platform = dict(panel_queries(_documents()["sovml-platform"]))
    hourly = obs.prom.query(platform["Cost per tenant (USD/h)"][0], at)
    got = {s["namespace"]: v for s, v in hourly}  # type: ignore[misc]
    want = expected_hourly(prices)
    assert set(got) == set(TENANTS) and got == pytest.approx(want, rel=1e-12), got
    # Worked by hand from prod-uae's prices (c7i.2xlarge $0.428/h split 0.0421901/vCPU-h,
    # 0.00565497/GiB-h): 6.25 vCPU + 24.25 GiB + 1 GPU, and 1.5 vCPU + 6 GiB.
    assert got == pytest.approx(
        {"risk-analytics": 1.4328211475, "customer-insights": 0.09721497}, rel=1e-9
    )
    monthly = obs.prom.query(platform["Projected monthly cost per tenant"][0], at)
    assert {s["namespace"]: v for s, v in monthly} == pytest.approx(  # type: ignore[misc]
        {ns: v * 730 for ns, v in want.items()}, rel=1e-12
    )


def test_cost_panel_states_the_unit_prices_or_their_absence() -> None:
    prices = record_unit_prices(
        {
            "region": "me-central-1",
            "node_pools": [
                {"role": "workers", "gpu": False, "instance_types": ["m7i.xlarge"],
                 "capacity_type": "SPOT", "min_size": 0, "desired_size": 0, "max_size": 3,
                 "disk_gib": 50, "labels": [], "taints": []},
            ],
        }
    )  # fmt: skip
    assert prices is not None and prices.gpu_hour is None
    doc = json.loads(to_json(dashboards(THRESHOLD, prices)["sovml-platform"]))
    (panel,) = [p for p in doc["panels"] if p["title"] == "Cost per tenant (USD/h)"]
    assert f"${prices.cpu_core_hour:g} per vCPU-hour" in panel["description"]
    assert "per GPU-hour" not in panel["description"]
    basis = "workers m7i.xlarge SPOT $0.096/h; prices me-central-1 2025-06-01"
    assert basis in panel["description"]
    bare = json.loads(to_json(dashboards(THRESHOLD)["sovml-platform"]))
    (panel,) = [p for p in bare["panels"] if p["title"] == "Cost per tenant (USD/h)"]
    assert panel["description"].startswith("No unit prices for this stack")


def test_configmaps_are_labelled_for_the_sidecar_in_monitoring() -> None:
    res = record(lambda: Dashboards("dashboards", DashboardsArgs(namespace="monitoring")))
    maps = of_type(res, "kubernetes:core/v1:ConfigMap")
    assert len(maps) == len(_documents())
    key, value = SIDECAR_LABEL
    for cm in maps:
        meta = cm["inputs"]["metadata"]
        assert meta["namespace"] == "monitoring", cm["urn"]
        assert meta["labels"][key] == value, cm["urn"]
        (name, text), *rest = cm["inputs"]["data"].items()
        assert not rest and name.endswith(".json") and json.loads(text)["uid"], cm["urn"]
    children_named_after(res, "sovereign-ml:dashboards:Dashboards", "dashboards")


def test_component_refuses_a_bad_threshold() -> None:
    with pytest.raises(ValueError, match=r"DashboardsArgs.drift_threshold: 0; allowed \(0, 10\)"):
        Dashboards("dashboards", DashboardsArgs(namespace="monitoring", drift_threshold=0))


def _grafana(values: dict) -> tuple[list[str], list[str]]:
    """The Grafana pod the gate renders from a kube-prometheus-stack release with these values:
    SOV-K8S-007's findings on it, and the Pod Security 'restricted' problems of its spec
    (SOV-K8S-001's check, which the gate applies to workloads, not yet to chart pods)."""
    release = _prom(nodeExporter={"enabled": False}, grafana=values)
    host = [
        v.message
        for v in evaluate([_ns("monitoring"), release], Context())
        if v.rule_id == "SOV-K8S-007"
    ]
    (pod,) = [p for p in helm_pods(release) if p.pod.name == "grafana"]
    return host, _restricted(pod.spec) + _read_only(pod.spec)


def test_the_platforms_grafana_is_restricted_and_has_no_host_access() -> None:
    values = grafana_values()
    assert _grafana(values) == ([], [])
    assert values["admin"]["existingSecret"] == "grafana-admin" and "adminPassword" not in values
    assert values["grafana.ini"]["auth.anonymous"] == {"enabled": False}
    assert values["sidecar"]["dashboards"]["label"] == SIDECAR_LABEL[0]


def test_the_gate_judges_grafana_values() -> None:
    values = grafana_values()
    values["extraVolumes"] = [{"name": "h", "hostPath": {"path": "/var/log"}}]
    values["containerSecurityContext"] = {"runAsNonRoot": False}
    host, restricted = _grafana(values)
    assert len(host) == 1 and "pod grafana" in host[0] and "/var/log" in host[0], host
    assert "container grafana: set runAsNonRoot=true" in restricted, restricted
    assert any("readOnlyRootFilesystem" in m for m in restricted), restricted


@pytest.mark.parametrize("hangup", [BrokenPipeError, ConnectionResetError])
def test_the_exporter_is_quiet_when_a_scraper_hangs_up(
    hangup: type[ConnectionError], capsys: pytest.CaptureFixture[str]
) -> None:
    # The session's Prometheus scrapes this exporter all along; a scrape it gave up on must not
    # print a traceback into whichever test holds sys.stderr then. Other errors still print.
    server = _ExporterServer(("127.0.0.1", 0), _Handler)
    try:
        for error in (hangup(32, "the scraper hung up"), ValueError("a real bug")):
            try:
                raise error
            except Exception:
                server.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.server_close()
    err = capsys.readouterr().err
    assert "ValueError: a real bug" in err
    assert hangup.__name__ not in err
