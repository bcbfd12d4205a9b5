"""Dashboards as code: the SDK JSON round-trips; every panel query runs on a real Prometheus.

The scrape target is a small local exporter, not a real Triton (which
``tests/test_prometheus_analysis.py`` starts, at the cost of a model repository and traffic): it
writes the series names and labels the cluster's Prometheus holds, as Triton 2.51, Feast's
``--metrics`` process gauges and the drift jobs' pushes export them, with counters that grow
with time so every ``rate`` has two samples. The monitoring component's own rule groups are
loaded, so the panels reading recorded SLO series read what the cluster records.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from components._dashboards import DATASOURCE, dashboards, panel_queries, to_json
from components.dashboards import SIDECAR_LABEL, Dashboards, DashboardsArgs
from components.monitoring import alert_rules, grafana_values
from policies.rules import Context, evaluate
from policies.rules.helm_charts import helm_pods
from policies.rules.kubernetes import _read_only, _restricted
from tests.component_mocks import children_named_after, of_type, record
from tests.policy_fixtures import _ns, _prom
from tests.prometheus import PrometheusServer, running_prometheus, scrape_job
from tests.promtool_rules import monitoring_args, write_rules

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

MODEL = "credit-risk"
VARIANTS = {"stable": (9, 0), "canary": (3, 1)}
"""Per variant: successes and failures per second."""


def _exposition(path: str, elapsed: float) -> str:
    """The exposition text of one endpoint (``/triton``, ``/feast``, ``/drift``)."""
    lines: list[str] = []
    if path == "/triton":
        for variant, (ok, failed) in VARIANTS.items():
            labels = f'model="{MODEL}",version="1",variant="{variant}"'
            n = int(elapsed * ok) + 1
            lines += [
                f"nv_inference_request_success{{{labels}}} {n}",
                f"nv_inference_request_failure{{{labels}}} {int(elapsed * failed)}",
                f"nv_inference_count{{{labels}}} {4 * n}",
                f"nv_inference_exec_count{{{labels}}} {n}",
                f'nv_inference_request_summary_us{{{labels},quantile="0.5"}} 1500',
                f'nv_inference_request_summary_us{{{labels},quantile="0.99"}} 9000',
                f"nv_inference_request_summary_us_count{{{labels}}} {n}",
            ]
    elif path == "/feast":
        lines += [
            f"process_cpu_seconds_total {elapsed / 10:.3f}",
            "process_resident_memory_bytes 123456789",
        ]
    elif path == "/drift":
        for feature, psi in (("income", 0.05), ("age", 0.31)):
            lines.append(f'sovml_drift_psi{{model="{MODEL}",feature="{feature}"}} {psi}')
    return "\n".join(lines) + "\n"


class _Exporter(BaseHTTPRequestHandler):
    started = time.monotonic()

    def do_GET(self) -> None:
        body = _exposition(self.path, time.monotonic() - self.started).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet: the test output is pytest's."""


def _job(name: str, target: str, **labels: str) -> dict:
    job = scrape_job(name, [target], labels=labels or None)
    job["metrics_path"] = f"/{name}"
    job["honor_labels"] = True  # the drift series come through a pushgateway on the cluster
    return job


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"127.0.0.1:{server.server_address[1]}"
    rules = write_rules(
        tmp_path_factory.mktemp("rules") / "rules.yaml",
        alert_rules(monitoring_args(drift_threshold=THRESHOLD)),
    )
    jobs = [
        _job("triton", target, namespace="serving"),
        _job("feast", target, namespace="feature-store", service="feast"),
        _job("drift", target),
    ]
    jobs[1]["metrics_path"], jobs[1]["job_name"] = "/feast", "feast"
    try:
        with running_prometheus(jobs, rule_files=[rules]) as running:
            # Two scrapes of every counter, then one rule evaluation over them.
            running.wait_for_samples("rate(nv_inference_request_success[5m]) > 0", count=2)
            # One recorded ratio per SLO: availability and latency of the model, the feature server.
            running.wait_for_samples("slo:sli_error:ratio_rate1h", count=3)
            yield running
    finally:
        server.shutdown()


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
    assert {(u, t) for u, t, _ in PANELS} >= PARSE_ONLY, "a parse-only panel no longer exists"


@pytest.mark.parametrize(("uid", "title", "expr"), PANELS, ids=[f"{u}:{t}" for u, t, _ in PANELS])
def test_panel_query_runs_on_real_prometheus(
    prom: PrometheusServer, uid: str, title: str, expr: str
) -> None:
    result = prom.query(expr)  # raises PrometheusQueryError unless status is success
    assert isinstance(result, list), f"{uid}/{title}: not an instant vector: {result!r}"
    if (uid, title) in PARSE_ONLY:
        return
    assert result, f"{uid}/{title}: no series for {expr!r}"


def test_serving_panels_split_by_variant_and_shares_sum_to_one(prom: PrometheusServer) -> None:
    doc = _documents()["sovml-serving"]
    queries = dict(panel_queries(doc))
    share = prom.query(queries["Traffic share (observed canary weight)"][0])
    assert isinstance(share, list)
    assert sorted(labels["variant"] for labels, _ in share) == ["canary", "stable"]
    assert sum(v for _, v in share) == pytest.approx(1.0, rel=1e-6)
    batch = prom.query(queries["Batch size"][0])
    assert [v for _, v in batch] == pytest.approx([4.0, 4.0], rel=0.05)  # type: ignore[misc]
    p99 = prom.query(queries["p99 latency"][0])
    assert [v for _, v in p99] == [9.0, 9.0]  # type: ignore[misc]


def test_drift_threshold_panel_counts_the_drifted_feature(prom: PrometheusServer) -> None:
    queries = dict(panel_queries(_documents()["sovml-drift"]))
    assert prom.query(queries["Features over the threshold"][0]) == [({"model": MODEL}, 1.0)]


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
