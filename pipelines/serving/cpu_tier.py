"""CPU inference tier: serve a model in the fastest form that keeps its accuracy, by measurement.

Small-business tenants serve on CPU (the ``cpu`` Triton profile: 2 vCPUs per replica, see
``components/serving.py``). Which runtime is fastest there depends on the model: framework
overhead dominates a small MLP at batch 1, arithmetic dominates a large one at batch 64, and int8
weights help only where matrix products dominate and the accuracy allows. So nothing here is
assumed: every candidate is built, serialised, loaded back from its file (what is measured is what
is shipped) and measured on the profile's thread count.

Candidates (:data:`CANDIDATES`):

``eager_fp32``
    The PyTorch module as trained: the reference for speed-ups and for accuracy. It has no server
    form, so when it is fastest the fastest TorchScript candidate is served instead.
``torchscript``
    ``torch.jit.script`` (``torch.jit.trace`` when scripting fails), frozen (weights become
    constants, attribute lookups disappear). Served by Triton's PyTorch (libtorch) backend.
``torchscript_opt``
    The same plus ``torch.jit.optimize_for_inference`` (pre-transposed weights, fusions, oneDNN
    where it judges it useful). Kept as a separate candidate because it does not always help.
``onnxruntime``
    ``torch.onnx.export(dynamo=True)`` (the TorchScript-based exporter if that fails), opset
    :data:`ONNX_OPSET`, IR version at most :data:`MAX_ONNX_IR_VERSION`, run by ONNX Runtime with
    ``intra_op_num_threads`` = the profile's vCPUs and all graph optimisations. Served by Triton's
    ONNX Runtime backend.
``int8_dynamic``
    ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear`` (int8 weights, activations
    quantised per batch), then scripted and frozen like ``torchscript``. Served by libtorch.

Measurement (:func:`measure`): per batch size, every candidate is warmed up, then timed call by
call in interleaved rounds (round-robin over candidates, alternating direction), so slow drifts of
a shared machine hit all candidates alike; each block starts with a few discarded calls, which
absorb the previous candidate's still-spinning thread pool. Latency is the median (p50) and the
95th percentile of single calls, numpy in and numpy out (what a Triton backend sees). The
garbage collector is paused while timing. The timer is injectable (:data:`Timer`) so tests can
make the selection deterministic.

Accuracy (:func:`check_accuracy`): every candidate scores the validation rows (and a batch of 1,
which exercises the dynamic batch dimension); the largest absolute output difference against
``eager_fp32`` and the drop of a metric (AUC by default, higher is better) on labelled rows are
compared with an :class:`AccuracyBound`.

Choice (:func:`decide`): the candidate with the lowest objective latency (``p50_b1`` by default:
median at batch 1) among those inside the bound; ties go to the earlier entry of
:data:`CANDIDATES`. :func:`select_backend` runs all of it and returns a :class:`Selection`.

Threads: torch's intra-op thread count is set to the profile's vCPUs for the measurement and
restored afterwards; nothing else global is changed. Files are written only under ``out_dir``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import logging
import os
import platform
import re
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

CANDIDATES = ("eager_fp32", "torchscript", "torchscript_opt", "onnxruntime", "int8_dynamic")
"""Every candidate, in tie-break order (earlier wins a tie)."""
REFERENCE = "eager_fp32"
TORCHSCRIPT_FP32 = ("torchscript", "torchscript_opt")
"""Candidates that can stand in for ``eager_fp32`` (same fp32 arithmetic, a server form)."""

SERVING_FORM: dict[str, tuple[str, str] | None] = {
    "eager_fp32": None,
    "torchscript": ("torchscript", "pytorch"),
    "torchscript_opt": ("torchscript", "pytorch"),
    "onnxruntime": ("onnx", "onnxruntime"),
    "int8_dynamic": ("torchscript", "pytorch"),
}
"""Candidate -> (artifact format, Triton backend); None: no server form."""
ARTIFACT_FILES = {
    "torchscript": "torchscript.pt",
    "torchscript_opt": "torchscript_opt.pt",
    "onnxruntime": "model.onnx",
    "int8_dynamic": "int8_dynamic.pt",
}

ONNX_OPSET = 18
"""ONNX opset of the export. Production serves with Triton 24.10 (ONNX Runtime 1.19), which runs
opsets up to 21; 18 is also what the dynamo exporter translates to natively."""
MAX_ONNX_IR_VERSION = 10
"""Highest ONNX IR version ONNX Runtime 1.19 (Triton 24.10) loads; newer onnx packages may stamp
a higher one on files that use nothing newer, so the export caps it (the checker re-validates)."""

_OBJECTIVE = re.compile(r"^(p50|p95)_b(\d+)$")


class SelectionError(RuntimeError):
    """No candidate can be served (nothing inside the bound, or no server form could be built)."""


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class AccuracyBound:
    """How far a candidate may deviate from ``eager_fp32`` and still be served.

    Attributes:
        max_abs_diff: Largest allowed absolute difference of any output value.
        max_metric_drop: Largest allowed drop of the validation metric (reference minus
            candidate; a candidate that scores better is never rejected for it).
    """

    max_abs_diff: float = 1e-2
    max_metric_drop: float = 1e-3

    def __post_init__(self) -> None:
        if self.max_abs_diff < 0 or self.max_metric_drop < 0:
            raise ValueError("accuracy bounds must be >= 0")


@dataclass(frozen=True)
class MeasurePlan:
    """How latency is measured (see the module docstring).

    Attributes:
        batch_sizes: Batch sizes to measure.
        warmup: Discarded calls per candidate and batch size before anything is timed (TorchScript
            profiles and optimises its graph during its first calls, ONNX Runtime allocates).
        calibration: Calls timed to size the blocks.
        rounds: Interleaved rounds over all candidates.
        block_seconds: Target time of one candidate's block in one round.
        min_block: Fewest timed calls per block.
        max_block: Most timed calls per block.
        block_warmup: Discarded calls at the start of every block.
        settle_seconds: Pause before every block. Idle thread-pool workers of the runtime timed
            just before (OpenMP in torch, ONNX Runtime's pool) spin for a while before they
            sleep; on a 2-vCPU profile a spinning worker of another runtime takes half the
            machine, which no single-runtime server has to share with.
    """

    batch_sizes: tuple[int, ...] = (1, 64)
    warmup: int = 30
    calibration: int = 5
    rounds: int = 5
    block_seconds: float = 0.04
    min_block: int = 10
    max_block: int = 2000
    block_warmup: int = 3
    settle_seconds: float = 0.01

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ValueError("batch sizes must be positive")
        if self.rounds < 1 or self.min_block < 1 or self.max_block < self.min_block:
            raise ValueError("need rounds >= 1 and 1 <= min_block <= max_block")


@dataclass(frozen=True)
class SelectionConfig:
    """Everything :func:`select_backend` is told besides the model and the data.

    Attributes:
        threads: vCPUs of the tenant's CPU profile: torch intra-op threads and ONNX Runtime
            ``intra_op_num_threads`` while measuring (and what the serving config should use).
        objective: ``p50_b<N>`` or ``p95_b<N>``: the latency statistic and batch size to minimise;
            ``N`` must be one of ``plan.batch_sizes``.
        bound: The accuracy bound.
        plan: How to measure.
        candidates: Candidates to build and measure (``eager_fp32`` and ``torchscript`` are
            always included).
        allowed: Candidates that may be chosen (default: all built ones). Pinning a backend is
            ``allowed=("onnxruntime",)``: it is still measured against the others and must still
            be inside the bound.
        onnx_exporter: ``auto`` (dynamo, the TorchScript-based exporter if that fails), ``dynamo``
            or ``classic``.
        input_name: ONNX input name (Triton matches config tensors to it by name).
        output_name: ONNX output name.
    """

    threads: int = 2
    objective: str = "p50_b1"
    bound: AccuracyBound = field(default_factory=AccuracyBound)
    plan: MeasurePlan = field(default_factory=MeasurePlan)
    candidates: tuple[str, ...] = CANDIDATES
    allowed: tuple[str, ...] | None = None
    onnx_exporter: str = "auto"
    input_name: str = "input__0"
    output_name: str = "output__0"

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


def parse_objective(objective: str) -> tuple[str, int]:
    """``"p50_b1"`` -> ``("p50", 1)``; raises ValueError on anything else."""
    match = _OBJECTIVE.match(objective)
    if not match:
        raise ValueError(f"objective must look like p50_b1 or p95_b64, got {objective!r}")
    return match.group(1), int(match.group(2))


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Latency:
    """Single-call latency of one candidate at one batch size, in microseconds."""

    p50_us: float
    p95_us: float
    mean_us: float
    calls: int

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> Latency:
        """Statistics of per-call durations given in seconds."""
        us = np.asarray(samples, dtype=np.float64) * 1e6
        return cls(
            p50_us=float(np.median(us)),
            p95_us=float(np.percentile(us, 95)),
            mean_us=float(us.mean()),
            calls=len(us),
        )


@dataclass(frozen=True)
class CandidateFigures:
    """What was measured for one candidate.

    Attributes:
        name: Candidate name (:data:`CANDIDATES`).
        backend: Triton backend that serves it (``pytorch``/``onnxruntime``), None for eager.
        artifact_format: ``torchscript`` or ``onnx``; None for eager.
        artifact: The serialised file that was measured, None for eager or a failed build.
        latency: Per batch size.
        speedup: Per batch size: ``eager_fp32`` p50 / this candidate's p50 (same run).
        max_abs_diff: Largest absolute output difference against ``eager_fp32``.
        metric: The validation metric, None without labelled rows.
        metric_drop: Reference metric minus this one (positive = worse), None without labels.
        within_bound: Inside the accuracy bound (always True for the reference).
        error: Why the candidate could not be built, if it could not (it is then not measured).
        notes: How it was built (exporter, opset, quantisation engine, ...).
    """

    name: str
    backend: str | None
    artifact_format: str | None
    artifact: str | None
    latency: dict[int, Latency]
    speedup: dict[int, float]
    max_abs_diff: float | None
    metric: float | None
    metric_drop: float | None
    within_bound: bool
    error: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select_backend`.

    Attributes:
        chosen: The candidate with the best objective inside the bound.
        served: The candidate whose artifact is served: ``chosen``, except that ``eager_fp32``
            (no server form) is replaced by the fastest fp32 TorchScript candidate.
        backend: Triton backend of ``served`` (``onnxruntime`` or ``pytorch``).
        artifact_format: ``onnx`` or ``torchscript``.
        artifact: The served file.
        torchscript_fp32: The fp32 TorchScript file (``torchscript``): what a runtime without
            ONNX Runtime can fall back to, with the same weights.
        objective: The objective that was minimised.
        threads: vCPUs the candidates were measured on.
        bound: The accuracy bound.
        metric_name: Name of the validation metric.
        reference_metric: The metric of ``eager_fp32``, None without labels.
        candidates: Figures of every candidate, in :data:`CANDIDATES` order.
        environment: Versions and machine the figures come from.
    """

    chosen: str
    served: str
    backend: str
    artifact_format: str
    artifact: Path
    torchscript_fp32: Path
    objective: str
    threads: int
    bound: AccuracyBound
    metric_name: str
    reference_metric: float | None
    candidates: tuple[CandidateFigures, ...]
    environment: dict[str, Any]

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


# ------------------------------------------------------------------------------- the metrics


def roc_auc(labels: np.ndarray, outputs: np.ndarray) -> float:
    """ROC AUC (ties count half) of the positive class.

    ``outputs`` of shape ``[n]`` or ``[n, 1]`` are scores; ``[n, k>=2]`` are per-class scores
    (logits or probabilities) and class 1 is scored by its margin over the best other class.
    """
    y = np.asarray(labels).reshape(-1).astype(bool)
    scores = _positive_scores(outputs)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes among the labels")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties: Mann-Whitney U counts a tied pair as half.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(labels: np.ndarray, outputs: np.ndarray) -> float:
    """Share of correct decisions: argmax for ``[n, k>=2]``, score >= 0.5 for ``[n]``/``[n, 1]``."""
    y = np.asarray(labels).reshape(-1)
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] >= 2:
        predicted = out.argmax(axis=1)
    else:
        predicted = (out.reshape(-1) >= 0.5).astype(y.dtype)
    return float((predicted == y).mean())


def _positive_scores(outputs: np.ndarray) -> np.ndarray:
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] >= 2:
        others = np.delete(out, 1, axis=1).max(axis=1)
        return out[:, 1] - others
    return out.reshape(-1)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auc": roc_auc,
    "accuracy": accuracy,
}


# ------------------------------------------------------------------------ building candidates


Predict = Callable[[np.ndarray], np.ndarray]
"""A served form: float32 array ``[batch, ...]`` in, output array out."""


@dataclass
class Candidate:
    """A built candidate: how to call it and what file it came from."""

    name: str
    predict: Predict | None
    artifact: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Silence deprecation noise of APIs used on purpose, and the ONNX exporter's chatter.

    torch 2.13 deprecates ``torch.jit`` (Triton's PyTorch backend still loads TorchScript) and
    ``torch.ao.quantization`` (still the one dynamic int8 path libtorch serves); the dynamo ONNX
    exporter logs one warning per torchvision op it cannot register when torchvision is absent.
    """
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=r".*TorchScript-based ONNX export.*")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _torch_predict(module: Any) -> Predict:
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return predict


def _to_torchscript(module: nn.Module, example: torch.Tensor) -> tuple[Any, str]:
    """Script ``module`` (trace it when scripting fails) and freeze it."""
    import torch

    with _quiet_torch():
        try:
            compiled = torch.jit.script(module)
            how = "script"
        except Exception:  # any scripting failure: tracing is the documented fallback
            compiled = torch.jit.trace(module, (example,), check_trace=False)
            how = "trace"
        return torch.jit.freeze(compiled.eval()), how


def _save_and_load_torchscript(module: Any, path: Path) -> Any:
    import torch

    with _quiet_torch():
        torch.jit.save(module, str(path))
        return torch.jit.load(str(path), map_location="cpu").eval()


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    output_name: str,
    exporter: str = "auto",
) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` with a dynamic batch dimension; returns notes.

    ``example`` must have a batch of at least 2: the dynamo exporter specialises a batch of 1.
    """
    import onnx
    import torch

    notes: dict[str, Any] = {"opset": ONNX_OPSET}
    used = None
    if exporter in ("auto", "dynamo"):
        try:
            with _quiet_torch(), contextlib.redirect_stdout(io.StringIO()):
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    verbose=False,
                    input_names=[input_name],
                    output_names=[output_name],
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    opset_version=ONNX_OPSET,
                )
                program.save(str(path))
            used = "dynamo"
        except Exception as exc:
            if exporter == "dynamo":
                raise
            notes["dynamo_error"] = f"{type(exc).__name__}: {exc}"[:500]
    if used is None:
        with _quiet_torch():
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                opset_version=ONNX_OPSET,
            )
        used = "classic"
    proto = onnx.load(str(path))
    if proto.ir_version > MAX_ONNX_IR_VERSION:
        notes["ir_version_exported"] = int(proto.ir_version)
        proto.ir_version = MAX_ONNX_IR_VERSION
        onnx.save(proto, str(path))
    onnx.checker.check_model(proto)
    notes.update(exporter=used, ir_version=int(proto.ir_version))
    return notes


def onnx_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session as the profile runs it: ``threads`` intra-op, all graph opts."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One request at a time per instance: parallelism lives inside the operators.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build_candidates(
    model: nn.Module, sample: np.ndarray, out_dir: str | Path, config: SelectionConfig
) -> list[Candidate]:
    """Build, serialise and load back every candidate of ``config`` (see the module docstring).

    A candidate that cannot be built is returned with ``error`` set instead of raising; the
    selection goes on without it.
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    # The exporters specialise a batch of 1, so the example has the largest measured batch.
    example = torch.from_numpy(_batch(sample, max(max(config.plan.batch_sizes), 2)))
    # eager is the reference; fp32 TorchScript is what eager is served as and what a runtime
    # without ONNX Runtime falls back to, so both are always built.
    required = (REFERENCE, "torchscript")
    wanted = [c for c in CANDIDATES if c in required or c in config.candidates]
    built: list[Candidate] = []
    for name in wanted:
        candidate = Candidate(name, None)
        try:
            if name == REFERENCE:
                candidate.predict = _torch_predict(model)
            elif name in ("torchscript", "torchscript_opt"):
                frozen, how = _to_torchscript(model, example)
                candidate.notes["torchscript"] = how
                if name == "torchscript_opt":
                    with _quiet_torch():
                        frozen = torch.jit.optimize_for_inference(frozen)
                candidate.artifact = out / ARTIFACT_FILES[name]
                candidate.predict = _torch_predict(
                    _save_and_load_torchscript(frozen, candidate.artifact)
                )
            elif name == "int8_dynamic":
                with _quiet_torch():
                    quantized = torch.ao.quantization.quantize_dynamic(
                        model, {torch.nn.Linear}, dtype=torch.qint8
                    )
                frozen, how = _to_torchscript(quantized, example)
                candidate.notes.update(
                    torchscript=how,
                    quantized_engine=torch.backends.quantized.engine,
                    quantized_modules="nn.Linear",
                )
                candidate.artifact = out / ARTIFACT_FILES[name]
                candidate.predict = _torch_predict(
                    _save_and_load_torchscript(frozen, candidate.artifact)
                )
            elif name == "onnxruntime":
                candidate.artifact = out / ARTIFACT_FILES[name]
                candidate.notes.update(
                    export_onnx(
                        model,
                        example,
                        candidate.artifact,
                        config.input_name,
                        config.output_name,
                        config.onnx_exporter,
                    )
                )
                session = onnx_session(candidate.artifact, config.threads)
                candidate.notes["onnxruntime"] = _version("onnxruntime")
                candidate.predict = _onnx_predict(session, config.input_name)
        except Exception as exc:  # a failed candidate is reported, not fatal
            candidate.predict = None
            candidate.error = f"{type(exc).__name__}: {exc}"[:800]
        built.append(candidate)
    return built


def _onnx_predict(session: Any, input_name: str) -> Predict:
    def predict(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

    return predict


def _batch(sample: np.ndarray, size: int) -> np.ndarray:
    """``size`` rows taken cyclically from ``sample``, float32 and C-contiguous."""
    rows = np.asarray(sample, dtype=np.float32)
    if rows.ndim < 2 or len(rows) == 0:
        raise ValueError("sample must be a non-empty [rows, ...] array")
    return np.ascontiguousarray(rows[np.arange(size) % len(rows)])


# ------------------------------------------------------------------------------- measurement


Timer = Callable[[str, int, Callable[[], object], int], Sequence[float]]
"""``timer(candidate, batch, call, n)`` -> ``n`` per-call durations in seconds."""


def perf_timer(name: str, batch: int, call: Callable[[], object], n: int) -> list[float]:
    """The real timer: ``time.perf_counter_ns`` around each of ``n`` calls."""
    from time import perf_counter_ns

    durations = []
    for _ in range(n):
        started = perf_counter_ns()
        call()
        durations.append((perf_counter_ns() - started) / 1e9)
    return durations


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads; the previous count is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure(
    candidates: Sequence[Candidate],
    sample: np.ndarray,
    plan: MeasurePlan,
    timer: Timer = perf_timer,
) -> dict[str, dict[int, Latency]]:
    """Latency of every built candidate at every batch size of ``plan`` (interleaved rounds)."""
    live = [c for c in candidates if c.predict is not None]
    results: dict[str, dict[int, Latency]] = {c.name: {} for c in live}
    collecting = gc.isenabled()
    gc.disable()  # a collection inside a timed call is noise, not the backend's cost
    try:
        for batch in plan.batch_sizes:
            x = _batch(sample, batch)
            calls: dict[str, Callable[[], object]] = {
                c.name: functools.partial(c.predict, x) for c in live  # type: ignore[arg-type]
            }
            blocks: dict[str, int] = {}
            for name, call in calls.items():
                timer(name, batch, call, plan.warmup)
                probe = statistics.median(timer(name, batch, call, plan.calibration))
                size = int(plan.block_seconds / max(probe, 1e-9))
                blocks[name] = min(max(size, plan.min_block), plan.max_block)
            samples: dict[str, list[float]] = {name: [] for name in calls}
            names = list(calls)
            for round_no in range(plan.rounds):
                # Alternate the direction so no candidate always follows the same neighbour.
                for name in names if round_no % 2 == 0 else reversed(names):
                    if plan.settle_seconds > 0:
                        time.sleep(plan.settle_seconds)
                    timer(name, batch, calls[name], plan.block_warmup)
                    samples[name].extend(timer(name, batch, calls[name], blocks[name]))
            for name, durations in samples.items():
                results[name][batch] = Latency.from_seconds(durations)
    finally:
        if collecting:
            gc.enable()
    return results


# ---------------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class Deviation:
    """Accuracy of one candidate against the reference."""

    max_abs_diff: float
    metric: float | None
    metric_drop: float | None


def _predict_all(predict: Predict, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    parts = [predict(np.ascontiguousarray(x[i : i + chunk])) for i in range(0, len(x), chunk)]
    return np.concatenate(parts).astype(np.float64)


def check_accuracy(
    candidates: Sequence[Candidate],
    x: np.ndarray,
    labels: np.ndarray | None,
    metric: Callable[[np.ndarray, np.ndarray], float],
) -> dict[str, Deviation]:
    """Max abs output difference and metric drop of every built candidate vs ``eager_fp32``.

    The rows are scored in chunks and once more as a batch of 1 (the first row), so a candidate
    whose batch dimension was wrongly specialised cannot pass.
    """
    rows = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    reference = next(c for c in candidates if c.name == REFERENCE)
    assert reference.predict is not None
    ref_out = _predict_all(reference.predict, rows)
    ref_one = reference.predict(rows[:1]).astype(np.float64)
    ref_metric = None
    if labels is not None:
        try:
            ref_metric = metric(labels, ref_out)
        except ValueError:  # e.g. AUC on rows of one class: bound the output difference only
            labels = None
    deviations = {}
    for c in candidates:
        if c.predict is None:
            continue
        out = _predict_all(c.predict, rows)
        one = c.predict(rows[:1]).astype(np.float64)
        if out.shape != ref_out.shape or one.shape != ref_one.shape:
            diff = float("inf")
        else:
            diff = float(max(np.abs(out - ref_out).max(), np.abs(one - ref_one).max()))
        value = metric(labels, out) if labels is not None else None
        drop = None
        if ref_metric is not None and value is not None:
            drop = float(ref_metric - value)
        deviations[c.name] = Deviation(diff, value, drop)
    return deviations


def within(deviation: Deviation, bound: AccuracyBound) -> bool:
    """Is ``deviation`` inside ``bound`` (NaN never is)?"""
    if not deviation.max_abs_diff <= bound.max_abs_diff:
        return False
    return deviation.metric_drop is None or deviation.metric_drop <= bound.max_metric_drop


# ------------------------------------------------------------------------------------ choice


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


# ------------------------------------------------------------------------------ all together


def select_backend(
    model: nn.Module,
    sample: np.ndarray,
    out_dir: str | Path,
    *,
    validation: tuple[np.ndarray, np.ndarray | None] | None = None,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "auc",
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
        The :class:`Selection`, whose ``artifact`` is the file to serve.

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
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "auc",
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
    chosen, served = decide(figures, cfg.objective, cfg.allowed)
    served_candidate = next(c for c in built if c.name == served)
    fp32 = next((c for c in built if c.name == "torchscript" and c.error is None), None)
    if fp32 is None or fp32.artifact is None or served_candidate.artifact is None:
        raise SelectionError("the fp32 TorchScript candidate could not be built")
    form = SERVING_FORM[served]
    assert form is not None
    reference = deviations[REFERENCE]
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
        reference_metric=reference.metric,
        candidates=tuple(figures),
        environment=environment(cfg.threads),
    )


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(threads: int) -> dict[str, Any]:
    """Where figures come from: CPU, core count, threads used, library versions."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
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
