"""The live canary run: warm up, then look step by step until promote, rollback or hold.

:func:`run_abtest` drives a running Triton server (the step machine is
:class:`pipelines.serving.canary.decisions.Procedure`, the verdicts :mod:`policies.promotion`'s);
every look's evidence and the decision are written to ``<out_dir>/<run>.json``. The server must
export the latency summary at :data:`policies.promotion.SUMMARY_LEVELS`
(:func:`policies.promotion.triton_metrics_args`); without it the latency guard never decides and
the run ends held.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipelines.serving import load as serve_load
from pipelines.serving.canary.decisions import GUARD_EVERY, PROMOTED, procedure_text
from pipelines.serving.canary.evidence import AbTestResult, Look
from pipelines.serving.canary.lanes import DEADLINE, send_in_lanes
from pipelines.serving.canary.router import Route, WeightedRouter
from pipelines.serving.canary.state import RunState
from pipelines.serving.canary.statistics import SequentialDesign
from pipelines.serving.metrics import scrape
from pipelines.serving.report import ABTEST_DIR, write_json
from pipelines.serving.triton import Endpoints
from policies.promotion import DEFAULT, PromotionCriteria

WARMUP_PER_MODEL = 8
"""Requests per variant before the analysis starts (connections, first executions)."""


@dataclass(frozen=True)
class RunSettings:
    """How a canary run sends traffic and when it gives up (written into the evidence)."""

    concurrency: int = 1
    """Client threads per variant's lane (:mod:`pipelines.serving.canary.lanes` says why one)."""
    protocol: str = "grpc"
    """``grpc`` or ``http`` for the traffic."""
    seed: int = 0
    """Seeds the router and the row sampling."""
    max_requests: int = 400_000
    """Bound on all requests of the run (mirror copies included)."""
    max_seconds: float = 240.0
    """Bound on the run's wall time."""
    mirror: bool = True
    """Copy baseline traffic to the candidate below 50% so both run at the same rate for the
    latency comparison (see :class:`~pipelines.serving.canary.router.WeightedRouter`)."""
    requests_per_look: int = 6000
    """At least this many requests (both variants, mirror copies included) per look, so that
    Triton's 48-60 s latency window fills at every weight, not only at 5 %."""


def run_abtest(
    endpoints: Endpoints,
    baseline: str,
    candidate: str,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    criteria: PromotionCriteria = DEFAULT,
    settings: RunSettings | None = None,
    run_name: str | None = None,
    out_dir: str | Path = ABTEST_DIR,
    on_look: Callable[[Look], None] | None = None,
) -> AbTestResult:
    """Canary ``candidate`` against ``baseline`` on a running Triton server.

    Args:
        endpoints: The running server's endpoints (``TritonServer.endpoints``).
        baseline: Model name serving the current production variant.
        candidate: Model name of the new variant.
        features: Labelled traffic: FP32 rows ``[n, dim]``.
        labels: Integer class labels ``[n]``.
        criteria: Thresholds, error rates and steps.
        settings: Traffic and budget (default: :class:`RunSettings`).
        run_name: Evidence file name (default: ``<candidate>-vs-<baseline>-<UTC time>``).
        out_dir: Folder of the evidence JSON.
        on_look: Called with each look's evidence as soon as it is decided (live printout).

    Returns:
        The decision with every look's evidence; also written to ``out_dir/<run>.json``.
    """
    if baseline == candidate:
        raise ValueError("baseline and candidate must be different models")
    if settings is None:
        settings = RunSettings()
    x, y = _traffic(features, labels)
    input_name, output_name = _io_names(endpoints.http_url, baseline, candidate)
    url = endpoints.grpc_url if settings.protocol == "grpc" else endpoints.http_url
    run = run_name or f"{candidate}-vs-{baseline}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        lanes = {
            model: stack.enter_context(
                serve_load.InferClients(
                    settings.protocol, url, settings.concurrency, input_name, output_name
                )
            )
            for model in (baseline, candidate)
        }
        canary = _Canary(
            lanes=lanes,
            metrics_url=endpoints.metrics_url,
            criteria=criteria,
            settings=settings,
            x=x,
            y=y,
            router=WeightedRouter(baseline, candidate, settings.seed, mirror=settings.mirror),
            state=RunState(SequentialDesign.from_criteria(criteria), criteria, baseline, candidate),
            started=started,
            on_look=on_look,
        )
        canary.warm_up()
        decision, reason, final_weight = canary.run_steps()
    result = AbTestResult(
        run=run,
        baseline=baseline,
        candidate=candidate,
        decision=decision,
        reason=reason,
        reason_families=list(canary.state.procedure.families),
        final_weight=final_weight,
        seconds=time.monotonic() - started,
        total_requests=canary.state.total,
        looks=canary.state.looks,
        criteria=asdict(criteria),
        procedure=procedure_text(criteria),
        settings={**asdict(settings), "guard_every": GUARD_EVERY, "rows": len(x)},
    )
    path = Path(out_dir) / f"{run}.json"
    result.evidence_path = str(path)
    write_json(path, result.to_json())
    return result


@dataclass
class _Canary:
    """One run in progress: the lanes' clients, the traffic, the router and the state."""

    lanes: dict[str, serve_load.InferClients]
    metrics_url: str
    criteria: PromotionCriteria
    settings: RunSettings
    x: np.ndarray
    y: np.ndarray
    router: WeightedRouter
    state: RunState
    started: float
    on_look: Callable[[Look], None] | None = None
    rows_rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rows_rng = np.random.default_rng(self.settings.seed + 1)
        self.deadline = self.started + self.settings.max_seconds

    def warm_up(self) -> None:
        """Warm the connections and both models' first executions; not counted in the
        analysis (the counters' starting point is scraped after it)."""
        models = self.router.baseline, self.router.candidate
        warm = [
            serve_load.Job(m, self.x[i : i + 1]) for i in range(WARMUP_PER_MODEL) for m in models
        ]
        serve_load.run_jobs(self.lanes[self.router.baseline], warm, self.deadline)
        self.scrape()

    def run_steps(self) -> tuple[str, str, float]:
        """(outcome, reason, final weight) after the analysed steps, or where the run stopped."""
        proc = self.state.procedure
        reason = "nothing to analyse: a single 100% step"
        while proc.outcome is None:
            if self.state.total >= self.settings.max_requests or time.monotonic() > self.deadline:
                spent = time.monotonic() - self.started
                reason = proc.exhausted(
                    f"budget exhausted ({self.state.total} requests, {spent:.1f}s) before a "
                    "decision"
                ).reason
                break
            weight = proc.weight
            self.router.set_weight(weight)
            look = self._look(proc.step + 1, weight, proc.look + 1)
            if look is None:
                reason = proc.exhausted("time budget ran out during a look").reason
                break
            if self.on_look is not None:
                self.on_look(look)
            reason = look.reason
        if proc.outcome == PROMOTED:
            return PROMOTED, reason, float(self.criteria.steps[-1])
        return str(proc.outcome), reason, 0.0 if proc.outcome == "rolled_back" else proc.weight

    def scrape(self) -> None:
        """Read Triton's metrics into the state (the latency window needs their times)."""
        sent = time.monotonic()
        metrics = scrape(self.metrics_url)
        self.state.add_scrape(sent, time.monotonic(), metrics)

    def _look(self, step: int, weight: float, look_no: int) -> Look | None:
        """One look's traffic, sent in parts with a scrape and an interim error check after each;
        None when the time budget ran out before it was decided."""
        look_start = time.monotonic()
        routes, rows = self._look_traffic()
        self.state.start_look()
        for first in range(0, len(routes), GUARD_EVERY):
            part = slice(first, first + GUARD_EVERY)
            outcomes = send_in_lanes(
                self.lanes, self.router.baseline, routes[part], rows[part], self.x, self.deadline
            )
            self.state.record(routes[part], self.y[rows[part]], outcomes)
            if any(o.error == DEADLINE for o in outcomes):
                return None
            self.scrape()
            checks = first // GUARD_EVERY + 1  # interim checks so far in this look
            if first + GUARD_EVERY < len(routes) and checks <= self.criteria.interim_checks:
                interim = self.state.interim(step, weight, look_no, look_start)
                if interim is not None:
                    return interim
        return self.state.evaluate(step, weight, look_no, look_start)

    def _look_traffic(self) -> tuple[list[Route], np.ndarray]:
        """The look's routes (up to the candidate's quota) and the row each one sends."""
        routes = self.router.routes_until(
            self.criteria.min_requests_per_step, self.settings.requests_per_look
        )
        rows = self.rows_rng.integers(0, len(self.x), size=len(routes))
        for k in range(1, len(routes)):
            if routes[k].mirror:  # a mirror copy carries its original's row
                rows[k] = rows[k - 1]
        return routes, rows


def _traffic(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features as contiguous FP32 rows and labels as int64, checked against each other."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError("features must be [n, dim] and labels [n], n > 0")
    return x, y


def _io_names(http_url: str, *models: str) -> tuple[str, str]:
    """The one input and output name the variants share (from Triton's model metadata)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(http_url)
    try:
        names = set()
        for model in models:
            meta = client.get_model_metadata(model)
            if len(meta["inputs"]) != 1 or len(meta["outputs"]) != 1:
                raise ValueError(f"{model}: A/B needs one input and one output tensor")
            names.add((meta["inputs"][0]["name"], meta["outputs"][0]["name"]))
    finally:
        client.close()
    if len(names) != 1:
        raise ValueError(f"variants disagree on tensor names: {sorted(names)}")
    return names.pop()


def load_labelled(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labelled traffic from an ``.npz``: ``features`` (or ``x``) and ``labels`` (or ``y``)."""
    with np.load(path) as data:
        keys = set(data.files)
        xk = next((k for k in ("features", "x", "X") if k in keys), None)
        yk = next((k for k in ("labels", "y") if k in keys), None)
        if xk is None or yk is None:
            raise ValueError(f"{path}: needs arrays 'features' (or 'x') and 'labels' (or 'y')")
        return data[xk], data[yk]
