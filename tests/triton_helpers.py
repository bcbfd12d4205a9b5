"""Helpers for tests that run the real Triton server (``.venv-triton``): skip, seeded models."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.serving.triton import TritonInstallation, TritonUnavailableError, find_triton


def require_triton() -> TritonInstallation:
    """The Triton installation, or a pytest skip that says how to get it."""
    try:
        return find_triton()
    except TritonUnavailableError as exc:
        pytest.skip(f"real Triton server not available: {exc}")


def tiny_mlp(path: Path, seed: int = 0, in_dim: int = 8, out_dim: int = 1) -> Path:
    """A seeded MLP ``[n, in_dim] -> [n, out_dim]`` (probabilities) saved as TorchScript."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(in_dim, 16), nn.ReLU(), nn.Linear(16, out_dim), nn.Sigmoid()
    ).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(path))
    return path


def load_python_model(version_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A repository's ``model.py`` imported under a stand-in for ``triton_python_backend_utils``
    (requests are lists of tensors; responses keep their output tensors), without a server."""

    class Tensor:
        def __init__(self, name: str, array: np.ndarray) -> None:
            self.name, self.array = name, array

        def as_numpy(self) -> np.ndarray:
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors: list[Tensor]) -> None:
            self.output_tensors = output_tensors

    stub = types.ModuleType("triton_python_backend_utils")
    stub.Tensor = Tensor  # type: ignore[attr-defined]
    stub.InferenceResponse = InferenceResponse  # type: ignore[attr-defined]
    stub.get_input_tensor_by_name = lambda request, name: next(  # type: ignore[attr-defined]
        t for t in request if t.name == name
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stub)
    # No __pycache__ beside model.py: the exported repository must stay as the lifecycle log
    # recorded its digest (later tests verify it), where Python writes bytecode too.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location("twin_model", version_dir / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_model_configs(files: dict[str, Path]) -> dict[str, Any]:
    """``config.pbtxt`` files parsed as Triton ``ModelConfig`` (dicts, proto field names).

    In a subprocess: tritonclient.grpc's protos must not share a process with other gRPC server
    protos (duplicate symbols), whatever else the test session imported.
    """
    code = (
        "import json, sys\n"
        "from google.protobuf import json_format, text_format\n"
        "from tritonclient.grpc import model_config_pb2\n"
        "out = {}\n"
        "for name, path in json.loads(sys.argv[1]).items():\n"
        "    cfg = text_format.Parse(open(path).read(), model_config_pb2.ModelConfig())\n"
        "    out[name] = json_format.MessageToDict(cfg, preserving_proto_field_name=True)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps({k: str(v) for k, v in files.items()})],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(proc.stdout)
