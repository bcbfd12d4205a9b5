"""Building the CPU tier's candidates: export each form, serialise it, load it back.

What is measured is what is shipped: every candidate with a server form is written to its file
under ``out_dir`` (:data:`~pipelines.serving.cpu_tier.forms.ARTIFACT_FILES`) and loaded back from
it before it is measured or checked. The forms are described in
:mod:`pipelines.serving.cpu_tier.forms`. Files are written only under ``out_dir``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.serving.cpu_tier.config import SelectionConfig
from pipelines.serving.cpu_tier.forms import (
    ARTIFACT_FILES,
    CANDIDATES,
    MAX_ONNX_IR_VERSION,
    ONNX_OPSET,
    REFERENCE,
    Candidate,
    Predict,
)
from pipelines.serving.cpu_tier.measurement import batch_rows, package_version

if TYPE_CHECKING:
    import torch
    from torch import nn


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


def _onnx_predict(session: Any, input_name: str) -> Predict:
    def predict(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

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


def _ship_torchscript(candidate: Candidate, frozen: Any, out: Path) -> None:
    """Save ``frozen`` as the candidate's file and serve what is loaded back from it."""
    import torch

    candidate.artifact = out / ARTIFACT_FILES[candidate.name]
    with _quiet_torch():
        torch.jit.save(frozen, str(candidate.artifact))
        loaded = torch.jit.load(str(candidate.artifact), map_location="cpu").eval()
    candidate.predict = _torch_predict(loaded)


# ------------------------------------------------------------------------------------- ONNX


def _export_dynamo(
    model: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str
) -> None:
    """``torch.onnx.export(dynamo=True)`` with a dynamic batch dimension."""
    import torch

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


def _export_classic(
    model: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str
) -> None:
    """The TorchScript-based exporter with a dynamic batch dimension."""
    import torch

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


def _cap_and_check(path: Path, notes: dict[str, Any]) -> int:
    """Cap the file's IR version at :data:`MAX_ONNX_IR_VERSION`, check it; its IR version."""
    import onnx

    proto = onnx.load(str(path))
    if proto.ir_version > MAX_ONNX_IR_VERSION:
        notes["ir_version_exported"] = int(proto.ir_version)
        proto.ir_version = MAX_ONNX_IR_VERSION
        onnx.save(proto, str(path))
    onnx.checker.check_model(proto)
    return int(proto.ir_version)


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
    import onnx  # noqa: F401 - without it nothing is written: the check below needs it

    notes: dict[str, Any] = {"opset": ONNX_OPSET}
    used = None
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(model, example, path, input_name, output_name)
            used = "dynamo"
        except Exception as exc:
            if exporter == "dynamo":
                raise
            notes["dynamo_error"] = f"{type(exc).__name__}: {exc}"[:500]
    if used is None:
        _export_classic(model, example, path, input_name, output_name)
        used = "classic"
    ir_version = _cap_and_check(path, notes)
    notes.update(exporter=used, ir_version=ir_version)
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


# ------------------------------------------------------------------------ one builder a form

Builder = Callable[[Candidate, "nn.Module", "torch.Tensor", Path, SelectionConfig], None]
"""``builder(candidate, model, example, out_dir, config)``: sets the candidate's predict,
artifact and notes, or raises."""


def _build_eager(
    candidate: Candidate, model: nn.Module, example: torch.Tensor, out: Path, cfg: SelectionConfig
) -> None:
    """``eager_fp32``: the module itself (the reference; no file)."""
    candidate.predict = _torch_predict(model)


def _build_torchscript(
    candidate: Candidate, model: nn.Module, example: torch.Tensor, out: Path, cfg: SelectionConfig
) -> None:
    """``torchscript`` and ``torchscript_opt`` (the latter optimised for inference)."""
    import torch

    frozen, how = _to_torchscript(model, example)
    candidate.notes["torchscript"] = how
    if candidate.name == "torchscript_opt":
        with _quiet_torch():
            frozen = torch.jit.optimize_for_inference(frozen)
    _ship_torchscript(candidate, frozen, out)


def _build_int8_dynamic(
    candidate: Candidate, model: nn.Module, example: torch.Tensor, out: Path, cfg: SelectionConfig
) -> None:
    """``int8_dynamic``: int8 ``nn.Linear`` weights, then scripted and frozen."""
    import torch

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
    _ship_torchscript(candidate, frozen, out)


def _build_onnxruntime(
    candidate: Candidate, model: nn.Module, example: torch.Tensor, out: Path, cfg: SelectionConfig
) -> None:
    """``onnxruntime``: the ONNX export, run by an ONNX Runtime session on the profile's threads."""
    candidate.artifact = out / ARTIFACT_FILES[candidate.name]
    candidate.notes.update(
        export_onnx(
            model, example, candidate.artifact, cfg.input_name, cfg.output_name, cfg.onnx_exporter
        )
    )
    session = onnx_session(candidate.artifact, cfg.threads)
    candidate.notes["onnxruntime"] = package_version("onnxruntime")
    candidate.predict = _onnx_predict(session, cfg.input_name)


_BUILDERS: dict[str, Builder] = {
    "eager_fp32": _build_eager,
    "torchscript": _build_torchscript,
    "torchscript_opt": _build_torchscript,
    "onnxruntime": _build_onnxruntime,
    "int8_dynamic": _build_int8_dynamic,
}


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
    example = torch.from_numpy(batch_rows(sample, max(max(config.plan.batch_sizes), 2)))
    # eager is the reference; fp32 TorchScript is what eager is served as and what a runtime
    # without ONNX Runtime falls back to, so both are always built.
    required = (REFERENCE, "torchscript")
    wanted = [c for c in CANDIDATES if c in required or c in config.candidates]
    built: list[Candidate] = []
    for name in wanted:
        candidate = Candidate(name, None)
        try:
            _BUILDERS[name](candidate, model, example, out, config)
        except Exception as exc:  # a failed candidate is reported, not fatal
            candidate.predict = None
            candidate.error = f"{type(exc).__name__}: {exc}"[:800]
        built.append(candidate)
    return built
