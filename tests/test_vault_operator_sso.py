"""Operators' single sign-on to Vault, applied as the layout declares it to a real OpenBao server
and exercised with real RS256 ID tokens (PyJWT) signed by a key standing in for Dex's.

No Dex runs here (no package ships it), so the auth method is given Dex's public key
(``jwt_validation_pubkeys``) instead of its discovery URL; every binding the program declares
(issuer, audience, the operator group in the ``groups`` claim, expiry, the operator policy) is
the layout's own and is what OpenBao enforces below.
"""

from __future__ import annotations

import time
from typing import Any

import hvac
import hvac.exceptions
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.vault_layout import (
    OIDC_AUTH_PATH,
    OPERATOR_CLI_ROLE,
    OPERATOR_POLICY,
    OPERATOR_ROLE,
    TRANSIT_PATH,
    OperatorSso,
    apply_operator_sso,
    apply_with_hvac,
    layout,
)
from tests.openbao import openbao_server  # noqa: F401  (fixture)
from tests.test_vault_isolation import _self_signed_ca

ISSUER = "https://sso.ml-platform.example.ae/dex"
SSO = OperatorSso(
    issuer=ISSUER,
    client_id="vault",
    operator_group="ml-platform-operators",
    redirect_uris=("https://vault.ml-platform.example.ae/ui/vault/auth/oidc/oidc/callback",),
)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


DEX_KEY = _key()
OTHER_KEY = _key()


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def bao(openbao_server: Any) -> Any:  # noqa: F811
    root = openbao_server.client()
    lay = layout(["acme"])
    # The namespaces' layout first (kubernetes auth needs no cluster to be configured), then
    # operators' SSO with Dex's key in place of its discovery document.
    apply_with_hvac(
        root, lay, kubernetes_host="https://10.40.0.10", kubernetes_ca_cert=_self_signed_ca()
    )
    apply_operator_sso(root, SSO, oidc_discovery_url=None, jwt_validation_pubkeys=[_pem(DEX_KEY)])
    return openbao_server


def _token(key: rsa.RSAPrivateKey = DEX_KEY, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "vault",
        "sub": "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs",
        "email": "amina@example.ae",
        "groups": ["ml-platform-operators", "staff"],
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dex"})


def _login(server: Any, token: str, role: str = OPERATOR_CLI_ROLE) -> dict[str, Any]:
    client = hvac.Client(url=server.address)
    return client.auth.jwt.jwt_login(role=role, jwt=token, path=OIDC_AUTH_PATH)["auth"]


def test_a_valid_operator_token_gets_the_operator_policy_and_nothing_else(bao: Any) -> None:
    auth = _login(bao, _token())
    assert auth["policies"] == ["default", OPERATOR_POLICY]
    assert auth["lease_duration"] == 3600
    operator = hvac.Client(url=bao.address, token=auth["client_token"])
    # Operators may read key metadata and rotate a key ...
    assert operator.secrets.transit.read_key("artifacts-acme", mount_point=TRANSIT_PATH)["data"]
    operator.secrets.transit.rotate_key("artifacts-acme", mount_point=TRANSIT_PATH)
    # ... but never use one on tenants' data.
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.secrets.transit.generate_data_key(
            "artifacts-acme", key_type="plaintext", mount_point=TRANSIT_PATH
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.secrets.kv.v2.read_secret_version("acme/db", mount_point="secret")


@pytest.mark.parametrize(
    ("case", "token", "message"),
    [
        ("expired", lambda: _token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
         "token is expired"),
        ("wrong audience", lambda: _token(aud="kubeflow-ui"), "audience claim does not match"),
        ("wrong issuer", lambda: _token(iss="https://evil.example.com/dex"),
         "invalid issuer (iss) claim"),
        ("wrong group", lambda: _token(groups=["staff"]), "claim \"groups\" does not match"),
        ("no groups claim", lambda: _token(groups=None), '"groups" claim not found in token'),
        ("another key", lambda: _token(OTHER_KEY), "no known key successfully validated"),
    ],
)  # fmt: skip
def test_a_bad_token_is_refused(bao: Any, case: str, token: Any, message: str) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        _login(bao, token())
    assert message in str(refused.value), (case, str(refused.value))


def test_a_dex_signed_token_without_expiry_is_accepted_a_documented_limit(bao: Any) -> None:
    """OpenBao's jwt method does not require ``exp``: a token signed with Dex's key and no expiry
    logs in. Dex always sets ``exp`` and only Dex holds the key, so this is no way in for an
    attacker; README "Limits" says it. Should OpenBao start refusing it, this test says so."""
    assert _login(bao, _token(exp=None))["policies"] == ["default", OPERATOR_POLICY]


def test_an_unsigned_token_is_refused(bao: Any) -> None:
    claims = jwt.decode(_token(), options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        _login(bao, unsigned)


def test_the_browser_role_binds_the_same_claims(bao: Any) -> None:
    role = bao.client().read(f"auth/{OIDC_AUTH_PATH}/role/{OPERATOR_ROLE}")["data"]
    assert role["role_type"] == "oidc"
    assert role["bound_audiences"] == ["vault"]
    assert role["bound_claims"] == {"groups": ["ml-platform-operators"]}
    assert role["token_policies"] == [OPERATOR_POLICY]
    assert role["allowed_redirect_uris"] == list(SSO.redirect_uris)
    config = bao.client().read(f"auth/{OIDC_AUTH_PATH}/config")["data"]
    assert config["bound_issuer"] == ISSUER


def test_a_role_type_outside_the_two_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed 'oidc' or 'jwt'"):
        SSO.role("kubernetes")
