"""Single sign-on for people: Dex brokering the enterprise IdP, oauth2-proxy in front of each UI.

Dex (pinned official chart) federates exactly one upstream connector chosen by config (OIDC,
SAML or LDAP over TLS); its whole configuration, upstream credential and client secrets
included, is a Kubernetes Secret built from Pulumi secrets, never a ConfigMap or Helm values.
Each web UI gets its own oauth2-proxy (pinned official chart, reverse-proxy mode) that lets in
only members of the allowed groups. Both are exposed on one istio ``Gateway`` (HTTPS only, the
certificate from the platform issuer) served by the ingress gateway pods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components._aws import TYPE_PREFIX, child
from components._dex import (
    CONNECTORS,
    DEX_PORT,
    SSO_HOST,
    UI_CLIENT,
    SsoSettings,
    WebUi,
    dex_config,
    dump,
)
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
from components.inference_gateway import GATEWAY_TLS_PORT
from policies import inventory

INGRESS_NAMESPACE = "istio-ingress"
"""Namespace of the ingress gateway pods (and so of the Gateway's TLS Secret)."""
INGRESS_GATEWAY_LABELS = {"istio": "inference-gateway"}
"""Assumption: the istio ``gateway`` chart labels its pods ``istio: <release name without a
leading istio->``, and the ingress gateway is released as ``inference-gateway`` (#22, H2)."""
INGRESS_GATEWAY_PRINCIPAL = f"cluster.local/ns/{INGRESS_NAMESPACE}/sa/inference-gateway"
INGRESS_GATEWAY_SERVICE = f"inference-gateway.{INGRESS_NAMESPACE}.svc.cluster.local"
"""The ingress gateway's Service (the chart names it after the release)."""
ISSUER_CLIENT_NAMESPACES = ("vault",)
"""Namespaces whose workloads fetch Dex's discovery document at its public issuer URL."""
"""The ingress gateway's workload identity (the chart names its service account after the
release)."""
DEX_NAME = "dex"
"""Dex's release, Service, service account and ``app.kubernetes.io/name``."""
DEX_CONFIG_SECRET = "dex-config"
"""Secret holding Dex's ``config.yaml``."""
PROXY_PORT = 4180
"""oauth2-proxy's HTTP port."""
_HOST_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


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
    client_cidrs: Sequence[str] = ()
    """Who may reach the sign-on hosts through the ingress gateway (the VPC: the load balancer's
    addresses); empty: no front-door policy, so the gateway's default deny keeps them shut."""


CREDENTIAL_CONNECTORS = ("oidc", "ldap")
"""Connectors with a credential (OIDC client secret, LDAP bind password); SAML has none."""


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
        ).apply(lambda a: dump(dex_config(s, args.uis, a[0], a[1], a[2])))
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
        # Vault checks that Dex's discovery document names the URL it fetched, so it must use
        # the public issuer; with the mesh's REGISTRY_ONLY outbound policy that host exists for
        # Vault's sidecar only through this entry, which sends it to the ingress gateway.
        k8s.apiextensions.CustomResource(
            f"{name}-issuer-in-mesh",
            api_version="networking.istio.io/v1",
            kind="ServiceEntry",
            metadata=metadata("sso-issuer", ns),
            spec={
                "hosts": [hosts[0]],
                "location": "MESH_INTERNAL",
                "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
                "resolution": "DNS",
                "endpoints": [{"address": INGRESS_GATEWAY_SERVICE}],
                "exportTo": list(ISSUER_CLIENT_NAMESPACES),
            },
            opts=child(self),
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
        if args.client_cidrs:
            # The root allow-nothing policy covers the ingress gateway: people reach the sign-on
            # hosts without a token (the proxies and Dex authenticate them), so this rule names
            # those hosts exactly and the addresses that reach the gateway, nothing else.
            k8s.apiextensions.CustomResource(
                f"{name}-front-door",
                api_version="security.istio.io/v1",
                kind="AuthorizationPolicy",
                metadata=metadata("allow-sso-front-door", INGRESS_NAMESPACE),
                spec=front_door_spec(hosts, args.client_cidrs),
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


def front_door_spec(hosts: Sequence[str], client_cidrs: Sequence[str]) -> dict[str, Any]:
    """The ingress gateway's ALLOW rule for the sign-on hosts: from the addresses that reach the
    gateway, to exactly those hosts on its HTTPS port (policies/rules/front_door.py's shape)."""
    return {
        "selector": {"matchLabels": dict(INGRESS_GATEWAY_LABELS)},
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"ipBlocks": list(client_cidrs)}}],
                "to": [{"operation": {"hosts": list(hosts), "ports": [str(GATEWAY_TLS_PORT)]}}],
            }
        ],
    }
