"""``sovml images lock`` and ``list`` against a fake registry: the resolver's protocol and the
command's exit codes.

The registry here is a FAKE: a stdlib ``http.server`` on loopback that speaks just enough of the
Docker Registry HTTP API v2 (``HEAD /v2/<repo>/manifests/<tag>`` answering
``Docker-Content-Digest``, a 401 with a ``WWW-Authenticate: Bearer`` challenge until a token from
its ``/token`` endpoint is presented) and serves a chart repository ``index.yaml``. It checks
what a real registry would need from the client (the method, the Accept header, the token); it
proves nothing about any real registry's answers. The ECR path runs against moto.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli.app import app
from infra.images import resolve as resolver
from policies import inventory

DIGEST = "sha256:" + "5e" * 32
CHART_SHA = "c4" * 32
TOKEN = "anonymous-pull-token"
runner = CliRunner()


class FakeRegistry(BaseHTTPRequestHandler):
    """A fake v2 registry and chart repository; records every request it saw."""

    seen: list[tuple[str, str, dict[str, str]]] = []
    manifests: dict[str, str] = {}
    """``<repo>:<tag>`` -> digest."""

    def log_message(self, *args: Any) -> None:  # keep pytest's output clean
        pass

    def _record(self) -> None:
        FakeRegistry.seen.append((self.command, self.path, dict(self.headers)))

    def do_HEAD(self) -> None:
        self._record()
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            host = f"http://127.0.0.1:{self.server.server_address[1]}"
            self.send_header(
                "WWW-Authenticate",
                f'Bearer realm="{host}/token",service="fake",scope="repository:x:pull"',
            )
            self.end_headers()
            return
        repo, _, tag = self.path.removeprefix("/v2/").partition("/manifests/")
        digest = self.manifests.get(f"{repo}:{tag}")
        if digest is None or "manifest.list.v2+json" not in self.headers.get("Accept", ""):
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Docker-Content-Digest", digest)
        self.end_headers()

    def do_GET(self) -> None:
        self._record()
        if self.path.startswith("/token?"):
            body = json.dumps({"token": TOKEN}).encode()
        elif self.path == "/charts/index.yaml":
            body = (
                "apiVersion: v1\nentries:\n  keda:\n"
                f"  - version: 2.19.0\n    digest: {CHART_SHA}\n"
                "  - version: 2.18.0\n    digest: " + "00" * 32 + "\n"
            ).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def registry() -> Iterator[str]:
    FakeRegistry.seen = []
    FakeRegistry.manifests = {"nvidia/tritonserver:24.10-py3": DIGEST}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


TRITON = inventory.entry("triton", "image")
KEDA = inventory.entry("keda", "chart")


def test_split_image_normalizes_docker_hub_names() -> None:
    assert resolver.split_image("redis") == ("registry-1.docker.io", "library/redis")
    assert resolver.split_image("pytorch/pytorch") == ("registry-1.docker.io", "pytorch/pytorch")
    assert resolver.split_image("nvcr.io/nvidia/x") == ("nvcr.io", "nvidia/x")
    assert resolver.split_image("localhost:5000/a") == ("localhost:5000", "a")


def test_a_head_with_the_token_flow_gives_the_digest_and_its_source(registry: str) -> None:
    pin = resolver.image_digest(TRITON, registry)
    assert pin.digest == DIGEST and pin.id == "triton"
    assert pin.source == f"{registry}/v2/nvidia/tritonserver/manifests/24.10-py3"
    methods = [(m, p.split("?")[0]) for m, p, _ in FakeRegistry.seen]
    assert methods == [
        ("HEAD", "/v2/nvidia/tritonserver/manifests/24.10-py3"),
        ("GET", "/token"),
        ("HEAD", "/v2/nvidia/tritonserver/manifests/24.10-py3"),
    ]
    assert "scope=repository%3Ax%3Apull" in FakeRegistry.seen[1][1]
    accept = FakeRegistry.seen[2][2]["Accept"]
    assert accept.startswith("application/vnd.oci.image.index.v1+json")


def test_an_unknown_tag_or_a_bad_digest_header_is_unresolved_never_guessed(registry: str) -> None:
    FakeRegistry.manifests = {"nvidia/tritonserver:24.10-py3": "sha256:short"}
    with pytest.raises(resolver.ResolveError, match="no sha256 Docker-Content-Digest"):
        resolver.image_digest(TRITON, registry)
    FakeRegistry.manifests = {}
    with pytest.raises(resolver.ResolveError, match="HTTP 404"):
        resolver.image_digest(TRITON, registry)


def test_a_chart_digest_comes_from_the_repository_index(registry: str) -> None:
    pin = resolver.chart_digest(KEDA, f"{registry}/charts")
    assert pin.digest == f"sha256:{CHART_SHA}"
    assert pin.source == f"{registry}/charts/index.yaml"
    other = inventory.Entry("x", "chart", KEDA.upstream, "9.9.9", "charts/keda", ("t",), "keda")
    with pytest.raises(resolver.ResolveError, match=re.escape("no keda 9.9.9")):
        resolver.chart_digest(other, f"{registry}/charts")


def test_an_unreachable_registry_fails_the_entry_not_the_run() -> None:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    outcomes = resolver.resolve([TRITON, KEDA], {"nvcr.io": closed, KEDA.upstream: closed})
    assert [(o.entry.id, o.pin) for o in outcomes] == [("triton", None), ("keda", None)]
    assert outcomes[0].error.startswith(f"{closed}/v2/nvidia/tritonserver/manifests/24.10-py3: ")
    assert outcomes[1].error.startswith(f"{closed}/index.yaml: ")


def test_the_lock_text_round_trips_through_the_validated_parser() -> None:
    pin = inventory.Pin("triton", DIGEST, 'https://x/"quoted"', "2026-12-05T07:00:00Z")
    text = resolver.lock_text({"triton": pin}, inventory.INVENTORY)
    assert inventory.parse_lock(text, inventory.INVENTORY) == {"triton": pin}


def test_ecr_digest_from_the_zone_mirror_under_moto() -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "x", "size": 1, "digest": DIGEST},
            "layers": [],
        }
    )
    with moto.mock_aws():
        ecr = boto3.client("ecr", region_name="me-central-1")
        ecr.create_repository(repositoryName=TRITON.mirror)
        ecr.put_image(repositoryName=TRITON.mirror, imageManifest=manifest, imageTag="24.10-py3")
        pin = resolver.ecr_digest(TRITON, ecr)
        assert inventory.DIGEST.fullmatch(pin.digest)
        assert pin.source.startswith("ecr:") and "nvidia/tritonserver:24.10-py3" in pin.source
        missing = inventory.entry("redis", "image")
        with pytest.raises(resolver.ResolveError, match=re.escape("ECR library/redis:7.4.1")):
            resolver.ecr_digest(missing, ecr)


# -- the command --------------------------------------------------------------------------------


def _only(monkeypatch: pytest.MonkeyPatch, *ids: str) -> None:
    """Restrict the command to some inventory entries (the rest would ask the internet)."""
    from policies import inventory as module

    subset = {i: module.INVENTORY[i] for i in ids}
    monkeypatch.setattr(module, "load_inventory", lambda path=None: subset)


def test_lock_exits_0_and_writes_when_every_entry_resolves(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only(monkeypatch, "triton", "keda")
    lock = tmp_path / "images.lock.toml"
    result = runner.invoke(
        app,
        ["images", "lock", "--lock", str(lock), "--endpoint", f"nvcr.io={registry}",
         "--endpoint", f"https://kedacore.github.io/charts={registry}/charts"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pins = inventory.load_lock(lock)
    assert {i: p.digest for i, p in pins.items()} == {
        "triton": DIGEST,
        "keda": f"sha256:{CHART_SHA}",
    }
    listed = runner.invoke(app, ["images", "list", "--json", "--lock", str(lock)])
    assert listed.exit_code == 0
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows["triton"]["digest"] == DIGEST and rows["keda"]["source"].endswith("index.yaml")


def test_lock_exits_3_naming_each_unresolved_entry_and_keeps_earlier_pins(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only(monkeypatch, "triton", "keda")
    lock = tmp_path / "images.lock.toml"
    earlier = inventory.Pin(
        "keda", "sha256:" + "aa" * 32, "https://earlier", "2026-01-01T00:00:00Z"
    )
    lock.write_text(resolver.lock_text({"keda": earlier}, ["keda"]))
    result = runner.invoke(
        app,
        ["images", "lock", "--lock", str(lock), "--endpoint", f"nvcr.io={registry}",
         "--endpoint", "https://kedacore.github.io/charts=http://127.0.0.1:9"],
    )  # fmt: skip
    assert result.exit_code == 3
    assert "unresolved keda: http://127.0.0.1:9/index.yaml" in result.stderr
    assert "unresolved triton" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: 1 entries unresolved (named above)"
    pins = inventory.load_lock(lock)
    assert pins["keda"] == earlier and pins["triton"].digest == DIGEST


@pytest.mark.parametrize("bad", ["nvcr.io", "=http://x", "nvcr.io=ftp://x"])
def test_a_malformed_endpoint_is_bad_input(bad: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["images", "lock", "--lock", str(tmp_path / "l.toml"), "--endpoint", bad]
    )
    assert result.exit_code == 2
    assert f"error: --endpoint {bad!r}: expected REGISTRY=URL" in result.stderr
    assert not (tmp_path / "l.toml").exists()


def test_a_forged_lock_is_bad_input_for_both_commands(tmp_path: Path) -> None:
    lock = tmp_path / "images.lock.toml"
    lock.write_text('[[pin]]\nid = "triton"\ndigest = "sha256:0"\nsource = "guess"\n')
    for argv in (["images", "list"], ["images", "lock"]):
        result = runner.invoke(app, [*argv, "--lock", str(lock)])
        assert result.exit_code == 2, argv
        assert "error: images.lock.toml: pin 1: resolved_at: missing" in result.stderr


def test_list_prints_every_entry_with_its_status() -> None:
    result = runner.invoke(app, ["images", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for ident in inventory.INVENTORY:
        assert ident in result.stdout
    pinned = len(inventory.load_lock())
    assert f"{pinned} of {len(inventory.INVENTORY)} pinned by digest" in result.stdout
