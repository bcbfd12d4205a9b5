"""Which tracking server a command talks to, and the embedded one: ``mlflow server`` as a process.

``$SOVML_TRACKING_URI`` names a running server (the cluster's, through a port-forward; a shared
team server): it must answer its health check. Without it the command starts the embedded
default, the real MLflow server from ``.venv-mlflow`` with a SQLite backend and its artifact
store under ``build/mlflow/`` (``--serve-artifacts``: clients upload through the server, never
to the folder directly), on a free loopback port, and stops it when done. Nothing falls back to
"no tracking": a run or a registry command that cannot reach a server fails (``sovml`` exit 3).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from pipelines.registry.mlflow_rest import MlflowRest

TRACKING_ENV = "SOVML_TRACKING_URI"
"""A running tracking server to use instead of starting the embedded one."""
PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (``build/`` and ``.venv-mlflow`` are under it)."""
DEFAULT_ROOT = PROJECT_ROOT / "build" / "mlflow"
"""Where the embedded server keeps its SQLite store (``mlflow.db``) and artifacts."""
MLFLOW_BIN = PROJECT_ROOT / ".venv-mlflow" / "bin" / "mlflow"
"""The server's executable (``make setup`` builds ``.venv-mlflow`` from requirements/mlflow.txt)."""
START_TIMEOUT_S = 90.0
"""Seconds the embedded server may take to answer (the first start migrates the SQLite schema)."""


class TrackingServerError(RuntimeError):
    """No tracking server could be reached or started; says which and why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def embedded_server(root: Path = DEFAULT_ROOT, mlflow_bin: Path = MLFLOW_BIN) -> Iterator[str]:
    """Run ``mlflow server`` on loopback with its store under ``root``; yields its base URL.

    Raises:
        TrackingServerError: The executable is missing, or the server exited or did not answer
            within :data:`START_TIMEOUT_S` (its log, ``root/server.log``, says why).
    """
    if not mlflow_bin.is_file():
        raise TrackingServerError(
            f"the MLflow server is not installed ({mlflow_bin} missing): run make setup"
        )
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(mlflow_bin),
        "server",
        "--backend-store-uri",
        f"sqlite:///{(root / 'mlflow.db').resolve()}",
        "--artifacts-destination",
        str((root / "artifacts").resolve()),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log_path = root / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its workers are stopped with it, as one group
            env={
                **os.environ,
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                # MLflow 3's job runner (huey consumers, about 230 MB each) serves features the
                # platform does not use; without it the server starts faster and lighter.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
        )
    try:
        _wait_healthy(MlflowRest(url), process, log_path)
        yield url
    finally:
        _stop(process)


def _wait_healthy(client: MlflowRest, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingServerError(
                f"the MLflow server exited with status {process.returncode} (see {log})"
            )
        if client.health():
            return
        time.sleep(0.25)
    raise TrackingServerError(
        f"the MLflow server did not answer within {START_TIMEOUT_S:.0f} s (see {log})"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def tracking_server(root: Path = DEFAULT_ROOT) -> Iterator[str]:
    """The server a command uses: ``$SOVML_TRACKING_URI`` if set, else the embedded one.

    Raises:
        TrackingServerError: The configured server does not answer, or the embedded one cannot
            start.
    """
    configured = os.environ.get(TRACKING_ENV, "").strip()
    if configured:
        try:
            client = MlflowRest(configured)
        except ValueError as exc:
            raise TrackingServerError(f"{TRACKING_ENV}: {exc}") from None
        if not client.health():
            raise TrackingServerError(f"{TRACKING_ENV}={configured} does not answer /health")
        yield configured
        return
    with embedded_server(root) as url:
        yield url
