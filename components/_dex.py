"""Dex's configuration as data: the web UIs put behind single sign-on, the stack's SSO choices,
the one upstream connector and the ``config.yaml`` Dex reads (:mod:`components.sso` deploys it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CONNECTORS = ("oidc", "saml", "ldap")
"""Upstream identity providers Dex can federate here (one per stack)."""
DEX_PORT = 5556
"""Dex's HTTP port (TLS ends at the gateway; inside the mesh the sidecars add mTLS)."""
DEX_TELEMETRY_PORT = 5558
"""Dex's metrics and health port."""
UI_CLIENT = "web-uis"
"""Dex static client of the oauth2-proxies."""
VAULT_CLIENT = "vault"
"""Dex static client of Vault's OIDC auth method (operators)."""
VAULT_CLI_CALLBACK = "http://localhost:8250/oidc/callback"
"""Where ``vault login -method=oidc`` listens on the operator's own machine."""
SSO_HOST = "sso"
"""Host label of Dex under the stack's SSO domain."""


@dataclass(frozen=True)
class WebUi:
    """One web UI put behind single sign-on."""

    name: str
    """Short name: the oauth2-proxy release is ``oauth2-proxy-<name>``."""
    host: str
    """Host label under the SSO domain (``pipelines`` -> ``pipelines.<domain>``)."""
    namespace: str
    """Namespace of the UI's Service."""
    service: str
    """The UI's Service name."""
    port: int
    """The Service port oauth2-proxy forwards to."""
    target_port: int
    """The pods' container port (NetworkPolicies select pods, not Services)."""
    pods: Mapping[str, str]
    """Labels of the UI's pods."""


@dataclass(frozen=True)
class SsoSettings:
    """The stack's single sign-on choices (``sso*`` keys), validated; no credential is held."""

    connector: str
    """``oidc``, ``saml`` or ``ldap``."""
    domain: str
    """DNS domain of the front door: ``sso.<domain>`` (Dex) and one host per UI."""
    allowed_groups: tuple[str, ...]
    """IdP groups allowed into the web UIs (anyone else is refused by oauth2-proxy)."""
    operator_group: str = ""
    """IdP group of Vault operators ('' for no Vault SSO)."""
    tenant_owners: tuple[tuple[str, str], ...] = ()
    """``(tenant, owner e-mail)``: the owner of each tenant's Kubeflow profile."""
    oidc_issuer: str = ""
    """OIDC connector: the enterprise IdP's issuer URL."""
    oidc_client_id: str = ""
    """OIDC connector: Dex's client id at the IdP."""
    saml_sso_url: str = ""
    """SAML connector: the IdP's SSO URL."""
    saml_ca_data: str = ""
    """SAML connector: base64 PEM of the CA that signs the IdP's assertions."""
    saml_entity_issuer: str = ""
    """SAML connector: Dex's entity ID at the IdP ('' for Dex's callback URL)."""
    ldap_host: str = ""
    """LDAP connector: ``host:port`` of the directory (LDAPS)."""
    ldap_bind_dn: str = ""
    """LDAP connector: the service account Dex binds as."""
    ldap_user_base_dn: str = ""
    """LDAP connector: where users are searched."""
    ldap_group_base_dn: str = ""
    """LDAP connector: where groups are searched."""
    ldap_ca_data: str = ""
    """LDAP connector: base64 PEM of the directory's CA ('' for the system roots)."""

    @property
    def issuer(self) -> str:
        """Dex's issuer URL."""
        return f"https://{SSO_HOST}.{self.domain}/dex"

    def host(self, label: str) -> str:
        """The full host name of ``label`` under the SSO domain."""
        return f"{label}.{self.domain}"


def connector(s: SsoSettings, secret: str) -> dict[str, Any]:
    """Dex's one connector for ``s`` (``secret``: the OIDC client secret or bind password)."""
    if s.connector == "oidc":
        config: dict[str, Any] = {
            "issuer": s.oidc_issuer,
            "clientID": s.oidc_client_id,
            "clientSecret": secret,
            "redirectURI": f"{s.issuer}/callback",
            "scopes": ["openid", "profile", "email", "groups"],
            "insecureEnableGroups": True,
            # Dex must not trust an unverified e-mail: the UIs and Kubeflow key on it.
            "insecureSkipEmailVerified": False,
        }
    elif s.connector == "saml":
        config = {
            "ssoURL": s.saml_sso_url,
            "caData": s.saml_ca_data,
            "redirectURI": f"{s.issuer}/callback",
            "entityIssuer": s.saml_entity_issuer or f"{s.issuer}/callback",
            "usernameAttr": "name",
            "emailAttr": "email",
            "groupsAttr": "groups",
            "nameIDPolicyFormat": "persistent",
        }
    else:
        config = {
            "host": s.ldap_host,
            # LDAPS only: no plain LDAP, no StartTLS downgrade, certificates verified.
            "insecureNoSSL": False,
            "insecureSkipVerify": False,
            "startTLS": False,
            **({"rootCAData": s.ldap_ca_data} if s.ldap_ca_data else {}),
            "bindDN": s.ldap_bind_dn,
            "bindPW": secret,
            "userSearch": {
                "baseDN": s.ldap_user_base_dn,
                "filter": "(objectClass=person)",
                "username": "mail",
                "idAttr": "DN",
                "emailAttr": "mail",
                "nameAttr": "cn",
            },
            "groupSearch": {
                "baseDN": s.ldap_group_base_dn,
                "filter": "(objectClass=groupOfNames)",
                "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}],
                "nameAttr": "cn",
            },
        }
    return {"type": s.connector, "id": s.connector, "name": "Enterprise sign-in", "config": config}


def dex_config(
    s: SsoSettings, uis: Sequence[WebUi], connector_secret: str, ui_secret: str, vault_secret: str
) -> dict[str, Any]:
    """Dex's ``config.yaml``: the one connector, the two static clients, no local passwords."""
    # Only the CLI's loopback callback: Vault's UI is not exposed through the gateway.
    vault_redirects = [VAULT_CLI_CALLBACK]
    return {
        "issuer": s.issuer,
        "storage": {"type": "kubernetes", "config": {"inCluster": True}},
        "web": {"http": f"0.0.0.0:{DEX_PORT}"},
        "telemetry": {"http": f"0.0.0.0:{DEX_TELEMETRY_PORT}"},
        "oauth2": {"skipApprovalScreen": True, "responseTypes": ["code"]},
        "expiry": {
            "idTokens": "1h",
            "signingKeys": "6h",
            "refreshTokens": {"absoluteLifetime": "12h", "validIfNotUsedFor": "2h"},
        },
        "enablePasswordDB": False,
        "connectors": [connector(s, connector_secret)],
        "staticClients": [
            {
                "id": UI_CLIENT,
                "name": "Platform web UIs",
                "secret": ui_secret,
                "redirectURIs": [f"https://{s.host(u.host)}/oauth2/callback" for u in uis],
            },
            {
                "id": VAULT_CLIENT,
                "name": "Vault operators",
                "secret": vault_secret,
                "redirectURIs": vault_redirects,
            },
        ],
    }


def dump(config: dict[str, Any]) -> str:
    """JSON is YAML: Dex reads it as its config file."""
    return json.dumps(config, indent=2, sort_keys=True)
