"""Residency on the wire for one stack: the mesh's egress gateway and its allow-list.

Split from :mod:`infra.platform` (which calls :func:`mesh_egress`), like :mod:`infra.tracking`.
The allow-list is :func:`policies.egress.allow_list` of the stack's region, allowed accounts and
``inZoneExternalResources``, plus the stack's own buckets (data buckets and the audit bucket the
lifecycle log is appended to), whose names the deployment learns with the account id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.audit_trail import LifecycleSink
from components.mesh_egress import MeshEgress, MeshEgressArgs
from components.storage import ACCESS_LOGS
from infra.config import PlatformConfig
from infra.config.sso import sso_upstream
from infra.images.sources import sources_for
from policies.egress import PROTOCOL, Destination, allow_list

if TYPE_CHECKING:
    from infra.platform import AwsBase

NAMESPACE = "istio-egress"
"""The egress gateway's namespace (the zero-trust contract's)."""


def mesh_egress(
    cfg: PlatformConfig, base: AwsBase, opts: pulumi.ResourceOptions, lifecycle: LifecycleSink
) -> MeshEgress:
    """The egress gateway routing exactly the stack's in-zone destinations; ``opts`` must come
    after the mesh (its CRDs and istiod's injector)."""
    buckets = {p: b.bucket for p, b in base.storage.buckets.items() if p != ACCESS_LOGS}
    return MeshEgress(
        "egress",
        MeshEgressArgs(
            namespace=NAMESPACE,
            destinations=with_sso(
                allow_list(
                    cfg.region,
                    account_ids=cfg.allowed_account_ids,
                    external=cfg.in_zone_external_resources,
                ),
                sso_destinations(cfg),
            ),
            region=cfg.region,
            buckets={**buckets, "audit": lifecycle.bucket},
            client_cidr=cfg.network.cidr,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )


def sso_destinations(cfg: PlatformConfig) -> list[Destination]:
    """The enterprise IdP Dex calls, on its own port (LDAPS is 636): config validation has made
    sure its host is declared in ``inZoneExternalResources``."""
    upstream = sso_upstream(cfg.sso)
    if upstream is None:
        return []
    host, port, key = upstream
    return [Destination(host, port, PROTOCOL, f"the enterprise IdP Dex calls ({key})")]


def with_sso(
    destinations: tuple[Destination, ...], sso: list[Destination]
) -> tuple[Destination, ...]:
    """``destinations`` with each IdP entry replacing the declared host's default-port one."""
    hosts = {d.host for d in sso}
    return (*(d for d in destinations if d.host not in hosts), *sso)
