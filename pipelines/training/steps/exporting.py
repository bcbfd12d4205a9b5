"""The export step: the served model (chosen by measurement on the CPU profile) and both Triton
model repositories under the version the registry assigns."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from pipelines.serving.repository import CPU_PROFILE_VCPUS
from pipelines.training import data as data_lib
from pipelines.training.steps.common import StepError, read_json, reported, write_json
from pipelines.training.steps.modelling import TRAINING_FILE, WEIGHTS_FILE, load_model, predict

CPU_DEFAULTS: dict[str, Any] = {
    "backend": "auto",
    "objective": "p50_b1",
    "max_abs_diff": 1e-2,
    "max_metric_drop": 1e-3,
    "threads": CPU_PROFILE_VCPUS,
}
"""CPU-profile export settings (the pipeline's ``cpu_*`` parameters): measure every candidate and
serve the fastest median at batch 1 whose probabilities stay within 0.01 of the trained model and
whose test AUC drops by at most 0.001, on the profile's 2 vCPUs."""
_PLATFORMS = {"pytorch": "pytorch_libtorch", "onnxruntime": "onnxruntime_onnx"}


def export(
    model_dir: str,
    spec_path: str,
    registry_dir: str,
    model_name: str,
    profile: str,
    max_batch_size: int,
    repository_dir: str,
    local_repository_dir: str,
    test_path: str = "",
    selection_path: str = "",
    cpu: dict[str, Any] | None = None,
    timer: Any = None,
) -> dict[str, Any]:
    """The served model and both Triton repositories under the version the registry assigns.

    The version is the existing one when these exact weights were registered before (a rerun
    republishes, it does not mint a new version), else the next integer.

    ``gpu`` profile: TorchScript on Triton's PyTorch backend. ``cpu`` profile: the backend is
    chosen by measurement (:func:`pipelines.serving.cpu_tier.select_backend`): fp32 eager,
    TorchScript, ONNX Runtime and dynamic int8 are measured on the profile's vCPUs at batch 1 and
    64 and checked against the trained model on the test rows (``test_path``); the fastest at the
    objective inside the accuracy bound is served (ONNX Runtime -> ``model.onnx``,
    TorchScript/int8 -> ``model.pt``).

    Args:
        test_path: Labelled rows for the accuracy check (AUC drop); without them only the output
            difference on a probe batch is bounded.
        selection_path: Where the selection report (JSON, every candidate's figures) is written.
        cpu: CPU-profile settings: ``backend`` (``auto`` or a candidate to pin), ``objective``,
            ``max_abs_diff``, ``max_metric_drop``, ``threads``; see :data:`CPU_DEFAULTS`.
        timer: Timing function for the measurement (tests make it deterministic).

    Returns:
        Flat metadata of the export (version, backend, files, hashes, the choice); with
        ``selection`` (the report) and ``selection_metrics`` (flat numbers for KFP ``Metrics``).
    """
    import torch

    from pipelines.serving import repository as triton
    from pipelines.training import preprocessing as features_lib
    from pipelines.training.registry import Registry

    with reported("export"):
        spec = features_lib.FeatureSpec.load(spec_path)
        record = read_json(Path(model_dir) / TRAINING_FILE)
        state = torch.load(Path(model_dir) / WEIGHTS_FILE, weights_only=True)
        registry = Registry(registry_dir)
        version = registry.next_version(model_name, record["weights_sha256"])
        settings = _cpu_settings(registry, model_name, version, profile, cpu)
        threads = int(settings["threads"]) if profile == "cpu" else None
        cfg = triton.ServingConfig(
            model_name=model_name,
            version=version,
            n_features=len(spec.features),
            profile=profile,
            max_batch_size=max_batch_size,
            preferred_batch_sizes=tuple(b for b in (64, 256) if b <= max_batch_size),
            cpu_threads=threads,
        )
        eager = load_model(model_dir, spec)
        probe = _probe(len(spec.features))
        with tempfile.TemporaryDirectory(prefix="sovml-export-") as tmp:
            if profile == "cpu":
                chosen = _select_cpu_backend(eager, spec, probe, test_path, settings, tmp, timer)
                selection = _cpu_selection(profile, chosen, settings)
                served, fallback = chosen.artifact, chosen.torchscript_fp32
                cfg = dataclasses.replace(cfg, backend=chosen.backend)
            else:
                served = fallback = _script(spec, record, state, Path(tmp) / "model.pt")
                selection = _torchscript_selection(profile)
            _check_torchscript(fallback, eager, probe)
            paths = triton.write_repositories(
                served,
                cfg,
                repository_dir,
                local_repository_dir,
                torchscript_fallback=fallback if cfg.backend == "onnxruntime" else None,
            )
        torchscript = _describe_served(selection, paths)
        if selection_path:
            write_json(selection_path, selection)
        result = _export_metadata(model_name, version, profile, paths, torchscript)
        figures, metrics = _selection_figures(selection)
        return {**result, **figures, "selection": selection, "selection_metrics": metrics}


def _cpu_settings(
    registry: Any, model_name: str, version: int, profile: str, cpu: dict[str, Any] | None
) -> dict[str, Any]:
    """:data:`CPU_DEFAULTS` with the step's ``cpu`` settings, and the backend a rerun keeps."""
    settings = {**CPU_DEFAULTS, **(cpu or {})}
    if (
        profile == "cpu"
        and settings["backend"] == "auto"
        and version in registry.versions(model_name)
    ):
        # A rerun republishes the registered version: keep the backend its lineage records
        # (a close race between two candidates must not flip what one version serves).
        recorded = registry.get(model_name, version).get("serving", {})
        if recorded.get("ran") and recorded.get("profile") == "cpu":
            settings["backend"] = recorded["served"]
            settings["pinned_by"] = f"registry version {version}"
    return settings


def _probe(n_features: int) -> Any:
    """64 raw-scale rows like the feature store serves (gamma: positive, skewed), float32."""
    import numpy as np

    probe = np.random.default_rng(0).gamma(2.0, 2.0, size=(64, n_features))
    return probe.astype(np.float32)


def _cpu_selection(profile: str, chosen: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """The selection report of a measured choice (and what pinned it, if anything did)."""
    selection = {"profile": profile, "ran": True, **chosen.to_dict()}
    if "pinned_by" in settings:
        selection["pinned_by"] = settings["pinned_by"]
    return selection


def _script(spec: Any, record: dict[str, Any], state: Any, path: Path) -> Path:
    """The trained weights as fp32 TorchScript in ``path`` (the gpu profile's served file)."""
    from pipelines.training import model as model_lib

    scripted = model_lib.script(spec, record["params"]["hidden_units"], state)
    model_lib.save_torchscript(scripted, path)
    return path


def _torchscript_selection(profile: str) -> dict[str, Any]:
    """The selection report when no measurement ran: TorchScript on the PyTorch backend."""
    return {
        "profile": profile,
        "ran": False,
        "backend": "pytorch",
        "served": "torchscript",
        "artifact_format": "torchscript",
    }


def _check_torchscript(fallback: Path, eager: Any, probe: Any) -> None:
    """The fp32 TorchScript must score exactly like the eager model it came from."""
    import numpy as np

    from pipelines.training import model as model_lib

    scripted = model_lib.load_torchscript(fallback)
    if not np.allclose(predict(scripted, probe), predict(eager, probe), atol=1e-6):
        raise StepError("export: TorchScript output differs from the trained model")


def _describe_served(selection: dict[str, Any], paths: Any) -> Path:
    """Add the written files to ``selection``; return the version's TorchScript file.

    The TorchScript file is the served one (libtorch) or the fp32 fallback the local repository
    keeps beside an ONNX model.
    """
    torchscript = paths.model if paths.backend == "pytorch" else paths.local_torchscript
    assert torchscript is not None
    selection.update(
        served_file=paths.model.name,
        torchscript_file=str(torchscript.relative_to(torchscript.parents[2])),
        torchscript_in="model_repository" if paths.backend == "pytorch" else "local",
        local_runtime=paths.local_runtime,
        platform=_PLATFORMS[paths.backend],
    )
    # Paths inside a step's scratch folder mean nothing after it; keep the file names only.
    for body in (selection, *selection.get("candidates", {}).values()):
        for key in ("artifact", "torchscript_fp32"):
            if body.get(key):
                body[key] = Path(body[key]).name
    return torchscript


def _export_metadata(
    model_name: str, version: int, profile: str, paths: Any, torchscript: Path
) -> dict[str, Any]:
    """Flat metadata of the written repositories: version, backend, files and their hashes."""
    return {
        "model_name": model_name,
        "version": version,
        "profile": profile,
        "backend": paths.backend,
        "platform": _PLATFORMS[paths.backend],
        "served_file": paths.model.name,
        "served_sha256": data_lib.sha256_file(paths.model),
        "torchscript_sha256": data_lib.sha256_file(torchscript),
        "config": str(paths.config),
        "torchscript": str(torchscript),
        "local_config": str(paths.local_config),
        "local_model_py": str(paths.local_model_py),
        "local_runtime": paths.local_runtime,
    }


def _selection_figures(selection: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """The CPU choice as flat metadata (choice, served, speedups) and as KFP metrics."""
    figures: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    if selection["ran"]:
        from pipelines.serving import cpu_tier as cpu_inference

        figures["cpu_choice"] = selection["chosen"]
        figures["cpu_served"] = selection["served"]
        served_figures = selection["candidates"][selection["served"]]
        for batch, speedup in served_figures["speedup"].items():
            figures[f"cpu_speedup_b{batch}"] = round(speedup, 3)
        metrics = cpu_inference.flat_metrics(selection)
    metrics["cpu_selection_ran"] = 1.0 if selection["ran"] else 0.0
    return figures, metrics


def _select_cpu_backend(
    eager: Any,
    spec: Any,
    probe: Any,
    test_path: str,
    settings: dict[str, Any],
    out_dir: str,
    timer: Any,
) -> Any:
    """Run the CPU backend selection for the served model (see :func:`export`)."""
    from pipelines.serving import cpu_tier as cpu_inference
    from pipelines.serving import repository as triton
    from pipelines.training import preprocessing as features_lib

    backend = str(settings["backend"])
    if backend != "auto" and backend not in cpu_inference.CANDIDATES:
        raise StepError(
            f"export: cpu backend must be 'auto' or one of {cpu_inference.CANDIDATES}, "
            f"got {backend!r}"
        )
    config = cpu_inference.SelectionConfig(
        threads=int(settings["threads"]),
        objective=str(settings["objective"]),
        bound=cpu_inference.AccuracyBound(
            float(settings["max_abs_diff"]), float(settings["max_metric_drop"])
        ),
        allowed=None if backend == "auto" else (backend,),
        input_name=triton.INPUT_NAME,
        output_name=triton.OUTPUT_NAME,
    )
    validation = None
    sample = probe
    if test_path:
        x, y = features_lib.matrices(data_lib.read_table(test_path), spec)
        validation = (x, y)
        # Time on real rows: input values change nothing for these models, but costs nothing.
        sample = x[:256] if len(x) else probe
    kwargs = {"timer": timer} if timer is not None else {}
    try:
        return cpu_inference.select_backend(
            eager, sample, out_dir, validation=validation, metric="auc", config=config, **kwargs
        )
    except cpu_inference.SelectionError as exc:
        raise StepError(f"export: {exc}") from None
