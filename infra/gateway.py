"""The inference gateway of a stack: the only way in to the served models (zero trust, #22).

Composed by :func:`infra.platform.build` after serving (the VirtualServices name the model
Services, the Rollouts name the VirtualServices); the platform namespaces gain
:data:`~policies.gateway_metrics.GATEWAY_NAMESPACE` (:func:`infra.platform.platform_namespaces`).
"""

from __future__ import annotations

import pulumi

from components.inference_gateway import InferenceGateway, InferenceGatewayArgs
from infra.config import PlatformConfig
from infra.images.sources import sources_for
from policies.gateway_metrics import GATEWAY_NAMESPACE

NAMESPACES = (GATEWAY_NAMESPACE,)
"""The platform namespaces the gateway adds."""


def gateway_tenants(cfg: PlatformConfig) -> tuple[str, ...]:
    """The ``tenant`` claim values the gateway accepts: the stack's tenant (SMB and enterprise
    tenant stacks), else the shared platform's tenants."""
    return (cfg.tenant,) if cfg.tenant else cfg.tenants


def inference_gateway(cfg: PlatformConfig, opts: pulumi.ResourceOptions) -> InferenceGateway:
    """The gateway in front of every served model, with the stack's issuer and limits."""
    g = cfg.gateway
    return InferenceGateway(
        "inference-gateway",
        InferenceGatewayArgs(
            models=[name for name, _ in cfg.served_models],
            serving_namespace="serving",
            hostname=g.hostname,
            issuer=g.issuer,
            audiences=g.audiences,
            jwks_uri=g.jwks_uri,
            tenants=gateway_tenants(cfg),
            max_request_bytes=g.max_request_bytes,
            rate_limit_rps=g.rate_limit_rps,
            client_cidrs=[cfg.network.cidr],
            replicas=2 if cfg.tier == "enterprise" else 1,
            # Production is reachable from the VPC and its peers only; dev's NLB may face the
            # office range, still TLS and tokens only.
            internal=cfg.production,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )
