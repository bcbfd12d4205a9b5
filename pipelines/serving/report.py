"""How serving runs report: where, JSON evidence without NaN, and the cells of the tables.

The canary (:mod:`pipelines.serving.canary`) and the load benchmark
(:mod:`pipelines.serving.bench`) write their evidence with :func:`write_json`; ``sovml abtest``
and ``sovml bench serve`` print one row per look or per load configuration from
:func:`look_cells` and :func:`bench_cells` (plain text: the command adds markup and colours).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.serving.bench import BenchReport, LoadResult
    from pipelines.serving.canary.evidence import Look

BUILD = Path(__file__).resolve().parents[2] / "build"
ABTEST_DIR = BUILD / "abtest"
"""Folder of the canary's evidence files (``<run>.json``)."""
ABTEST_DEMO_REPOSITORY = ABTEST_DIR / "demo_repository"
"""Where ``sovml abtest`` builds the demo variants."""
BENCH_REPORT = BUILD / "bench" / "serve.json"
"""The load benchmark's JSON report."""
BENCH_DEMO_REPOSITORY = BUILD / "bench" / "serve_repository"
"""Where ``sovml bench serve`` builds its demo model."""
LOOK_COLUMNS = (
    "step",
    "weight",
    "req A/B",
    "mirror",
    "acc A [95% CI]",
    "acc B [95% CI]",
    "p99 A ms",
    "p99 B ms",
    "p99 guard",
    "err A/B",
    "LLR [rollback, promote]",
    "decision",
)
"""Columns of the canary table (A the baseline, B the candidate), one row per look."""
BENCH_COLUMNS = (
    "configuration",
    "done",
    "errors",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "avg server batch",
    "server ms",
    "queue ms",
)
"""Columns of the load benchmark's table, one row per configuration."""


def json_ready(value: Any) -> Any:
    """``value`` as JSON can hold it: NaN and infinities become null, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` (already :func:`json_ready`) as indented JSON; parent folders created."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out


def figure(value: float | None, digits: int = 2) -> str:
    """A number for a table cell: fixed ``digits``, ``-`` when unknown (None, NaN)."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def look_title(baseline: str, candidate: str) -> str:
    """Title of the canary table."""
    return f"canary {candidate} (B) against {baseline} (A)"


def look_cells(look: Look, baseline: str, candidate: str) -> list[str]:
    """One look as the cells of :data:`LOOK_COLUMNS`."""
    a, b = baseline, candidate
    return [
        f"{look.step}.{look.look}",
        f"{look.weight:g}%",
        f"{look.requests[a]}/{look.requests[b]}",
        str(look.mirrored_requests),
        _accuracy(look, a),
        _accuracy(look, b),
        figure(look.p99_ms[a]),
        figure(look.p99_ms[b]),
        look.verdicts.get("latency", "-"),
        f"{look.errors[a]}/{look.errors[b] + look.mirrored_errors}",
        f"{figure(look.llr)} [{look.lower:.2f}, {look.upper:.2f}]",
        look.decision,
    ]


def _accuracy(look: Look, name: str) -> str:
    lo, hi = look.accuracy_ci95[name]
    return f"{figure(look.accuracy[name], 3)} [{figure(lo, 3)}, {figure(hi, 3)}]"


def bench_title(report: BenchReport) -> str:
    """Title of the load benchmark's table: the model and the load."""
    return (
        f"{report.model}: {report.requests} requests x {report.concurrency} {report.protocol} "
        "clients, batch-1 requests"
    )


def bench_cells(result: LoadResult) -> list[str]:
    """One load configuration as the cells of :data:`BENCH_COLUMNS`."""
    r = result
    return [
        "dynamic batching" if r.dynamic_batching else "no batching (batch 1)",
        f"{r.completed}/{r.requests}",
        str(r.errors),
        f"{r.throughput_rps:.0f}",
        figure(r.latency_ms["p50"]),
        figure(r.latency_ms["p95"]),
        figure(r.latency_ms["p99"]),
        figure(r.server["average_batch"]),
        figure(r.server["mean_request_ms"]),
        figure(r.server["mean_queue_ms"], 3),
    ]
