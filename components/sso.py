"""Single sign-on for people: Dex brokering the enterprise IdP, oauth2-proxy in front of each UI.

Dex (pinned official chart) federates exactly one upstream connector chosen by config (OIDC,
SAML or LDAP over TLS); its whole configuration, upstream credential and client secrets
included, is a Kubernetes Secret built from Pulumi secrets, never a ConfigMap or Helm values.
Each web UI gets its own oauth2-proxy (pinned official chart, reverse-proxy mode) that lets in
only members of the allowed groups. Both are exposed on one istio ``Gateway`` (HTTPS only, the
certificate from the platform issuer) served by the ingress gateway pods.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components._aws import TYPE_PREFIX, child
from components._k8s import (
    allow_path,
    chart_container_security,
    helm_release,
    metadata,
    namespace_peer,
    pool_selector,
    runtime_default,
    tcp_ports,
)
from policies import inventory

CONNECTORS = ("oidc", "saml", "ldap")
"""Upstream identity providers Dex can federate here (one per stack)."""
CREDENTIAL_CONNECTORS = ("oidc", "ldap")
"""Connectors with a credential (OIDC client secret, LDAP bind password); SAML has none."""
INGRESS_NAMESPACE = "istio-ingress"
"""Namespace of the ingress gateway pods (and so of the Gateway's TLS Secret)."""
INGRESS_GATEWAY_LABELS = {"istio": "inference-gateway"}
"""Assumption: the istio ``gateway`` chart labels its pods ``istio: <release name without a
leading istio->``, and the ingress gateway is released as ``inference-gateway`` (#22, H2)."""
INGRESS_GATEWAY_PRINCIPAL = f"cluster.local/ns/{INGRESS_NAMESPACE}/sa/inference-gateway"
"""The ingress gateway's workload identity (the chart names its service account after the
release)."""
DEX_NAME = "dex"
"""Dex's release, Service, service account and ``app.kubernetes.io/name``."""
DEX_PORT = 5556
"""Dex's HTTP port (TLS ends at the gateway; inside the mesh the sidecars add mTLS)."""
DEX_TELEMETRY_PORT = 5558
"""Dex's metrics and health port."""
DEX_CONFIG_SECRET = "dex-config"
"""Secret holding Dex's ``config.yaml``."""
PROXY_PORT = 4180
"""oauth2-proxy's HTTP port."""
UI_CLIENT = "web-uis"
"""Dex static client of the oauth2-proxies."""
VAULT_CLIENT = "vault"
"""Dex static client of Vault's OIDC auth method (operators)."""
VAULT_CLI_CALLBACK = "http://localhost:8250/oidc/callback"
"""Where ``vault login -method=oidc`` listens on the operator's own machine."""
SSO_HOST = "sso"
"""Host label of Dex under the stack's SSO domain."""
_HOST_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


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


@dataclass
class SingleSignOnArgs:
    """Inputs of :class:`SingleSignOn`."""

    settings: SsoSettings
    """The validated ``sso*`` config."""
    uis: Sequence[WebUi]
    """The web UIs to put behind oauth2-proxy (at least one)."""
    issuer_ref: Mapping[str, str]
    """cert-manager ``issuerRef`` of the front door's certificate (the platform issuer)."""
    connector_secret: pulumi.Input[str] | None = None
    """The OIDC client secret or LDAP bind password, a Pulumi secret; None for SAML."""
    namespace: str = "auth"
    """Namespace of Dex and the oauth2-proxies (created by the baseline)."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""
    replicas: int = field(default=2)
    """Replicas of Dex and of each oauth2-proxy."""


def check_args(args: SingleSignOnArgs) -> None:
    """Refuse what no stack config can produce (config validation is the first gate)."""
    s = args.settings
    if s.connector not in CONNECTORS:
        raise ValueError(f"SsoSettings.connector: {s.connector!r}; allowed {CONNECTORS}")
    if not _DOMAIN.fullmatch(s.domain):
        raise ValueError(f"SsoSettings.domain: {s.domain!r}; allowed a DNS domain")
    if not s.allowed_groups:
        raise ValueError("SsoSettings.allowed_groups: empty; allowed one or more IdP groups")
    if (args.connector_secret is None) == (s.connector in CREDENTIAL_CONNECTORS):
        raise ValueError(
            "SingleSignOnArgs.connector_secret: required for oidc and ldap, refused for saml"
        )
    if not args.uis:
        raise ValueError("SingleSignOnArgs.uis: empty; allowed one or more web UIs")
    labels = [u.host for u in args.uis] + [SSO_HOST]
    for ui in args.uis:
        if not _HOST_LABEL.fullmatch(ui.host) or not _HOST_LABEL.fullmatch(ui.name):
            raise ValueError(f"WebUi {ui.name!r}: name and host must be DNS labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"SingleSignOnArgs.uis: host labels {labels} must be distinct")


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
    vault_redirects = [
        VAULT_CLI_CALLBACK,
        f"https://{s.host('vault')}/ui/vault/auth/oidc/oidc/callback",
    ]
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


def _dump(config: dict[str, Any]) -> str:
    """JSON is YAML: Dex reads it as its config file."""
    return json.dumps(config, indent=2, sort_keys=True)


class SingleSignOn(pulumi.ComponentResource):
    """Dex + one oauth2-proxy per web UI, behind an HTTPS-only istio Gateway.

    Everything a browser reaches is on ``*.<domain>`` through the ingress gateway: ``sso.``
    (Dex) and one host per UI, each UI's host routed to its oauth2-proxy only, never to the UI.
    oauth2-proxy redeems codes and fetches keys from Dex inside the mesh, admits members of
    ``allowed_groups`` and forwards the user's e-mail (``X-Forwarded-Email``), which Kubeflow
    Pipelines' multi-user mode reads. Istio AuthorizationPolicies admit the ingress gateway to
    Dex and the proxies and each proxy to its UI, by service account; NetworkPolicies open the
    same paths past the namespaces' default deny.
    """

    vault_client_secret: pulumi.Output[str]
    """Vault's client secret at Dex (a Pulumi secret) for :class:`VaultConfig`."""
    issuer: str
    """Dex's issuer URL."""

    def __init__(
        self, name: str, args: SingleSignOnArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        check_args(args)
        super().__init__(f"{TYPE_PREFIX}:sso:SingleSignOn", name, None, opts)
        s, ns = args.settings, args.namespace
        self.issuer = s.issuer

        def secret(label: str) -> pulumi.Output[str]:
            made = random.RandomPassword(
                f"{name}-{label}", length=32, special=False, opts=child(self)
            )
            return pulumi.Output.secret(made.result)

        ui_secret, vault_secret = secret("ui-client"), secret("vault-client")
        self.vault_client_secret = vault_secret
        document = pulumi.Output.all(
            pulumi.Output.secret(args.connector_secret or ""), ui_secret, vault_secret
        ).apply(lambda a: _dump(dex_config(s, args.uis, a[0], a[1], a[2])))
        config = k8s.core.v1.Secret(
            f"{name}-dex-config",
            metadata=metadata(DEX_CONFIG_SECRET, ns),
            type="Opaque",
            string_data={"config.yaml": pulumi.Output.secret(document)},
            opts=child(self),
        )
        dex = helm_release(
            f"{name}-dex",
            args.sources.chart("dex-chart"),
            namespace=ns,
            release=DEX_NAME,
            values=dex_values(args),
            opts=child(self, depends_on=[config]),
        )
        routes: list[tuple[str, str, int]] = [(s.host(SSO_HOST), DEX_NAME, DEX_PORT)]
        for ui in args.uis:
            release = f"oauth2-proxy-{ui.name}"
            creds = k8s.core.v1.Secret(
                f"{name}-{release}",
                metadata=metadata(release, ns),
                type="Opaque",
                string_data={
                    "client-id": UI_CLIENT,
                    "client-secret": ui_secret,
                    "cookie-secret": secret(f"{ui.name}-cookie"),
                },
                opts=child(self),
            )
            helm_release(
                f"{name}-{release}",
                args.sources.chart("oauth2-proxy-chart"),
                namespace=ns,
                release=release,
                values=proxy_values(args, ui, release),
                opts=child(self, depends_on=[creds, dex]),
            )
            routes.append((s.host(ui.host), release, 80))
            self._ui_paths(name, args, ui, release)
        self._front_door(name, args, routes)
        self.register_outputs({"issuer": s.issuer})

    def _ui_paths(self, name: str, args: SingleSignOnArgs, ui: WebUi, release: str) -> None:
        """The proxy, and only the proxy, reaches the UI: NetworkPolicies and mesh identity."""
        proxy_pods = {"app.kubernetes.io/instance": release}
        allow_path(
            self,
            egress=(f"{name}-{release}-to-ui", f"allow-{release}-to-{ui.name}"),
            ingress=(f"{name}-{ui.name}-from-proxy", f"allow-{ui.name}-from-{release}"),
            source=(args.namespace, proxy_pods),
            target=(ui.namespace, ui.pods),
            port=ui.target_port,
        )
        authorization_policy(
            self,
            f"{name}-{ui.name}-authz-from-proxy",
            f"allow-{ui.name}-from-{release}",
            ui.namespace,
            ui.pods,
            [f"cluster.local/ns/{args.namespace}/sa/{release}"],
            ui.target_port,
        )

    def _front_door(
        self, name: str, args: SingleSignOnArgs, routes: list[tuple[str, str, int]]
    ) -> None:
        """The HTTPS-only Gateway, its certificate, one VirtualService per host, and the
        gateway's way in past the namespace's default deny."""
        ns, hosts = args.namespace, [h for h, _, _ in routes]
        credential = "sso-gateway-tls"
        cert = k8s.apiextensions.CustomResource(
            f"{name}-gateway-certificate",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=metadata(credential, INGRESS_NAMESPACE),
            spec={
                "secretName": credential,
                "commonName": hosts[0],
                "dnsNames": hosts,
                "duration": "2160h",
                "renewBefore": "360h",
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "usages": ["digital signature", "key encipherment", "server auth"],
                "issuerRef": dict(args.issuer_ref),
            },
            opts=child(self),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata=metadata("sso", ns),
            spec=gateway_spec(hosts, credential),
            opts=child(self, depends_on=[cert]),
        )
        for host, service, port in routes:
            k8s.apiextensions.CustomResource(
                f"{name}-route-{host.split('.')[0]}",
                api_version="networking.istio.io/v1",
                kind="VirtualService",
                metadata=metadata(f"sso-{host.split('.')[0]}", ns),
                spec={
                    "hosts": [host],
                    "gateways": [f"{ns}/sso"],
                    "http": [
                        {
                            "route": [
                                {
                                    "destination": {
                                        "host": f"{service}.{ns}.svc.cluster.local",
                                        "port": {"number": port},
                                    }
                                }
                            ]
                        }
                    ],
                },
                opts=child(self),
            )
        front = {"app.kubernetes.io/name": DEX_NAME}, {"app.kubernetes.io/name": "oauth2-proxy"}
        for pods, port, label in ((front[0], DEX_PORT, "dex"), (front[1], PROXY_PORT, "proxies")):
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{label}-from-gateway",
                metadata=metadata(f"allow-{label}-from-ingress-gateway", ns),
                spec={
                    "podSelector": {"matchLabels": pods},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [namespace_peer(INGRESS_NAMESPACE, INGRESS_GATEWAY_LABELS)],
                            "ports": tcp_ports(port),
                        }
                    ],
                },
                opts=child(self),
            )
        proxies = [f"cluster.local/ns/{ns}/sa/oauth2-proxy-{u.name}" for u in args.uis]
        authorization_policy(
            self,
            f"{name}-dex-authz",
            "allow-dex-clients",
            ns,
            front[0],
            [INGRESS_GATEWAY_PRINCIPAL, *proxies],
            DEX_PORT,
        )
        authorization_policy(
            self,
            f"{name}-proxies-authz",
            "allow-proxies-from-gateway",
            ns,
            front[1],
            [INGRESS_GATEWAY_PRINCIPAL],
            PROXY_PORT,
        )


def authorization_policy(
    parent: pulumi.Resource,
    resource_name: str,
    policy_name: str,
    namespace: str,
    pods: Mapping[str, str],
    principals: Sequence[str],
    port: int,
) -> k8s.apiextensions.CustomResource:
    """An istio ALLOW policy: these workload identities, to these pods, on this port only."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version="security.istio.io/v1",
        kind="AuthorizationPolicy",
        metadata=metadata(policy_name, namespace),
        spec={
            "selector": {"matchLabels": dict(pods)},
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"principals": list(principals)}}],
                    "to": [{"operation": {"ports": [str(port)]}}],
                }
            ],
        },
        opts=child(parent),
    )


def gateway_spec(hosts: Sequence[str], credential: str) -> dict[str, Any]:
    """One HTTPS server (TLS 1.2+, the platform issuer's certificate); no plain-HTTP port."""
    return {
        "selector": dict(INGRESS_GATEWAY_LABELS),
        "servers": [
            {
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": list(hosts),
                "tls": {
                    "mode": "SIMPLE",
                    "credentialName": credential,
                    "minProtocolVersion": "TLSV1_2",
                },
            }
        ],
    }


def _hardened(replicas: int) -> dict[str, Any]:
    return {
        "replicaCount": replicas,
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": runtime_default()},
        "securityContext": chart_container_security(runAsNonRoot=True),
        "nodeSelector": pool_selector("system"),
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    }


def dex_values(args: SingleSignOnArgs) -> dict[str, Any]:
    """The dex chart's values: config from our Secret (the chart creates none), hardened."""
    return args.sources.chart_images(
        "dex-chart",
        {
            **_hardened(args.replicas),
            "configSecret": {"create": False, "name": DEX_CONFIG_SECRET},
            "serviceAccount": {"create": True, "name": DEX_NAME},
            "https": {"enabled": False},
            "grpc": {"enabled": False},
            "service": {"type": "ClusterIP", "ports": {"http": {"port": DEX_PORT}}},
        },
    )


def proxy_values(args: SingleSignOnArgs, ui: WebUi, release: str) -> dict[str, Any]:
    """One oauth2-proxy's values: Dex as the provider (codes redeemed in-cluster), the allowed
    groups only, secure cookies, the UI as the one upstream."""
    s, ns = args.settings, args.namespace
    dex_in_mesh = f"http://{DEX_NAME}.{ns}.svc.cluster.local:{DEX_PORT}/dex"
    extra = {
        "provider": "oidc",
        "oidc-issuer-url": s.issuer,
        # The browser goes to Dex through the gateway; the proxy talks to Dex in the mesh.
        "skip-oidc-discovery": "true",
        "login-url": f"{s.issuer}/auth",
        "redeem-url": f"{dex_in_mesh}/token",
        "oidc-jwks-url": f"{dex_in_mesh}/keys",
        "scope": "openid email profile groups",
        "allowed-group": ",".join(s.allowed_groups),
        "email-domain": "*",
        "upstream": f"http://{ui.service}.{ui.namespace}.svc.cluster.local:{ui.port}",
        "redirect-url": f"https://{s.host(ui.host)}/oauth2/callback",
        "http-address": f"0.0.0.0:{PROXY_PORT}",
        "reverse-proxy": "true",
        "cookie-secure": "true",
        "cookie-httponly": "true",
        "cookie-samesite": "lax",
        "cookie-expire": "8h",
        "cookie-refresh": "1h",
        "pass-user-headers": "true",
        "skip-provider-button": "true",
    }
    return args.sources.chart_images(
        "oauth2-proxy-chart",
        {
            **_hardened(args.replicas),
            "config": {"existingSecret": release},
            "extraArgs": extra,
            "serviceAccount": {"enabled": True, "name": release},
            "service": {"portNumber": 80},
            "redis": {"enabled": False},
        },
    )
