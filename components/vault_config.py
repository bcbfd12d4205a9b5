"""Vault's engines, policies, Kubernetes auth roles and audit device, from one data layout."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault

from components._aws import TYPE_PREFIX, child
from components.vault_layout import (
    K8S_AUTH_PATH,
    KV_PATH,
    OIDC_AUTH_PATH,
    OPERATOR_CLI_ROLE,
    OPERATOR_POLICY,
    OPERATOR_POLICY_HCL,
    OPERATOR_ROLE,
    TRANSIT_PATH,
    VaultLayout,
)

KEY_ROTATION_SECONDS = 90 * 24 * 3600


@dataclass
class VaultConfigArgs:
    """Inputs of :class:`VaultConfig`."""

    layout: VaultLayout
    """Keys, policies and roles to declare (``components.vault_layout.layout``)."""
    kubernetes_host: pulumi.Input[str]
    """API server URL Vault calls to review service-account tokens."""
    audit_file: str = "/vault/audit/vault_audit.log"
    """Audit log path on the audit volume."""
    oidc_client_secret: pulumi.Input[str] | None = None
    """Vault's client secret at Dex (a Pulumi secret); required when the layout has operators'
    SSO, refused otherwise."""
    oidc_discovery_ca_pem: pulumi.Input[str] | None = None
    """PEM of the CA that signed Dex's HTTPS certificate (the platform CA), when Vault does not
    already trust it."""


class VaultConfig(pulumi.ComponentResource):
    """Transit (a key per tenant, 90-day rotation), KV v2, Kubernetes auth, policies, audit.

    Every namespace gets a policy that can use only its own transit key (data keys, decrypt,
    rewrap; HMACs for the namespaces whose pipelines pseudonymize at ingest) and its own KV
    subtree, and a Kubernetes auth role bound to its service accounts in
    that namespace only. Needs a ``vault`` provider in ``opts`` (address from config, token from
    ``VAULT_TOKEN`` at deploy time) and a running, initialised Vault: see the README's bootstrap.
    """

    def __init__(
        self, name: str, args: VaultConfigArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not args.layout.access:
            raise ValueError("VaultConfigArgs.layout: no namespaces; allowed one or more")
        if (args.layout.operators is None) != (args.oidc_client_secret is None):
            raise ValueError(
                "VaultConfigArgs.oidc_client_secret: given exactly when layout.operators is set"
            )
        super().__init__(f"{TYPE_PREFIX}:vault_config:VaultConfig", name, None, opts)

        vault.Audit(
            f"{name}-audit-file",
            type="file",
            path="file",
            options={"file_path": args.audit_file, "log_raw": "false"},
            opts=child(self),
        )
        transit = vault.Mount(
            f"{name}-transit",
            path=TRANSIT_PATH,
            type="transit",
            description="Envelope encryption of model artifacts",
            opts=child(self),
        )
        vault.Mount(
            f"{name}-kv",
            path=KV_PATH,
            type="kv",
            options={"version": "2"},
            description="Platform secrets, one subtree per namespace",
            opts=child(self),
        )
        auth = vault.AuthBackend(
            f"{name}-kubernetes-auth", type="kubernetes", path=K8S_AUTH_PATH, opts=child(self)
        )
        vault.kubernetes.AuthBackendConfig(
            f"{name}-kubernetes-auth-config",
            backend=auth.path,
            kubernetes_host=args.kubernetes_host,
            opts=child(self),
        )
        for key in args.layout.transit_keys:
            vault.transit.SecretBackendKey(
                f"{name}-key-{key}",
                backend=transit.path,
                name=key,
                type="aes256-gcm96",
                auto_rotate_period=KEY_ROTATION_SECONDS,
                deletion_allowed=False,
                exportable=False,
                opts=child(self),
            )
        for access in args.layout.access:
            pol = vault.Policy(
                f"{name}-policy-{access.namespace}",
                name=access.policy_name,
                policy=access.policy_hcl(),
                opts=child(self),
            )
            vault.kubernetes.AuthBackendRole(
                f"{name}-role-{access.namespace}",
                backend=auth.path,
                role_name=access.role_name,
                bound_service_account_names=list(access.service_accounts),
                bound_service_account_namespaces=[access.namespace],
                token_policies=[pol.name],
                token_ttl=3600,
                token_max_ttl=14400,
                audience="vault",
                opts=child(self),
            )
        if args.layout.operators is not None:
            self._operator_sso(name, args)
        self.register_outputs({})

    def _operator_sso(self, name: str, args: VaultConfigArgs) -> None:
        """Operators log in through Dex (``oidc``); the roles grant the operator policy only to
        members of the operator group, for tokens whose audience is Vault's Dex client."""
        sso = args.layout.operators
        assert sso is not None
        pol = vault.Policy(
            f"{name}-policy-operator",
            name=OPERATOR_POLICY,
            policy=OPERATOR_POLICY_HCL,
            opts=child(self),
        )
        backend = vault.jwt.AuthBackend(
            f"{name}-oidc-auth",
            path=OIDC_AUTH_PATH,
            type="oidc",
            description="Operators' single sign-on through the platform's Dex",
            oidc_discovery_url=sso.issuer,
            oidc_discovery_ca_pem=args.oidc_discovery_ca_pem,
            bound_issuer=sso.issuer,
            oidc_client_id=sso.client_id,
            oidc_client_secret=pulumi.Output.secret(args.oidc_client_secret),
            default_role=OPERATOR_ROLE,
            opts=child(self),
        )
        for role_name, role_type in ((OPERATOR_ROLE, "oidc"), (OPERATOR_CLI_ROLE, "jwt")):
            params = sso.role(role_type)
            vault.jwt.AuthBackendRole(
                f"{name}-oidc-role-{role_name}",
                backend=backend.path,
                role_name=role_name,
                role_type=role_type,
                bound_audiences=params["bound_audiences"],
                bound_claims={k: ",".join(v) for k, v in params["bound_claims"].items()},
                user_claim=params["user_claim"],
                groups_claim=params["groups_claim"],
                token_policies=[pol.name],
                token_ttl=params["token_ttl"],
                token_max_ttl=params["token_max_ttl"],
                expiration_leeway=params["expiration_leeway"],
                allowed_redirect_uris=params.get("allowed_redirect_uris"),
                oidc_scopes=params.get("oidc_scopes"),
                opts=child(self),
            )
