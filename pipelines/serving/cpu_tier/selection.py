"""The CPU tier's choice: serve a model in the fastest form that keeps its accuracy, by measurement.

Small-business tenants serve on CPU (the ``cpu`` Triton profile: 2 vCPUs per replica, see
``components/serving.py``). Which runtime is fastest there depends on the model: framework
overhead dominates a small MLP at batch 1, arithmetic dominates a large one at batch 64, and int8
weights help only where matrix products dominate and the accuracy allows. So nothing here is
assumed: every candidate (:mod:`~pipelines.serving.cpu_tier.forms`) is built, serialised, loaded
back from its file (:mod:`~pipelines.serving.cpu_tier.candidates`: what is measured is what is
shipped), checked against fp32 eager (:mod:`~pipelines.serving.cpu_tier.accuracy`) and measured
on the profile's thread count (:mod:`~pipelines.serving.cpu_tier.measurement`).

Choice (:func:`decide`): the candidate with the lowest objective latency (``p50_b1`` by default:
median at batch 1) among those inside the bound; ties go to the earlier entry of
:data:`~pipelines.serving.cpu_tier.forms.CANDIDATES`. :func:`select_backend` runs all of it and
returns a :class:`~pipelines.serving.cpu_tier.report.Selection`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.serving.cpu_tier.accuracy import (
    METRICS,
    Deviation,
    Metric,
    check_accuracy,
    within,
)
from pipelines.serving.cpu_tier.candidates import build_candidates
from pipelines.serving.cpu_tier.config import SelectionConfig, parse_objective
from pipelines.serving.cpu_tier.forms import (
    CANDIDATES,
    REFERENCE,
    SERVING_FORM,
    TORCHSCRIPT_FP32,
    Candidate,
)
from pipelines.serving.cpu_tier.measurement import (
    Latency,
    Timer,
    environment,
    measure,
    perf_timer,
    torch_threads,
)
from pipelines.serving.cpu_tier.report import CandidateFigures, Selection

if TYPE_CHECKING:
    from torch import nn


class SelectionError(RuntimeError):
    """No candidate can be served (nothing inside the bound, or no server form could be built)."""


def decide(
    figures: Sequence[CandidateFigures],
    objective: str,
    allowed: Sequence[str] | None = None,
) -> tuple[str, str]:
    """``(chosen, served)``: the fastest candidate inside the bound, and what serves it.

    Pure: only the figures matter. ``eager_fp32`` has no server form; when it wins, the fastest
    fp32 TorchScript candidate inside the bound is served.

    Raises:
        SelectionError: If no allowed candidate is inside the bound, or eager wins and no fp32
            TorchScript candidate exists.
    """
    stat, batch = parse_objective(objective)

    def key(f: CandidateFigures) -> tuple[float, int]:
        return getattr(f.latency[batch], f"{stat}_us"), CANDIDATES.index(f.name)

    eligible = [f for f in figures if f.error is None and f.within_bound and batch in f.latency]
    pool = [f for f in eligible if allowed is None or f.name in allowed]
    if not pool:
        rejected = {f.name: f.error or "outside the accuracy bound" for f in figures}
        raise SelectionError(f"no candidate can be served (allowed {allowed}): {rejected}")
    best = min(pool, key=key)
    if SERVING_FORM[best.name] is not None:
        return best.name, best.name
    stand_ins = [f for f in eligible if f.name in TORCHSCRIPT_FP32]
    if not stand_ins:
        raise SelectionError("eager fp32 won but no fp32 TorchScript candidate was built")
    return best.name, min(stand_ins, key=key).name


def select_backend(
    model: nn.Module,
    sample: np.ndarray,
    out_dir: str | Path,
    *,
    validation: tuple[np.ndarray, np.ndarray | None] | None = None,
    metric: str | Metric = "auc",
    config: SelectionConfig | None = None,
    timer: Timer = perf_timer,
) -> Selection:
    """Build, measure and check every candidate, then choose (see the module docstring).

    Args:
        model: The trained module (CPU, fp32); it is put in eval mode and not modified.
        sample: Representative input rows ``[n, ...]`` (float32); the timed batches are cycled
            from them.
        out_dir: Where the candidates' files are written.
        validation: ``(x, labels)`` for the accuracy check; labels may be None (then only the
            output difference is bounded). Default: ``sample`` without labels.
        metric: ``"auc"``, ``"accuracy"`` or a callable ``(labels, outputs) -> float``, higher is
            better.
        config: Threads, objective, bound, plan, candidates.
        timer: The timing function (tests stub it).

    Returns:
        The :class:`~pipelines.serving.cpu_tier.report.Selection`, whose ``artifact`` is the file
        to serve.

    Raises:
        SelectionError: If no candidate is servable within the bound.
    """
    cfg = config or SelectionConfig()
    with torch_threads(cfg.threads):
        built = build_candidates(model, sample, out_dir, cfg)
    return select_from(built, sample, validation=validation, metric=metric, config=cfg, timer=timer)


def select_from(
    built: Sequence[Candidate],
    sample: np.ndarray,
    *,
    validation: tuple[np.ndarray, np.ndarray | None] | None = None,
    metric: str | Metric = "auc",
    config: SelectionConfig | None = None,
    timer: Timer = perf_timer,
) -> Selection:
    """:func:`select_backend` on candidates built already (by :func:`build_candidates`).

    ``config.candidates`` is not consulted here (what was built is measured); ``config.allowed``,
    the bound, the objective, the plan and the threads are.
    """
    cfg = config or SelectionConfig()
    metric_name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    metric_fn = METRICS[metric] if isinstance(metric, str) else metric
    x_val, y_val = validation if validation is not None else (sample, None)
    with torch_threads(cfg.threads):
        deviations = check_accuracy(built, x_val, y_val, metric_fn)
        latencies = measure(built, sample, cfg.plan, timer)
    figures = _figures(built, deviations, latencies, cfg)
    chosen, served = decide(figures, cfg.objective, cfg.allowed)
    served_candidate = next(c for c in built if c.name == served)
    fp32 = next((c for c in built if c.name == "torchscript" and c.error is None), None)
    if fp32 is None or fp32.artifact is None or served_candidate.artifact is None:
        raise SelectionError("the fp32 TorchScript candidate could not be built")
    form = SERVING_FORM[served]
    assert form is not None
    return Selection(
        chosen=chosen,
        served=served,
        backend=form[1],
        artifact_format=form[0],
        artifact=served_candidate.artifact,
        torchscript_fp32=fp32.artifact,
        objective=cfg.objective,
        threads=cfg.threads,
        bound=cfg.bound,
        metric_name=metric_name,
        reference_metric=deviations[REFERENCE].metric,
        candidates=tuple(figures),
        environment=environment(cfg.threads),
    )


def _figures(
    built: Sequence[Candidate],
    deviations: Mapping[str, Deviation],
    latencies: Mapping[str, dict[int, Latency]],
    cfg: SelectionConfig,
) -> list[CandidateFigures]:
    """Every built candidate's figures: latency, speed-up over eager, deviation, bound."""
    eager = latencies[REFERENCE]
    figures = []
    for c in built:
        form = SERVING_FORM[c.name]
        lat = latencies.get(c.name, {})
        dev = deviations.get(c.name)
        figures.append(
            CandidateFigures(
                name=c.name,
                backend=form[1] if form else None,
                artifact_format=form[0] if form else None,
                artifact=str(c.artifact) if c.artifact and c.error is None else None,
                latency=lat,
                speedup={b: eager[b].p50_us / lat[b].p50_us for b in lat if lat[b].p50_us > 0},
                max_abs_diff=dev.max_abs_diff if dev else None,
                metric=dev.metric if dev else None,
                metric_drop=dev.metric_drop if dev else None,
                within_bound=(c.name == REFERENCE) or (dev is not None and within(dev, cfg.bound)),
                error=c.error,
                notes=c.notes,
            )
        )
    return figures
