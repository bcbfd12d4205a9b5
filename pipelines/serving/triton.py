"""Run the real NVIDIA Triton Inference Server locally, on loopback ports, over a model repository.

The server binary (Triton 2.51.0, CPU, Python backend only) ships inside the ``nvidia-pytriton``
wheel, which lives in its own virtualenv, ``.venv-triton`` (it pins numpy < 2). Nothing is
installed at run time: :func:`find_triton` locates the binary in that venv and raises
:class:`TritonUnavailableError` (tests turn it into a skip) when it is missing.

The wheel keeps the Python backend's stub (``triton_python_backend_stub``) per Python version in
``python_backend_stubs/<X.Y>/`` and expects it next to ``libtriton_python.so``.
:func:`prepare_backends` assembles that backend folder under ``build/triton/backends`` on first
use (idempotent, atomic rename; the venv itself is never modified, so a fresh clone and
``make test`` need no extra setup step).

:class:`TritonServer` starts ``tritonserver`` in explicit model-control mode with HTTP, gRPC and
metrics bound to 127.0.0.1 on free ports, waits (bounded) until the server and every named model
are READY, and stops it on exit::

    with TritonServer(repo, models=["credit_risk"]) as server:
        print(server.http_url, server.grpc_url, server.metrics_url)

Inputs are checked before anything starts, each by its one validator, raising
:class:`~pipelines.serving.layout.ServingInputError` (a ``ValueError``): the repository and the
models (:func:`~pipelines.serving.layout.check_repository`), the log file
(:func:`check_log_path`) and the ready timeout (:func:`check_ready_timeout`). If a model fails
to load or the server exits, :class:`TritonStartError` carries the tail of the server log.

The stub runs the ``.venv-triton`` interpreter (its ``bin`` is first on ``PATH``), so a
repository's ``model.py`` can import torch.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pipelines.serving.layout import ServingInputError, check_repository
from pipelines.serving.repository import triton_venv

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "triton"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 120.0
MAX_READY_TIMEOUT_S = 3600.0
"""Longest ready timeout accepted: an hour is far beyond any model this project loads."""
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Endpoints:
    """A running Triton server's three endpoints, as the clients of this package take them."""

    http_url: str
    """``host:port`` for tritonclient.http (no scheme): metadata, model control, traffic."""
    grpc_url: str
    """``host:port`` for tritonclient.grpc."""
    metrics_url: str
    """Prometheus text endpoint (``http://host:port/metrics``)."""


class TritonUnavailableError(RuntimeError):
    """The Triton binary (``.venv-triton``) is missing: ``make .venv-triton/.stamp`` builds it."""


class TritonStartError(RuntimeError):
    """The server did not become ready; the message ends with the server log's tail."""


@dataclass(frozen=True)
class TritonInstallation:
    """Where the pieces of the wheel's Triton are."""

    venv: Path
    package: Path
    """``<site-packages>/pytriton/tritonserver``."""
    binary: Path
    libs: Path
    """``<site-packages>/nvidia_pytriton.libs`` (the server's bundled shared libraries)."""
    stub: Path

    @property
    def python_backend(self) -> Path:
        """The wheel's Python backend folder (without the stub)."""
        return self.package / "backends" / "python"


def find_triton(venv: str | Path | None = None) -> TritonInstallation:
    """Locate tritonserver in ``venv`` (``$SOVML_TRITON_VENV``, else ``.venv-triton``).

    Raises:
        TritonUnavailableError: the venv, the wheel or one of its files is missing.
    """
    base = triton_venv(venv)
    hint = "build it with `make .venv-triton/.stamp` (requirements/triton.txt)"
    if not base.is_dir():
        raise TritonUnavailableError(f"{base} not found: {hint}")
    candidates = sorted(base.glob("lib/python3*/site-packages/pytriton/tritonserver"))
    if not candidates:
        raise TritonUnavailableError(f"nvidia-pytriton is not installed in {base}: {hint}")
    package = candidates[-1]
    site = package.parent.parent
    inst = TritonInstallation(
        venv=base,
        package=package,
        binary=package / "bin" / "tritonserver",
        libs=site / "nvidia_pytriton.libs",
        stub=package
        / "python_backend_stubs"
        / python_version_of(base)
        / "triton_python_backend_stub",
    )
    for path in (inst.binary, inst.libs, inst.stub, inst.python_backend / "libtriton_python.so"):
        if not path.exists():
            raise TritonUnavailableError(f"{path} missing in {base}: {hint}")
    return inst


def stage_repository(repository: Path, dest: Path | None = None) -> Path:
    """A private copy of ``repository`` for the server to read (every model: the explicit model
    control may load one that was not named at start).

    Serving must leave the artifact as it was: the Python backend's stub runs an isolated
    interpreter (it ignores ``PYTHONDONTWRITEBYTECODE``) and writes ``__pycache__`` beside each
    ``model.py``, which would change the digest the lifecycle log recorded for an exported
    repository. Files are hard-linked where the file system allows (nothing here writes into an
    existing file; new files land in the copy only), copied otherwise; caches are left out.
    """
    parent = dest or BUILD / "repositories"
    parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix="repo-", dir=parent))
    names = sorted(p.name for p in repository.iterdir() if p.is_dir() and p.name != "__pycache__")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    try:
        for name in names:
            shutil.copytree(
                repository / name, staged / name, ignore=ignore, copy_function=link_or_copy
            )
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def prepare_backends(inst: TritonInstallation, dest: Path | None = None) -> Path:
    """Return a ``--backend-directory`` whose ``python/`` holds the backend library and stub.

    Built once under ``build/triton/backends`` (keyed by the wheel's location so a rebuilt venv
    gets a fresh copy) in a temporary folder renamed into place, so concurrent test processes
    never see a half-written backend. Copies, not symlinks: the stub resolves its helper files
    relative to its own folder.
    """
    key = hashlib.sha256(str(inst.package.resolve()).encode()).hexdigest()[:12]
    target = Path(dest) if dest else BUILD / f"backends-{key}"
    python_dir = target / "python"
    if (python_dir / "triton_python_backend_stub").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".backends-", dir=target.parent))
    shutil.copytree(inst.python_backend, staging / "python", ignore=_ignore_pycache)
    shutil.copy2(inst.stub, staging / "python" / "triton_python_backend_stub")
    try:
        staging.rename(target)
    except OSError:
        # Another process won the race and its copy is complete (it was renamed atomically).
        shutil.rmtree(staging, ignore_errors=True)
    if not (python_dir / "triton_python_backend_stub").is_file():
        raise TritonUnavailableError(f"could not prepare the Python backend in {target}")
    return target


def _ignore_pycache(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__"]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM the server if the process that started it dies.

    A killed test run or CLI must not leave a server (and its stubs) holding ports; the normal
    paths stop it explicitly. Linux only (prctl PR_SET_PDEATHSIG); elsewhere a no-op.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def check_ready_timeout(seconds: float, name: str = "ready timeout") -> float:
    """``seconds`` as a ready timeout: finite, above 0 and at most :data:`MAX_READY_TIMEOUT_S`.

    Args:
        seconds: The value.
        name: What the message calls it (the CLI passes its option, ``--ready-timeout``).

    Raises:
        ServingInputError: Otherwise (nan, inf, 0, negative, absurdly large), with the range.
    """
    value = float(seconds)
    if not (math.isfinite(value) and 0 < value <= MAX_READY_TIMEOUT_S):
        raise ServingInputError(
            f"{name} {seconds!r} is out of range; allowed: seconds, more than 0 and at most "
            f"{MAX_READY_TIMEOUT_S:g}"
        )
    return value


def check_log_path(path: str | Path, name: str = "log file") -> Path:
    """``path`` as the server log: the one validator of that output path.

    Accepted: an existing regular file (or character device such as ``/dev/null``) that is
    writable, or a new file whose nearest existing parent is a writable folder (missing folders
    are made at start). Nothing is created or truncated here.

    Args:
        path: The log file.
        name: What the message calls it (the CLI passes its option, ``--log-file``).

    Raises:
        ServingInputError: A folder, a FIFO/socket/other special file, a path under a file, or
            a file or folder that cannot be written; the message names the path.
    """
    target = Path(path)
    if target.exists():
        if target.is_dir():
            raise ServingInputError(f"{name} {target} is a folder; give a file path")
        mode = target.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise ServingInputError(f"{name} {target} is not a regular file")
        if not os.access(target, os.W_OK):
            raise ServingInputError(f"{name} {target} is not writable")
        return target
    if target.is_symlink():
        raise ServingInputError(f"{name} {target} is a dangling symbolic link")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ServingInputError(f"{name} {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ServingInputError(f"{name} {target}: cannot create files in {parent}")
    return target


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (the OS picks them)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class TritonServer:
    """The real ``tritonserver`` over one model repository, on free 127.0.0.1 ports.

    Every argument is checked on construction, before the Triton installation is looked up
    (:class:`~pipelines.serving.layout.ServingInputError` for a bad one).

    Args:
        model_repository: Repository root (``<model>/config.pbtxt``, ``<model>/<version>/``).
        models: Models to load at start (explicit model control); none: load none.
        ready_timeout_s: Bound on the wait for the server and every model to be READY.
        log_path: Server log file (default: a temporary file removed on stop).
        venv: The Triton virtualenv (default: ``.venv-triton``).
        summary_latencies: Export ``nv_inference_request_summary_us`` quantiles (p50 ... p99.9)
            that the canary analysis reads.
        extra_args: More ``tritonserver`` flags.
    """

    def __init__(
        self,
        model_repository: str | Path,
        models: Sequence[str] = (),
        *,
        ready_timeout_s: float = READY_TIMEOUT_S,
        log_path: str | Path | None = None,
        venv: str | Path | None = None,
        summary_latencies: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.models = list(models)
        check_repository(self.model_repository, self.models)
        self.ready_timeout_s = check_ready_timeout(ready_timeout_s)
        if log_path is not None:
            check_log_path(log_path)
        self.installation = find_triton(venv)
        self.summary_latencies = summary_latencies
        self.extra_args = list(extra_args)
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None
        self.served_repository: Path | None = None
        """The private copy the running server reads (:func:`stage_repository`)."""
        self.http_port = self.grpc_port = self.metrics_port = 0
        self.started_s = 0.0

    # -- endpoints --------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        """``127.0.0.1:<port>`` (tritonclient.http's form, no scheme)."""
        return f"{HOST}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``127.0.0.1:<port>`` for tritonclient.grpc."""
        return f"{HOST}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """Prometheus text endpoint."""
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def endpoints(self) -> Endpoints:
        """The three endpoints together, for :mod:`pipelines.serving.canary` and the benchmark."""
        return Endpoints(self.http_url, self.grpc_url, self.metrics_url)

    # -- lifecycle --------------------------------------------------------------------------
    def command(self, backends: Path) -> list[str]:
        """The ``tritonserver`` command line for the current ports."""
        cmd = [
            str(self.installation.binary),
            f"--model-repository={self.served_repository or self.model_repository}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in self.models),
            f"--http-address={HOST}",
            f"--http-port={self.http_port}",
            f"--grpc-address={HOST}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={HOST}",
            f"--metrics-port={self.metrics_port}",
            "--allow-http=true",
            "--allow-grpc=true",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--allow-sagemaker=false",
            "--allow-vertex-ai=false",
            # A model that fails to load fails the start (with its error in the log) instead of
            # leaving a half-ready server behind.
            "--exit-on-error=true",
            "--strict-readiness=true",
            "--exit-timeout-secs=5",
            f"--cache-directory={self.installation.package / 'caches'}",
        ]
        if self.summary_latencies:
            cmd.append("--metrics-config=summary_latencies=true")
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        """The server's environment: bundled libraries, and the Triton venv's Python first."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        libs = str(self.installation.libs)
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (libs, env.get("LD_LIBRARY_PATH")) if p)
        # The Python backend stub embeds the interpreter it finds first on PATH; the venv's
        # bin must win over the main venv's so model.py imports .venv-triton's torch and numpy.
        env["PATH"] = f"{self.installation.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env["VIRTUAL_ENV"] = str(self.installation.venv)
        return env

    def start(self) -> TritonServer:
        """Start the server and wait until it and every model are READY (bounded).

        A port taken between choosing and binding it is retried with new ports (twice).
        """
        if self.process is not None:
            raise RuntimeError("server already started")
        backends = prepare_backends(self.installation)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            if self.served_repository is None:  # stop() removed the last attempt's copy
                self.served_repository = stage_repository(self.model_repository)
            self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
            self.started_s = time.monotonic()
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    self.command(backends),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.environment(),
                    # Own process group: stopping the server also reaches its Python stubs,
                    # and a Ctrl-C in the terminal reaches us first, not the server mid-start.
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            atexit.register(self.stop)
            try:
                self.wait_ready(self.models, self.ready_timeout_s)
                return self
            except TritonStartError:
                in_use = "address already in use" in self.log_tail(200).lower()
                self.stop()
                if not (in_use and attempt < 2):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_ready(self, models: Sequence[str], timeout_s: float) -> None:
        """Poll until the server and ``models`` are READY; TritonStartError otherwise."""
        deadline = time.monotonic() + timeout_s
        pending = ["v2/health/ready", *(f"v2/models/{m}/ready" for m in models)]
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise TritonStartError(
                    f"tritonserver exited (code {code}) before it was ready\n"
                    f"--- server log ({self.log_path}) ---\n{self.log_tail()}"
                )
            pending = [p for p in pending if not self._get_ok(p)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TritonStartError(
                    f"tritonserver not ready after {timeout_s:.0f}s (waiting for "
                    f"{', '.join(pending)})\n--- server log ({self.log_path}) ---\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.2)

    def _get_ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/{path}", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a bound) and its stub processes."""
        proc, self.process = self.process, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        if proc is not None:
            # Stubs are in the server's process group; any that outlived it go now.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        staged, self.served_repository = self.served_repository, None
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        if self._own_log and self.log_path is not None and proc is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()
            self.log_path = None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_bytes()[-64_000:].decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def model_statuses(self) -> list[dict[str, str]]:
        """The repository index: every model with its version and state (POST index API)."""
        req = urllib.request.Request(
            f"http://{self.http_url}/v2/repository/index", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return list(json.loads(resp.read()))

    @property
    def running(self) -> bool:
        """The server process is alive."""
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def triton_server(
    model_repository: str | Path, models: Sequence[str] = (), **kwargs: object
) -> Iterator[TritonServer]:
    """``with triton_server(repo, ["m"]) as s:``: the functional form of :class:`TritonServer`."""
    server = TritonServer(model_repository, models, **kwargs)  # type: ignore[arg-type]
    with server:
        yield server


def python_version_of(venv: Path) -> str:
    """``X.Y`` of a venv's interpreter (from ``pyvenv.cfg``): the stub must be built for it."""
    cfg = venv / "pyvenv.cfg"
    for line in cfg.read_text().splitlines() if cfg.exists() else []:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return ".".join(value.strip().split(".")[:2])
    return f"{sys.version_info.major}.{sys.version_info.minor}"
