"""A real Alertmanager (Debian's ``prometheus-alertmanager`` 0.25) for tests, and its API v2.

Like :mod:`tests.prometheus`: the binary on PATH starts on a free loopback port with a
throw-away data folder, clustering off; :func:`running_alertmanager` is a context manager. A
missing binary skips locally and fails under ``SOVML_REQUIRE_SERVERS=1``. Also here: a tiny
webhook receiver (:class:`WebhookRecorder`) that records every payload posted to it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.system import free_port, require_binary, stop_process

BINARY = "prometheus-alertmanager"
"""Debian's name for the ``alertmanager`` binary."""
START_TIMEOUT_S = 30.0


@dataclass
class AlertmanagerServer:
    """A running Alertmanager: its URL, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    _log: Any = field(default=None, repr=False)

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server log (for failure messages)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST ``/api/v2/alerts`` (each ``{"labels": ..., "annotations": ...}``)."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200, resp.status

    def alerts(self) -> list[dict[str, Any]]:
        """GET ``/api/v2/alerts``: every alert with its ``status`` (``inhibitedBy``...)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as resp:
            return list(json.loads(resp.read()))


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_alertmanager(config: dict[str, Any]) -> Iterator[AlertmanagerServer]:
    """Start Alertmanager with ``config`` on a free 127.0.0.1 port; stop it afterwards."""
    binary = require_binary(BINARY)
    workdir = Path(tempfile.mkdtemp(prefix="alertmanager-test-"))
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "alertmanager.log"
    address = f"127.0.0.1:{free_port()}"
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={address}",
            "--cluster.listen-address=",  # one instance: no gossip port to collide on
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        start_new_session=True,
    )
    server = AlertmanagerServer(f"http://{address}", proc, workdir, log_path, _log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(server.url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager did not become ready:\n{server.log_tail()}")
            time.sleep(0.05)
        yield server
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


class WebhookRecorder:
    """An HTTP server on a free loopback port recording every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                """Quiet: pytest shows failures, not request lines."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookRecorder:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


RESEND_EVERY_SECOND = "--rules.alert.resend-delay=1s"
"""A test Prometheus's flag: resend firing alerts every second (default: every minute), so an
alert that fired before :func:`alert_to`'s reload found the Alertmanager reaches it a second
after discovery."""


def alert_to(prometheus: Any, alertmanager: AlertmanagerServer) -> None:
    """Point a running test Prometheus (``tests.prometheus``) at ``alertmanager`` and reload it.

    ``tests.prometheus`` writes no alerting section: it is added here and read on SIGHUP.
    """
    import signal

    config = json.loads(prometheus.config_path.read_text())
    target = alertmanager.url.removeprefix("http://")
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    prometheus.config_path.write_text(json.dumps(config))
    prometheus.process.send_signal(signal.SIGHUP)
