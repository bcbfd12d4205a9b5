"""A real Redis 7 server (Debian's ``redis-server``) on loopback, TLS-only and with AUTH.

It mirrors what the feature store's production online store requires of ElastiCache (in-transit
encryption, an AUTH token): the plain-TCP port is off (``--port 0``), the TLS port presents a
certificate issued by a throw-away CA for ``127.0.0.1``/``localhost``, and every command needs
the password. Nothing is persisted (no RDB, no AOF): each server lives in a temporary folder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.system import free_port, require_binary, stop_process

START_TIMEOUT_S = 15.0
PROD_PORT = ":6379"
"""The port the production online store's connection string names (ElastiCache's)."""


@dataclass
class RedisServer:
    """A running TLS Redis: where it listens, its password and the CA that signed its cert."""

    port: int
    password: str
    ca_file: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, **overrides: object) -> object:
        """A ``redis.Redis`` client over TLS, verifying the server against :attr:`ca_file`.

        No retries and a short timeout: a refused client must fail at once, not after
        redis-py's default back-off.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "password": self.password,
            "ssl": True,
            "ssl_ca_certs": str(self.ca_file),
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "retry": Retry(NoBackoff(), 0),
        }
        kwargs.update(overrides)
        return redis.Redis(**kwargs)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def write_tls_material(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost; returns (ca, cert, key) paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("sovereign-ml test CA"))
        .issuer_name(_name("sovereign-ml test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def start_redis(folder: Path) -> RedisServer:
    """Start ``redis-server`` TLS-only with a random password in ``folder``; wait until it answers.

    Skips the calling test when the binary is missing (fails under SOVML_REQUIRE_SERVERS=1).
    """
    binary = require_binary("redis-server")
    ca, cert, key = write_tls_material(folder)
    port, password = free_port(), secrets.token_urlsafe(24)
    log_path = folder / "redis.log"
    cmd = [
        binary,
        "--port", "0",
        "--tls-port", str(port),
        "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca),
        # Clients authenticate with the password, as with an ElastiCache AUTH token; client
        # certificates are not part of that setup.
        "--tls-auth-clients", "no",
        "--requirepass", password,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(folder),
        "--logfile", str(log_path),
    ]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(port, password, ca, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited ({process.returncode}):\n{server.log_tail()}")
        try:
            if server.client().ping():  # type: ignore[attr-defined]
                return server
        except Exception as exc:  # any connection error means "not yet"
            last = exc
        time.sleep(0.05)
    stop_redis(server)
    raise RuntimeError(
        f"redis-server not ready in {START_TIMEOUT_S} s ({last}):\n{server.log_tail()}"
    )


def stop_redis(server: RedisServer) -> None:
    """Terminate the server and reap it."""
    stop_process(server.process)


def prod_online_store(server: RedisServer) -> dict[str, Any]:
    """``feature_store.prod.yaml``'s ``online_store`` block, expanded as Feast expands it
    (``os.path.expandvars``), aimed at ``server``.

    The endpoint's port and the test CA are the only changes: ElastiCache listens on 6379 with a
    certificate the system trust store verifies; the test server has a free port and its own CA.
    """
    from pipelines import features as fs

    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PASSWORD": server.password}
    with mock.patch.dict(os.environ, {**env, "FEATURES_BUCKET": "unused-offline"}):
        block = yaml.safe_load(os.path.expandvars(fs.PROD_CONFIG.read_text()))["online_store"]
    connection = block["connection_string"]
    assert connection.startswith("127.0.0.1" + PROD_PORT), connection
    assert "ssl=true" in connection.split(","), "the production online store must use TLS"
    assert f"password={server.password}" in connection.split(",")
    block["connection_string"] = (
        connection.replace(PROD_PORT, f":{server.port}", 1) + f",ssl_ca_certs={server.ca_file}"
    )
    return block


def write_store_config(folder: Path, server: RedisServer) -> Path:
    """A Feast config in ``folder``: the local default's registry and offline store (S3 is not
    reachable offline) with :func:`prod_online_store` on ``server``."""
    from pipelines import features as fs

    config = yaml.safe_load(fs.LOCAL_TEMPLATE.read_text())
    config["registry"]["path"] = "registry.db"
    config["online_store"] = prod_online_store(server)
    path = folder / "feature_store.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
