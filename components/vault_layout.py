"""Vault's configuration as data: mounts, per-namespace policies and Kubernetes auth roles.

One definition serves two consumers: :class:`components.vault_config.VaultConfig` declares it
with the pulumi-vault provider, and the tests apply the very same layout with ``hvac`` to a
real OpenBao server to prove its isolation (``apply_with_hvac``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TRANSIT_PATH = "transit"
KV_PATH = "secret"
K8S_AUTH_PATH = "kubernetes"
OIDC_AUTH_PATH = "oidc"
"""Where operators' single sign-on (Vault's jwt/oidc auth method, Dex as the issuer) is mounted."""
OPERATOR_POLICY = "operator"
"""The policy an operator's SSO login gets (:data:`OPERATOR_POLICY_HCL`)."""
OPERATOR_ROLE = "operator"
"""Browser login role (``vault login -method=oidc role=operator``)."""
OPERATOR_CLI_ROLE = "operator-jwt"
"""The same bindings for a Dex ID token presented directly (``vault write auth/oidc/login``)."""
OPERATOR_TOKEN_TTL = 3600
"""Seconds an operator's token lives: a working session, renewed by logging in again."""
# Operators run Vault, they do not read tenants' data: key metadata and rotation, the
# configuration (mounts, auth, policies, audit) read-only, KV metadata listing; no datakey,
# decrypt, rewrap, HMAC or KV data read. Changing policies stays with the deploy (Pulumi).
OPERATOR_POLICY_HCL = "".join(
    f'path "{path}" {{ capabilities = {json.dumps(caps)} }}\n'
    for path, caps in (
        ("sys/health", ["read"]),
        ("sys/mounts", ["read"]),
        ("sys/auth", ["read"]),
        ("sys/audit", ["read", "sudo"]),
        ("sys/policies/acl", ["list"]),
        ("sys/policies/acl/*", ["read"]),
        (f"{TRANSIT_PATH}/keys", ["list"]),
        (f"{TRANSIT_PATH}/keys/*", ["read"]),
        (f"{TRANSIT_PATH}/keys/+/rotate", ["update"]),
        (f"{KV_PATH}/metadata/*", ["list"]),
    )
)
PLATFORM_KEY = "artifacts-platform"
# Service accounts allowed to log in per platform namespace; tenants use pipeline-runner.
PLATFORM_SERVICE_ACCOUNTS = {
    "kubeflow": ("pipeline-runner",),
    "serving": ("triton",),
    "feature-store": ("feast",),
    "monitoring": ("drift-monitor",),
}
PIPELINE_NAMESPACES = ("kubeflow",)
"""Platform namespaces whose pipeline runs ingest data (tenants' namespaces always do): their
identity also computes HMACs with its transit key, the pseudonymization key's source."""


@dataclass(frozen=True)
class NamespaceAccess:
    """What one namespace may do in Vault."""

    namespace: str
    """The Kubernetes namespace."""
    transit_key: str
    """Its transit key."""
    service_accounts: tuple[str, ...]
    """Service accounts of the namespace that may log in."""
    pseudonymizes: bool = False
    """Its pipeline runs ingest data: ``update`` on ``transit/hmac/<its key>`` (the ingest
    step's ``vault`` key service derives the pseudonymization key there)."""

    @property
    def policy_name(self) -> str:
        """Vault policy name of the namespace."""
        return f"ns-{self.namespace}"

    @property
    def role_name(self) -> str:
        """Kubernetes auth role name of the namespace."""
        return f"ns-{self.namespace}"

    def policy_hcl(self) -> str:
        """Least privilege: its own transit key (data keys, decrypt, rewrap; HMACs where it
        pseudonymizes) and KV subtree."""
        k, ns = self.transit_key, self.namespace
        grants = [
            (f"{TRANSIT_PATH}/datakey/plaintext/{k}", ["update"]),
            (f"{TRANSIT_PATH}/decrypt/{k}", ["update"]),
            (f"{TRANSIT_PATH}/rewrap/{k}", ["update"]),
            (f"{TRANSIT_PATH}/keys/{k}", ["read"]),
            (f"{KV_PATH}/data/{ns}/*", ["create", "read", "update", "delete"]),
            (f"{KV_PATH}/metadata/{ns}/*", ["read", "list", "delete"]),
        ]
        if self.pseudonymizes:
            # The exact path hvac posts to (the algorithm travels in the body), no glob.
            grants.append((f"{TRANSIT_PATH}/hmac/{k}", ["update"]))
        return "".join(
            f'path "{path}" {{ capabilities = {json.dumps(caps)} }}\n' for path, caps in grants
        )


@dataclass(frozen=True)
class OperatorSso:
    """Operators' single sign-on: Vault's ``oidc`` auth method trusting the platform's Dex.

    Both roles bind the same claims: the token's audience is Vault's Dex client, its issuer is
    Dex, and its ``groups`` claim holds :attr:`operator_group`; only then is the operator policy
    granted. Expiry and signature are checked by the auth method itself.
    """

    issuer: str
    """Dex's issuer URL (its OIDC discovery document is under it)."""
    client_id: str
    """Vault's static client at Dex; the ID token's ``aud`` must be exactly this."""
    operator_group: str
    """The enterprise IdP group whose members are Vault operators (the ``groups`` claim)."""
    redirect_uris: tuple[str, ...] = ()
    """Browser callbacks allowed for the ``oidc`` role (the UI's and the CLI's)."""
    groups_claim: str = "groups"
    """Claim carrying the user's groups (Dex's ``groups`` scope)."""
    user_claim: str = "email"
    """Claim naming the operator in Vault's audit log."""

    def role(self, role_type: str) -> dict[str, Any]:
        """The role's parameters as Vault's API names them (``oidc`` or ``jwt``)."""
        if role_type not in ("oidc", "jwt"):
            raise ValueError(f"OperatorSso.role: {role_type!r}; allowed 'oidc' or 'jwt'")
        params: dict[str, Any] = {
            "role_type": role_type,
            "bound_audiences": [self.client_id],
            "user_claim": self.user_claim,
            "groups_claim": self.groups_claim,
            "bound_claims": {self.groups_claim: [self.operator_group]},
            "token_policies": [OPERATOR_POLICY],
            "token_ttl": OPERATOR_TOKEN_TTL,
            "token_max_ttl": OPERATOR_TOKEN_TTL,
            # No leeway beyond Vault's own clock-skew allowance: an expired token is refused.
            "expiration_leeway": 0,
        }
        if role_type == "oidc":
            params["allowed_redirect_uris"] = list(self.redirect_uris)
            params["oidc_scopes"] = ["openid", "email", "groups"]
        return params


@dataclass(frozen=True)
class VaultLayout:
    """The whole configuration: one transit key per tenant, one policy and role per namespace,
    and, where the stack has single sign-on, operators' OIDC login."""

    access: tuple[NamespaceAccess, ...]
    operators: OperatorSso | None = None
    """Operators' SSO (None: operators use tokens issued by hand, as before)."""

    @property
    def transit_keys(self) -> list[str]:
        """Distinct transit keys, in declaration order."""
        return list(dict.fromkeys(a.transit_key for a in self.access))


def layout(
    tenants: Sequence[str],
    platform_namespaces: Sequence[str] = tuple(PLATFORM_SERVICE_ACCOUNTS),
    operators: OperatorSso | None = None,
) -> VaultLayout:
    """The layout for a stack's tenants; platform namespaces share the platform key."""
    access = [
        NamespaceAccess(
            ns,
            PLATFORM_KEY,
            PLATFORM_SERVICE_ACCOUNTS.get(ns, ("workload",)),
            pseudonymizes=ns in PIPELINE_NAMESPACES,
        )
        for ns in platform_namespaces
    ]
    access += [
        NamespaceAccess(t, f"artifacts-{t}", ("pipeline-runner",), pseudonymizes=True)
        for t in tenants
    ]
    return VaultLayout(tuple(access), operators)


def apply_with_hvac(
    client: Any,
    vault_layout: VaultLayout,
    *,
    kubernetes_host: str,
    kubernetes_ca_cert: str | None = None,
) -> None:
    """Apply the layout to a running Vault/OpenBao with an ``hvac.Client`` (tests, bootstrap)."""
    mounts = client.sys.list_mounted_secrets_engines()
    mounted = set(mounts.get("data", mounts))
    if f"{TRANSIT_PATH}/" not in mounted:
        client.sys.enable_secrets_engine("transit", path=TRANSIT_PATH)
    if f"{KV_PATH}/" not in mounted:
        client.sys.enable_secrets_engine("kv", path=KV_PATH, options={"version": "2"})
    auths = client.sys.list_auth_methods()
    if f"{K8S_AUTH_PATH}/" not in set(auths.get("data", auths)):
        client.sys.enable_auth_method("kubernetes", path=K8S_AUTH_PATH)
    client.auth.kubernetes.configure(
        kubernetes_host=kubernetes_host,
        kubernetes_ca_cert=kubernetes_ca_cert,
        mount_point=K8S_AUTH_PATH,
    )
    for key in vault_layout.transit_keys:
        client.secrets.transit.create_key(
            name=key, key_type="aes256-gcm96", mount_point=TRANSIT_PATH
        )
    for a in vault_layout.access:
        client.sys.create_or_update_policy(name=a.policy_name, policy=a.policy_hcl())
        client.auth.kubernetes.create_role(
            name=a.role_name,
            bound_service_account_names=list(a.service_accounts),
            bound_service_account_namespaces=[a.namespace],
            policies=[a.policy_name],
            ttl="1h",
            mount_point=K8S_AUTH_PATH,
        )
    if vault_layout.operators is not None:
        apply_operator_sso(
            client, vault_layout.operators, oidc_discovery_url=vault_layout.operators.issuer
        )


def apply_operator_sso(
    client: Any,
    sso: OperatorSso,
    *,
    oidc_discovery_url: str | None,
    jwt_validation_pubkeys: Sequence[str] = (),
) -> None:
    """Mount and configure operators' SSO with an ``hvac.Client``: the operator policy, the
    ``oidc`` auth method trusting ``sso.issuer`` and both roles.

    ``oidc_discovery_url`` is Dex's issuer in a cluster; tests pass None and
    ``jwt_validation_pubkeys`` (PEM) instead, since no Dex runs here. ``bound_issuer`` is set
    either way, so a token from any other issuer is refused.
    """
    client.sys.create_or_update_policy(name=OPERATOR_POLICY, policy=OPERATOR_POLICY_HCL)
    auths = client.sys.list_auth_methods()
    if f"{OIDC_AUTH_PATH}/" not in set(auths.get("data", auths)):
        client.sys.enable_auth_method("oidc", path=OIDC_AUTH_PATH)
    config: dict[str, Any] = {"bound_issuer": sso.issuer}
    if oidc_discovery_url is not None:
        config["oidc_discovery_url"] = oidc_discovery_url
    else:
        config["jwt_validation_pubkeys"] = list(jwt_validation_pubkeys)
    client.write_data(f"auth/{OIDC_AUTH_PATH}/config", data=config)
    for name, role_type in ((OPERATOR_ROLE, "oidc"), (OPERATOR_CLI_ROLE, "jwt")):
        client.write_data(f"auth/{OIDC_AUTH_PATH}/role/{name}", data=sso.role(role_type))
