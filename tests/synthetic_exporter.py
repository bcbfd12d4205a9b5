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

Series no process here can produce at all (DCGM GPU gauges, firing alerts) are not faked:
``tests/test_dashboards.py`` only checks that their queries parse and run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from tests.prometheus import scrape_job

MODEL = "credit-risk"
PSI = {"income": 0.05, "age": 0.31}
"""The drift scores served per feature of :data:`MODEL`."""


def _drift() -> bytes:
    lines = ["# TYPE sovml_drift_psi gauge"]
    lines += [f'sovml_drift_psi{{model="{MODEL}",feature="{f}"}} {v}' for f, v in PSI.items()]
    return ("\n".join(lines) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/feast":
            body = generate_latest(REGISTRY)
        elif self.path == "/drift":
            body = _drift()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet: the test output is pytest's."""


@contextlib.contextmanager
def running_exporter() -> Iterator[str]:
    """The exporter on a free loopback port, as ``host:port``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def exporter_jobs(target: str) -> list[dict[str, Any]]:
    """The ``feast`` and ``drift`` scrape jobs of the exporter at ``target``."""
    feast = scrape_job("feast", [target], labels={"namespace": "feature-store", "service": "feast"})
    drift = scrape_job("drift", [target])
    feast["metrics_path"], drift["metrics_path"] = "/feast", "/drift"
    drift["honor_labels"] = True  # the series come through a pushgateway on the cluster
    return [feast, drift]
