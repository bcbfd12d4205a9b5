"""Artifact encryption with the Vault transit backend, against a real OpenBao dev server."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipelines import artifacts as art
from tests.artifact_helpers import (
    CHUNK,
    FolderS3,
    RecordingProxy,
    flip,
    hostile_manifest,
    leftovers,
    rewrite_manifest,
    run_cli,
    snapshot,
    tree,
    without_wrapped,
    write_random,
)
from tests.openbao import OpenBaoServer, free_port, openbao_server  # noqa: F401


@pytest.fixture(autouse=True)
def _clean_vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VAULT_*/BAO_* from the developer's shell, and no real ~/.vault-token."""
    for name in (
        "ADDR",
        "TOKEN",
        "NAMESPACE",
        "CACERT",
        "CAPATH",
        "SKIP_VERIFY",
        "CLIENT_CERT",
        "CLIENT_KEY",
    ):
        monkeypatch.delenv(f"VAULT_{name}", raising=False)
        monkeypatch.delenv(f"BAO_{name}", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def bao(openbao_server: OpenBaoServer) -> OpenBaoServer:  # noqa: F811
    """The module's OpenBao server with the transit engine enabled."""
    openbao_server.client().sys.enable_secrets_engine("transit", path="transit")
    return openbao_server


@pytest.fixture
def transit_key(bao: OpenBaoServer) -> str:
    """A fresh transit key (version 1) for one test."""
    name = f"models-{secrets.token_hex(4)}"
    bao.client().secrets.transit.create_key(name=name)
    return name


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_random(root / "llm" / "1" / "model.safetensors", 7 * CHUNK + 11)
    write_random(root / "llm" / "1" / "tokenizer.json", 300)
    (root / "llm" / "config.pbtxt").write_text('name: "llm"\nbackend: "python"\n')
    return root


def slots(manifest: Path) -> list[dict[str, Any]]:
    return [f["data_key"] for f in json.loads(manifest.read_text())["files"]]


def cli_encrypt(repo: Path, transit_key: str, env: dict[str, str]) -> str:
    """``artifact encrypt REPO`` with the transit key, in 4 KiB chunks; returns the output."""
    code, out = run_cli(
        "encrypt",
        str(repo),
        "--backend",
        "vault",
        "--key",
        transit_key,
        "--chunk-size",
        "4KiB",
        env=env,
    )
    assert code == 0, out
    return out


def test_cli_folder_round_trip(
    tmp_path: Path, bao: OpenBaoServer, transit_key: str, repo: Path
) -> None:
    env = bao.env
    out = cli_encrypt(repo, transit_key, env)
    assert "encrypted 3 file(s)" in out
    manifest = tmp_path / "repo.enc" / art.FOLDER_MANIFEST
    wrapping = json.loads(manifest.read_text())["artifact"]["wrapping_key"]
    assert wrapping == {"backend": "vault", "name": transit_key}
    for slot in slots(manifest):
        assert slot["version"] == 1 and slot["wrapped"].startswith("vault:v1:")

    code, out = run_cli(
        "decrypt",
        str(tmp_path / "repo.enc"),
        "--backend",
        "vault",
        "-o",
        str(tmp_path / "out"),
        env=env,
    )
    assert code == 0, out
    assert tree(tmp_path / "out") == tree(repo)


def test_tampering_detected(
    tmp_path: Path, bao: OpenBaoServer, transit_key: str, repo: Path
) -> None:
    service = art.VaultTransitKeys(transit_key, url=bao.address, token=bao.token)
    art.encrypt_path(repo, service, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc"
    manifest = enc / art.FOLDER_MANIFEST
    pristine = manifest.read_bytes()
    env = bao.env
    out_dir = tmp_path / "out"

    # 1. a flipped ciphertext byte
    victim = enc / "llm" / "1" / "model.safetensors.enc"
    flip(victim, 40 + 3 * (CHUNK + 16) + 7)
    code, out = run_cli("decrypt", str(enc), "--backend", "vault", "-o", str(out_dir), env=env)
    assert code == 2 and "chunk 3 failed authentication" in out
    assert not out_dir.exists() and leftovers(tmp_path) == []
    flip(victim, 40 + 3 * (CHUNK + 16) + 7)

    # 2. a modified wrapped data key: Vault itself refuses to decrypt it
    doc = json.loads(pristine)
    wrapped = doc["files"][0]["data_key"]["wrapped"]
    body = bytearray(base64.b64decode(wrapped.split(":", 2)[2]))
    body[20] ^= 0xFF
    doc["files"][0]["data_key"]["wrapped"] = "vault:v1:" + base64.b64encode(bytes(body)).decode()
    manifest.write_text(json.dumps(doc))
    code, out = run_cli("decrypt", str(enc), "--backend", "vault", "-o", str(out_dir), env=env)
    assert code == 2 and "transit decrypt of the data key failed" in out and "modified" in out
    assert not out_dir.exists()

    # 3. manifest key version edited without the wrapped key: refused before any call
    doc = json.loads(pristine)
    doc["files"][0]["data_key"]["version"] = 2
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.ManifestError, match="wrapped key shows"):
        art.decrypt_path(enc, service, out=out_dir)

    # 4. swapped wrapped keys between files: the data key opens no chunk of the other file
    doc = json.loads(pristine)
    files = doc["files"]
    files[0]["data_key"], files[1]["data_key"] = files[1]["data_key"], files[0]["data_key"]
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.IntegrityError, match="chunk 0 failed authentication"):
        art.decrypt_path(enc, service, out=out_dir)
    assert not out_dir.exists() and leftovers(tmp_path) == []

    manifest.write_bytes(pristine)
    art.decrypt_path(enc, service, out=out_dir)
    assert tree(out_dir) == tree(repo)


def test_rotate_then_rewrap_moves_v1_to_v2(
    tmp_path: Path, bao: OpenBaoServer, transit_key: str, repo: Path
) -> None:
    env = bao.env
    cli_encrypt(repo, transit_key, env)
    enc = tmp_path / "repo.enc"
    manifest = enc / art.FOLDER_MANIFEST
    assert {s["version"] for s in slots(manifest)} == {1}
    stale = tmp_path / "stale.enc"
    shutil.copytree(enc, stale)  # a copy that will not be re-wrapped
    ciphertext_before = {k: v for k, v in tree(enc).items() if k.endswith(".enc")}

    code, out = run_cli("rotate-key", "--backend", "vault", "--key", transit_key, env=env)
    assert code == 0 and "newest version 2" in out, out

    code, out = run_cli("rewrap", str(enc), "--backend", "vault", env=env)
    assert code == 0, out
    assert "1 -> 2" in out
    after = slots(manifest)
    assert {s["version"] for s in after} == {2}
    assert all(s["wrapped"].startswith("vault:v2:") for s in after)
    assert {k: v for k, v in tree(enc).items() if k.endswith(".enc")} == ciphertext_before

    # Retire v1 for decryption: the re-wrapped artifact still opens, the stale copy cannot.
    client = bao.client()
    client.secrets.transit.update_key_configuration(name=transit_key, min_decryption_version=2)
    code, out = run_cli(
        "decrypt", str(enc), "--backend", "vault", "-o", str(tmp_path / "out"), env=env
    )
    assert code == 0, out
    assert tree(tmp_path / "out") == tree(repo)

    code, out = run_cli(
        "decrypt", str(stale), "--backend", "vault", "-o", str(tmp_path / "nope"), env=env
    )
    assert code == 3 and "disallowed by policy" in out and "was retired" in out, out
    assert not (tmp_path / "nope").exists()


def test_derived_key_binds_context(tmp_path: Path, bao: OpenBaoServer, repo: Path) -> None:
    """With a derived transit key, Vault itself refuses a wrapped key moved to another file."""
    name = f"derived-{secrets.token_hex(4)}"
    bao.client().secrets.transit.create_key(name=name, derived=True)
    service = art.VaultTransitKeys(name, url=bao.address, token=bao.token)
    art.encrypt_path(repo, service, chunk_size=CHUNK)
    manifest = tmp_path / "repo.enc" / art.FOLDER_MANIFEST
    art.decrypt_path(tmp_path / "repo.enc", service, out=tmp_path / "ok")
    assert tree(tmp_path / "ok") == tree(repo)

    doc = json.loads(manifest.read_text())
    doc["files"][0]["data_key"] = doc["files"][1]["data_key"]
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.UnwrapRefusedError, match="transit decrypt"):
        art.decrypt_path(tmp_path / "repo.enc", service, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_single_file_and_failures_are_clear(
    tmp_path: Path, bao: OpenBaoServer, transit_key: str
) -> None:
    data = write_random(tmp_path / "model.onnx", 2 * CHUNK)
    service = art.VaultTransitKeys(transit_key, url=bao.address, token=bao.token)
    art.encrypt_path(tmp_path / "model.onnx", service)
    (tmp_path / "model.onnx").unlink()
    enc = str(tmp_path / "model.onnx.enc")

    code, out = run_cli("decrypt", enc, env={**bao.env, "VAULT_TOKEN": "not-a-token"})
    assert code == 3 and "permission denied" in out

    code, out = run_cli("decrypt", enc, "--key", "no-such-key", env=bao.env)
    assert code == 2 and "wrong key" in out

    dead = f"http://127.0.0.1:{free_port()}"
    code, out = run_cli("decrypt", enc, env={"VAULT_ADDR": dead, "VAULT_TOKEN": bao.token})
    assert code == 3 and "cannot reach Vault" in out

    code, out = run_cli("decrypt", enc, env={"VAULT_ADDR": bao.address})
    assert code == 3 and "no Vault token" in out

    assert not (tmp_path / "model.onnx").exists()
    code, out = run_cli("decrypt", enc, env=bao.env)  # backend and key from the manifest
    assert code == 0, out
    assert (tmp_path / "model.onnx").read_bytes() == data


def _self_signed_ca() -> str:
    """A throw-away CA certificate (PEM) standing in for the cluster's."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-cluster-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_kubernetes_auth_uses_service_account_jwt(tmp_path: Path, bao: OpenBaoServer) -> None:
    """The login goes to OpenBao's kubernetes auth with the pod JWT; TokenReview needs a cluster.

    There is no Kubernetes API here, so OpenBao cannot validate the token: the test checks the
    request reaches the auth method with our role and fails with a readable message.
    """
    client = bao.client()
    client.sys.enable_auth_method("kubernetes", path="kubernetes")
    client.auth.kubernetes.configure(
        kubernetes_host=f"https://127.0.0.1:{free_port()}",
        kubernetes_ca_cert=_self_signed_ca(),
        disable_local_ca_jwt=True,
    )
    client.auth.kubernetes.create_role(
        name="artifacts",
        bound_service_account_names=["pipeline"],
        bound_service_account_namespaces=["ml"],
        policies=["default"],
    )
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:ml:pipeline",
        "kubernetes.io/serviceaccount/namespace": "ml",
        "kubernetes.io/serviceaccount/service-account.name": "pipeline",
    }

    def part(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    jwt_path = tmp_path / "token"
    jwt_path.write_text(f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln\n")
    service = art.VaultTransitKeys(
        "any", url=bao.address, kubernetes_role="artifacts", jwt_path=jwt_path
    )
    with pytest.raises(art.KeyServiceError, match=r"Kubernetes login \(role 'artifacts'"):
        service.generate_data_key()

    missing = art.VaultTransitKeys(
        "any", url=bao.address, kubernetes_role="artifacts", jwt_path=tmp_path / "absent"
    )
    with pytest.raises(art.KeyServiceError, match="not running in a pod"):
        missing.generate_data_key()


def test_connection_settings_follow_vault_cli_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = art.VaultTransitKeys()
    assert default.verify is True and default.url == "https://127.0.0.1:8200"
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
    monkeypatch.setenv("VAULT_CACERT", "/etc/ssl/vault-ca.pem")
    monkeypatch.setenv("VAULT_NAMESPACE", "ml")
    service = art.VaultTransitKeys()
    assert service.url == "https://vault.example:8200"
    assert service.verify == "/etc/ssl/vault-ca.pem" and service.namespace == "ml"
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "true")
    assert art.VaultTransitKeys().verify is False
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "0")
    assert art.VaultTransitKeys().verify == "/etc/ssl/vault-ca.pem"
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "maybe")
    with pytest.raises(art.KeyServiceError, match="not a boolean"):
        art.VaultTransitKeys()
    monkeypatch.delenv("VAULT_ADDR")
    monkeypatch.setenv("BAO_ADDR", "https://bao.example:8200")
    assert art.VaultTransitKeys(verify=True).url == "https://bao.example:8200"


# ------------------------------------------------------------- hostile manifests, counted


@pytest.fixture(scope="module")
def proxy(bao: OpenBaoServer) -> Iterator[RecordingProxy]:
    """A proxy in front of the module's OpenBao that records every request reaching it."""
    recorder = RecordingProxy(bao.address)
    yield recorder
    recorder.close()


def _rename_key(doc: dict[str, Any], name: str) -> None:
    """Name another wrapping key everywhere: in the manifest and in every header."""
    for art_doc in [doc["artifact"], *(f["header"]["artifact"] for f in doc["files"])]:
        art_doc["wrapping_key"]["name"] = name


@pytest.mark.parametrize("injected", ["../keys/{k}/rotate", "../../sys/seal", "{k}/../../sys/seal"])
def test_path_injection_through_the_manifest_sends_nothing(
    tmp_path: Path,
    bao: OpenBaoServer,
    proxy: RecordingProxy,
    transit_key: str,
    repo: Path,
    injected: str,
) -> None:
    """The issue's attack: a manifest naming ``../keys/k/rotate`` rotated the key, and
    ``../../sys/seal`` sealed the server, with the operator's token. Now: refused, unsent."""
    service = art.VaultTransitKeys(transit_key, url=bao.address, token=bao.token)
    art.encrypt_path(repo, service, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc"
    rewrite_manifest(
        enc / art.FOLDER_MANIFEST, lambda d: _rename_key(d, injected.format(k=transit_key))
    )
    env = {"VAULT_ADDR": proxy.address, "VAULT_TOKEN": bao.token}
    proxy.clear()
    for command in (["decrypt", str(enc), "-o", str(tmp_path / "out")], ["rewrap", str(enc)]):
        code, out = run_cli(*command, env=env)
        assert code == 2 and "does not fit the allowed pattern" in out, out
        assert out.count("\n") == 1 and "KeyError" not in out and "TypeError" not in out
    assert proxy.requests == [], "not a single request reached the server"
    root = bao.client()
    assert root.secrets.transit.read_key(name=transit_key)["data"]["latest_version"] == 1
    assert root.sys.read_seal_status()["sealed"] is False
    assert not (tmp_path / "out").exists()


def test_the_in_cluster_puller_refuses_the_same_manifest_unsent(
    tmp_path: Path,
    bao: OpenBaoServer,
    proxy: RecordingProxy,
    transit_key: str,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model puller (the pod's token) goes through the same checks before any call."""
    from pipelines.serving import puller

    service = art.VaultTransitKeys(transit_key, url=bao.address, token=bao.token)
    bucket = tmp_path / "bucket"
    art.encrypt_path(repo, service, out=bucket / "llm.enc", chunk_size=CHUNK)
    monkeypatch.setenv("VAULT_ADDR", proxy.address)
    monkeypatch.setenv("VAULT_TOKEN", bao.token)
    monkeypatch.setattr("boto3.client", lambda *a, **k: FolderS3(bucket))
    dest = tmp_path / "models"
    args = [
        "pull",
        "--bucket",
        "b",
        "--prefix",
        "m/",
        "--dest",
        str(dest),
        "--decrypt-if-encrypted",
    ]

    proxy.clear()
    assert puller.main(args) == 0
    assert tree(dest / "llm") == tree(repo)
    assert {path for _, path in proxy.requests} == {f"/v1/transit/decrypt/{transit_key}"}

    manifest = bucket / "llm.enc" / art.FOLDER_MANIFEST
    rewrite_manifest(manifest, lambda d: _rename_key(d, f"../keys/{transit_key}/rotate"))
    proxy.clear()
    assert puller.main(args) == 2
    assert proxy.requests == []

    # A pinned key: a manifest naming another (well-formed) key is refused unsent, too.
    rewrite_manifest(manifest, lambda d: _rename_key(d, "models-other"))
    monkeypatch.setenv("SOVML_ARTIFACT_KEY_NAME", transit_key)
    assert puller.main(args) == 2
    assert proxy.requests == []
    assert bao.client().secrets.transit.read_key(name=transit_key)["data"]["latest_version"] == 1


def test_a_key_the_caller_did_not_give_is_refused_unsent(
    tmp_path: Path, bao: OpenBaoServer, proxy: RecordingProxy, transit_key: str, repo: Path
) -> None:
    service = art.VaultTransitKeys(transit_key, url=bao.address, token=bao.token)
    art.encrypt_path(repo, service, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc"
    other = f"models-{secrets.token_hex(4)}"
    bao.client().secrets.transit.create_key(name=other)
    env = {"VAULT_ADDR": proxy.address, "VAULT_TOKEN": bao.token}
    proxy.clear()
    code, out = run_cli("decrypt", str(enc), "--key", other, "-o", str(tmp_path / "o"), env=env)
    assert code == 2 and "wrong key" in out and "nothing was sent" in out, out
    # The manifest renamed to another existing key (the caller gave none): the ciphertext's
    # lead no longer matches the edited headers, so nothing is sent either.
    rewrite_manifest(enc / art.FOLDER_MANIFEST, lambda d: _rename_key(d, other))
    code, out = run_cli("decrypt", str(enc), "-o", str(tmp_path / "o"), env=env)
    assert code == 2 and "does not belong to this manifest entry" in out, out
    code, out = run_cli("rewrap", str(enc), "--key", transit_key, env=env)
    assert code == 2 and "does not belong to this manifest entry" in out, out
    assert proxy.requests == []


@pytest.fixture(scope="module")
def vault_artifact(tmp_path_factory: pytest.TempPathFactory, bao: OpenBaoServer) -> dict[str, Any]:
    """A folder artifact under a fresh transit key, and its pristine manifest."""
    root = tmp_path_factory.mktemp("vault-hostile")
    name = f"models-{secrets.token_hex(4)}"
    bao.client().secrets.transit.create_key(name=name)
    write_random(root / "src" / "m" / "1" / "model.bin", 2 * CHUNK + 3)
    write_random(root / "src" / "m" / "config.pbtxt", 30)
    service = art.VaultTransitKeys(name, url=bao.address, token=bao.token)
    art.encrypt_path(root / "src", service, out=root / "work" / "src.enc", chunk_size=CHUNK)
    manifest = root / "work" / "src.enc" / art.FOLDER_MANIFEST
    return {
        "root": root / "work",
        "enc": root / "work" / "src.enc",
        "manifest": manifest,
        "pristine": manifest.read_bytes(),
        "doc": json.loads(manifest.read_bytes()),
        "key": name,
    }


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_manifests_through_the_cli_never_steer_openbao(
    vault_artifact: dict[str, Any], bao: OpenBaoServer, proxy: RecordingProxy, data: st.DataObject
) -> None:
    """Random and mutated manifests to ``sovml artifact decrypt`` against the real server: exit
    0 or 2 (never a traceback, never 1), the server receives only an unwrap of the artifact's own
    key and only when nothing but a wrapped key was changed, and nothing is written outside."""
    raw = data.draw(hostile_manifest(vault_artifact["doc"], vault_artifact["pristine"]))
    root, manifest, key = vault_artifact["root"], vault_artifact["manifest"], vault_artifact["key"]
    out = root / "out"
    edited = f"src.enc/{art.FOLDER_MANIFEST}"
    manifest.write_bytes(raw)
    before = snapshot(root)
    proxy.clear()
    try:
        code, text = run_cli(
            "decrypt",
            str(vault_artifact["enc"]),
            "-o",
            str(out),
            env={"VAULT_ADDR": proxy.address, "VAULT_TOKEN": bao.token},
        )
    finally:
        manifest.write_bytes(vault_artifact["pristine"])
    assert code in (0, 2), text
    assert text.startswith("error: ") == (code == 2), text
    if code == 0:
        assert json.loads(raw) == vault_artifact["doc"]
        shutil.rmtree(out)
    after = snapshot(root)
    after.pop(edited)
    before.pop(edited)
    assert after == before
    if proxy.requests:
        event("reached OpenBao")
        assert {path for _, path in proxy.requests} == {f"/v1/transit/decrypt/{key}"}
        assert without_wrapped(json.loads(raw)) == without_wrapped(vault_artifact["doc"])
    else:
        event(f"exit {code}, nothing sent")
