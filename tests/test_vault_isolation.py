"""The Vault layout the program declares, applied with hvac to a real OpenBao server.

Proves the isolation the policies promise: a token holding namespace A's policy can use A's
transit key and KV subtree, and nothing of tenant B's.
"""

from __future__ import annotations

import base64
from typing import Any

import hvac
import hvac.exceptions
import pytest

from components.vault_layout import KV_PATH, TRANSIT_PATH, apply_with_hvac, layout
from tests.openbao import openbao_server  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def configured(openbao_server: Any) -> Any:  # noqa: F811
    root = openbao_server.client()
    lay = layout(["acme", "globex"])
    ca = _self_signed_ca()
    apply_with_hvac(root, lay, kubernetes_host="https://10.40.0.10", kubernetes_ca_cert=ca)
    return openbao_server, lay


def _self_signed_ca() -> str:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _token_for(server: Any, policy: str) -> hvac.Client:
    root = server.client()
    token = root.auth.token.create(policies=[policy], ttl="10m")["auth"]["client_token"]
    return hvac.Client(url=server.address, token=token)


def test_layout_is_applied(configured: Any) -> None:
    server, lay = configured
    root = server.client()
    keys = root.secrets.transit.list_keys(mount_point=TRANSIT_PATH)["data"]["keys"]
    assert set(lay.transit_keys) <= set(keys)
    roles = root.auth.kubernetes.list_roles(mount_point="kubernetes")["keys"]
    assert {a.role_name for a in lay.access} <= set(roles)


def test_namespace_uses_its_own_key_and_kv(configured: Any) -> None:
    server, _ = configured
    acme = _token_for(server, "ns-acme")
    dk = acme.secrets.transit.generate_data_key(
        name="artifacts-acme", key_type="plaintext", mount_point=TRANSIT_PATH
    )["data"]
    plain = acme.secrets.transit.decrypt_data(
        name="artifacts-acme", ciphertext=dk["ciphertext"], mount_point=TRANSIT_PATH
    )["data"]["plaintext"]
    assert plain == dk["plaintext"] and len(base64.b64decode(plain)) == 32
    acme.secrets.kv.v2.create_or_update_secret(
        path="acme/db", secret={"password": "p"}, mount_point=KV_PATH
    )
    read = acme.secrets.kv.v2.read_secret_version(
        path="acme/db", mount_point=KV_PATH, raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"password": "p"}


def test_namespace_cannot_touch_another_tenants_key_or_kv(configured: Any) -> None:
    server, _ = configured
    root = server.client()
    globex_ct = root.secrets.transit.encrypt_data(
        name="artifacts-globex",
        plaintext=base64.b64encode(b"globex model key").decode(),
        mount_point=TRANSIT_PATH,
    )["data"]["ciphertext"]
    root.secrets.kv.v2.create_or_update_secret(
        path="globex/db", secret={"password": "g"}, mount_point=KV_PATH
    )
    acme = _token_for(server, "ns-acme")
    with pytest.raises(hvac.exceptions.Forbidden):
        acme.secrets.transit.decrypt_data(
            name="artifacts-globex", ciphertext=globex_ct, mount_point=TRANSIT_PATH
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        acme.secrets.transit.generate_data_key(
            name="artifacts-globex", key_type="plaintext", mount_point=TRANSIT_PATH
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        acme.secrets.kv.v2.read_secret_version(
            path="globex/db", mount_point=KV_PATH, raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        acme.secrets.transit.rotate_key(name="artifacts-acme", mount_point=TRANSIT_PATH)


def test_platform_namespace_shares_only_the_platform_key(configured: Any) -> None:
    server, _ = configured
    serving = _token_for(server, "ns-serving")
    serving.secrets.transit.generate_data_key(
        name="artifacts-platform", key_type="plaintext", mount_point=TRANSIT_PATH
    )
    with pytest.raises(hvac.exceptions.Forbidden):
        serving.secrets.transit.generate_data_key(
            name="artifacts-acme", key_type="plaintext", mount_point=TRANSIT_PATH
        )


def test_only_ingesting_identities_hmac_and_only_with_their_own_key(configured: Any) -> None:
    """The pseudonymization key comes from ``transit/hmac/<key>`` (the ingest step's ``vault``
    key service): a tenant's pipeline identity may HMAC with its own key, not another tenant's;
    the platform's pipeline namespace with the platform key; serving not at all."""
    server, _ = configured
    label = base64.b64encode(b"sovml-pseudonymization/1").decode()

    def hmac(client: hvac.Client, key: str) -> str:
        return client.secrets.transit.generate_hmac(
            name=key, hash_input=label, algorithm="sha2-256", mount_point=TRANSIT_PATH
        )["data"]["hmac"]

    acme = _token_for(server, "ns-acme")
    assert hmac(acme, "artifacts-acme").startswith("vault:v1:")
    assert hmac(_token_for(server, "ns-kubeflow"), "artifacts-platform").startswith("vault:v1:")
    with pytest.raises(hvac.exceptions.Forbidden):
        hmac(acme, "artifacts-globex")
    with pytest.raises(hvac.exceptions.Forbidden):
        hmac(_token_for(server, "ns-serving"), "artifacts-platform")
