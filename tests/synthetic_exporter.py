"""The scrape targets no local process can be for real, served for the session's Prometheus.

``tests/triton_traffic.py`` adds two jobs to the Prometheus that scrapes the real Triton:

* ``feast`` (labels ``namespace="feature-store"``, ``service="feast"``, as the ServiceMonitor
  sets them): Feast's feature server with ``--metrics`` exposes ``prometheus_client``'s default
  registry, whose process collector writes ``process_cpu_seconds_total`` and
  ``process_resident_memory_bytes``. Running ``feast serve`` needs a feature repository and
  half a minute; this endpoint serves the same library's default registry of the test process
  instead, so the values are real process gauges, and ``up`` is Prometheus' own scrape result.
* ``drift``: the drift jobs push ``sovml_drift_psi{model, feature}`` to a pushgateway
  (``honor_labels``, as the cluster scrapes it). No pushgateway runs here, so the endpoint
  serves two fixed scores (:data:`PSI`) in the job's format (``pipelines.monitoring.drift_job``).

* ``feast`` also serves Feast 0.67's request latency histogram,
  ``feast_feature_server_request_latency_seconds{endpoint, feature_count, feature_view_count}``
  with Feast's own bucket bounds (``feast/metrics.py``): every scrape adds :data:`FEAST_PER_SCRAPE`
  requests of a fixed shape, so ``histogram_quantile`` has a known answer (:data:`FEAST_P50_MS`,
  :data:`FEAST_P99_MS`). The test process serves no Feast requests, so these are fixed series.
* ``argo-rollouts``: the Argo Rollouts controller's ``rollout_info`` and
  ``rollout_info_replicas_*`` gauges (names and labels as its ``metrics.go`` writes them) for a
  canary at 1 of 4 replicas (:data:`ROLLOUT_UPDATED` / :data:`ROLLOUT_DESIRED`).

* ``kube-state-metrics``: ``kube_pod_container_resource_requests`` and
  ``kube_pod_status_phase`` (kube-state-metrics v2's names and labels) for the pods of
  :data:`tests.tenant_cost.PODS`: two tenant namespaces with known requests, a finished pod and a
  platform pod. The cost-per-tenant recording rules of the stack price them; no kubelet or API
  server runs here, so these are fixed series.

* ``istio``: Istio's ``istio_requests_total`` as the model pods' sidecars (``reporter=
  "destination"``, with the ``variant`` label the scrape copies from the pod) and the inference
  gateway (``reporter="source"``) would count the session's Triton traffic: no Envoy sits between
  the test's clients and Triton, so :func:`set_mesh_traffic` writes the counts the clients
  observed (successes as 200, failures as 500) plus gateway refusals (401, 429) that the guards
  must ignore. The series are synthetic; the queries evaluated on them are the record's.

Series no process here can produce at all (DCGM GPU gauges, firing alerts) are not faked:
``tests/test_dashboards.py`` only checks that their queries parse and run.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from tests.prometheus import scrape_job
from tests.tenant_cost import ksm_series

MODEL = "credit-risk"
PSI = {"income": 0.05, "age": 0.31}
"""The drift scores served per feature of :data:`MODEL`."""


FEAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Feast 0.67's bucket bounds of ``feast_feature_server_request_latency_seconds``."""
FEAST_PER_SCRAPE = {0.005: 60, 0.01: 30, 0.025: 8, 0.25: 2}
"""Requests each scrape adds, by the bucket bound they fall under (100 in all). Neither rank
(50, 99) sits on a bucket's upper edge: there the answer would hang on the last bit of the rates'
floating-point values (rank 99 on the 25 ms edge read 100.00000000000233 ms once)."""
FEAST_P50_MS = 0.005 * 50 / 60 * 1000
"""histogram_quantile's p50: rank 50 of 100, in the first bucket, interpolated."""
FEAST_P99_MS = (0.1 + (99 - 98) / 2 * (0.25 - 0.1)) * 1000
"""Its p99: rank 99 lies halfway through the two requests of the (100 ms, 250 ms] bucket."""
ROLLOUT_UPDATED, ROLLOUT_DESIRED = 1, 4
_scrapes = {"feast": 0}
MESH_REFUSED = {"401": 7, "429": 3}
"""Gateway policy refusals per variant in the synthetic mesh series (never model failures)."""
_mesh: dict[str, dict[str, int]] = {}
"""Per variant label value: response code -> requests; empty until the traffic has run."""
_mesh_labels: dict[str, str] = {}


def set_mesh_traffic(
    model: str, namespace: str, outcomes: dict[str, tuple[int, int]], refused: bool = True
) -> None:
    """Serve ``istio_requests_total`` for ``outcomes``: variant -> (successes, failures), plus
    :data:`MESH_REFUSED` when ``refused``. Every series is set to 0 before the traffic, so that
    ``increase`` over a window sees the traffic (a counter first seen at its total would not)."""
    _mesh_labels.update(model=model, namespace=namespace)
    for variant, (ok, failed) in outcomes.items():
        extra = MESH_REFUSED if refused else {code: 0 for code in MESH_REFUSED}
        _mesh[variant] = {"200": ok, "500": failed, **extra}


def _istio() -> bytes:
    from policies.gateway_metrics import GATEWAY_NAMESPACE, GATEWAY_WORKLOAD, REQUESTS_METRIC

    lines = [f"# TYPE {REQUESTS_METRIC} counter"]
    model, ns = _mesh_labels.get("model", ""), _mesh_labels.get("namespace", "")
    source = f'source_workload="{GATEWAY_WORKLOAD}",source_workload_namespace="{GATEWAY_NAMESPACE}"'
    for variant, codes in _mesh.items():
        for code, n in codes.items():
            dest = (
                f'reporter="destination",{source},destination_canonical_service="triton-{model}",'
                f'destination_workload_namespace="{ns}",variant="{variant}",response_code="{code}"'
            )
            gw = (
                f'reporter="source",{source},destination_service_name="triton-{model}-{variant}",'
                f'destination_service_namespace="{ns}",response_code="{code}"'
            )
            lines += [f"{REQUESTS_METRIC}{{{dest}}} {n}", f"{REQUESTS_METRIC}{{{gw}}} {n}"]
    return ("\n".join(lines) + "\n").encode()


def _feast_latency() -> bytes:
    _scrapes["feast"] += 1
    n = _scrapes["feast"]
    name = "feast_feature_server_request_latency_seconds"
    labels = 'endpoint="/get-online-features",feature_count="3",feature_view_count="1"'
    lines = [f"# TYPE {name} histogram"]
    cumulative = 0
    for bound in (*FEAST_BUCKETS, "+Inf"):
        cumulative += FEAST_PER_SCRAPE.get(bound, 0) * n  # type: ignore[call-overload]
        lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
    lines.append(f"{name}_count{{{labels}}} {cumulative}")
    lines.append(f"{name}_sum{{{labels}}} {0.01 * cumulative}")
    return ("\n".join(lines) + "\n").encode()


def _rollouts() -> bytes:
    rollout = 'name="credit-risk",namespace="serving"'
    lines = [
        "# TYPE rollout_info gauge",
        f'rollout_info{{{rollout},phase="Paused",strategy="canary",traffic_router=""}} 1',
        "# TYPE rollout_info_replicas_desired gauge",
        f"rollout_info_replicas_desired{{{rollout}}} {ROLLOUT_DESIRED}",
        "# TYPE rollout_info_replicas_updated gauge",
        f"rollout_info_replicas_updated{{{rollout}}} {ROLLOUT_UPDATED}",
    ]
    return ("\n".join(lines) + "\n").encode()


def _drift() -> bytes:
    lines = ["# TYPE sovml_drift_psi gauge"]
    lines += [f'sovml_drift_psi{{model="{MODEL}",feature="{f}"}} {v}' for f, v in PSI.items()]
    return ("\n".join(lines) + "\n").encode()


def _kube_state_metrics() -> bytes:
    lines, typed = [], set()
    for metric, labels, value in ksm_series():
        if metric not in typed:
            typed.add(metric)
            lines.append(f"# TYPE {metric} gauge")
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{metric}{{{inner}}} {value!r}")
    return ("\n".join(lines) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/feast":
            body = generate_latest(REGISTRY) + _feast_latency()
        elif self.path == "/argo-rollouts":
            body = _rollouts()
        elif self.path == "/drift":
            body = _drift()
        elif self.path == "/kube-state-metrics":
            body = _kube_state_metrics()
        elif self.path == "/istio":
            body = _istio()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet: the test output is pytest's."""


class _ExporterServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scrape Prometheus gave up on (its timeout, on a loaded machine) closes the connection
        # while the handler writes: normal for an exporter, and socketserver's traceback would
        # land in whatever test holds sys.stderr at that moment (CliRunner's, say), failing it.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@contextlib.contextmanager
def running_exporter() -> Iterator[str]:
    """The exporter on a free loopback port, as ``host:port``."""
    server = _ExporterServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def exporter_jobs(target: str) -> list[dict[str, Any]]:
    """The ``feast``, ``drift``, ``argo-rollouts``, ``kube-state-metrics`` and ``istio`` scrape
    jobs of the exporter at ``target``."""
    feast = scrape_job("feast", [target], labels={"namespace": "feature-store", "service": "feast"})
    drift = scrape_job("drift", [target])
    rollouts = scrape_job("argo-rollouts", [target])
    ksm = scrape_job("kube-state-metrics", [target])
    feast["metrics_path"], drift["metrics_path"] = "/feast", "/drift"
    rollouts["metrics_path"], ksm["metrics_path"] = "/argo-rollouts", "/kube-state-metrics"
    drift["honor_labels"] = True  # the series come through a pushgateway on the cluster
    rollouts["honor_labels"] = True  # a PodMonitor would add pod labels, not replace these
    # kube-prometheus-stack scrapes kube-state-metrics with honorLabels: its namespace and pod
    # labels name the object described, not the exporter's own pod.
    ksm["honor_labels"] = True
    istio = scrape_job("istio", [target])
    istio["metrics_path"], istio["honor_labels"] = "/istio", True
    return [feast, drift, rollouts, ksm, istio]
