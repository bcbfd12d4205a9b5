"""What a CPU-tier selection reports: per-candidate figures, the selection, and flat tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.serving.cpu_tier.accuracy import AccuracyBound
from pipelines.serving.cpu_tier.measurement import Latency


@dataclass(frozen=True)
class CandidateFigures:
    """What was measured for one candidate."""

    name: str
    """Candidate name (:data:`~pipelines.serving.cpu_tier.forms.CANDIDATES`)."""
    backend: str | None
    """Triton backend that serves it (``pytorch``/``onnxruntime``), None for eager."""
    artifact_format: str | None
    """``torchscript`` or ``onnx``; None for eager."""
    artifact: str | None
    """The serialised file that was measured, None for eager or a failed build."""
    latency: dict[int, Latency]
    """Per batch size."""
    speedup: dict[int, float]
    """Per batch size: ``eager_fp32`` p50 / this candidate's p50 (same run)."""
    max_abs_diff: float | None
    """Largest absolute output difference against ``eager_fp32``."""
    metric: float | None
    """The validation metric, None without labelled rows."""
    metric_drop: float | None
    """Reference metric minus this one (positive = worse), None without labels."""
    within_bound: bool
    """Inside the accuracy bound (always True for the reference)."""
    error: str | None = None
    """Why the candidate could not be built, if it could not (it is then not measured)."""
    notes: dict[str, Any] = field(default_factory=dict)
    """How it was built (exporter, opset, quantisation engine, ...)."""


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`~pipelines.serving.cpu_tier.selection.select_backend`."""

    chosen: str
    """The candidate with the best objective inside the bound."""
    served: str
    """The candidate whose artifact is served: ``chosen``, except that ``eager_fp32`` (no server
    form) is replaced by the fastest fp32 TorchScript candidate."""
    backend: str
    """Triton backend of ``served`` (``onnxruntime`` or ``pytorch``)."""
    artifact_format: str
    """``onnx`` or ``torchscript``."""
    artifact: Path
    """The served file."""
    torchscript_fp32: Path
    """The fp32 TorchScript file (``torchscript``): what a runtime without ONNX Runtime can fall
    back to, with the same weights."""
    objective: str
    """The objective that was minimised."""
    threads: int
    """vCPUs the candidates were measured on."""
    bound: AccuracyBound
    """The accuracy bound."""
    metric_name: str
    """Name of the validation metric."""
    reference_metric: float | None
    """The metric of ``eager_fp32``, None without labels."""
    candidates: tuple[CandidateFigures, ...]
    """Figures of every candidate, in :data:`~pipelines.serving.cpu_tier.forms.CANDIDATES`
    order."""
    environment: dict[str, Any]
    """Versions and machine the figures come from."""

    def figures(self, name: str) -> CandidateFigures:
        """The figures of candidate ``name``."""
        for figures in self.candidates:
            if figures.name == name:
                return figures
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (batch sizes become string keys, paths strings)."""
        candidates = {}
        for f in self.candidates:
            body = asdict(f)
            body.pop("name")
            body["latency"] = {str(b): asdict(lat) for b, lat in f.latency.items()}
            body["speedup"] = {str(b): s for b, s in f.speedup.items()}
            candidates[f.name] = body
        return {
            "chosen": self.chosen,
            "served": self.served,
            "backend": self.backend,
            "artifact_format": self.artifact_format,
            "artifact": str(self.artifact),
            "torchscript_fp32": str(self.torchscript_fp32),
            "objective": self.objective,
            "threads": self.threads,
            "bound": asdict(self.bound),
            "metric_name": self.metric_name,
            "reference_metric": self.reference_metric,
            "candidates": candidates,
            "environment": self.environment,
        }


def speedup_table(selection: Selection) -> list[dict[str, Any]]:
    """One flat row per candidate (for tables and KFP metrics)."""
    rows = []
    for f in selection.candidates:
        row: dict[str, Any] = {"candidate": f.name, "within_bound": f.within_bound}
        for batch, lat in sorted(f.latency.items()):
            row[f"b{batch}_p50_us"] = lat.p50_us
            row[f"b{batch}_p95_us"] = lat.p95_us
            row[f"b{batch}_speedup"] = f.speedup.get(batch)
        row.update(max_abs_diff=f.max_abs_diff, metric_drop=f.metric_drop, error=f.error)
        rows.append(row)
    return rows


def flat_metrics(selection: Mapping[str, Any]) -> dict[str, float]:
    """Numeric figures of a :meth:`Selection.to_dict` body, flattened for KFP ``Metrics``."""
    out: dict[str, float] = {}
    for name, body in selection["candidates"].items():
        for batch, lat in body["latency"].items():
            out[f"{name}_b{batch}_p50_us"] = round(lat["p50_us"], 3)
            out[f"{name}_b{batch}_p95_us"] = round(lat["p95_us"], 3)
        for batch, value in body["speedup"].items():
            out[f"{name}_b{batch}_speedup"] = round(value, 4)
        if body["max_abs_diff"] is not None:
            out[f"{name}_max_abs_diff"] = float(body["max_abs_diff"])
        if body["metric_drop"] is not None:
            out[f"{name}_metric_drop"] = float(body["metric_drop"])
        out[f"{name}_within_bound"] = 1.0 if body["within_bound"] else 0.0
    return out
