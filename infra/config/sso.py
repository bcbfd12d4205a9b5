"""The single sign-on keys (``sso*``), validated into a ``SsoSettings`` (or None for none).

A closed set: ``ssoConnector`` picks one connector and only that connector's keys may be set
(a stray key is refused, not ignored). Group names may not hold a comma, since oauth2-proxy and
Vault's bound claims both read a comma as a list separator: ``ops,admins`` would admit two
groups. The credential is only ever *present or not* here; it reaches Dex as a Pulumi secret.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse

from components._dex import SsoSettings
from infra.config.gateway import url_problem
from infra.config.keys import EMAIL
from infra.config.reader import Reader
from infra.config.sso_keys import LDAP_BIND_PASSWORD, OIDC_CLIENT_SECRET, SSO_CONNECTORS
from policies.egress import declared_hosts

DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
"""A DNS domain (lower case, at least two labels)."""
GROUP = re.compile(r"[^,\s]([^,]{0,254}[^,\s])?")
"""An IdP group name: 1-256 characters, no comma, no surrounding space."""
HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9.-]+):(?P<port>\d{1,5})")
_ONLY = {
    "oidc": ("ssoOidcIssuer", "ssoOidcClientId", OIDC_CLIENT_SECRET),
    "saml": ("ssoSamlSsoUrl", "ssoSamlCaData", "ssoSamlEntityIssuer"),
    "ldap": (
        "ssoLdapHost",
        "ssoLdapBindDn",
        LDAP_BIND_PASSWORD,
        "ssoLdapUserBaseDn",
        "ssoLdapGroupBaseDn",
        "ssoLdapCaData",
    ),
}
_COMMON = ("ssoDomain", "ssoAllowedGroups", "ssoOperatorGroup", "ssoTenantOwners")


def _set(r: Reader, name: str) -> bool:
    """Whether ``name`` holds a value (a secret's text never leaves this function); the engine
    hands an empty array to a bare ``pulumi up`` as the text ``[]``."""
    return r.raw.get(name) not in (None, "", [], "[]")


def _https(r: Reader, name: str) -> str:
    """An IdP URL, held to the gateway's rule for its issuer (``gateway.url_problem``: no '*',
    nothing outside printable ASCII, besides https with a host and no user, query or fragment)."""
    url = r.string(name) or ""
    why = url_problem(url)
    if why is not None:
        r.problem(name, url, why)
    return url


def _required(r: Reader, name: str, what: str) -> str:
    value = r.string(name) or ""
    if not value.strip() or value != value.strip():
        r.problem(name, value, f"required: {what}")
    return value


def _pem_base64(r: Reader, name: str, required: bool) -> str:
    value = r.string(name) or ""
    if not value and not required:
        return ""
    try:
        pem = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        pem = ""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        r.problem(name, value[:40], "base64 of a PEM CA certificate (base64 -w0 ca.pem)")
    return value


def _owners(r: Reader) -> tuple[tuple[str, str], ...]:
    tenants = r.strings("tenants") or ()
    owners: dict[str, str] = {}
    for item in r.strings("ssoTenantOwners") or ():
        tenant, sep, email = item.partition("=")
        if not sep or tenant not in tenants or not EMAIL.fullmatch(email):
            r.problem("ssoTenantOwners", item, "'tenant=e-mail' naming one of tenants")
        elif tenant in owners:
            r.problem("ssoTenantOwners", item, f"one owner per tenant ({tenant} is repeated)")
        else:
            owners[tenant] = email
    missing = [t for t in tenants if t not in owners]
    if missing:
        r.problem("ssoTenantOwners", None, f"an owner for every tenant: {', '.join(missing)}")
    return tuple((t, owners[t]) for t in tenants if t in owners)


def parse_sso(r: Reader) -> SsoSettings | None:
    """The ``sso*`` keys as ``SsoSettings`` (None for ``none``); problems recorded on ``r``."""
    kind = r.string("ssoConnector", SSO_CONNECTORS)
    if kind is None:
        return None
    allowed = _ONLY.get(kind, ())
    for other, names in _ONLY.items():
        for name in names:
            if other != kind and _set(r, name):
                r.problem(name, None, f"set only with ssoConnector: {other}", conceal=True)
    if kind == "none":
        for name in _COMMON:
            if _set(r, name):
                r.problem(name, r.raw.get(name), "set only with an ssoConnector (not none)")
        return None
    assert allowed
    domain = r.string("ssoDomain") or ""
    if not DOMAIN.fullmatch(domain):
        r.problem("ssoDomain", domain, "a DNS domain such as ml-platform.example.ae")
    groups = r.strings("ssoAllowedGroups") or ()
    if not groups:
        r.problem("ssoAllowedGroups", None, "one or more IdP groups (deny by default)")
    operator = r.string("ssoOperatorGroup") or ""
    for name, group in [*(("ssoAllowedGroups", g) for g in groups), ("ssoOperatorGroup", operator)]:
        if group and not GROUP.fullmatch(group):
            r.problem(name, group, "a group name: 1-256 characters, no comma, no outer space")
    fields: dict[str, str] = {}
    if kind == "oidc":
        fields["oidc_issuer"] = _https(r, "ssoOidcIssuer")
        fields["oidc_client_id"] = _required(r, "ssoOidcClientId", "Dex's client id at the IdP")
        if not _set(r, OIDC_CLIENT_SECRET):
            r.problem(OIDC_CLIENT_SECRET, None, "a secret (`pulumi config set --secret`)")
    elif kind == "saml":
        fields["saml_sso_url"] = _https(r, "ssoSamlSsoUrl")
        fields["saml_ca_data"] = _pem_base64(r, "ssoSamlCaData", required=True)
        fields["saml_entity_issuer"] = r.string("ssoSamlEntityIssuer") or ""
    else:
        host = r.string("ssoLdapHost") or ""
        m = HOST_PORT.fullmatch(host)
        if m is None or not 0 < int(m["port"]) < 65536:
            r.problem("ssoLdapHost", host, "'host:port' of the directory's LDAPS listener")
        fields["ldap_host"] = host
        for key, field_name in (
            ("ssoLdapBindDn", "ldap_bind_dn"),
            ("ssoLdapUserBaseDn", "ldap_user_base_dn"),
            ("ssoLdapGroupBaseDn", "ldap_group_base_dn"),
        ):
            fields[field_name] = _required(r, key, "a distinguished name")
        if not _set(r, LDAP_BIND_PASSWORD):
            r.problem(LDAP_BIND_PASSWORD, None, "a secret (`pulumi config set --secret`)")
        fields["ldap_ca_data"] = _pem_base64(r, "ssoLdapCaData", required=False)
    return SsoSettings(
        connector=kind,
        domain=domain,
        allowed_groups=tuple(groups),
        operator_group=operator,
        tenant_owners=_owners(r),
        **fields,
    )


def sso_upstream(sso: SsoSettings | None) -> tuple[str, int, str] | None:
    """(host, port, key) of the enterprise IdP that Dex itself calls from inside the mesh: the
    OIDC issuer (discovery, tokens) or the LDAPS directory; None for SAML (the browser carries
    the assertions, Dex calls nothing) and without single sign-on."""
    if sso is None:
        return None
    if sso.connector == "oidc" and sso.oidc_issuer:
        host = urllib.parse.urlsplit(sso.oidc_issuer).hostname or ""
        return (host.lower(), 443, "ssoOidcIssuer") if host else None
    if sso.connector == "ldap":
        m = HOST_PORT.fullmatch(sso.ldap_host)
        return (m["host"].lower(), int(m["port"]), "ssoLdapHost") if m else None
    return None


def check_sso_in_zone(r: Reader, sso: SsoSettings | None, external: tuple[str, ...] | None) -> None:
    """The IdP Dex calls must be declared in the zone: the mesh refuses every host its egress
    allow-list does not name, and only ``inZoneExternalResources`` adds a host to it."""
    upstream = sso_upstream(sso)
    if upstream is None or external is None:
        return
    host, _, key = upstream
    if host not in declared_hosts(external):
        r.problem(
            key,
            r.raw.get(key),
            f"an IdP inside the residency zone: list its host {host} in inZoneExternalResources "
            "(the mesh's egress refuses every host not declared there)",
        )
