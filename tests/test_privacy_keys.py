"""Where the pseudonymization key comes from: local key file (HKDF), OpenBao transit hmac, KMS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from moto import mock_aws

from pipelines.artifacts.encoding import canonical
from pipelines.artifacts.errors import KeyServiceError
from pipelines.artifacts.keys.kms import KmsKeys
from pipelines.artifacts.keys.local import LocalKeyFile
from pipelines.artifacts.keys.vault import VaultTransitKeys
from pipelines.privacy import tokens
from tests.openbao import OpenBaoServer, openbao_server  # noqa: F401


def test_local_key_is_hkdf_of_the_newest_version_never_the_kek(tmp_path: Path) -> None:
    keys = LocalKeyFile.create(tmp_path / "k.json")
    body = keys._load()
    kek = base64.b64decode(body["versions"]["1"])
    derived = tokens.derive_key(keys)
    info = b"sovml-local-derive/1\x00" + canonical([body["key_id"], 1]) + b"\x00" + tokens.LABEL
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(kek)
    assert derived.material == expected != kek
    assert (derived.backend, derived.key_id, derived.key_version) == ("local", keys.name, "1")
    # Same file, same key (joins work run after run); another label, another key.
    assert tokens.derive_key(LocalKeyFile(keys.path)).material == expected
    assert keys.derive_key(b"other-purpose")[0] != expected


def test_another_key_file_or_version_gives_other_tokens(tmp_path: Path) -> None:
    one = LocalKeyFile.create(tmp_path / "one.json")
    two = LocalKeyFile.create(tmp_path / "two.json")
    first = tokens.Pseudonymizer(tokens.derive_key(one)).token("phone", "+971501234567")
    assert tokens.Pseudonymizer(tokens.derive_key(two)).token("phone", "+971501234567") != first
    one.rotate()
    rotated = tokens.derive_key(one)
    assert rotated.key_version == "2"
    assert tokens.Pseudonymizer(rotated).token("phone", "+971501234567") != first


def test_open_pseudonymizer_local_creates_a_private_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "artifact-key.json"
    made = tokens.open_pseudonymizer("local", str(path), create_local=True)
    assert path.stat().st_mode & 0o777 == 0o600
    again = tokens.open_pseudonymizer("local", str(path))
    assert made.token("email", "a@b.cd") == again.token("email", "a@b.cd")
    with pytest.raises(ValueError, match="encryption backend must be one of"):
        tokens.open_pseudonymizer("plain", "")
    with pytest.raises(KeyServiceError, match="local key file not found"):
        tokens.open_pseudonymizer("local", str(tmp_path / "missing.json"))


# ----------------------------------------------------------------------------------- OpenBao


@pytest.fixture(scope="module")
def bao(openbao_server: OpenBaoServer) -> OpenBaoServer:  # noqa: F811
    """The module's OpenBao server with the transit engine enabled."""
    openbao_server.client().sys.enable_secrets_engine("transit", path="transit")
    return openbao_server


def test_vault_transit_hmac_derives_from_its_own_hmac_key(bao: OpenBaoServer) -> None:
    name = f"tenant-{secrets.token_hex(4)}"
    client = bao.client()
    # Exportable only here, to prove what transit computes with; never in a real layout.
    client.secrets.transit.create_key(name=name, exportable=True)
    service = VaultTransitKeys(name, url=bao.address, token=bao.token)
    derived = tokens.derive_key(service)
    assert (derived.backend, derived.key_id, derived.key_version) == ("vault", name, "1")
    hmac_key = client.secrets.transit.export_key(name=name, key_type="hmac-key")["data"]["keys"]
    enc_key = client.secrets.transit.export_key(name=name, key_type="encryption-key")["data"]
    hmac_raw = base64.b64decode(hmac_key["1"])
    assert hmac_raw != base64.b64decode(enc_key["keys"]["1"])
    assert derived.material == hmac.new(hmac_raw, tokens.LABEL, hashlib.sha256).digest()
    assert tokens.derive_key(service).material == derived.material
    # Another tenant's key: other tokens; rotating: a new version, other tokens.
    other = f"tenant-{secrets.token_hex(4)}"
    client.secrets.transit.create_key(name=other)
    assert tokens.derive_key(VaultTransitKeys(other, url=bao.address, token=bao.token)).material
    assert (
        tokens.derive_key(VaultTransitKeys(other, url=bao.address, token=bao.token)).material
        != derived.material
    )
    client.secrets.transit.rotate_key(name=name)
    assert tokens.derive_key(service).key_version == "2"


def test_vault_missing_key_or_bad_token_is_a_key_service_error(bao: OpenBaoServer) -> None:
    with pytest.raises(KeyServiceError, match="transit hmac failed"):
        tokens.derive_key(VaultTransitKeys("no-such-key", url=bao.address, token=bao.token))
    with pytest.raises(KeyServiceError, match="transit hmac failed: permission denied"):
        tokens.derive_key(VaultTransitKeys("no-such-key", url=bao.address, token="s.wrong"))


def test_open_pseudonymizer_vault_reads_the_cli_environment(
    bao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"tenant-{secrets.token_hex(4)}"
    bao.client().secrets.transit.create_key(name=name)
    for var, value in bao.env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("SOVML_VAULT_K8S_ROLE", raising=False)
    made = tokens.open_pseudonymizer("vault", name)
    assert made.key.key_id == name and made.token("phone", "+97141234567").startswith("pz_")


# ----------------------------------------------------------------------------------- KMS


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "me-central-1")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        yield boto3.client("kms", region_name="me-central-1")


def test_kms_generate_mac_with_an_hmac_key(kms) -> None:
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    kms.create_alias(AliasName="alias/sovml-dev-pseudonymization", TargetKeyId=key["KeyId"])
    made = tokens.open_pseudonymizer("kms", "")
    assert (made.key.backend, made.key.key_id) == ("kms", key["Arn"])
    assert made.key.key_version == "kms-managed"
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=tokens.LABEL, MacAlgorithm="HMAC_SHA_256")
    assert made.key.material == mac["Mac"]
    other = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert tokens.derive_key(KmsKeys(other["Arn"], client=kms)).material != made.key.material


def test_kms_refuses_an_encryption_key(kms) -> None:
    aes = kms.create_key()["KeyMetadata"]
    with pytest.raises(KeyServiceError, match=r"KMS GenerateMac with key .* failed: InvalidKey"):
        tokens.derive_key(KmsKeys(aes["Arn"], client=kms))
