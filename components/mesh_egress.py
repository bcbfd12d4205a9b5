"""The mesh's egress gateway: the one way out of the cluster, to in-zone hosts only.

Istio's standard egress-gateway routing for TLS (istio.io, "Egress Gateways", HTTPS traffic):
per allowed host a ``ServiceEntry`` (``MESH_EXTERNAL``, ``resolution: DNS``, TLS on 443) and a
``VirtualService`` that sends the host's SNI from every sidecar (gateway ``mesh``) to the egress
gateway and from the gateway out to the host; one ``Gateway`` that accepts exactly those SNI
names in TLS ``PASSTHROUGH`` (the mesh never terminates the TLS session to AWS) and one
``DestinationRule`` for the gateway's Service. Everything else is refused by istiod's mesh-wide
``outboundTrafficPolicy: REGISTRY_ONLY`` (infra/mesh.py): Envoy routes it to ``BlackHoleCluster``
and the sidecar's metrics count it (``destination_service_name="BlackHoleCluster"``), which the
``EgressRefused`` alert watches (components/_alerts.py).

The allow-list is :func:`policies.egress.allow_list`, generated from the zone data the gate uses;
the gate rule SOV-ZT-005 judges the same objects in the synth record.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child
from components._k8s import (
    chart_container_security,
    helm_release,
    metadata,
    pool_selector,
    runtime_default,
    tcp_ports,
)
from components.k8s_baseline import EGRESS_GATEWAY_PODS, EGRESS_GATEWAY_PORT
from policies import inventory
from policies.egress import PORT, PROTOCOL, Destination, bucket_host
from policies.zones import region_info

GATEWAY_RELEASE = "istio-egressgateway"
"""Release (and Service) name of the egress gateway; the chart labels its pods after it."""
GATEWAY_PODS = EGRESS_GATEWAY_PODS
"""Pod labels the gateway chart derives from the release name (``istio-`` stripped)."""
TLS_PORT = 443
"""The Service port sidecars send allowed TLS traffic to."""
TLS_TARGET_PORT = EGRESS_GATEWAY_PORT
"""The gateway pod's listening port: unprivileged, so no ``ip_unprivileged_port_start`` sysctl."""
STATUS_PORT = 15021
"""Istio's readiness (status) port on every gateway."""
SUBSET = "passthrough"
"""The DestinationRule subset sidecars route allowed SNI names through."""
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_HOST = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


@dataclass
class MeshEgressArgs:
    """Inputs of :class:`MeshEgress`."""

    namespace: str
    """The gateway's namespace (``istio-egress``; the baseline creates it, default-deny)."""
    destinations: Sequence[Destination]
    """The allow-list (:func:`policies.egress.allow_list`); nothing else leaves the mesh."""
    region: str = ""
    """The stack's region: the S3 endpoint the ``buckets`` are named on."""
    buckets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """The stack's buckets by role (their names carry the account id, known at deployment): each
    is allowed as ``<bucket>.s3.<region>.<domain>``, the S3 SDKs' virtual-hosted name."""
    client_roles: Sequence[str] = ("platform", "tenant")
    """``sovereign-ml/role`` namespace labels whose pods may send through the gateway."""
    replicas: int = 2
    """Gateway replicas (two: one per zone failure)."""
    client_cidr: str = ""
    """The VPC CIDR (pods take VPC addresses under the VPC CNI): the gateway's ALLOW policy admits
    these addresses, since passthrough TLS carries no mesh principal; empty: no client admitted."""
    sources: inventory.Sources = field(default_factory=lambda: inventory.UPSTREAM)
    """Where the chart is pulled from (the zone's mirror in production)."""


def object_name(host: str) -> str:
    """A DNS-label name for ``host``'s objects: readable, unique (a digest of the host), at most
    63 characters."""
    digest = hashlib.sha256(host.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9-]", "-", host.lower())[:50].strip("-")
    return f"{slug}-{digest}"


def gateway_host(namespace: str) -> str:
    """The egress gateway Service's cluster name."""
    return f"{GATEWAY_RELEASE}.{namespace}.svc.cluster.local"


def service_entry_spec(d: Destination) -> dict[str, Any]:
    """The ServiceEntry of one allowed destination: exact host, DNS resolution, TLS port."""
    return {
        "hosts": [d.host],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": [{"number": d.port, "name": f"tls-{d.port}", "protocol": d.protocol}],
        "exportTo": ["*"],
    }


def virtual_service_spec(d: Destination, namespace: str, gateway: str) -> dict[str, Any]:
    """Sidecars -> egress gateway -> ``d.host``, matched on the TLS SNI (never re-routed)."""
    return {
        "hosts": [d.host],
        "gateways": ["mesh", f"{namespace}/{gateway}"],
        "exportTo": ["*"],
        "tls": [
            {
                "match": [{"gateways": ["mesh"], "port": d.port, "sniHosts": [d.host]}],
                "route": [
                    {
                        "destination": {
                            "host": gateway_host(namespace),
                            "subset": SUBSET,
                            "port": {"number": TLS_PORT},
                        }
                    }
                ],
            },
            {
                "match": [
                    {"gateways": [f"{namespace}/{gateway}"], "port": TLS_PORT, "sniHosts": [d.host]}
                ],
                "route": [{"destination": {"host": d.host, "port": {"number": d.port}}}],
            },
        ],
    }


def gateway_spec(hosts: Sequence[str]) -> dict[str, Any]:
    """The egress Gateway: TLS passthrough for exactly the allowed SNI names."""
    return {
        "selector": dict(GATEWAY_PODS),
        "servers": [
            {
                "port": {"number": TLS_PORT, "name": "tls", "protocol": "TLS"},
                "hosts": list(hosts),
                "tls": {"mode": "PASSTHROUGH"},
            }
        ],
    }


def chart_values(args: MeshEgressArgs) -> dict[str, Any]:
    """The gateway chart's values: ClusterIP only, unprivileged port, hardened, two replicas."""
    return {
        "service": {
            "type": "ClusterIP",
            "ports": [
                {
                    "name": "status-port",
                    "port": STATUS_PORT,
                    "targetPort": STATUS_PORT,
                    "protocol": "TCP",
                },
                {"name": "tls", "port": TLS_PORT, "targetPort": TLS_TARGET_PORT, "protocol": "TCP"},
            ],
        },
        "replicaCount": args.replicas,
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {"minAvailable": 1},
        "securityContext": {"runAsNonRoot": True, "seccompProfile": runtime_default()},
        "containerSecurityContext": chart_container_security(
            runAsNonRoot=True,
            runAsUser=1337,
            runAsGroup=1337,
            privileged=False,
            seccompProfile=runtime_default(),
        ),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "nodeSelector": pool_selector("system"),
    }


class MeshEgress(pulumi.ComponentResource):
    """The egress gateway (Istio's ``gateway`` chart) and the routing of every allowed host.

    Pods reach an allowed host only through the gateway: their sidecar matches the TLS SNI and
    sends the connection to the gateway, which passes it through unopened to the host it
    resolves by DNS. A NetworkPolicy in the gateway's namespace admits the workload namespaces
    on the gateway's TLS port; the baseline (components/k8s_baseline.py) lets the gateway, and
    no workload, reach the S3 prefix list. Refusals are the mesh's (REGISTRY_ONLY), visible as
    ``BlackHoleCluster`` in its metrics.
    """

    def __init__(
        self, name: str, args: MeshEgressArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not _DNS_LABEL.fullmatch(args.namespace) or args.namespace == "kube-system":
            raise ValueError(
                f"MeshEgressArgs.namespace: {args.namespace!r}; allowed a DNS label but kube-system"
            )
        hosts = [d.host for d in args.destinations]
        bad = [h for h in hosts if "*" in h or not _HOST.fullmatch(h)]
        if not hosts or bad or len(set(hosts)) != len(hosts):
            raise ValueError(
                f"MeshEgressArgs.destinations: {hosts}; allowed distinct exact host names "
                "(policies/egress.py allow_list), at least one"
            )
        roles = sorted(args.buckets)
        if args.buckets and (
            region_info(args.region) is None or not all(_DNS_LABEL.fullmatch(r) for r in roles)
        ):
            raise ValueError(
                f"MeshEgressArgs.buckets/region: roles {roles} in {args.region!r}; allowed DNS "
                "label roles and a region of a residency zone"
            )
        if not 1 <= args.replicas <= 10:
            raise ValueError(f"MeshEgressArgs.replicas: {args.replicas}; allowed 1-10")
        super().__init__(f"{TYPE_PREFIX}:mesh_egress:MeshEgress", name, None, opts)
        ns = args.namespace

        release = helm_release(
            f"{name}-gateway",
            args.sources.chart("istio-gateway-chart"),
            namespace=ns,
            values=chart_values(args),
            opts=child(self),
            release=GATEWAY_RELEASE,
        )
        after = child(self, depends_on=[release])
        gateway = "egress"
        routes: list[tuple[str, pulumi.Input[Destination]]] = [
            (object_name(d.host), d) for d in args.destinations
        ]
        for role in roles:
            routes.append(
                (
                    f"bucket-{role}",
                    pulumi.Output.from_input(args.buckets[role]).apply(
                        lambda b, region=args.region: Destination(
                            bucket_host(b, region), PORT, PROTOCOL, f"the stack's bucket {b}"
                        )
                    ),
                )
            )
        k8s.apiextensions.CustomResource(
            f"{name}-gateway-routes",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata=metadata(gateway, ns),
            spec=pulumi.Output.all(*[d for _, d in routes]).apply(
                lambda found: gateway_spec([d.host for d in found])
            ),
            opts=after,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-gateway-subsets",
            api_version="networking.istio.io/v1",
            kind="DestinationRule",
            metadata=metadata("egress-gateway", ns),
            spec={
                "host": gateway_host(ns),
                "exportTo": ["*"],
                "subsets": [{"name": SUBSET}],
            },
            opts=after,
        )
        for short, dest in routes:
            found = pulumi.Output.from_input(dest)
            k8s.apiextensions.CustomResource(
                f"{name}-{short}-entry",
                api_version="networking.istio.io/v1",
                kind="ServiceEntry",
                metadata=found.apply(
                    lambda d, short=short: {
                        **metadata(short, ns),
                        "annotations": {"sovereign-ml/why": d.why},
                    }
                ),
                spec=found.apply(service_entry_spec),
                opts=after,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-{short}-route",
                api_version="networking.istio.io/v1",
                kind="VirtualService",
                metadata=metadata(short, ns),
                spec=found.apply(lambda d: virtual_service_spec(d, ns, gateway)),
                opts=after,
            )
        # The mesh-wide allow-nothing policy covers the gateway too. Passthrough TLS presents no
        # principal, so the gateway admits by address (the VPC's pods) and SNI (the allow-list).
        k8s.apiextensions.CustomResource(
            f"{name}-gateway-clients",
            api_version="security.istio.io/v1",
            kind="AuthorizationPolicy",
            metadata=metadata("allow-egress-clients", ns),
            spec=pulumi.Output.all(*[d for _, d in routes]).apply(
                lambda found: client_policy_spec([d.host for d in found], args.client_cidr)
            ),
            opts=after,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-from-workloads",
            metadata=metadata("allow-egress-clients", ns),
            spec={
                "podSelector": {"matchLabels": dict(GATEWAY_PODS)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"sovereign-ml/role": r}}}
                            for r in args.client_roles
                        ],
                        "ports": tcp_ports(TLS_TARGET_PORT),
                    }
                ],
            },
            opts=child(self),
        )
        self.register_outputs({"hosts": hosts})


def client_policy_spec(hosts: Sequence[str], client_cidr: str) -> dict[str, Any]:
    """The egress gateway's ALLOW policy: the VPC's pods, to the gateway's TLS port, for the
    allow-listed SNI names only (no rule at all when there is no client range: nothing admitted)."""
    rules = (
        [
            {
                "from": [{"source": {"ipBlocks": [client_cidr]}}],
                "to": [{"operation": {"ports": [str(TLS_TARGET_PORT)]}}],
                "when": [{"key": "connection.sni", "values": sorted(set(hosts))}],
            }
        ]
        if client_cidr
        else []
    )
    return {
        "selector": {"matchLabels": dict(GATEWAY_PODS)},
        "action": "ALLOW",
        "rules": rules,
    }
