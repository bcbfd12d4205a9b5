"""The PyTorch model: preprocessing (from the feature spec) + MLP, and its TorchScript export.

The preprocessing lives in the module as buffers, so the exported TorchScript file takes the raw
feature vector that the feature store serves and returns the default probability.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from pipelines.training.preprocessing import FeatureSpec


def parse_hidden(hidden_units: str) -> list[int]:
    """``"64,32"`` -> ``[64, 32]``; raises ValueError on anything else."""
    try:
        sizes = [int(part) for part in hidden_units.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"hidden_units must be comma-separated ints, got {hidden_units!r}"
        ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"hidden_units must be positive ints, got {hidden_units!r}")
    return sizes


class Preprocess(nn.Module):
    """Per-feature ``log1p`` (where the spec says so) then standardisation."""

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.register_buffer("log_mask", torch.tensor([t == "log1p" for t in spec.transforms]))
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features ``[batch, n]`` -> standardised features ``[batch, n]``."""
        logged = torch.log1p(torch.clamp(features, min=0.0))
        x = torch.where(self.log_mask, logged, features)
        return (x - self.mean) / self.std


class CreditRiskMLP(nn.Module):
    """Preprocessing + ReLU MLP with one logit output."""

    def __init__(self, spec: FeatureSpec, hidden: list[int]) -> None:
        super().__init__()
        self.preprocess = Preprocess(spec)
        layers: list[nn.Module] = []
        width = len(spec.features)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features ``[batch, n]`` -> logits ``[batch, 1]``."""
        return self.body(self.preprocess(features))


class Scorer(nn.Module):
    """What is served: raw features ``[batch, n]`` (FP32) -> default probability ``[batch, 1]``."""

    def __init__(self, model: CreditRiskMLP) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Probability of default for each row."""
        return torch.sigmoid(self.model(features.to(torch.float32)))


def build(spec: FeatureSpec, hidden_units: str) -> CreditRiskMLP:
    """A fresh (randomly initialised, per torch's current seed) model for ``spec``."""
    return CreditRiskMLP(spec, parse_hidden(hidden_units))


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over parameter names, dtypes, shapes and bytes: equal iff the weights are equal."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # A byte view works for every dtype (bfloat16 has no NumPy twin).
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def torchscript_allowed() -> Iterator[None]:
    """Silence torch's TorchScript deprecation warnings, on purpose.

    torch 2.13 deprecates ``torch.jit`` in favour of ``torch.export``, but Triton's PyTorch
    (libtorch) backend, which production serves with, loads TorchScript ``model.pt`` files.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        yield


def script(
    spec: FeatureSpec, hidden_units: str, state: dict[str, torch.Tensor]
) -> torch.jit.ScriptModule:
    """TorchScript :class:`Scorer` with ``state`` loaded, in eval mode, on the CPU."""
    model = build(spec, hidden_units)
    model.load_state_dict(state)
    scorer = Scorer(model).eval()
    with torchscript_allowed():
        return torch.jit.script(scorer)


def save_torchscript(module: torch.jit.ScriptModule, path: str | Path) -> None:
    """Save a TorchScript module (parent folders created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Serialise in memory first so a failure never leaves a truncated model.pt for Triton.
    buffer = io.BytesIO()
    with torchscript_allowed():
        torch.jit.save(module, buffer)
    target.write_bytes(buffer.getvalue())


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript file on the CPU, in eval mode."""
    with torchscript_allowed():
        return torch.jit.load(str(path), map_location="cpu").eval()
