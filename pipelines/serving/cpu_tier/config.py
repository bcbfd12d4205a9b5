"""What a CPU-tier selection is told besides the model and the data: threads, objective, bound."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipelines.serving.cpu_tier.accuracy import AccuracyBound
from pipelines.serving.cpu_tier.forms import CANDIDATES
from pipelines.serving.cpu_tier.measurement import MeasurePlan
from pipelines.serving.repository import CPU_PROFILE_VCPUS

_OBJECTIVE = re.compile(r"^(p50|p95)_b(\d+)$")


def parse_objective(objective: str) -> tuple[str, int]:
    """``"p50_b1"`` -> ``("p50", 1)``; raises ValueError on anything else."""
    match = _OBJECTIVE.match(objective)
    if not match:
        raise ValueError(f"objective must look like p50_b1 or p95_b64, got {objective!r}")
    return match.group(1), int(match.group(2))


@dataclass(frozen=True)
class SelectionConfig:
    """Everything :func:`~pipelines.serving.cpu_tier.selection.select_backend` is told besides
    the model and the data."""

    threads: int = CPU_PROFILE_VCPUS
    """vCPUs of the tenant's CPU profile: torch intra-op threads and ONNX Runtime
    ``intra_op_num_threads`` while measuring (and what the serving config should use)."""
    objective: str = "p50_b1"
    """``p50_b<N>`` or ``p95_b<N>``: the latency statistic and batch size to minimise; ``N``
    must be one of ``plan.batch_sizes``."""
    bound: AccuracyBound = field(default_factory=AccuracyBound)
    """The accuracy bound."""
    plan: MeasurePlan = field(default_factory=MeasurePlan)
    """How to measure."""
    candidates: tuple[str, ...] = CANDIDATES
    """Candidates to build and measure (``eager_fp32`` and ``torchscript`` are always
    included)."""
    allowed: tuple[str, ...] | None = None
    """Candidates that may be chosen (default: all built ones). Pinning a backend is
    ``allowed=("onnxruntime",)``: it is still measured against the others and must still be
    inside the bound."""
    onnx_exporter: str = "auto"
    """``auto`` (dynamo, the TorchScript-based exporter if that fails), ``dynamo`` or
    ``classic``."""
    input_name: str = "input__0"
    """ONNX input name (Triton matches config tensors to it by name)."""
    output_name: str = "output__0"
    """ONNX output name."""

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        unknown = (set(self.candidates) | set(self.allowed or ())) - set(CANDIDATES)
        if unknown:
            raise ValueError(f"unknown candidates {sorted(unknown)}; known: {CANDIDATES}")
        if self.onnx_exporter not in ("auto", "dynamo", "classic"):
            raise ValueError(f"onnx_exporter must be auto, dynamo or classic: {self.onnx_exporter}")
        _, batch = parse_objective(self.objective)
        if batch not in self.plan.batch_sizes:
            raise ValueError(
                f"objective {self.objective!r} needs batch {batch} among the measured batch sizes "
                f"{self.plan.batch_sizes}"
            )
