"""The candidate forms of the CPU tier: their names, server forms and files, and the built type.

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

How each is built is in :mod:`pipelines.serving.cpu_tier.candidates`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CANDIDATES = ("eager_fp32", "torchscript", "torchscript_opt", "onnxruntime", "int8_dynamic")
"""Every candidate, in tie-break order (earlier wins a tie)."""
REFERENCE = "eager_fp32"
"""The candidate every speed-up and every accuracy deviation is measured against."""
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
"""Candidate -> the file it is serialised to (and loaded back from) under the output folder."""

ONNX_OPSET = 18
"""ONNX opset of the export. Production serves with Triton 24.10 (ONNX Runtime 1.19), which runs
opsets up to 21; 18 is also what the dynamo exporter translates to natively."""
MAX_ONNX_IR_VERSION = 10
"""Highest ONNX IR version ONNX Runtime 1.19 (Triton 24.10) loads; newer onnx packages may stamp
a higher one on files that use nothing newer, so the export caps it (the checker re-validates)."""


Predict = Callable[[np.ndarray], np.ndarray]
"""A served form: float32 array ``[batch, ...]`` in, output array out."""


@dataclass
class Candidate:
    """A built candidate: how to call it and what file it came from."""

    name: str
    """Candidate name (:data:`CANDIDATES`)."""
    predict: Predict | None
    """The loaded-back form, None when it could not be built."""
    artifact: Path | None = None
    """The serialised file that is measured and would be served; None for eager."""
    notes: dict[str, Any] = field(default_factory=dict)
    """How it was built (exporter, opset, quantisation engine, ...)."""
    error: str | None = None
    """Why it could not be built, if it could not."""
