"""Load benchmark of one model on the local Triton server: batch 1 vs dynamic batching.

Both configurations run in one invocation on the same model files: the model is reloaded through
Triton's model-control API with its own ``config.pbtxt`` minus ``dynamic_batching`` (every
request executed alone) and then with ``dynamic_batching`` (concurrent requests merged into one
execution, up to ``max_batch_size``, waiting at most ``max_queue_delay_us``). Clients always send
batch-1 requests, so the difference is the server-side batching alone.

Each configuration: N concurrent tritonclient clients (:mod:`pipelines.serving.load`, one thread
each), a bounded number of requests and a time bound, a short unmeasured warm-up, then
throughput, client-side p50/p95/p99 latency and the error count, plus what Triton's own counters
say over the run (average batch size formed, mean server request and queue time).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.serving.report import BENCH_REPORT, json_ready, write_json
from pipelines.serving.triton import Endpoints

CONFIGURATIONS = ("batch1", "dynamic")


@dataclass
class LoadResult:
    """One configuration's measurements."""

    name: str
    dynamic_batching: bool
    requests: int
    """Requests asked for."""
    completed: int
    """Requests sent before the time bound (equal to ``requests`` unless it was hit)."""
    errors: int
    seconds: float
    throughput_rps: float
    latency_ms: dict[str, float]
    server: dict[str, float]
    error_samples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every request sent, none failed."""
        return self.errors == 0 and self.completed == self.requests


@dataclass
class BenchReport:
    """Everything ``sovml bench serve`` measured (written as JSON)."""

    model: str
    protocol: str
    concurrency: int
    requests: int
    max_seconds: float
    results: list[LoadResult]
    environment: dict[str, Any]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """All configurations complete with zero errors."""
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes null)."""
        data = asdict(self)
        data["ok"] = self.ok
        for r, res in zip(data["results"], self.results, strict=True):
            r["ok"] = res.ok
        return json_ready(data)


def batching_config(
    config: dict[str, Any], dynamic: bool, max_queue_delay_us: int = 100
) -> dict[str, Any]:
    """A model config (Triton's JSON form) with dynamic batching removed or present.

    An existing ``dynamic_batching`` section is kept as it is when ``dynamic``; otherwise one
    with ``max_queue_delay_us`` is added.
    """
    new = copy.deepcopy(config)
    if int(new.get("max_batch_size", 0)) <= 0:
        raise ValueError(f"{new.get('name')}: max_batch_size 0, the model cannot batch")
    if not dynamic:
        new.pop("dynamic_batching", None)
    elif not new.get("dynamic_batching"):
        new["dynamic_batching"] = {"max_queue_delay_microseconds": max_queue_delay_us}
    return new


def run_load(
    clients: Any,
    model: str,
    rows: np.ndarray,
    requests: int,
    deadline: float,
    *,
    name: str,
    dynamic_batching: bool,
    metrics_url: str,
) -> LoadResult:
    """Send ``requests`` batch-1 requests (rows cycled) with ``clients``; measure them."""
    from pipelines.serving import load as serve_load
    from pipelines.serving.metrics import settled_scrape

    jobs = [serve_load.Job(model, rows[i % len(rows)][None, :]) for i in range(requests)]
    before = settled_scrape(metrics_url, model)
    start = time.perf_counter()
    outcomes = serve_load.run_jobs(clients, jobs, deadline)
    seconds = time.perf_counter() - start
    delta = settled_scrape(metrics_url, model).minus(before)
    sent = [o for o in outcomes if o.sent]
    failed = [o for o in sent if not o.ok]
    return LoadResult(
        name=name,
        dynamic_batching=dynamic_batching,
        requests=requests,
        completed=len(sent),
        errors=len(failed),
        seconds=seconds,
        throughput_rps=len(sent) / seconds if seconds > 0 else float("nan"),
        latency_ms=serve_load.percentiles_ms([o.latency_s for o in sent]),
        server={
            "requests": delta.requests,
            "failures": delta.failure,
            "executions": delta.executions,
            "average_batch": delta.average_batch,
            "mean_request_ms": delta.mean_request_us / 1000.0,
            "mean_queue_ms": delta.mean_queue_us / 1000.0,
        },
        error_samples=sorted({o.error for o in failed})[:5],
    )


def bench_serve(
    endpoints: Endpoints,
    *,
    model: str,
    requests: int = 10_000,
    concurrency: int = 8,
    protocol: str = "grpc",
    max_seconds: float = 300.0,
    max_queue_delay_us: int = 100,
    configurations: tuple[str, ...] = CONFIGURATIONS,
    seed: int = 0,
    out: str | Path | None = BENCH_REPORT,
    restore: bool = True,
    on_result: Any = None,
) -> BenchReport:
    """Benchmark ``model`` on a running server in each configuration; write JSON to ``out``.

    Args:
        endpoints: The running server (``TritonServer.endpoints``): HTTP for model control and
            config, gRPC or HTTP for the load, metrics for the server's own figures.
        model: A loaded model with one FP32 input, ``max_batch_size`` > 0.
        requests: Requests per configuration.
        concurrency: Concurrent clients.
        protocol: ``grpc`` or ``http`` for the load.
        max_seconds: Bound on the whole benchmark (reloads included).
        max_queue_delay_us: Dynamic batcher's delay when the config has no batching section.
        configurations: Subset of ``batch1`` and ``dynamic``, run in that order.
        seed: Seeds the input rows.
        out: JSON path (None: do not write).
        restore: Reload the model's own configuration at the end (skip it when the server is
            about to stop anyway: a reload restarts the model's Python stubs).
        on_result: Called with each :class:`LoadResult` as it completes.

    The configuration the model already has runs first, so the benchmark reloads the model
    once (plus once to restore).
    """
    import tritonclient.http as httpclient

    from pipelines.serving import load as serve_load

    if requests < 1:
        raise ValueError(f"requests: {requests}; allowed >= 1")
    unknown = set(configurations) - set(CONFIGURATIONS)
    if unknown:
        raise ValueError(f"configurations: {sorted(unknown)}; allowed {CONFIGURATIONS}")
    started = time.monotonic()
    control = httpclient.InferenceServerClient(endpoints.http_url, network_timeout=120.0)
    try:
        original = control.get_model_config(model)
        meta = control.get_model_metadata(model)
        server_meta = control.get_server_metadata()
        input_name, output_name, dims = _single_fp32_input(model, original)
        rows = np.random.default_rng(seed).normal(size=(1024, *dims)).astype(np.float32)
        url = endpoints.grpc_url if protocol == "grpc" else endpoints.http_url
        with serve_load.InferClients(
            protocol, url, concurrency, input_name, output_name
        ) as clients:
            bench = _Bench(control, clients, model, original, rows, started + max_seconds)
            has_dynamic = bool(original.get("dynamic_batching"))
            results: list[LoadResult] = []
            for name in sorted(configurations, key=lambda n: (n == "dynamic") != has_dynamic):
                results.append(bench.run(name, requests, max_queue_delay_us, endpoints.metrics_url))
                if on_result is not None:
                    on_result(results[-1])
        results.sort(key=lambda r: configurations.index(r.name))
        if restore:
            # Leave the server as it was found: the repository's own configuration.
            control.load_model(model, config=json.dumps(original))
    finally:
        control.close()
    report = BenchReport(
        model=model,
        protocol=protocol,
        concurrency=concurrency,
        requests=requests,
        max_seconds=max_seconds,
        results=results,
        environment=_environment(server_meta, meta, protocol),
        seconds=time.monotonic() - started,
    )
    if out is not None:
        write_json(out, report.to_json())
    return report


def _single_fp32_input(model: str, config: dict[str, Any]) -> tuple[str, str, list[int]]:
    """(input name, output name, input dims) of a model the benchmark can drive."""
    if len(config.get("input", [])) != 1 or len(config.get("output", [])) != 1:
        raise ValueError(f"{model}: the benchmark needs one input and one output tensor")
    tensor = config["input"][0]
    if tensor["data_type"] != "TYPE_FP32":
        raise ValueError(f"{model}: input {tensor['name']} is {tensor['data_type']}, not FP32")
    dims = [int(d) for d in tensor["dims"]]
    if any(d < 1 for d in dims):
        raise ValueError(f"{model}: variable input dims {dims} are not supported here")
    return tensor["name"], config["output"][0]["name"], dims


@dataclass
class _Bench:
    """One benchmark in progress: the model, its own configuration, the clients and the rows."""

    control: Any
    """tritonclient.http client for model control."""
    clients: Any
    """The load's :class:`~pipelines.serving.load.InferClients`."""
    model: str
    original: dict[str, Any]
    rows: np.ndarray
    deadline: float

    def run(
        self, name: str, requests: int, max_queue_delay_us: int, metrics_url: str
    ) -> LoadResult:
        """Reload the model in configuration ``name``, warm it up, then measure the load."""
        from pipelines.serving import load as serve_load

        dynamic = name == "dynamic"
        config = batching_config(self.original, dynamic, max_queue_delay_us)
        self.control.load_model(self.model, config=json.dumps(config))
        warm = [
            serve_load.Job(self.model, self.rows[i][None, :])
            for i in range(4 * len(self.clients.clients))
        ]
        serve_load.run_jobs(self.clients, warm, self.deadline)
        return run_load(
            self.clients,
            self.model,
            self.rows,
            requests,
            self.deadline,
            name=name,
            dynamic_batching=dynamic,
            metrics_url=metrics_url,
        )


def _environment(
    server_meta: dict[str, Any], meta: dict[str, Any], protocol: str
) -> dict[str, Any]:
    """Where the figures were measured: server, model platform, host, client."""
    return {
        "server": f"{server_meta.get('name')} {server_meta.get('version')}",
        "model_platform": meta.get("platform", ""),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "client": f"tritonclient {_version('tritonclient')} ({protocol}), threads",
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
