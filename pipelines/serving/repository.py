"""Triton model repositories for the exported model: production and local (Python backend).

Layout written by :func:`write_repositories` (``<model>`` e.g. ``credit_risk``, ``<version>`` the
registry's integer version, as Triton requires numeric version folders). The production backend is
``ServingConfig.backend``: the PyTorch (libtorch) backend for TorchScript, always on the ``gpu``
profile; on the ``cpu`` profile the export measures the candidates of
:mod:`pipelines.serving.cpu_tier` and the winner decides (ONNX Runtime or libtorch)::

    model_repository/<model>/config.pbtxt            platform pytorch_libtorch | onnxruntime_onnx
    model_repository/<model>/<version>/model.pt      TorchScript (fp32, or dynamic-int8)
                                    or model.onnx    ONNX (ONNX Runtime backend)
    model_repository_local/<model>/config.pbtxt      backend python, same I/O, batching, instances
    model_repository_local/<model>/<version>/model.pt    the same bytes as production's model.pt;
                                                     with ONNX, the fp32 TorchScript fallback
    model_repository_local/<model>/<version>/model.onnx  (ONNX only) the same bytes as production
    model_repository_local/<model>/<version>/model.py    runs model.onnx with onnxruntime when the
                                                     Triton Python environment can import it,
                                                     else model.pt with torch

The production repository uses Triton's native backends. The local one exists because the local
Triton server has only the Python backend; for an ONNX model its ``config.pbtxt`` starts with a
comment saying which runtime the local server will use (what ``.venv-triton`` could import when the
repository was written) and ``model.py`` logs the runtime it actually picked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INPUT_NAME = "features__0"
"""Input tensor name; ``<name>__<index>`` is the libtorch backend's naming convention."""
OUTPUT_NAME = "probability__0"
"""Output tensor name (probability of default, FP32, one per row)."""
PROFILES = ("gpu", "cpu")
BACKENDS = ("pytorch", "onnxruntime")
"""Production backends: Triton's PyTorch (libtorch, TorchScript) and ONNX Runtime backends."""
PYTHON_MODEL_SOURCE = Path(__file__).with_name("python_model.py")
CPU_PROFILE_VCPUS = 2
"""vCPUs of one replica of the ``cpu`` serving profile: the Triton container's CPU limit in
``components/serving.py`` (a test keeps them equal). The CPU export measures on this many threads
and writes it into the config as the runtime's intra-op thread count."""
MODEL_FILES = {"pytorch": "model.pt", "onnxruntime": "model.onnx"}
"""Triton's default model file name per backend."""
TRITON_VENV = Path(__file__).resolve().parents[2] / ".venv-triton"
"""The local Triton server's virtualenv (``$SOVML_TRITON_VENV`` overrides), see
``pipelines/serving/triton.py``."""


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
        backend: Production backend, ``pytorch`` (TorchScript) or ``onnxruntime`` (ONNX; CPU
            profile only).
        cpu_threads: Intra-op threads per instance written into the config (``cpu`` profile);
            None leaves the backend's default (all cores of the node).
    """

    model_name: str
    version: int
    n_features: int
    profile: str = "cpu"
    max_batch_size: int = 1024
    instance_count: int = 1
    preferred_batch_sizes: tuple[int, ...] = (64, 256)
    max_queue_delay_us: int = 2000
    backend: str = "pytorch"
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "onnxruntime" and self.profile != "cpu":
            raise ValueError("the onnxruntime backend is chosen on the cpu profile only")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1, got {self.cpu_threads}")
        if self.version < 1:
            raise ValueError(f"Triton versions are positive integers, got {self.version}")
        if not self.model_name or "/" in self.model_name:
            raise ValueError(f"bad model name {self.model_name!r}")
        if any(b > self.max_batch_size for b in self.preferred_batch_sizes):
            raise ValueError("preferred batch sizes must not exceed max_batch_size")


@dataclass(frozen=True)
class ExportPaths:
    """Files written by :func:`write_repositories`.

    ``model``/``local_model`` are the served file (``model.pt`` or ``model.onnx``);
    ``local_torchscript`` is the local repository's ``model.pt`` (the served TorchScript, or the
    fp32 fallback beside an ONNX model).
    """

    repository: Path
    config: Path
    model: Path
    local_repository: Path
    local_config: Path
    local_model: Path
    local_model_py: Path
    backend: str = "pytorch"
    local_torchscript: Path | None = None
    local_runtime: str = "torchscript"
    """What the local server will run (``onnxruntime`` or ``torchscript``), as far as the
    ``.venv-triton`` probe at export time could tell."""


def _parameter(key: str, value: str) -> str:
    return f'parameters: {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n'


def render_config(cfg: ServingConfig, backend: str, note: str = "") -> str:
    """``config.pbtxt`` for ``backend``: ``libtorch``/``onnxruntime`` (production) or ``python``.

    Args:
        cfg: Serving settings; for ``python``, ``cfg.backend`` says which file ``model.py`` serves.
        backend: Which config to render.
        note: Comment lines (``#``) put first, for people reading the repository.
    """
    threads = cfg.cpu_threads if cfg.profile == "cpu" else None
    extra = ""
    if backend == "libtorch":
        head = 'platform: "pytorch_libtorch"\nbackend: "pytorch"\n'
        if threads:
            # The libtorch backend applies this process-wide (first model config that sets it).
            extra = _parameter("INTRA_OP_THREAD_COUNT", str(threads))
    elif backend == "onnxruntime":
        head = 'platform: "onnxruntime_onnx"\nbackend: "onnxruntime"\n'
        # Graph optimisation is left at the backend's default, which enables all of them (what
        # the measurement used); one request per instance at a time, so no inter-op threads.
        if threads:
            extra = _parameter("intra_op_thread_count", str(threads))
        extra += _parameter("inter_op_thread_count", "1")
    elif backend == "python":
        head = 'backend: "python"\n'
        extra = _parameter("TORCHSCRIPT_FILE", MODEL_FILES["pytorch"])
        if cfg.backend == "onnxruntime":
            extra += _parameter("ONNX_FILE", MODEL_FILES["onnxruntime"])
        if threads:
            extra += _parameter("INTRA_OP_THREAD_COUNT", str(threads))
    else:
        raise ValueError(f"backend must be 'libtorch', 'onnxruntime' or 'python', got {backend!r}")
    kind = "KIND_GPU" if cfg.profile == "gpu" else "KIND_CPU"
    preferred = ", ".join(str(b) for b in cfg.preferred_batch_sizes)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in note.splitlines())
    return (
        f"{comment}"
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


def triton_venv_has_onnxruntime(venv: str | Path | None = None) -> bool | None:
    """Can the local Triton server's Python import onnxruntime? None when there is no such venv.

    Asked in a subprocess of that venv's interpreter (it is a different environment from the one
    exporting). ``$SOVML_TRITON_VENV`` overrides the default ``.venv-triton``.
    """
    root = Path(venv or os.environ.get("SOVML_TRITON_VENV") or TRITON_VENV)
    python = root / "bin" / "python"
    if not python.exists():
        return None
    try:
        probe = subprocess.run(
            [str(python), "-c", "import onnxruntime"], capture_output=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return probe.returncode == 0


def local_runtime_note(has_onnxruntime: bool | None) -> tuple[str, str]:
    """``(runtime, note)`` of an ONNX model's local twin, from the ``.venv-triton`` probe."""
    rule = (
        "Local twin of an ONNX Runtime model. model.py runs model.onnx with onnxruntime when\n"
        "the Triton Python environment can import onnxruntime, else model.pt (fp32 TorchScript\n"
        "of the same weights) with torch, and logs which one it picked.\n"
    )
    if has_onnxruntime:
        return "onnxruntime", rule + "At export: .venv-triton imports onnxruntime -> model.onnx."
    if has_onnxruntime is None:
        return "torchscript", rule + "At export: no .venv-triton found; fallback assumed."
    return "torchscript", rule + (
        "At export: .venv-triton cannot import onnxruntime -> model.pt (TorchScript fallback)."
    )


def write_repositories(
    model_file: str | Path,
    cfg: ServingConfig,
    repository: str | Path,
    local_repository: str | Path,
    torchscript_fallback: str | Path | None = None,
) -> ExportPaths:
    """Write both model repositories for one version (see the module docstring).

    Args:
        model_file: The file to serve: TorchScript for ``cfg.backend == "pytorch"``, ONNX for
            ``onnxruntime``.
        cfg: Serving settings.
        repository: Root of the production repository (``model_repository``).
        local_repository: Root of the local Python-backend repository (``model_repository_local``).
        torchscript_fallback: fp32 TorchScript of the same weights, required with ONNX: the local
            twin serves it where onnxruntime cannot be imported.
    """
    source = Path(model_file)
    onnx = cfg.backend == "onnxruntime"
    if onnx and torchscript_fallback is None:
        raise ValueError("an ONNX export needs a TorchScript fallback for the local repository")
    prod_model_dir = Path(repository) / cfg.model_name
    local_model_dir = Path(local_repository) / cfg.model_name
    prod_version = prod_model_dir / str(cfg.version)
    local_version = local_model_dir / str(cfg.version)
    for folder in (prod_version, local_version):
        folder.mkdir(parents=True, exist_ok=True)

    filename = MODEL_FILES[cfg.backend]
    model = prod_version / filename
    local_model = local_version / filename
    shutil.copyfile(source, model)
    shutil.copyfile(source, local_model)
    local_ts = local_version / MODEL_FILES["pytorch"]
    note, runtime = "", "torchscript"
    if onnx:
        shutil.copyfile(Path(torchscript_fallback), local_ts)  # type: ignore[arg-type]
        runtime, note = local_runtime_note(triton_venv_has_onnxruntime())
    local_py = local_version / "model.py"
    shutil.copyfile(PYTHON_MODEL_SOURCE, local_py)

    config = prod_model_dir / "config.pbtxt"
    config.write_text(render_config(cfg, "onnxruntime" if onnx else "libtorch"))
    local_config = local_model_dir / "config.pbtxt"
    local_config.write_text(render_config(cfg, "python", note))
    return ExportPaths(
        Path(repository),
        config,
        model,
        Path(local_repository),
        local_config,
        local_model,
        local_py,
        backend=cfg.backend,
        local_torchscript=local_ts,
        local_runtime=runtime,
    )
