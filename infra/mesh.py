"""The service mesh for one stack: every stack, whatever its environment or tier (#22).

Zero trust is not a production option: dev, staging, prod and every tenant stack get the same
STRICT mutual TLS, deny-by-default authorization and registry-only egress. What differs is data:
the namespaces the stack has, and the rows of the authorization table they bring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pulumi

from components._mesh_paths import mesh_paths
from components.mesh import OUTSIDE_MESH, ROOT_NAMESPACE, ServiceMesh, ServiceMeshArgs
from infra.config import PlatformConfig
from infra.egress import NAMESPACE as EGRESS_NAMESPACE
from infra.identity import profile_owners
from infra.images.sources import sources_for
from policies.gateway_metrics import GATEWAY_NAMESPACE

if TYPE_CHECKING:  # platform.py imports this module; the type is only named here
    from infra.platform import TierChoices

GATEWAY_NAMESPACES = (GATEWAY_NAMESPACE, EGRESS_NAMESPACE)
"""The ingress and egress gateways' namespaces (their mesh paths are narrower)."""
MESH_NAMESPACES = (ROOT_NAMESPACE,)
"""The namespaces the mesh adds to the platform's (the control plane's)."""


def enrolled_namespaces(cfg: PlatformConfig, platform: Sequence[str]) -> list[str]:
    """The ``platform`` and tenant namespaces whose pods get sidecars: all but the mesh's own
    and ``kube-system``."""
    return [n for n in (*platform, *cfg.tenants) if n not in OUTSIDE_MESH]


def service_mesh(
    cfg: PlatformConfig,
    opts: pulumi.ResourceOptions,
    platform: Sequence[str],
    tier: TierChoices,
) -> pulumi.ResourceOptions:
    """Declare the mesh over the ``platform`` namespaces (and the tenants'); returns the
    workloads' options, after it.

    Sidecars are injected when a pod is created, so every workload must come after istiod and
    its webhook: a pod created before would run outside the mesh until its next restart.
    Katib's row exists where the tier runs it (an RDS tier, :mod:`infra.tracking`), the profile
    hook's where Kubeflow Pipelines runs multi-user (single sign-on); istiod keeps the tier's
    replica floor.
    """
    enrolled = enrolled_namespaces(cfg, platform)
    mesh = ServiceMesh(
        "mesh",
        ServiceMeshArgs(
            enrolled_namespaces=enrolled,
            paths=mesh_paths(
                enrolled,
                cfg.tenants,
                keda_namespace="keda" in enrolled,
                tracking=True,  # MLflow runs on every tier (infra/tracking.py)
                katib_trials=cfg.tenants if tier.db_mode == "rds" else (),
                gateways=GATEWAY_NAMESPACES,
                profiles=bool(profile_owners(cfg)),  # multi-user KFP (components/kubeflow.py)
            ),
            vpc_cidr=cfg.network.cidr,
            replicas=tier.replica_floor,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[mesh]))
