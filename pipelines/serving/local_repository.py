"""Write a local (Python-backend) Triton model repository for a TorchScript model.

The local Triton server (from the ``nvidia-pytriton`` wheel) has only the Python backend, so a
TorchScript file is served there by ``pipelines/serving/python_model.py`` (the training export's
local twin too), copied in as ``model.py``.
Layout written by :func:`write_local_repository`::

    <out_dir>/<model_name>/config.pbtxt             backend "python", I/O, batching, instances
    <out_dir>/<model_name>/<version>/model.pt       the TorchScript file (copied)
    <out_dir>/<model_name>/<version>/model.py       pipelines/serving/python_model.py

Tensor names, shapes, batching and instance groups are the same ones a production
``pytorch_libtorch`` config would declare, so a client cannot tell the two apart. Tests and the
``sovml abtest`` / ``sovml bench serve`` demos use it to serve small seeded models; the training
pipeline's export writes the same layout.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MODEL_PY_SOURCE = Path(__file__).with_name("python_model.py")
KINDS = ("KIND_CPU", "KIND_GPU")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class LocalRepository:
    """Paths written by :func:`write_local_repository`."""

    root: Path
    model_dir: Path
    config: Path
    model_pt: Path
    model_py: Path


def render_python_config(
    model_name: str,
    input_name: str,
    input_dim: int,
    output_name: str,
    output_dim: int,
    max_batch_size: int,
    dynamic_batching: bool,
    instance_count: int,
    kind: str = "KIND_CPU",
    *,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int = 100,
    delay_ms: float = 0.0,
    torchscript_file: str = "model.pt",
) -> str:
    """``config.pbtxt`` text of a Python-backend model that serves a TorchScript file.

    With ``max_batch_size`` > 0 the tensors' first dimension is the batch (Triton adds it);
    with 0 the model does not batch and the shapes carry an explicit variable first dimension.
    See :func:`write_local_repository` for the arguments.
    """
    _validate(
        model_name,
        input_name,
        output_name,
        input_dim,
        output_dim,
        max_batch_size,
        dynamic_batching,
        instance_count,
        kind,
        preferred_batch_sizes,
        max_queue_delay_us,
        delay_ms,
    )
    lead = "" if max_batch_size > 0 else "-1, "
    lines = [
        f'name: "{model_name}"',
        'backend: "python"',
        f"max_batch_size: {max_batch_size}",
        f'input [ {{ name: "{input_name}" data_type: TYPE_FP32 dims: [ {lead}{input_dim} ] }} ]',
        f'output [ {{ name: "{output_name}" data_type: TYPE_FP32 dims: [ {lead}{output_dim} ] }} ]',
    ]
    if dynamic_batching:
        preferred = ""
        if preferred_batch_sizes:
            preferred = f" preferred_batch_size: [ {', '.join(map(str, preferred_batch_sizes))} ]"
        lines.append(
            f"dynamic_batching {{{preferred} max_queue_delay_microseconds: {max_queue_delay_us} }}"
        )
    lines.append(f"instance_group [ {{ count: {instance_count} kind: {kind} }} ]")
    lines.append("version_policy: { latest: { num_versions: 1 } }")
    params = {"TORCHSCRIPT_FILE": torchscript_file}
    if delay_ms:
        params["DELAY_MS"] = repr(float(delay_ms))
    for key, value in params.items():
        lines.append(f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def write_local_repository(
    torchscript_path: str | Path,
    out_dir: str | Path,
    model_name: str,
    version: int,
    input_name: str,
    input_dim: int,
    output_name: str,
    output_dim: int,
    max_batch_size: int,
    dynamic_batching: bool,
    instance_count: int,
    kind: str = "KIND_CPU",
    *,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int = 100,
    delay_ms: float = 0.0,
) -> LocalRepository:
    """Write one model version into a Python-backend Triton repository (layout: module doc).

    Other models already in ``out_dir`` are left alone, so several variants (``m-a``, ``m-b``)
    can share one repository; this model's config and version folder are overwritten.

    Args:
        torchscript_path: TorchScript file (``torch.jit.save``) mapping FP32
            ``[batch, input_dim]`` to ``[batch, output_dim]``.
        out_dir: Repository root (created if missing).
        model_name: Triton model name (the folder name).
        version: Positive integer version (the sub-folder name, as Triton requires).
        input_name: Input tensor name.
        input_dim: Width of one input row.
        output_name: Output tensor name.
        output_dim: Width of one output row.
        max_batch_size: Largest batch Triton forms; 0 disables batching.
        dynamic_batching: Let Triton's dynamic batcher merge concurrent requests (needs
            ``max_batch_size`` > 0).
        instance_count: Model instances (each a separate Python stub process).
        kind: ``KIND_CPU`` or ``KIND_GPU``.
        preferred_batch_sizes: Batch sizes the dynamic batcher aims for (none: as large as the
            queue allows).
        max_queue_delay_us: How long the dynamic batcher may hold a request to fill a batch.
        delay_ms: Sleep per execution, to fake a latency regression in canary tests (0 = off).

    Returns:
        The paths written.
    """
    source = Path(torchscript_path)
    if not source.is_file():
        raise FileNotFoundError(f"TorchScript file not found: {source}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version: {version!r}; allowed a positive integer")
    text = render_python_config(
        model_name,
        input_name,
        input_dim,
        output_name,
        output_dim,
        max_batch_size,
        dynamic_batching,
        instance_count,
        kind,
        preferred_batch_sizes=preferred_batch_sizes,
        max_queue_delay_us=max_queue_delay_us,
        delay_ms=delay_ms,
    )
    root = Path(out_dir)
    model_dir = root / model_name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    model_pt = version_dir / "model.pt"
    model_py = version_dir / "model.py"
    shutil.copyfile(source, model_pt)
    shutil.copyfile(MODEL_PY_SOURCE, model_py)
    config = model_dir / "config.pbtxt"
    config.write_text(text)
    return LocalRepository(root, model_dir, config, model_pt, model_py)


def _validate(
    model_name: str,
    input_name: str,
    output_name: str,
    input_dim: int,
    output_dim: int,
    max_batch_size: int,
    dynamic_batching: bool,
    instance_count: int,
    kind: str,
    preferred_batch_sizes: Sequence[int],
    max_queue_delay_us: int,
    delay_ms: float,
) -> None:
    # Everything Triton would reject at load time is rejected here, with the argument's name, so
    # a bad export fails in the pipeline step and not minutes later in the server log.
    for label, name in (
        ("model_name", model_name),
        ("input_name", input_name),
        ("output_name", output_name),
    ):
        if not _NAME.match(name):
            raise ValueError(f"{label}: {name!r}; allowed letters, digits, '_', '.', '-'")
    if input_name == output_name:
        raise ValueError("input_name and output_name must differ")
    for label, value in (
        ("input_dim", input_dim),
        ("output_dim", output_dim),
        ("instance_count", instance_count),
    ):
        if value < 1:
            raise ValueError(f"{label}: {value}; allowed >= 1")
    if max_batch_size < 0:
        raise ValueError(f"max_batch_size: {max_batch_size}; allowed >= 0")
    if dynamic_batching and max_batch_size == 0:
        raise ValueError("dynamic_batching needs max_batch_size > 0")
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r}; allowed {KINDS}")
    if any(b < 1 or b > max_batch_size for b in preferred_batch_sizes):
        raise ValueError(f"preferred_batch_sizes: {tuple(preferred_batch_sizes)}; allowed 1..max")
    if max_queue_delay_us < 0 or delay_ms < 0:
        raise ValueError("max_queue_delay_us and delay_ms must be >= 0")
