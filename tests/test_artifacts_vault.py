"""Artifact encryption with the Vault transit backend, against a real OpenBao dev server."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipelines import artifacts as art
from tests.artifact_helpers import CHUNK, flip, leftovers, run_cli, tree, write_random
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
    return [f["key"] for f in json.loads(manifest.read_text())["files"]]


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
    for slot in slots(manifest):
        assert slot["backend"] == "vault" and slot["name"] == transit_key
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
    assert code == 1 and "chunk 3 failed authentication" in out
    assert not out_dir.exists() and leftovers(tmp_path) == []
    flip(victim, 40 + 3 * (CHUNK + 16) + 7)

    # 2. a modified wrapped data key: Vault itself refuses to decrypt it
    doc = json.loads(pristine)
    wrapped = doc["files"][0]["key"]["wrapped"]
    body = bytearray(base64.b64decode(wrapped.split(":", 2)[2]))
    body[20] ^= 0xFF
    doc["files"][0]["key"]["wrapped"] = "vault:v1:" + base64.b64encode(bytes(body)).decode()
    manifest.write_text(json.dumps(doc))
    code, out = run_cli("decrypt", str(enc), "--backend", "vault", "-o", str(out_dir), env=env)
    assert code == 1 and "transit decrypt of the data key failed" in out
    assert not out_dir.exists()

    # 3. manifest key version edited without the wrapped key
    doc = json.loads(pristine)
    doc["files"][0]["key"]["version"] = 2
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.IntegrityError, match="wrapped key is version 1"):
        art.decrypt_path(enc, service, out=out_dir)

    # 4. swapped wrapped keys between files: the data key opens no chunk of the other file
    doc = json.loads(pristine)
    doc["files"][0]["key"], doc["files"][1]["key"] = doc["files"][1]["key"], doc["files"][0]["key"]
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
    assert code == 1 and "disallowed by policy" in out and "was retired" in out, out
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
    doc["files"][0]["key"] = doc["files"][1]["key"]
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.KeyServiceError, match="transit decrypt"):
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
    assert code == 1 and "permission denied" in out

    code, out = run_cli("decrypt", enc, "--key", "no-such-key", env=bao.env)
    assert code == 1 and "wrong key" in out

    dead = f"http://127.0.0.1:{free_port()}"
    code, out = run_cli("decrypt", enc, env={"VAULT_ADDR": dead, "VAULT_TOKEN": bao.token})
    assert code == 1 and "cannot reach Vault" in out

    code, out = run_cli("decrypt", enc, env={"VAULT_ADDR": bao.address})
    assert code == 1 and "no Vault token" in out

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
