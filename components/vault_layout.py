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
class VaultLayout:
    """The whole configuration: one transit key per tenant, one policy and role per namespace."""

    access: tuple[NamespaceAccess, ...]

    @property
    def transit_keys(self) -> list[str]:
        """Distinct transit keys, in declaration order."""
        return list(dict.fromkeys(a.transit_key for a in self.access))


def layout(
    tenants: Sequence[str], platform_namespaces: Sequence[str] = tuple(PLATFORM_SERVICE_ACCOUNTS)
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
    return VaultLayout(tuple(access))


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
