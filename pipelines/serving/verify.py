"""What ``sovml serve`` shows and checks of a running server: its models, and inference parity.

Parity: Triton's answers over HTTP and gRPC for seeded rows must equal, within
:data:`VERIFY_ATOL`, those of the version's ``model.pt`` run in this process.
:func:`check_verifiable` refuses, before any server starts, a model whose latest served version
has no ``model.pt`` to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.serving.layout import ModelLayout, ServingInputError
from pipelines.serving.repository import MODEL_FILES

if TYPE_CHECKING:
    from pipelines.serving.triton import Endpoints

VERIFY_ATOL = 1e-5
"""Largest difference ``sovml serve --verify`` accepts between Triton and in-process scores."""


@dataclass(frozen=True)
class ModelDescription:
    """One loaded model as the server reports it."""

    name: str
    versions: list[str]
    inputs: str
    """One line per input tensor: name, datatype, shape."""
    outputs: str
    """One line per output tensor."""
    config: str
    """:func:`config_summary` of the model's configuration."""


@dataclass(frozen=True)
class ServerDescription:
    """The server's name and version, and every model asked about."""

    name: str
    version: str
    models: list[ModelDescription]


def describe(http_url: str, models: list[str]) -> ServerDescription:
    """The server's metadata and each model's metadata and configuration (over HTTP)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(http_url)
    try:
        meta = client.get_server_metadata()
        described = []
        for name in models:
            m = client.get_model_metadata(name)
            described.append(
                ModelDescription(
                    name,
                    list(m.get("versions", [])),
                    tensors_text(m.get("inputs", [])),
                    tensors_text(m.get("outputs", [])),
                    config_summary(client.get_model_config(name)),
                )
            )
    finally:
        client.close()
    return ServerDescription(meta["name"], meta["version"], described)


def tensors_text(items: list[dict[str, Any]]) -> str:
    """Tensor metadata, one ``name datatype shape`` line each."""
    return "\n".join(f"{t['name']} {t['datatype']} {t['shape']}" for t in items)


def config_summary(config: dict[str, Any]) -> str:
    """One line per setting that matters for serving: backend, batching, instances, versions."""
    backend = config.get("backend") or config.get("platform") or "?"
    batching = config.get("dynamic_batching")
    if batching:
        pref = batching.get("preferred_batch_size") or []
        delay = batching.get("max_queue_delay_microseconds", 0)
        dyn = f"on (max queue delay {delay} us" + (f", preferred {pref})" if pref else ")")
    else:
        dyn = "off"
    groups = ", ".join(
        f"{g.get('count', 1)} x {g.get('kind', '?')}" for g in config.get("instance_group", [])
    )
    policy = config.get("version_policy", {})
    params = {k: v.get("string_value") for k, v in (config.get("parameters") or {}).items()}
    lines = [
        f"backend {backend}, max_batch_size {config.get('max_batch_size', 0)}",
        f"dynamic batching {dyn}",
        f"instances {groups or '-'}",
        f"version policy {policy or '-'}",
    ]
    if params:
        lines.append("parameters " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
    return "\n".join(lines)


def parity_rows(config: dict[str, Any], rows: int = 16, seed: int = 0) -> Any:
    """Seeded FP32 rows shaped for the model's single input (variable dims taken as 1)."""
    import numpy as np

    dims = [int(d) for d in config["input"][0]["dims"]]
    max_batch = int(config.get("max_batch_size", 0))
    if max_batch == 0:
        dims = dims[1:]  # the explicit batch dimension of a non-batching model
    else:
        rows = min(rows, max_batch)  # Triton rejects a request above max_batch_size
    width = [d if d > 0 else 1 for d in dims]
    return np.random.default_rng(seed).normal(size=(rows, *width)).astype(np.float32)


@dataclass(frozen=True)
class ParityCheck:
    """One model version over one protocol against the in-process TorchScript."""

    model: str
    version: str
    protocol: str
    rows: int
    max_diff: float
    """Largest absolute difference between Triton's and the in-process scores."""

    @property
    def ok(self) -> bool:
        """Within :data:`VERIFY_ATOL`."""
        return self.max_diff <= VERIFY_ATOL


def check_verifiable(layouts: list[ModelLayout]) -> None:
    """Refuse, before a server starts, a model ``verify_parity`` could not check.

    Raises:
        ServingInputError: The latest served version of a model lacks ``model.pt`` (the
            TorchScript run in this process); the message names the model, version and file.
    """
    for layout in layouts:
        version = layout.versions[-1]
        path = layout.version_dir(version) / MODEL_FILES["pytorch"]
        if not path.is_file():
            raise ServingInputError(
                f"--verify: model {layout.name!r} version {version}: {path} is missing (the "
                "TorchScript file scored in this process to compare with Triton)"
            )


def verify_parity(endpoints: Endpoints, repository: Path, models: list[str]) -> list[ParityCheck]:
    """Each model's latest version scored by Triton over HTTP and gRPC, against its ``model.pt``
    run in this process (``repository/<model>/<version>/model.pt``)."""
    import tritonclient.http as httpclient

    checks = []
    meta_client = httpclient.InferenceServerClient(endpoints.http_url)
    try:
        for name in models:
            cfg = meta_client.get_model_config(name)
            version = max(meta_client.get_model_metadata(name)["versions"], key=int)
            rows = parity_rows(cfg)
            expected = _in_process(repository / name / version / MODEL_FILES["pytorch"], rows)
            for protocol in ("http", "grpc"):
                diff = _max_diff(endpoints, protocol, name, cfg, rows, expected)
                checks.append(ParityCheck(name, version, protocol, len(rows), diff))
    finally:
        meta_client.close()
    return checks


def _in_process(path: Path, rows: Any) -> Any:
    """The TorchScript file's scores for ``rows``, computed here.

    Raises:
        ServingInputError: ``path`` is missing or not a TorchScript file.
    """
    import torch

    try:
        model = torch.jit.load(str(path)).eval()
    except (RuntimeError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ServingInputError(f"--verify: {path} is not a TorchScript file: {reason}") from None
    with torch.inference_mode():
        return model(torch.from_numpy(rows)).numpy()


def _max_diff(
    endpoints: Endpoints,
    protocol: str,
    model: str,
    config: dict[str, Any],
    rows: Any,
    expected: Any,
) -> float:
    """Largest absolute difference between Triton's answer over ``protocol`` and ``expected``."""
    import numpy as np

    from pipelines.serving.load import InferClients

    url = endpoints.http_url if protocol == "http" else endpoints.grpc_url
    out_name, in_name = config["output"][0]["name"], config["input"][0]["name"]
    with InferClients(protocol, url, 1, in_name, out_name) as clients:
        got = clients.infer(0, model, rows)
    return float(np.max(np.abs(got.reshape(expected.shape) - expected)))
