"""The single sign-on keys (``sso*``): Dex's upstream connector, the front door's domain, who may
enter the web UIs, Vault operators' group and Kubeflow profile owners.

The connector's credential (``ssoOidcClientSecret`` or ``ssoLdapBindPassword``) is a
``Key.secret``: only ``pulumi config set --secret`` may hold it, a plain value is refused.
"""

from __future__ import annotations

from infra.config.key import Key

SSO_CONNECTORS = ("none", "oidc", "saml", "ldap")
"""``ssoConnector`` values; ``none`` exposes no web UI at all (deny by default)."""
OIDC_CLIENT_SECRET = "ssoOidcClientSecret"
"""The OIDC connector's credential key."""
LDAP_BIND_PASSWORD = "ssoLdapBindPassword"
"""The LDAP connector's credential key."""

SSO_KEYS: tuple[Key, ...] = (
    Key(
        "ssoConnector",
        "string",
        "Single sign-on for people: Dex federates the enterprise IdP over oidc, saml or ldap "
        "(LDAPS) and oauth2-proxy guards each web UI; none: no web UI is exposed at all.",
        "none",
    ),
    Key(
        "ssoDomain",
        "string",
        "DNS domain of the SSO front door: Dex at sso.<domain>, the Kubeflow Pipelines UI at "
        "pipelines.<domain>, MLflow at mlflow.<domain> (enterprise).",
        "",
    ),
    Key(
        "ssoAllowedGroups",
        "array",
        "IdP groups whose members may enter the web UIs (anyone else is refused).",
        [],
    ),
    Key(
        "ssoOperatorGroup",
        "string",
        "IdP group of Vault operators: they log in to Vault through Dex (oidc auth method) and "
        "get the operator policy; '' for none.",
        "",
    ),
    Key(
        "ssoTenantOwners",
        "array",
        "Owner of each tenant's Kubeflow profile, 'tenant=e-mail' (every tenant needs one when "
        "ssoConnector is set).",
        [],
    ),
    Key("ssoOidcIssuer", "string", "oidc connector: the enterprise IdP's https issuer URL.", ""),
    Key("ssoOidcClientId", "string", "oidc connector: Dex's client id at the IdP.", ""),
    Key(
        OIDC_CLIENT_SECRET,
        "string",
        "oidc connector: Dex's client secret at the IdP (secret: `pulumi config set --secret`).",
        "",
        secret=True,
    ),
    Key("ssoSamlSsoUrl", "string", "saml connector: the IdP's https SSO URL.", ""),
    Key(
        "ssoSamlCaData",
        "string",
        "saml connector: base64 of the PEM CA certificate that signs the IdP's assertions.",
        "",
    ),
    Key(
        "ssoSamlEntityIssuer",
        "string",
        "saml connector: Dex's entity ID at the IdP; '' for Dex's callback URL.",
        "",
    ),
    Key("ssoLdapHost", "string", "ldap connector: 'host:port' of the directory (LDAPS).", ""),
    Key("ssoLdapBindDn", "string", "ldap connector: DN Dex binds as to search.", ""),
    Key(
        LDAP_BIND_PASSWORD,
        "string",
        "ldap connector: password of ssoLdapBindDn (secret: `pulumi config set --secret`).",
        "",
        secret=True,
    ),
    Key("ssoLdapUserBaseDn", "string", "ldap connector: base DN of the user search.", ""),
    Key("ssoLdapGroupBaseDn", "string", "ldap connector: base DN of the group search.", ""),
    Key(
        "ssoLdapCaData",
        "string",
        "ldap connector: base64 of the directory's PEM CA certificate; '' for the system roots.",
        "",
    ),
)
"""Keys of :mod:`infra.config.sso` (``KEYS`` includes them)."""
