"""A real Prometheus server (Debian's ``prometheus`` package) for tests that query PromQL for real.

Nothing is downloaded: the ``prometheus`` binary on PATH is started on a free loopback port with
a throw-away TSDB folder and a generated configuration (JSON, which is YAML), so the tests
evaluate the very query strings the cluster renders through the real query engine instead of
trusting that they parse. :func:`start_prometheus` / :func:`stop_prometheus` are plain functions;
:func:`running_prometheus` wraps them as a context manager. A missing binary skips locally and
fails under ``SOVML_REQUIRE_SERVERS=1`` (:func:`tests.system.require_binary`).

Usage in a test::

    with running_prometheus([scrape_job("triton", ["127.0.0.1:8002"])]) as prom:
        prom.wait_for_samples("up", count=1)
        value = prom.query_value("sum(up)")

Timing: Prometheus 2.42 hands discovered targets to the scrape manager on a fixed 5 s tick, so
the first scrape of a target comes about 5 s after start whatever ``scrape_interval`` says; after
that, scrapes follow the interval. Tests wait for samples (:meth:`PrometheusServer.wait_until`)
rather than sleep.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.system import free_port, require_binary, stop_process

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

Labels = dict[str, str]
VectorSample = tuple[Labels, float]
"""One element of an instant vector: the series' labels and its value."""
MatrixSeries = tuple[Labels, list[tuple[float, float]]]
"""One element of a range vector: labels and ``(unix seconds, value)`` samples."""


class PrometheusQueryError(RuntimeError):
    """The HTTP API answered with ``status: error`` (a bad expression, a timeout)."""


def scrape_job(
    name: str,
    targets: Sequence[str],
    *,
    interval: str = "1s",
    labels: Labels | None = None,
    metric_relabel_configs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One ``scrape_configs`` entry with static targets (``host:port``)."""
    static: dict[str, Any] = {"targets": list(targets)}
    if labels:
        static["labels"] = dict(labels)
    job: dict[str, Any] = {
        "job_name": name,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "static_configs": [static],
    }
    if metric_relabel_configs:
        job["metric_relabel_configs"] = [dict(r) for r in metric_relabel_configs]
    return job


def _value(text: str) -> float:
    """A sample value as the API writes it (a string; ``NaN`` and ``+Inf`` included)."""
    return float(text)


@dataclass
class PrometheusServer:
    """A running server: its URL, process, configuration and log."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    config_path: Path
    log_path: Path
    _log: Any = field(default=None, repr=False)

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server log (for failure messages)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raises PrometheusQueryError."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            # Bad expressions answer 400 with the same JSON envelope as a success.
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusQueryError(
                f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(
        self, expr: str, at: float | None = None
    ) -> float | list[VectorSample] | list[MatrixSeries]:
        """Evaluate ``expr`` at ``at`` (unix seconds; default now) with ``/api/v1/query``.

        Returns a float for a scalar, ``[(labels, value), ...]`` for an instant vector and
        ``[(labels, [(t, value), ...]), ...]`` for a range vector.
        """
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        kind, result = data["resultType"], data["result"]
        if kind in ("scalar", "string"):
            return _value(result[1])
        if kind == "vector":
            return [(dict(r["metric"]), _value(r["value"][1])) for r in result]
        return [
            (dict(r["metric"]), [(float(t), _value(v)) for t, v in r["values"]]) for r in result
        ]

    def query_value(self, expr: str, at: float | None = None) -> float:
        """The single value of ``expr`` (a scalar, or a vector of exactly one sample)."""
        result = self.query(expr, at)
        if isinstance(result, float):
            return result
        if len(result) != 1 or not isinstance(result[0][1], float):
            raise AssertionError(f"{expr!r}: expected one sample, got {result!r}")
        return result[0][1]

    def wait_until(
        self, check: Callable[[], bool], what: str, timeout_s: float = START_TIMEOUT_S
    ) -> None:
        """Poll ``check`` (10 Hz) until true; AssertionError naming ``what`` and the log if not."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited while waiting for {what}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"prometheus: no {what} after {timeout_s:.0f}s\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def wait_for_samples(
        self, expr: str, count: int = 1, timeout_s: float = START_TIMEOUT_S
    ) -> list[VectorSample]:
        """Wait until the instant vector ``expr`` has at least ``count`` samples; return them."""
        seen: list[VectorSample] = []

        def ready() -> bool:
            nonlocal seen
            result = self.query(expr)
            seen = result if isinstance(result, list) else []  # type: ignore[assignment]
            return len(seen) >= count

        self.wait_until(ready, f"{count} sample(s) of {expr!r}", timeout_s)
        return seen

    def last_scrape_after(self, expr: str, unix_s: float) -> bool:
        """True when every series of ``expr`` has a sample scraped after ``unix_s``.

        ``timestamp()`` is the scrape's start time, so a sample after ``unix_s`` holds what the
        target exported after that moment.
        """
        result = self.query(f"timestamp({expr})")
        return (
            isinstance(result, list)
            and bool(result)
            and all(isinstance(v, float) and not math.isnan(v) and v > unix_s for _, v in result)
        )


def write_config(
    path: Path,
    scrape_configs: Sequence[dict[str, Any]],
    *,
    rule_files: Sequence[str | Path] = (),
    interval: str = "1s",
) -> Path:
    """Write a ``prometheus.yml`` (as JSON, a subset of YAML) and return its path."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": list(scrape_configs),
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_prometheus(
    scrape_configs: Sequence[dict[str, Any]] = (),
    *,
    rule_files: Sequence[str | Path] = (),
    interval: str = "1s",
    binary: str | None = None,
    timeout_s: float = START_TIMEOUT_S,
    extra_args: Sequence[str] = (),
) -> PrometheusServer:
    """Start ``prometheus`` on a free 127.0.0.1 port; returns once ``/-/ready`` answers 200.
    ``extra_args`` go on its command line after the test defaults.

    Raises ``RuntimeError`` with the log's tail when it exits or is not ready in ``timeout_s``
    (a configuration Prometheus rejects ends up here, with its reason).
    """
    binary = binary or require_binary("prometheus")
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
    config = write_config(
        workdir / "prometheus.yml", scrape_configs, rule_files=rule_files, interval=interval
    )
    log_path = workdir / "prometheus.log"
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding
        address = f"127.0.0.1:{free_port()}"
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the server object, closed in stop
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={address}",
                # Nothing outlives the test; a short retention says so.
                "--storage.tsdb.retention.time=1h",
                "--log.level=info",
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,  # Ctrl-C in a terminal goes to pytest, which then stops us
        )
        server = PrometheusServer(f"http://{address}", proc, workdir, config, log_path, _log=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            if _ready(server.url):
                return server
            time.sleep(0.05)
        last_error = server.log_tail()
        stop_prometheus(server, remove_workdir=False)
        if "address already in use" not in last_error:
            break
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(f"prometheus did not become ready:\n{last_error}")


def stop_prometheus(server: PrometheusServer, *, remove_workdir: bool = True) -> None:
    """Stop the server: SIGTERM, wait, then SIGKILL if it lingers; remove its temp folder."""
    stop_process(server.process, STOP_TIMEOUT_S)
    if server._log is not None:
        server._log.close()
    if remove_workdir:
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextlib.contextmanager
def running_prometheus(
    scrape_configs: Sequence[dict[str, Any]] = (),
    *,
    rule_files: Sequence[str | Path] = (),
    interval: str = "1s",
) -> Iterator[PrometheusServer]:
    """Context manager around :func:`start_prometheus` / :func:`stop_prometheus`."""
    server = start_prometheus(scrape_configs, rule_files=rule_files, interval=interval)
    try:
        yield server
    finally:
        stop_prometheus(server)
