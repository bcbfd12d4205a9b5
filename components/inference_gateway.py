"""The authenticated inference gateway: Istio's ingress gateway in front of every served model."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child
from components._k8s import (
    chart_container_security,
    helm_release,
    istio_resource,
    metadata,
    pool_selector,
)
from policies import inventory
from policies.gateway_metrics import (
    CLUSTER_ISSUER,
    GATEWAY_NAMESPACE,
    GATEWAY_WORKLOAD,
    PRIMARY_ROUTE,
    model_paths,
    model_scope,
    triton_app,
    variant_service,
)

TLS_SECRET = f"{GATEWAY_WORKLOAD}-tls"
"""The Secret cert-manager writes the gateway's certificate to (the Gateway's credentialName)."""
SELECTOR = {"istio": GATEWAY_WORKLOAD}
"""The gateway pods' label: the Gateway, RequestAuthentication and policies select them by it."""
GATEWAY_TLS_PORT = 8443
"""The gateway container's HTTPS port (the Service's 443 targets it; unprivileged)."""
HTTP_PORT = 8000
"""Triton's HTTP (KServe v2 REST) port, the only one the gateway routes to."""
INTERNAL_SCHEME = {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}
LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
}
"""An NLB by the AWS Load Balancer Controller (internal in production: :data:`INTERNAL_SCHEME`)."""
HOSTNAME = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
TENANT_CLAIM, SCOPE_CLAIM = "tenant", "scope"
"""The token claims the per-model policies judge (the claim contract, README)."""


@dataclass(frozen=True)
class InferenceGatewayArgs:
    """Inputs of :class:`InferenceGateway`."""

    models: Sequence[str]
    """Served model names: one route, one policy each."""
    serving_namespace: str
    """Namespace of the model Services and of their VirtualServices (the Rollouts' namespace)."""
    hostname: str
    """DNS name clients call (the certificate's name and the routes' host)."""
    issuer: str
    """OIDC issuer whose tokens the gateway accepts (``iss``), https; '' for a closed gateway
    (every request refused: a stack without an identity provider yet)."""
    audiences: Sequence[str]
    """Accepted ``aud`` values (one or more: a token minted for another application of the
    same issuer must not call a model)."""
    jwks_uri: str
    """The issuer's JWKS URL (https)."""
    tenants: Sequence[str]
    """Accepted ``tenant`` claim values (the stack's tenants); none: a closed gateway."""
    max_request_bytes: int = 4 * 1024 * 1024
    """Largest request body the gateway forwards (larger: 413)."""
    rate_limit_rps: int = 200
    """Requests per second one gateway replica admits (token bucket; over it: 429)."""
    client_cidrs: Sequence[str] = ()
    """Where clients connect from (the VPC): the only sources the namespace's NetworkPolicy
    admits to the gateway's HTTPS port."""
    replicas: int = 2
    """Gateway replicas (a PodDisruptionBudget keeps one when there are two or more)."""
    internal: bool = True
    """An internal load balancer (production): reachable from the VPC and its peers only."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where the chart is pulled from (the zone's mirror in production)."""


def validate(args: InferenceGatewayArgs) -> None:
    """Raise ``ValueError`` naming the first field of ``args`` that is not allowed."""
    if not args.models or len(set(args.models)) != len(args.models):
        raise ValueError(f"InferenceGatewayArgs.models: {list(args.models)}; allowed unique names")
    if not HOSTNAME.fullmatch(args.hostname):
        raise ValueError(f"InferenceGatewayArgs.hostname: {args.hostname!r}; allowed a DNS name")
    for name in ("issuer", "jwks_uri"):
        url = getattr(args, name)
        parts = urllib.parse.urlsplit(url)
        bad = parts.scheme != "https" or not parts.hostname or parts.username or "*" in url
        if (url or args.issuer or args.jwks_uri) and bad:
            raise ValueError(
                f"InferenceGatewayArgs.{name}: {url!r}; allowed an https:// URL (issuer and "
                "jwks_uri both, or neither: a closed gateway)"
            )
    if any(not t or "*" in t for t in args.tenants):
        raise ValueError(f"InferenceGatewayArgs.tenants: {list(args.tenants)}; no wildcards")
    if not args.audiences or any(not a or "*" in a for a in args.audiences):
        raise ValueError(
            f"InferenceGatewayArgs.audiences: {list(args.audiences)}; one or more, no wildcards"
        )
    if not 1024 <= args.max_request_bytes <= 64 * 1024 * 1024:
        raise ValueError(
            f"InferenceGatewayArgs.max_request_bytes: {args.max_request_bytes}; allowed 1KiB-64MiB"
        )
    if not args.client_cidrs:
        raise ValueError("InferenceGatewayArgs.client_cidrs: empty; allowed one or more CIDRs")
    if not 1 <= args.rate_limit_rps <= 100_000 or not 1 <= args.replicas <= 20:
        raise ValueError("InferenceGatewayArgs: rate_limit_rps 1-100000, replicas 1-20")


def closed(args: InferenceGatewayArgs) -> bool:
    """No issuer or no tenant: no token could be authorised, the gateway admits nothing."""
    return not args.issuer or not args.tenants


class InferenceGateway(pulumi.ComponentResource):
    """Istio's ingress gateway (pinned ``gateway`` chart) as the only way to the models.

    In ``istio-ingress``: the gateway Deployment (restricted pods on the system pool, a
    PodDisruptionBudget, an internal NLB in production), a cert-manager ``Certificate`` from the
    ``sovml-platform-ca`` ClusterIssuer, a ``Gateway`` with one HTTPS server (TLS SIMPLE, TLS 1.2+,
    no plain-HTTP server at all), a ``RequestAuthentication`` that validates tokens of the stack's
    OIDC issuer (signature by its JWKS, ``iss``, ``aud``, expiry) and an ``EnvoyFilter`` adding a
    request size limit (Envoy's buffer filter: 413) and a per-replica token bucket (local rate
    limit: 429). Per model: a ``VirtualService`` in the serving namespace bound to the gateway
    (path ``/v2/models/<model>`` and below; route ``primary`` to the stable and canary Services,
    whose weights Argo Rollouts sets) and an ``AuthorizationPolicy`` on the gateway that ALLOWs
    only a request principal of the issuer whose ``tenant`` claim is one of the stack's tenants and
    whose ``scope`` claim holds ``sovml:infer:<model>``, on that model's paths. With any ALLOW
    policy on a workload Istio denies what no policy allows, so an unlisted path (Triton's
    repository API, another model) is refused with 403. Without an issuer or a tenant (a dev
    stack before its identity provider exists) the gateway is closed: one ALLOW policy without
    rules, and every request is refused.

    Only Triton's HTTP port is routed: over gRPC the model name travels in the protobuf body,
    where neither a route nor a policy can see it, so per-model authorization could not hold.
    """

    def __init__(
        self, name: str, args: InferenceGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate(args)
        super().__init__(f"{TYPE_PREFIX}:gateway:InferenceGateway", name, None, opts)
        ns = GATEWAY_NAMESPACE
        cert = k8s.apiextensions.CustomResource(
            f"{name}-certificate",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=metadata(TLS_SECRET, ns),
            spec=certificate_spec(args.hostname),
            opts=child(self),
        )
        release = helm_release(
            f"{name}-chart",
            args.sources.chart("istio-gateway-chart"),
            namespace=ns,
            release=GATEWAY_WORKLOAD,
            values=gateway_values(args),
            opts=child(self, depends_on=[cert]),
        )
        after = child(self, depends_on=[release])
        k8s.networking.v1.NetworkPolicy(
            f"{name}-clients",
            metadata=metadata("allow-gateway-clients", ns),
            spec={
                "podSelector": {"matchLabels": dict(SELECTOR)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"ipBlock": {"cidr": c}} for c in args.client_cidrs],
                        "ports": [{"protocol": "TCP", "port": GATEWAY_TLS_PORT}],
                    }
                ],
            },
            opts=child(self),
        )
        istio_resource(f"{name}-gateway", "networking", "Gateway", GATEWAY_WORKLOAD, ns,
                    gateway_spec(args), after)  # fmt: skip
        if closed(args):
            # No issuer or no tenant: nobody can be authorised, so the gateway allows nothing
            # (an ALLOW policy without rules) rather than leaving its routes unguarded.
            istio_resource(f"{name}-closed", "security", "AuthorizationPolicy",
                        f"{GATEWAY_WORKLOAD}-allow-nothing", ns,
                        {"selector": {"matchLabels": dict(SELECTOR)}, "action": "ALLOW"},
                        after)  # fmt: skip
        else:
            istio_resource(f"{name}-jwt", "security", "RequestAuthentication", GATEWAY_WORKLOAD,
                        ns, request_authentication_spec(args), after)  # fmt: skip
        k8s.apiextensions.CustomResource(
            f"{name}-limits",
            api_version="networking.istio.io/v1alpha3",
            kind="EnvoyFilter",
            metadata=metadata(f"{GATEWAY_WORKLOAD}-limits", ns),
            spec=limits_spec(args),
            opts=after,
        )
        for model in args.models:
            istio_resource(f"{name}-{model}-route", "networking", "VirtualService",
                        triton_app(model), args.serving_namespace,
                        virtual_service_spec(model, args), after)  # fmt: skip
            if not closed(args):
                istio_resource(f"{name}-{model}-authz", "security", "AuthorizationPolicy",
                            f"{GATEWAY_WORKLOAD}-{model}", ns, authorization_spec(model, args),
                            after)  # fmt: skip
        self.register_outputs({"hostname": args.hostname, "models": list(args.models)})


def certificate_spec(hostname: str) -> dict[str, Any]:
    """The gateway's serving certificate, renewed by cert-manager a fortnight before expiry."""
    return {
        "secretName": TLS_SECRET,
        "dnsNames": [hostname],
        "duration": "2160h",
        "renewBefore": "360h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"name": CLUSTER_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
    }


def gateway_values(args: InferenceGatewayArgs) -> dict[str, Any]:
    """The gateway chart's values: restricted pods on the system pool, NLB, PDB, no autoscaler.

    The proxy image is not set here: the chart's ``image: auto`` has istiod inject it (the
    inventory's ``istio-proxyv2``, from istiod's values).
    """
    annotations = {**LB_ANNOTATIONS, **(INTERNAL_SCHEME if args.internal else {})}
    return {
        "name": GATEWAY_WORKLOAD,
        "labels": dict(SELECTOR),
        "replicaCount": args.replicas,
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {"minAvailable": 1} if args.replicas > 1 else {},
        "service": {
            "type": "LoadBalancer",
            "annotations": annotations,
            "externalTrafficPolicy": "Local",
            "ports": [
                {"name": "https", "port": 443, "targetPort": GATEWAY_TLS_PORT, "protocol": "TCP"}
            ],
        },
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "nodeSelector": pool_selector("system"),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1337,
            "runAsGroup": 1337,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": chart_container_security(privileged=False),
    }


def gateway_spec(args: InferenceGatewayArgs) -> dict[str, Any]:
    """One HTTPS server for the hostname, routes from the serving namespace only."""
    return {
        "selector": dict(SELECTOR),
        "servers": [
            {
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": [f"{args.serving_namespace}/{args.hostname}"],
                "tls": {
                    "mode": "SIMPLE",
                    "credentialName": TLS_SECRET,
                    "minProtocolVersion": "TLSV1_2",
                },
            }
        ],
    }


def request_authentication_spec(args: InferenceGatewayArgs) -> dict[str, Any]:
    """The issuer's tokens, from the ``Authorization: Bearer`` header only."""
    rule: dict[str, Any] = {
        "issuer": args.issuer,
        "jwksUri": args.jwks_uri,
        "forwardOriginalToken": False,
    }
    rule["audiences"] = list(args.audiences)
    return {"selector": {"matchLabels": dict(SELECTOR)}, "jwtRules": [rule]}


def authorization_spec(model: str, args: InferenceGatewayArgs) -> dict[str, Any]:
    """ALLOW the model's paths to the issuer's principals with a stack tenant and its scope."""
    exact, prefix = model_paths(model)
    return {
        "selector": {"matchLabels": dict(SELECTOR)},
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"requestPrincipals": [f"{args.issuer}/*"]}}],
                "to": [
                    {
                        "operation": {
                            "hosts": [args.hostname],
                            "methods": ["GET", "POST"],
                            "paths": [exact, f"{prefix}*"],
                        }
                    }
                ],
                "when": [
                    {"key": f"request.auth.claims[{TENANT_CLAIM}]", "values": list(args.tenants)},
                    {"key": f"request.auth.claims[{SCOPE_CLAIM}]", "values": [model_scope(model)]},
                ],
            }
        ],
    }


def virtual_service_spec(model: str, args: InferenceGatewayArgs) -> dict[str, Any]:
    """The model's route on the gateway: stable 100 %, canary 0 % until a rollout moves them."""
    exact, prefix = model_paths(model)
    ns = args.serving_namespace
    return {
        "hosts": [args.hostname],
        "gateways": [f"{GATEWAY_NAMESPACE}/{GATEWAY_WORKLOAD}"],
        "http": [
            {
                "name": PRIMARY_ROUTE,
                "match": [{"uri": {"exact": exact}}, {"uri": {"prefix": prefix}}],
                "timeout": "60s",
                "route": [
                    {
                        "destination": {
                            "host": f"{variant_service(model, v)}.{ns}.svc.cluster.local",
                            "port": {"number": HTTP_PORT},
                        },
                        "weight": 100 if v == "stable" else 0,
                    }
                    for v in ("stable", "canary")
                ],
            }
        ],
    }


def limits_spec(args: InferenceGatewayArgs) -> dict[str, Any]:
    """Buffer (413 past ``max_request_bytes``) and local rate limit (429) on the gateway's HTTP
    connection manager, before the router."""
    bucket = {
        "max_tokens": args.rate_limit_rps,
        "tokens_per_fill": args.rate_limit_rps,
        "fill_interval": "1s",
    }
    filters = [
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3"
                ".LocalRateLimit",
                "stat_prefix": "inference_rate_limit",
                "token_bucket": bucket,
                "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            },
        },
        {
            "name": "envoy.filters.http.buffer",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": args.max_request_bytes,
            },
        },
    ]
    return {
        "workloadSelector": {"labels": dict(SELECTOR)},
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "GATEWAY",
                    "listener": {
                        "filterChain": {
                            "filter": {
                                "name": "envoy.filters.network.http_connection_manager",
                                "subFilter": {"name": "envoy.filters.http.router"},
                            }
                        }
                    },
                },
                "patch": {"operation": "INSERT_BEFORE", "value": f},
            }
            for f in filters
        ],
    }
