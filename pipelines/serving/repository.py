"""Triton model repositories: the one ``config.pbtxt`` renderer and the one folder layout.

Every repository this project writes has the same layout (``<version>`` a positive integer, as
Triton requires numeric version folders), written by :func:`write_model_version`::

    <repository>/<model>/config.pbtxt          rendered by render_model_config
    <repository>/<model>/<version>/<files>     model.pt | model.onnx (+ model.py: Python backend)

Two writers use it. The training export (:func:`write_repositories`) writes the production
repository, served with Triton's native backends (``ServingConfig.backend``: the PyTorch
(libtorch) backend for TorchScript, always on the ``gpu`` profile; on the ``cpu`` profile the
export measures the candidates of :mod:`pipelines.serving.cpu_tier` and the winner decides, ONNX
Runtime or libtorch), and its local twin for the Python backend::

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

:func:`write_local_repository` writes one TorchScript model for the Python backend alone: the
small seeded models of the tests and of the ``sovml abtest`` / ``sovml bench serve`` demos (any
tensor names and widths, batching optional, a deliberate per-execution delay).

The local repositories exist because the local Triton server (from the ``nvidia-pytriton``
wheel) has only the Python backend: ``pipelines/serving/python_model.py`` is copied in as
``model.py`` and serves the file with the same tensor names, shapes, batching and instance groups
a production config declares, so a client cannot tell the two apart. For an ONNX model the local
``config.pbtxt`` starts with a comment saying which runtime the local server will use (what
``.venv-triton`` could import when the repository was written) and ``model.py`` logs the runtime
it actually picked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

INPUT_NAME = "features__0"
"""Input tensor name; ``<name>__<index>`` is the libtorch backend's naming convention."""
OUTPUT_NAME = "probability__0"
"""Output tensor name (probability of default, FP32, one per row)."""
PROFILES = ("gpu", "cpu")
BACKENDS = ("pytorch", "onnxruntime")
"""Production backends: Triton's PyTorch (libtorch, TorchScript) and ONNX Runtime backends."""
CONFIG_BACKENDS = ("libtorch", "onnxruntime", "python")
"""What :func:`render_config` renders: the two production backends' configs and the local one."""
KINDS = ("KIND_CPU", "KIND_GPU")
"""Instance kinds of an ``instance_group``."""
CONFIG_FILE = "config.pbtxt"
"""A model folder's configuration; a folder without one is not a model."""
PYTHON_MODEL_SOURCE = Path(__file__).with_name("python_model.py")
"""The Python-backend model every local repository serves with (copied as :data:`MODEL_PY`)."""
MODEL_PY = "model.py"
"""The Python backend's model file in a version folder."""
CPU_PROFILE_VCPUS = 2
"""vCPUs of one replica of the ``cpu`` serving profile: the Triton container's CPU limit in
``components/serving.py`` (a test keeps them equal). The CPU export measures on this many threads
and writes it into the config as the runtime's intra-op thread count."""
MODEL_FILES = {"pytorch": "model.pt", "onnxruntime": "model.onnx"}
"""Triton's default model file name per backend."""
TRITON_VENV = Path(__file__).resolve().parents[2] / ".venv-triton"
"""The local Triton server's virtualenv; ``$SOVML_TRITON_VENV`` overrides it (see
:func:`triton_venv`)."""
PLATFORMS = {"pytorch": "pytorch_libtorch", "onnxruntime": "onnxruntime_onnx"}
"""Triton platform of each production backend, as ``config.pbtxt`` declares it."""
_HEADS = {
    "libtorch": f'platform: "{PLATFORMS["pytorch"]}"\nbackend: "pytorch"\n',
    "onnxruntime": f'platform: "{PLATFORMS["onnxruntime"]}"\nbackend: "onnxruntime"\n',
    "python": 'backend: "python"\n',
}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class ServingConfig:
    """What the training export puts into ``config.pbtxt``.

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
class ModelConfig:
    """What one ``config.pbtxt`` declares: the parts of Triton's ModelConfig this project sets.

    Everything Triton would reject at load time is rejected on construction, with the field's
    name, so a bad repository fails where it is written and not minutes later in the server log.
    """

    name: str
    """Triton model name (the model folder's name)."""
    backend: str
    """``libtorch`` or ``onnxruntime`` (production) or ``python`` (local twin, demos)."""
    input_name: str
    """The one input tensor's name (FP32)."""
    input_dim: int
    """Width of one input row."""
    output_name: str
    """The one output tensor's name (FP32)."""
    output_dim: int
    """Width of one output row."""
    max_batch_size: int
    """Largest batch Triton forms; 0: the model does not batch, and the tensors carry an
    explicit variable first dimension."""
    dynamic_batching: bool
    """Let Triton's dynamic batcher merge concurrent requests (needs ``max_batch_size`` > 0)."""
    instance_count: int
    """Model instances (for the Python backend, each a separate stub process)."""
    kind: str = "KIND_CPU"
    """``KIND_CPU`` or ``KIND_GPU``."""
    preferred_batch_sizes: tuple[int, ...] | None = None
    """Batch sizes the dynamic batcher aims for; None leaves them out (as large as the queue
    allows), an empty tuple declares an empty list."""
    max_queue_delay_us: int = 100
    """How long the dynamic batcher may hold a request to fill a batch."""
    parameters: tuple[tuple[str, str], ...] = ()
    """Backend parameters (``key``, ``string_value``), in this order."""
    note: str = ""
    """Comment lines (``#``) put first, for people reading the repository."""

    def __post_init__(self) -> None:
        for label, name in (
            ("model_name", self.name),
            ("input_name", self.input_name),
            ("output_name", self.output_name),
        ):
            if not _NAME.match(name):
                raise ValueError(f"{label}: {name!r}; allowed letters, digits, '_', '.', '-'")
        if self.backend not in CONFIG_BACKENDS:
            raise ValueError(
                f"backend must be 'libtorch', 'onnxruntime' or 'python', got {self.backend!r}"
            )
        if self.input_name == self.output_name:
            raise ValueError("input_name and output_name must differ")
        for label, value in (
            ("input_dim", self.input_dim),
            ("output_dim", self.output_dim),
            ("instance_count", self.instance_count),
        ):
            if value < 1:
                raise ValueError(f"{label}: {value}; allowed >= 1")
        if self.max_batch_size < 0:
            raise ValueError(f"max_batch_size: {self.max_batch_size}; allowed >= 0")
        if self.dynamic_batching and self.max_batch_size == 0:
            raise ValueError("dynamic_batching needs max_batch_size > 0")
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r}; allowed {KINDS}")
        sizes = self.preferred_batch_sizes or ()
        if any(b < 1 or b > self.max_batch_size for b in sizes):
            raise ValueError(f"preferred_batch_sizes: {tuple(sizes)}; allowed 1..max")
        if self.max_queue_delay_us < 0:
            raise ValueError("max_queue_delay_us and delay_ms must be >= 0")


def render_model_config(config: ModelConfig) -> str:
    """The ``config.pbtxt`` text of ``config`` (Triton's protobuf text format)."""
    lead = "" if config.max_batch_size > 0 else "-1, "
    comment = "".join(f"# {line}".rstrip() + "\n" for line in config.note.splitlines())
    batching = ""
    if config.dynamic_batching:
        sizes = config.preferred_batch_sizes
        preferred = ", ".join(str(b) for b in sizes or ())
        batching = (
            "dynamic_batching {\n"
            + (f"  preferred_batch_size: [ {preferred} ]\n" if sizes is not None else "")
            + f"  max_queue_delay_microseconds: {config.max_queue_delay_us}\n"
            "}\n"
        )
    return (
        f"{comment}"
        f'name: "{config.name}"\n'
        f"{_HEADS[config.backend]}"
        f"max_batch_size: {config.max_batch_size}\n"
        f"{_tensor('input', config.input_name, f'{lead}{config.input_dim}')}"
        f"{_tensor('output', config.output_name, f'{lead}{config.output_dim}')}"
        f"{batching}"
        "instance_group [\n"
        "  {\n"
        f"    count: {config.instance_count}\n"
        f"    kind: {config.kind}\n"
        "  }\n"
        "]\n"
        "version_policy: { latest: { num_versions: 1 } }\n"
        + "".join(
            f'parameters: {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n'
            for key, value in config.parameters
        )
    )


def _tensor(section: str, name: str, dims: str) -> str:
    return (
        f"{section} [\n"
        "  {\n"
        f'    name: "{name}"\n'
        "    data_type: TYPE_FP32\n"
        f"    dims: [ {dims} ]\n"
        "  }\n"
        "]\n"
    )


def python_parameters(
    *, onnx: bool = False, threads: int | None = None, delay_ms: float = 0.0
) -> tuple[tuple[str, str], ...]:
    """The parameters ``python_model.py`` reads: which files it serves, threads, delay.

    Args:
        onnx: Serve ``model.onnx`` with onnxruntime where the Triton environment can import it
            (``model.pt`` stays the fallback).
        threads: Intra-op threads per instance (None: the runtime's default, one for torch).
        delay_ms: Sleep per execution, a deliberate latency regression for canary demos and
            tests (0: off; never set by the training export).
    """
    params = [("TORCHSCRIPT_FILE", MODEL_FILES["pytorch"])]
    if onnx:
        params.append(("ONNX_FILE", MODEL_FILES["onnxruntime"]))
    if threads:
        params.append(("INTRA_OP_THREAD_COUNT", str(threads)))
    if delay_ms < 0:
        raise ValueError("max_queue_delay_us and delay_ms must be >= 0")
    if delay_ms:
        params.append(("DELAY_MS", repr(float(delay_ms))))
    return tuple(params)


def render_config(cfg: ServingConfig, backend: str, note: str = "") -> str:
    """The export's ``config.pbtxt`` for ``backend``: ``libtorch``/``onnxruntime`` or ``python``.

    Args:
        cfg: Serving settings; for ``python``, ``cfg.backend`` says which file ``model.py`` serves.
        backend: Which config to render (one of :data:`CONFIG_BACKENDS`).
        note: Comment lines (``#``) put first, for people reading the repository.
    """
    return render_model_config(export_model_config(cfg, backend, note))


def export_model_config(cfg: ServingConfig, backend: str, note: str = "") -> ModelConfig:
    """The :class:`ModelConfig` the export declares for ``backend`` (see :func:`render_config`)."""
    threads = cfg.cpu_threads if cfg.profile == "cpu" else None
    params: tuple[tuple[str, str], ...] = ()
    if backend == "libtorch" and threads:
        # The libtorch backend applies this process-wide (first model config that sets it).
        params = (("INTRA_OP_THREAD_COUNT", str(threads)),)
    elif backend == "onnxruntime":
        # Graph optimisation is left at the backend's default, which enables all of them (what
        # the measurement used); one request per instance at a time, so no inter-op threads.
        intra = (("intra_op_thread_count", str(threads)),) if threads else ()
        params = (*intra, ("inter_op_thread_count", "1"))
    elif backend == "python":
        params = python_parameters(onnx=cfg.backend == "onnxruntime", threads=threads)
    return ModelConfig(
        name=cfg.model_name,
        backend=backend,
        input_name=INPUT_NAME,
        input_dim=cfg.n_features,
        output_name=OUTPUT_NAME,
        output_dim=1,
        max_batch_size=cfg.max_batch_size,
        dynamic_batching=True,
        instance_count=cfg.instance_count,
        kind="KIND_GPU" if cfg.profile == "gpu" else "KIND_CPU",
        preferred_batch_sizes=cfg.preferred_batch_sizes,
        max_queue_delay_us=cfg.max_queue_delay_us,
        parameters=params,
        note=note,
    )


@dataclass(frozen=True)
class ModelVersion:
    """Paths of one model version written by :func:`write_model_version`."""

    root: Path
    """The repository root."""
    model_dir: Path
    """``<root>/<model>``."""
    config: Path
    """``<root>/<model>/config.pbtxt``."""
    files: dict[str, Path]
    """File name -> its path in ``<root>/<model>/<version>/``."""


def write_model_version(
    root: str | Path, config: ModelConfig, version: int, files: Mapping[str, str | Path]
) -> ModelVersion:
    """Write one model version into a repository (the layout in the module docstring).

    Other models already in ``root`` are left alone, so several variants (``m-a``, ``m-b``) can
    share one repository; this model's config and version folder are overwritten.

    Args:
        root: Repository root (created if missing).
        config: The model's configuration (its ``name`` is the folder name).
        version: Positive integer version (the sub-folder name, as Triton requires).
        files: Name in the version folder -> the file copied there.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version: {version!r}; allowed a positive integer")
    model_dir = Path(root) / config.name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, source in files.items():
        written[name] = version_dir / name
        shutil.copyfile(source, written[name])
    config_path = model_dir / CONFIG_FILE
    config_path.write_text(render_model_config(config))
    return ModelVersion(Path(root), model_dir, config_path, written)


def repository_models(repository: Path) -> list[str]:
    """Model folders of a repository (those with a ``config.pbtxt``), sorted."""
    return sorted(p.name for p in repository.iterdir() if (p / CONFIG_FILE).is_file())


def write_local_repository(
    torchscript_path: str | Path,
    out_dir: str | Path,
    config: ModelConfig,
    version: int = 1,
) -> ModelVersion:
    """Write a TorchScript model for the local server's Python backend (``model.pt`` +
    ``model.py``), as the tests and the demos serve their small seeded models.

    Args:
        torchscript_path: TorchScript file (``torch.jit.save``) mapping FP32
            ``[batch, input_dim]`` to ``[batch, output_dim]``.
        out_dir: Repository root (created if missing; other models are left alone).
        config: A ``python`` configuration; its parameters come from :func:`python_parameters`.
        version: Positive integer version.
    """
    source = Path(torchscript_path)
    if not source.is_file():
        raise FileNotFoundError(f"TorchScript file not found: {source}")
    if config.backend != "python":
        raise ValueError(f"backend: {config.backend!r}; a local repository serves 'python'")
    files = {MODEL_FILES["pytorch"]: source, MODEL_PY: PYTHON_MODEL_SOURCE}
    return write_model_version(out_dir, config, version, files)


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


def triton_venv(venv: str | Path | None = None) -> Path:
    """The local Triton server's virtualenv: ``venv``, else ``$SOVML_TRITON_VENV``, else
    ``.venv-triton``."""
    return Path(venv or os.environ.get("SOVML_TRITON_VENV") or TRITON_VENV)


def triton_venv_has_onnxruntime(venv: str | Path | None = None) -> bool | None:
    """Can the local Triton server's Python import onnxruntime? None when there is no such venv.

    Asked in a subprocess of that venv's interpreter (it is a different environment from the one
    exporting). ``$SOVML_TRITON_VENV`` overrides the default ``.venv-triton``.
    """
    python = triton_venv(venv) / "bin" / "python"
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
    onnx = cfg.backend == "onnxruntime"
    if onnx and torchscript_fallback is None:
        raise ValueError("an ONNX export needs a TorchScript fallback for the local repository")
    filename = MODEL_FILES[cfg.backend]
    served = {filename: Path(model_file)}
    note, runtime = "", "torchscript"
    if onnx:
        runtime, note = local_runtime_note(triton_venv_has_onnxruntime())
    version = int(cfg.version)
    production = export_model_config(cfg, "onnxruntime" if onnx else "libtorch")
    prod = write_model_version(repository, production, version, served)
    twin_files = {**served, MODEL_PY: PYTHON_MODEL_SOURCE}
    if onnx:
        twin_files[MODEL_FILES["pytorch"]] = Path(torchscript_fallback)  # type: ignore[arg-type]
    twin = write_model_version(
        local_repository, export_model_config(cfg, "python", note), version, twin_files
    )
    return ExportPaths(
        Path(repository),
        prod.config,
        prod.files[filename],
        Path(local_repository),
        twin.config,
        twin.files[filename],
        twin.files[MODEL_PY],
        backend=cfg.backend,
        local_torchscript=twin.files[filename].parent / MODEL_FILES["pytorch"],
        local_runtime=runtime,
    )
