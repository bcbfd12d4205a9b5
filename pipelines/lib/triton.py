"""Triton model repositories for the exported model: production (libtorch) and local (Python).

Layout written by :func:`write_repositories` (``<model>`` e.g. ``credit_risk``, ``<version>`` the
registry's integer version, as Triton requires numeric version folders)::

    model_repository/<model>/config.pbtxt            platform pytorch_libtorch (backend pytorch)
    model_repository/<model>/<version>/model.pt      TorchScript
    model_repository_local/<model>/config.pbtxt      backend python, same I/O, batching, instances
    model_repository_local/<model>/<version>/model.pt   the same bytes
    model_repository_local/<model>/<version>/model.py   loads model.pt with torch

The production repository keeps Triton's native PyTorch backend. The local one exists because the
local Triton server has only the Python backend.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

INPUT_NAME = "features__0"
"""Input tensor name; ``<name>__<index>`` is the libtorch backend's naming convention."""
OUTPUT_NAME = "probability__0"
"""Output tensor name (probability of default, FP32, one per row)."""
PROFILES = ("gpu", "cpu")
PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")


@dataclass(frozen=True)
class ServingConfig:
    """What goes into ``config.pbtxt``.

    Attributes:
        model_name: Triton model name (folder name).
        version: Numeric model version (folder name).
        n_features: Width of the input vector.
        profile: ``gpu`` (KIND_GPU instances) or ``cpu`` (KIND_CPU instances).
        max_batch_size: Largest batch Triton forms.
        instance_count: Model instances per device (GPU) or in total (CPU).
        preferred_batch_sizes: Batch sizes the dynamic batcher aims for.
        max_queue_delay_us: How long a request may wait for a batch to fill.
    """

    model_name: str
    version: int
    n_features: int
    profile: str = "cpu"
    max_batch_size: int = 1024
    instance_count: int = 1
    preferred_batch_sizes: tuple[int, ...] = (64, 256)
    max_queue_delay_us: int = 2000

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if self.version < 1:
            raise ValueError(f"Triton versions are positive integers, got {self.version}")
        if not self.model_name or "/" in self.model_name:
            raise ValueError(f"bad model name {self.model_name!r}")
        if any(b > self.max_batch_size for b in self.preferred_batch_sizes):
            raise ValueError("preferred batch sizes must not exceed max_batch_size")


@dataclass(frozen=True)
class ExportPaths:
    """Files written by :func:`write_repositories`."""

    repository: Path
    config: Path
    model: Path
    local_repository: Path
    local_config: Path
    local_model: Path
    local_model_py: Path


def render_config(cfg: ServingConfig, backend: str) -> str:
    """``config.pbtxt`` text for ``backend`` ``libtorch`` (production) or ``python`` (local)."""
    if backend == "libtorch":
        head = 'platform: "pytorch_libtorch"\nbackend: "pytorch"\n'
        extra = ""
    elif backend == "python":
        head = 'backend: "python"\n'
        extra = (
            'parameters: {\n  key: "TORCHSCRIPT_FILE"\n  value: { string_value: "model.pt" }\n}\n'
        )
    else:
        raise ValueError(f"backend must be 'libtorch' or 'python', got {backend!r}")
    kind = "KIND_GPU" if cfg.profile == "gpu" else "KIND_CPU"
    preferred = ", ".join(str(b) for b in cfg.preferred_batch_sizes)
    return (
        f'name: "{cfg.model_name}"\n'
        f"{head}"
        f"max_batch_size: {cfg.max_batch_size}\n"
        "input [\n"
        "  {\n"
        f'    name: "{INPUT_NAME}"\n'
        "    data_type: TYPE_FP32\n"
        f"    dims: [ {cfg.n_features} ]\n"
        "  }\n"
        "]\n"
        "output [\n"
        "  {\n"
        f'    name: "{OUTPUT_NAME}"\n'
        "    data_type: TYPE_FP32\n"
        "    dims: [ 1 ]\n"
        "  }\n"
        "]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {cfg.max_queue_delay_us}\n"
        "}\n"
        "instance_group [\n"
        "  {\n"
        f"    count: {cfg.instance_count}\n"
        f"    kind: {kind}\n"
        "  }\n"
        "]\n"
        "version_policy: { latest: { num_versions: 1 } }\n"
        f"{extra}"
    )


def write_repositories(
    torchscript: str | Path,
    cfg: ServingConfig,
    repository: str | Path,
    local_repository: str | Path,
) -> ExportPaths:
    """Write both model repositories for one version (see the module docstring).

    Args:
        torchscript: The TorchScript file to serve.
        cfg: Serving settings.
        repository: Root of the production repository (``model_repository``).
        local_repository: Root of the local Python-backend repository (``model_repository_local``).
    """
    source = Path(torchscript)
    prod_model_dir = Path(repository) / cfg.model_name
    local_model_dir = Path(local_repository) / cfg.model_name
    prod_version = prod_model_dir / str(cfg.version)
    local_version = local_model_dir / str(cfg.version)
    for folder in (prod_version, local_version):
        folder.mkdir(parents=True, exist_ok=True)

    model = prod_version / "model.pt"
    local_model = local_version / "model.pt"
    shutil.copyfile(source, model)
    shutil.copyfile(source, local_model)
    local_py = local_version / "model.py"
    shutil.copyfile(PYTHON_MODEL_SOURCE, local_py)

    config = prod_model_dir / "config.pbtxt"
    config.write_text(render_config(cfg, "libtorch"))
    local_config = local_model_dir / "config.pbtxt"
    local_config.write_text(render_config(cfg, "python"))
    return ExportPaths(
        Path(repository), config, model, Path(local_repository), local_config, local_model, local_py
    )
