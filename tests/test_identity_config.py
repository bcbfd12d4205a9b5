"""The single sign-on keys (``sso*``): one connector at a time, a closed set of keys, groups that
cannot smuggle a second group in, credentials only as Pulumi secrets, an owner per tenant."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from infra import config as cfgmod
from infra.config.sso_keys import LDAP_BIND_PASSWORD, OIDC_CLIENT_SECRET, SSO_KEYS

WEBHOOK = "https://itsm.example.ae/hook"
BASE: dict[str, Any] = {
    "aws:region": "me-central-1",
    "owner": "o",
    "costCenter": "c",
    "alertWebhookUrl": WEBHOOK,
    "tenants": ["acme"],
    # Production serves models: the inference gateway's issuer is required (#22).
    "gatewayOidcIssuer": "https://login.example.ae/realms/ml",
    "gatewayOidcJwksUri": "https://login.example.ae/realms/ml/certs",
}
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
OIDC = {
    "ssoConnector": "oidc",
    "ssoDomain": "ml.example.ae",
    "ssoAllowedGroups": ["ml-users"],
    "ssoTenantOwners": ["acme=lead@example.ae"],
    "ssoOidcIssuer": "https://login.example.ae/realms/bank",
    "ssoOidcClientId": "dex",
    OIDC_CLIENT_SECRET: "[secret]",
    "inZoneExternalResources": ["login.example.ae"],
}
SAML = {
    "ssoConnector": "saml",
    "ssoDomain": "ml.example.ae",
    "ssoAllowedGroups": ["ml-users"],
    "ssoTenantOwners": ["acme=lead@example.ae"],
    "ssoSamlSsoUrl": "https://idp.example.ae/sso",
    "ssoSamlCaData": CA,
}
LDAP = {
    "ssoConnector": "ldap",
    "ssoDomain": "ml.example.ae",
    "ssoAllowedGroups": ["ml-users"],
    "ssoTenantOwners": ["acme=lead@example.ae"],
    "ssoLdapHost": "ldap.example.ae:636",
    "ssoLdapBindDn": "cn=dex,ou=svc,dc=bank",
    LDAP_BIND_PASSWORD: "[secret]",
    "ssoLdapUserBaseDn": "ou=people,dc=bank",
    "ssoLdapGroupBaseDn": "ou=groups,dc=bank",
    "inZoneExternalResources": ["ldap.example.ae"],
}


def _parse(extra: dict[str, Any], secret: tuple[str, ...] = ()) -> Any:
    return cfgmod.parse({**BASE, **extra}, stack="t", source="t.yaml", secret_keys=secret)


def _problems(extra: dict[str, Any], secret: tuple[str, ...] = ()) -> dict[str, str]:
    result = _parse(extra, secret)
    assert isinstance(result, list), result
    out: dict[str, str] = {}
    for p in result:  # every problem of a key, in order (a bad URL is also an undeclared host)
        key = p.key.removeprefix("sovereign-ml:")
        out[key] = f"{out[key]} | {p.allowed}" if key in out else p.allowed
    return out


def test_none_is_the_default_and_builds_nothing() -> None:
    cfg = _parse({})
    assert not isinstance(cfg, list) and cfg.sso is None
    assert cfg.to_record()["sso"] is None


@pytest.mark.parametrize(
    ("raw", "secret", "connector"),
    [
        (OIDC, (OIDC_CLIENT_SECRET,), "oidc"),
        (SAML, (), "saml"),
        (LDAP, (LDAP_BIND_PASSWORD,), "ldap"),
    ],
)
def test_each_connector_parses_with_its_own_keys(
    raw: dict[str, Any], secret: tuple[str, ...], connector: str
) -> None:
    cfg = _parse(raw, secret)
    assert not isinstance(cfg, list), cfg
    assert cfg.sso is not None and cfg.sso.connector == connector
    assert cfg.sso.issuer == "https://sso.ml.example.ae/dex"
    assert cfg.sso.tenant_owners == (("acme", "lead@example.ae"),)
    # The credential's text is never held, only that it is set.
    assert "[secret]" not in repr(cfg.sso)


def test_a_plain_connector_credential_is_refused() -> None:
    problems = _problems({**OIDC, OIDC_CLIENT_SECRET: "hunter2-plain"})
    assert "a credential in plain text" in problems[OIDC_CLIENT_SECRET]
    problems = _problems({**LDAP, LDAP_BIND_PASSWORD: "hunter2-plain"})
    assert "a credential in plain text" in problems[LDAP_BIND_PASSWORD]


def test_a_missing_credential_is_refused() -> None:
    raw = {k: v for k, v in OIDC.items() if k != OIDC_CLIENT_SECRET}
    assert _problems(raw)[OIDC_CLIENT_SECRET] == "a secret (`pulumi config set --secret`)"
    raw = {k: v for k, v in LDAP.items() if k != LDAP_BIND_PASSWORD}
    assert _problems(raw)[LDAP_BIND_PASSWORD] == "a secret (`pulumi config set --secret`)"


def test_another_connectors_keys_are_refused_not_ignored() -> None:
    problems = _problems({**SAML, "ssoLdapHost": "ldap.example.ae:636"})
    assert problems == {"ssoLdapHost": "set only with ssoConnector: ldap"}
    problems = _problems({**SAML, OIDC_CLIENT_SECRET: "[secret]"}, (OIDC_CLIENT_SECRET,))
    assert problems == {OIDC_CLIENT_SECRET: "set only with ssoConnector: oidc"}


def test_with_none_every_sso_key_is_refused() -> None:
    problems = _problems({"ssoDomain": "ml.example.ae", "ssoAllowedGroups": ["g"]})
    assert problems == {
        "ssoDomain": "set only with an ssoConnector (not none)",
        "ssoAllowedGroups": "set only with an ssoConnector (not none)",
    }


@pytest.mark.parametrize(
    ("edit", "key", "allowed"),
    [
        ({"ssoConnector": "kerberos"}, "ssoConnector", "one of none, oidc, saml, ldap"),
        ({"ssoDomain": "localhost"}, "ssoDomain", "a DNS domain such as ml-platform.example.ae"),
        ({"ssoDomain": "ML.example.ae"}, "ssoDomain", "a DNS domain such as"),
        ({"ssoAllowedGroups": []}, "ssoAllowedGroups", "one or more IdP groups (deny by default)"),
        # A comma would read as two groups in oauth2-proxy and in Vault's bound claims.
        ({"ssoAllowedGroups": ["ml-users,admins"]}, "ssoAllowedGroups", "no comma"),
        ({"ssoOperatorGroup": "ops,admins"}, "ssoOperatorGroup", "no comma"),
        ({"ssoAllowedGroups": [" ml-users"]}, "ssoAllowedGroups", "no outer space"),
        ({"ssoOidcIssuer": "http://login.example.ae"}, "ssoOidcIssuer", "an https:// URL"),
        ({"ssoOidcIssuer": "https://u:p@login.example.ae"}, "ssoOidcIssuer", "no user"),
        ({"ssoOidcIssuer": "https://login.example.ae/?x=1"}, "ssoOidcIssuer",
         "no user, password, query"),
        ({"ssoOidcIssuer": "https://*.example.ae/realms/bank"}, "ssoOidcIssuer", "or '*'"),
        ({"ssoOidcIssuer": "https://lo\u0261in.example.ae/realms/bank"}, "ssoOidcIssuer",
         "an https:// URL"),
        ({"ssoOidcIssuer": "https://login.example.ae/realms/bank\t"}, "ssoOidcIssuer",
         "an https:// URL"),
        ({"ssoOidcClientId": ""}, "ssoOidcClientId", "required"),
        ({"ssoTenantOwners": []}, "ssoTenantOwners", "an owner for every tenant: acme"),
        ({"ssoTenantOwners": ["evil=x@example.ae", "acme=lead@example.ae"]}, "ssoTenantOwners",
         "'tenant=e-mail' naming one of tenants"),
        ({"ssoTenantOwners": ["acme=not-an-email", "acme=lead@example.ae"]}, "ssoTenantOwners",
         "'tenant=e-mail' naming one of tenants"),
        ({"ssoTenantOwners": ["acme=a@example.ae", "acme=b@example.ae"]}, "ssoTenantOwners",
         "one owner per tenant (acme is repeated)"),
    ],
)  # fmt: skip
def test_bad_values_are_refused(edit: dict[str, Any], key: str, allowed: str) -> None:
    problems = _problems({**OIDC, **edit}, (OIDC_CLIENT_SECRET,))
    assert key in problems and allowed in problems[key], problems


@pytest.mark.parametrize(
    ("edit", "key", "allowed"),
    [
        ({"ssoSamlCaData": "not base64!"}, "ssoSamlCaData", "base64 of a PEM CA certificate"),
        ({"ssoSamlCaData": base64.b64encode(b"hello").decode()}, "ssoSamlCaData", "PEM"),
        ({"ssoSamlSsoUrl": "http://idp.example.ae/sso"}, "ssoSamlSsoUrl", "an https:// URL"),
        ({"ssoSamlSsoUrl": "https://idp.example.ae/sso#x"}, "ssoSamlSsoUrl", "fragment"),
    ],
)
def test_bad_saml_values_are_refused(edit: dict[str, Any], key: str, allowed: str) -> None:
    problems = _problems({**SAML, **edit})
    assert key in problems and allowed in problems[key], problems


@pytest.mark.parametrize(
    ("edit", "key", "allowed"),
    [
        ({"ssoLdapHost": "ldap.example.ae"}, "ssoLdapHost", "'host:port'"),
        ({"ssoLdapHost": "ldap.example.ae:0"}, "ssoLdapHost", "'host:port'"),
        ({"ssoLdapHost": "ldap.example.ae:99999"}, "ssoLdapHost", "'host:port'"),
        ({"ssoLdapBindDn": ""}, "ssoLdapBindDn", "required: a distinguished name"),
        ({"ssoLdapCaData": "bm90IGEgY2VydA=="}, "ssoLdapCaData", "base64 of a PEM"),
    ],
)
def test_bad_ldap_values_are_refused(edit: dict[str, Any], key: str, allowed: str) -> None:
    problems = _problems({**LDAP, **edit}, (LDAP_BIND_PASSWORD,))
    assert key in problems and allowed in problems[key], problems


def test_only_the_two_credentials_are_secret_keys() -> None:
    assert {k.name for k in SSO_KEYS if k.secret} == {OIDC_CLIENT_SECRET, LDAP_BIND_PASSWORD}
    assert {k.name for k in SSO_KEYS} <= set(cfgmod.KEYS_BY_NAME)


def test_tenants_cannot_take_the_identity_namespaces() -> None:
    problems = _problems({"tenants": ["auth"]})
    assert "tenants" in problems
    problems = _problems({"tenants": ["cert-manager"]})
    assert "tenants" in problems


def test_engine_text_for_empty_arrays_counts_as_unset() -> None:
    """A bare ``pulumi up`` hands every array as JSON text, defaults included."""
    cfg = _parse({"ssoAllowedGroups": "[]", "ssoTenantOwners": "[]"})
    assert not isinstance(cfg, list) and cfg.sso is None
    assert _problems({"ssoAllowedGroups": '["g"]'}) == {
        "ssoAllowedGroups": "set only with an ssoConnector (not none)"
    }


@pytest.mark.parametrize(
    ("raw", "secret", "key", "declared"),
    [
        (OIDC, (OIDC_CLIENT_SECRET,), "ssoOidcIssuer", []),
        (OIDC, (OIDC_CLIENT_SECRET,), "ssoOidcIssuer", ["login.example.ae.attacker.example"]),
        (OIDC, (OIDC_CLIENT_SECRET,), "ssoOidcIssuer", ["example.ae"]),
        (LDAP, (LDAP_BIND_PASSWORD,), "ssoLdapHost", ["login.example.ae"]),
    ],
)
def test_the_idp_dex_calls_must_be_declared_in_the_zone(
    raw: dict[str, Any], secret: tuple[str, ...], key: str, declared: list[str]
) -> None:
    """The mesh's egress refuses every undeclared host: an IdP outside ``inZoneExternalResources``
    would be unreachable (and outside the zone), so the stack file is refused, naming the key."""
    problems = _problems({**raw, "inZoneExternalResources": declared}, secret)
    assert set(problems) == {key}
    assert "an IdP inside the residency zone" in problems[key]
    assert "inZoneExternalResources" in problems[key]


def test_saml_needs_no_declaration_dex_calls_nothing() -> None:
    cfg = _parse({**SAML, "inZoneExternalResources": []})
    assert not isinstance(cfg, list), cfg


def test_the_egress_allow_list_carries_the_idp_on_its_own_port() -> None:
    from infra.egress import sso_destinations

    cfg = _parse(LDAP, (LDAP_BIND_PASSWORD,))
    assert not isinstance(cfg, list), cfg
    [dest] = sso_destinations(cfg)
    assert (dest.host, dest.port, dest.protocol) == ("ldap.example.ae", 636, "TLS")
    cfg = _parse(OIDC, (OIDC_CLIENT_SECRET,))
    assert not isinstance(cfg, list), cfg
    assert [(d.host, d.port) for d in sso_destinations(cfg)] == [("login.example.ae", 443)]
