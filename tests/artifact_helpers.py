"""Shared helpers and fixtures of the artifact-encryption tests.

The fixtures are named ``keys``, ``model_repo`` and ``encrypted_file``; import their functions
(``fixture_<name>``) into a test module to use them there::

    from tests.artifact_helpers import fixture_keys  # noqa: F401
"""

from __future__ import annotations

import copy
import http.client
import http.server
import json
import os
import stat
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra.cli.artifact import artifact_app
from pipelines import artifacts as art

CHUNK = 4096
"""A small chunk size, so that a few KiB span several chunks."""
REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository checkout."""


def _cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.add_typer(artifact_app, name="artifact")

    @app.callback()
    def _root() -> None:
        """Test harness for the artifact commands."""

    return app


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Invoke ``artifact ...``; returns the exit code and stdout+stderr."""
    result = CliRunner().invoke(_cli(), ["artifact", *args], env=env)
    output = result.output + (result.stderr if result.stderr not in result.output else "")
    assert "Traceback" not in output, output
    return result.exit_code, output


def write_random(path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path`` (parents created); returns them."""
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root``: relative POSIX path -> content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    """XOR the byte at ``offset`` of ``path`` with ``mask``."""
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def leftovers(folder: Path) -> list[str]:
    """Temporary files/folders a failed operation might have left behind."""
    return sorted(p.name for p in folder.iterdir() if ".sovml-" in p.name)


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry below ``root`` (not following links): kind, mode and content of files."""
    found: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            if stat.S_ISREG(st.st_mode):
                found[full.relative_to(root).as_posix()] = ("file", st.st_mode, full.read_bytes())
            else:
                found[full.relative_to(root).as_posix()] = ("other", st.st_mode, b"")
    return found


def rewrite_manifest(manifest: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to the JSON document of ``manifest`` and write it back."""
    doc = json.loads(manifest.read_text())
    edit(doc)
    manifest.write_text(json.dumps(doc, indent=2))


class CountingKeys(art.KeyService):
    """A key service that delegates to another and records every call that would leave here.

    ``name`` and ``describe`` are local look-ups; generate, decrypt, rewrap and rotate are the
    calls a real service would receive.
    """

    def __init__(self, inner: art.KeyService) -> None:
        self.inner = inner
        self.backend = inner.backend  # type: ignore[misc]
        self.calls: list[tuple[str, str]] = []

    @property
    def name(self) -> str:
        """The inner service's key name."""
        return self.inner.name

    def files(self) -> list[Path]:
        """The inner service's key files."""
        return self.inner.files()

    def generate_data_key(self, context=None):  # type: ignore[no-untyped-def]
        """Recorded, then delegated."""
        self.calls.append(("generate", self.inner.name))
        return self.inner.generate_data_key(context)

    def decrypt_data_key(self, wrapped, context=None):  # type: ignore[no-untyped-def]
        """Recorded, then delegated."""
        self.calls.append(("decrypt", wrapped))
        return self.inner.decrypt_data_key(wrapped, context)

    def rewrap(self, wrapped, context=None):  # type: ignore[no-untyped-def]
        """Recorded, then delegated."""
        self.calls.append(("rewrap", wrapped))
        return self.inner.rewrap(wrapped, context)


class RecordingProxy:
    """An HTTP proxy in front of a Vault/OpenBao server that records every request it forwards.

    Point ``VAULT_ADDR`` at :attr:`address`: a request that never shows up in :attr:`requests`
    never reached the server, whatever the server would have made of it.
    """

    def __init__(self, upstream: str) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.requests: list[tuple[str, str]] = []
        recorded = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                recorded.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _forward  # noqa: N815

            def log_message(self, *args: object) -> None:
                """Silent."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.address = f"http://127.0.0.1:{self._server.server_address[1]}"

    def clear(self) -> None:
        """Forget the requests seen so far."""
        self.requests.clear()

    def close(self) -> None:
        """Stop the proxy."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(name="keys")
def fixture_keys(tmp_path: Path) -> art.LocalKeyFile:
    """A fresh local key file (version 1)."""
    return art.LocalKeyFile.create(tmp_path / "keys" / "kek.json")


@pytest.fixture(name="model_repo")
def fixture_model_repo(tmp_path: Path) -> Path:
    """A small Triton-style model repository with awkward sizes for a 4 KiB chunk."""
    root = tmp_path / "repo"
    write_random(root / "resnet" / "1" / "model.plan", 5 * CHUNK + 123)
    write_random(root / "resnet" / "1" / "exact.bin", 2 * CHUNK)
    (root / "resnet" / "config.pbtxt").write_text('name: "resnet"\nplatform: "tensorrt_plan"\n')
    (root / "resnet" / "empty.txt").write_bytes(b"")
    script = root / "ensemble" / "1" / "model.py"
    script.parent.mkdir(parents=True)
    script.write_text("print('hello')\n")
    script.chmod(0o755)
    return root


@pytest.fixture(name="encrypted_file")
def fixture_encrypted_file(tmp_path: Path, keys: art.LocalKeyFile) -> tuple[Path, bytes]:
    """``model.bin`` (3 chunks and 17 bytes) encrypted with :func:`keys`; the plaintext removed."""
    data = write_random(tmp_path / "model.bin", 3 * CHUNK + 17)
    art.encrypt_path(tmp_path / "model.bin", keys, chunk_size=CHUNK)
    (tmp_path / "model.bin").unlink()
    return tmp_path / "model.bin.enc", data


# ------------------------------------------------------------------------ hostile manifests

DEEP = 200_000
"""Nesting depth of the issue's manifest (a RecursionError before)."""

HOSTILE_NAMES = [
    "../keys/k/rotate",
    "../../sys/seal",
    "..",
    ".hidden",
    "a..b",
    "a/b",
    "/abs",
    "",
    "x" * 129,
    "key\n",
    "key%2F..%2Fsys",
    "kéy",
    "key?x=1",
    "key#frag",
    " key",
]
"""Key names that must never reach a key service (path injection, control characters...)."""

HOSTILE_VALUES: list[Any] = [
    *HOSTILE_NAMES,
    "/etc/passwd",
    "a/../../b",
    "x\x00y",
    "\u202egnp.exe",
    "\ud800",
    "vault:v1:AAAA",
    "sovml-local:v99999:AAAA",
    "local-0000000000000000",
    "arn:aws:kms:me-central-1:123456789012:key/../../x",
    10**30,
    -1,
    2**63,
    True,
    None,
    [],
    {},
    1.5,
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
"""Random JSON values."""


def _flip_wrapped(doc: dict[str, Any], i: int) -> None:
    slot = doc["files"][i]["data_key"]
    prefix, body = slot["wrapped"].rsplit(":", 1)
    slot["wrapped"] = f"{prefix}:{('B' if body[0] == 'A' else 'A')}{body[1:]}"


def _swap_data_keys(doc: dict[str, Any], i: int) -> None:
    j = (i + 1) % len(doc["files"])
    files = doc["files"]
    files[i]["data_key"], files[j]["data_key"] = files[j]["data_key"], files[i]["data_key"]


def _set_entry(field: str, value: Any) -> Any:
    def edit(doc: dict[str, Any], i: int) -> None:
        doc["files"][i][field] = value

    return edit


def _set_header(field: str, value: Any) -> Any:
    def edit(doc: dict[str, Any], i: int) -> None:
        doc["files"][i]["header"][field] = value

    return edit


def _set_artifact(field: str, value: Any) -> Any:
    def edit(doc: dict[str, Any], i: int) -> None:
        for art_doc in [doc["artifact"], *(f["header"]["artifact"] for f in doc["files"])]:
            art_doc[field] = value

    return edit


PLAUSIBLE = [
    _flip_wrapped,
    _swap_data_keys,
    _set_entry("plaintext_sha256", "0" * 64),
    _set_entry("plaintext_size", 1),
    _set_header("mode", "0777"),
    _set_header("chunk_size", 16),
    _set_header("nonce_prefix", "AAAAAAAAAAA="),
    _set_artifact("name", "other"),
    _set_artifact("id", "0" * 32),
    _set_artifact("created", "2000-01-01T00:00:00Z"),
]
"""Edits that keep every field well formed: only the bindings can catch them."""


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON document."""
    found = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*prefix, i))
    return found


def without_wrapped(doc: Any) -> Any:
    """The document with every wrapped data key blanked: what the preflight binds."""
    doc = copy.deepcopy(doc)
    for entry in doc.get("files", []) if isinstance(doc, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("data_key"), dict):
            entry["data_key"].pop("wrapped", None)
    return doc


@st.composite
def hostile_manifest(draw: st.DrawFn, doc: dict[str, Any], pristine: bytes) -> bytes:
    """A random manifest: random JSON, a mutated valid one, deep nesting, huge numbers, raw
    byte damage, or the wrapping key renamed consistently (manifest and every header)."""
    kinds = ["json", "mutate", "mutate", "plausible", "plausible", "rename", "raw", "deep"]
    kind = draw(st.sampled_from(kinds))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=9, max_value=DEEP))
        return b'{"format": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "raw":
        data = bytearray(pristine)
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data[: draw(st.integers(min_value=1, max_value=len(data)))])
    mutated = copy.deepcopy(doc)
    if kind == "plausible":
        draw(st.sampled_from(PLAUSIBLE))(mutated, draw(st.integers(0, len(mutated["files"]) - 1)))
        return json.dumps(mutated).encode()
    if kind == "rename":
        name = draw(st.sampled_from([*HOSTILE_VALUES, "models-other", doc["artifact"]["id"]]))
        for art_doc in [mutated["artifact"], *(f["header"]["artifact"] for f in mutated["files"])]:
            art_doc["wrapping_key"]["name"] = name
        return json.dumps(mutated).encode()
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = mutated
    for part in path[:-1]:
        parent = parent[part]
    op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    value = draw(st.sampled_from(HOSTILE_VALUES) | JSON)
    if op == "delete":
        del parent[path[-1]]
    elif op == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = value
    else:
        parent[path[-1]] = value
    return json.dumps(mutated).encode()


class FolderS3:
    """The two S3 calls the model puller makes, served from a local folder (no AWS, no moto)."""

    Page = dict[str, list[dict[str, str]]]

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_paginator(self, name: str) -> FolderS3:
        """Itself: one page."""
        return self

    def paginate(self, Bucket: str, Prefix: str) -> list[Page]:  # noqa: N803 - boto3's names
        """Every file under the folder as an object under ``Prefix``."""
        files = sorted(p for p in self.root.rglob("*") if p.is_file())
        return [
            {"Contents": [{"Key": Prefix + p.relative_to(self.root).as_posix()} for p in files]}
        ]

    def download_file(self, bucket: str, key: str, target: str) -> None:
        """Copy the object's file."""
        Path(target).write_bytes((self.root / key.split("/", 1)[1]).read_bytes())
