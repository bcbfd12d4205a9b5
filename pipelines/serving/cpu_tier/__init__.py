"""The CPU inference tier: build every serving form of a model, measure it, serve the fastest."""

from pipelines.serving.cpu_tier.accuracy import (
    METRICS,
    AccuracyBound,
    Deviation,
    Metric,
    check_accuracy,
    within,
)
from pipelines.serving.cpu_tier.candidates import build_candidates, export_onnx, onnx_session
from pipelines.serving.cpu_tier.config import SelectionConfig, parse_objective
from pipelines.serving.cpu_tier.forms import (
    ARTIFACT_FILES,
    CANDIDATES,
    MAX_ONNX_IR_VERSION,
    ONNX_OPSET,
    REFERENCE,
    SERVING_FORM,
    TORCHSCRIPT_FP32,
    Candidate,
    Predict,
)
from pipelines.serving.cpu_tier.measurement import (
    Latency,
    MeasurePlan,
    Timer,
    environment,
    measure,
    perf_timer,
    torch_threads,
)
from pipelines.serving.cpu_tier.report import (
    CandidateFigures,
    Selection,
    flat_metrics,
    speedup_table,
)
from pipelines.serving.cpu_tier.selection import (
    SelectionError,
    decide,
    select_backend,
    select_from,
)

__all__ = [
    "ARTIFACT_FILES",
    "CANDIDATES",
    "MAX_ONNX_IR_VERSION",
    "METRICS",
    "ONNX_OPSET",
    "REFERENCE",
    "SERVING_FORM",
    "TORCHSCRIPT_FP32",
    "AccuracyBound",
    "Candidate",
    "CandidateFigures",
    "Deviation",
    "Latency",
    "MeasurePlan",
    "Metric",
    "Predict",
    "Selection",
    "SelectionConfig",
    "SelectionError",
    "Timer",
    "build_candidates",
    "check_accuracy",
    "decide",
    "environment",
    "export_onnx",
    "flat_metrics",
    "measure",
    "onnx_session",
    "parse_objective",
    "perf_timer",
    "select_backend",
    "select_from",
    "speedup_table",
    "torch_threads",
    "within",
]
