"""Servers from Debian's packages (Redis, Prometheus/promtool) for tests that need the real thing.

`.ci/run` installs them (`make system-packages`) and sets ``SOVML_REQUIRE_SERVERS=1``; there a
missing binary fails the test instead of skipping it, so CI can never go green by skipping the
tests that talk to real servers. On a developer machine without them the tests skip, naming the
package to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

PACKAGES = {
    "redis-server": "redis-server",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}
"""Binary -> the Debian package that ships it."""


def servers_required() -> bool:
    """True where a missing server is an error (CI), not a reason to skip."""
    return os.environ.get("SOVML_REQUIRE_SERVERS", "") == "1"


def require_binary(name: str) -> str:
    """The path of ``name`` on PATH; skips (or fails under ``SOVML_REQUIRE_SERVERS=1``) without."""
    path = shutil.which(name)
    if path:
        return path
    why = (
        f"{name} not found: install the Debian package {PACKAGES.get(name, name)!r} "
        "(`make system-packages`, as root)"
    )
    if servers_required():
        pytest.fail(why + "; SOVML_REQUIRE_SERVERS=1 makes this an error")
    pytest.skip(why)
    raise AssertionError("unreachable")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL if it lingers; always reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)
