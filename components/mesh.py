"""The service mesh: Istio in sidecar mode, mutual TLS everywhere, authorization by identity.

Istio (not Linkerd or Cilium) because Kubeflow and Argo Rollouts integrate with it: Kubeflow's
multi-user mode authorizes by Istio identity, and Argo Rollouts splits canary traffic through
Istio VirtualServices. Sidecar mode (not ambient) because both integrations are documented for
sidecars, and the CNI node agent keeps injected pods within Pod Security ``restricted``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child
from components._k8s import (
    GPU_TOLERATION,
    helm_release,
    istio_resource,
    metadata,
    namespace_peer,
    pool_selector,
    runtime_default,
    tcp_ports,
)
from components._mesh_paths import TRUST_DOMAIN, MeshPath
from policies import inventory

ROOT_NAMESPACE = "istio-system"
"""Istio's root namespace: the control plane and the mesh-wide policies live here."""
CNI_NAMESPACE = "kube-system"
"""The CNI node agent's namespace: a node agent with host mounts, allow-listed only there."""
INJECTION_LABEL = ("istio-injection", "enabled")
"""The namespace label that makes istiod inject a sidecar into every new pod there."""
OUTSIDE_MESH = (ROOT_NAMESPACE, "kube-system")
"""Namespaces that are never enrolled: the control plane's own and the node agents'."""
ISTIOD_LABELS = {"app": "istiod"}
"""Pod labels the istiod chart gives the control plane."""
XDS_PORT = 15012
"""istiod's TLS port for sidecar configuration (xDS) and certificate signing."""
WEBHOOK_PORT = 15017
"""istiod's sidecar-injection and validation webhook port (called by the API server)."""
REPLICAS = (1, 5)
"""Allowed istiod replica counts."""


@dataclass
class ServiceMeshArgs:
    """Inputs of :class:`ServiceMesh`."""

    enrolled_namespaces: Sequence[str]
    """Every platform and tenant namespace (created by the baseline): each gets sidecars, the
    NetworkPolicy to reach istiod, and its rows of ``paths``."""
    paths: Sequence[MeshPath]
    """The authorization table (``components/_mesh_paths.py``): one ALLOW policy per row."""
    vpc_cidr: str
    """VPC CIDR: the EKS control plane calls istiod's webhook from ENIs in it."""
    replicas: int = 2
    """istiod replicas (a PodDisruptionBudget keeps one up from 2 on)."""
    access_log: str = "/dev/stdout"
    """Where every sidecar writes its access log (JSON): stdout feeds the workload logs."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


class ServiceMesh(pulumi.ComponentResource):
    """Istio's CRDs, CNI node agent and control plane, and the mesh-wide zero-trust policies.

    Mutual TLS is STRICT mesh-wide (one PeerAuthentication in the root namespace): a sidecar
    accepts only mTLS from a peer with a mesh certificate. Authorization denies by default: an
    allow-nothing AuthorizationPolicy in the root namespace applies to every workload, and each
    row of ``paths`` opens one path to the identities (service accounts) it names. Sidecars
    reach only what the mesh registry knows (``outboundTrafficPolicy: REGISTRY_ONLY``) and log
    every request. The CNI node agent sets up each pod's traffic redirection, so injected pods
    run no privileged init container. The NetworkPolicies stay: the mesh tightens them.
    """

    release_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceMeshArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _validate(args)
        super().__init__(f"{TYPE_PREFIX}:mesh:ServiceMesh", name, None, opts)

        base = helm_release(
            f"{name}-base",
            args.sources.chart("istio-base-chart"),
            namespace=ROOT_NAMESPACE,
            release="istio-base",
            values={"global": {"istioNamespace": ROOT_NAMESPACE}},
            opts=child(self),
        )
        after_base = child(self, depends_on=[base])
        # The node agent must run before any injected pod starts: its plugin redirects traffic.
        cni = helm_release(
            f"{name}-cni",
            args.sources.chart("istio-cni-chart"),
            namespace=CNI_NAMESPACE,
            release="istio-cni",
            values=cni_values(args),
            opts=after_base,
        )
        istiod = helm_release(
            f"{name}-istiod",
            args.sources.chart("istiod-chart"),
            namespace=ROOT_NAMESPACE,
            values=istiod_values(args),
            opts=child(self, depends_on=[base, cni]),
        )
        after_istiod = child(self, depends_on=[istiod])
        istio_resource(
            f"{name}-strict-mtls",
            "security",
            "PeerAuthentication",
            "default",
            ROOT_NAMESPACE,
            {"mtls": {"mode": "STRICT"}},
            after_istiod,
        )
        # An ALLOW policy with no rules matches nothing; in the root namespace it applies to
        # every workload, so whatever no row below allows is refused.
        istio_resource(
            f"{name}-allow-nothing",
            "security",
            "AuthorizationPolicy",
            "allow-nothing",
            ROOT_NAMESPACE,
            {},
            after_istiod,
        )
        for path in args.paths:
            istio_resource(
                f"{name}-{path.namespace}-{path.name}",
                "security",
                "AuthorizationPolicy",
                path.name,
                path.namespace,
                authorization_spec(path),
                after_istiod,
            )
        self._network(name, args)

        self.release_name = istiod.name
        self.register_outputs({"release_name": self.release_name})

    def _network(self, name: str, args: ServiceMeshArgs) -> None:
        """Past the default deny: sidecars to istiod, the control plane to its webhook."""
        enrolled = {"namespaceSelector": {"matchLabels": dict([INJECTION_LABEL])}}
        k8s.networking.v1.NetworkPolicy(
            f"{name}-to-istiod",
            metadata=metadata("allow-mesh-to-istiod", ROOT_NAMESPACE),
            spec={
                "podSelector": {"matchLabels": dict(ISTIOD_LABELS)},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [enrolled], "ports": tcp_ports(XDS_PORT)}],
            },
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-webhook",
            metadata=metadata("allow-webhook-from-control-plane", ROOT_NAMESPACE),
            spec={
                "podSelector": {"matchLabels": dict(ISTIOD_LABELS)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"ipBlock": {"cidr": args.vpc_cidr}}],
                        "ports": tcp_ports(WEBHOOK_PORT),
                    }
                ],
            },
            opts=child(self),
        )
        for ns in args.enrolled_namespaces:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{ns}-to-istiod",
                metadata=metadata("allow-to-istiod", ns),
                spec={
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [namespace_peer(ROOT_NAMESPACE, ISTIOD_LABELS)],
                            "ports": tcp_ports(XDS_PORT),
                        }
                    ],
                },
                opts=child(self),
            )


def _validate(args: ServiceMeshArgs) -> None:
    """Refuse Args that would leave a hole, before any resource exists."""
    enrolled = list(args.enrolled_namespaces)
    if not enrolled or len(set(enrolled)) != len(enrolled):
        raise ValueError(
            f"ServiceMeshArgs.enrolled_namespaces: {enrolled}; allowed a non-empty list of "
            "unique namespaces"
        )
    inside = sorted(set(enrolled) & set(OUTSIDE_MESH))
    if inside:
        raise ValueError(
            f"ServiceMeshArgs.enrolled_namespaces: {inside}; allowed any namespace but "
            f"{', '.join(OUTSIDE_MESH)}"
        )
    try:
        ipaddress.ip_network(args.vpc_cidr, strict=True)
    except ValueError:
        raise ValueError(
            f"ServiceMeshArgs.vpc_cidr: {args.vpc_cidr!r}; allowed an IPv4 CIDR such as "
            "10.40.0.0/16"
        ) from None
    if not REPLICAS[0] <= args.replicas <= REPLICAS[1]:
        raise ValueError(
            f"ServiceMeshArgs.replicas: {args.replicas}; allowed {REPLICAS[0]}-{REPLICAS[1]}"
        )
    if args.access_log not in ("/dev/stdout", ""):
        raise ValueError(
            f"ServiceMeshArgs.access_log: {args.access_log!r}; allowed '/dev/stdout' (or '' "
            "for none)"
        )
    names: set[tuple[str, str]] = set()
    for p in args.paths:
        where = f"ServiceMeshArgs.paths[{p.namespace}/{p.name}]"
        if p.namespace not in enrolled:
            raise ValueError(f"{where}: namespace {p.namespace!r}; allowed {enrolled}")
        if (p.namespace, p.name) in names:
            raise ValueError(f"{where}: duplicate policy name")
        names.add((p.namespace, p.name))
        if not (p.principals or p.namespaces):
            raise ValueError(f"{where}: no principals or namespaces; allowed at least one source")
        bad = [
            s
            for s in p.principals
            if "*" in s or not s.startswith(f"{TRUST_DOMAIN}/ns/") or "/sa/" not in s
        ]
        bad += [n for n in p.namespaces if "*" in n or not n]
        if bad:
            raise ValueError(
                f"{where}: sources {bad}; allowed exact {TRUST_DOMAIN}/ns/<ns>/sa/<sa> "
                "principals and namespace names (no wildcards)"
            )
        if any(not 1 <= port <= 65535 for port in p.ports):
            raise ValueError(f"{where}: ports {list(p.ports)}; allowed 1-65535")


def authorization_spec(path: MeshPath) -> dict[str, Any]:
    """The ALLOW AuthorizationPolicy spec of one table row."""
    sources: list[dict[str, Any]] = []
    if path.principals:
        sources.append({"source": {"principals": list(path.principals)}})
    if path.namespaces:
        sources.append({"source": {"namespaces": list(path.namespaces)}})
    rule: dict[str, Any] = {"from": sources}
    if path.ports:
        rule["to"] = [{"operation": {"ports": [str(p) for p in path.ports]}}]
    spec: dict[str, Any] = {"action": "ALLOW", "rules": [rule]}
    if path.selector:
        spec["selector"] = {"matchLabels": dict(path.selector)}
    return spec


def _proxy_resources() -> dict[str, Any]:
    return {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def istiod_values(args: ServiceMeshArgs) -> dict[str, Any]:
    """The istiod chart's values: STRICT-ready, registry-only egress, hardened, from the mirror.

    The chart's pod values are top-level (it copies a legacy ``pilot`` block there); the CNI
    switch is set both ways because the injection template reads ``pilot.cni``.
    """
    proxy = args.sources.image("istio-proxyv2")
    return args.sources.chart_images(
        "istiod-chart",
        {
            "autoscaleEnabled": False,
            "replicaCount": args.replicas,
            "resources": {
                "requests": {"cpu": "500m", "memory": "2Gi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            },
            "seccompProfile": runtime_default(),
            "nodeSelector": pool_selector("system"),
            # Sidecars as Kubernetes native sidecars (init containers that keep running): they
            # start before the pod's own init containers (the model puller reaches S3 through
            # them) and stop after its containers, so Jobs and CronJobs still complete.
            "env": {"ENABLE_NATIVE_SIDECARS": "true"},
            "cni": {"enabled": True},
            "pilot": {"cni": {"enabled": True}},
            "global": {
                "istioNamespace": ROOT_NAMESPACE,
                # Anything the values leave to hub/tag resolves in the same registry.
                "hub": proxy.rsplit("/", 1)[0],
                "tag": inventory.entry("istio-proxyv2", "image").version,
                "imagePullPolicy": "Always",
                "logAsJson": True,
                "defaultPodDisruptionBudget": {"enabled": args.replicas > 1},
                "proxy": {
                    "privileged": False,
                    "resources": _proxy_resources(),
                    "clusterDomain": TRUST_DOMAIN,
                },
                # With the CNI agent this is the unprivileged istio-validation init container.
                "proxy_init": {"image": proxy, "resources": _proxy_resources()},
            },
            "meshConfig": {
                "rootNamespace": ROOT_NAMESPACE,
                "trustDomain": TRUST_DOMAIN,
                "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
                "accessLogFile": args.access_log,
                "accessLogEncoding": "JSON",
                # Application metrics merged into the agent's port 15020, outside mTLS capture.
                "enablePrometheusMerge": True,
                # Applications start once their sidecar can carry their first call.
                "defaultConfig": {"holdApplicationUntilProxyStarts": True},
            },
        },
    )


def cni_values(args: ServiceMeshArgs) -> dict[str, Any]:
    """The CNI chart's values: sidecar mode chained after the AWS VPC CNI, on every node."""
    return args.sources.chart_images(
        "istio-cni-chart",
        {
            "chained": True,
            "ambient": {"enabled": False},
            "pullPolicy": "Always",
            "seccompProfile": runtime_default(),
            # GPU nodes run meshed pods too (Triton); the agent requests no GPU itself.
            "tolerations": [dict(GPU_TOLERATION)],
            "resources": {
                "requests": {"cpu": "100m", "memory": "100Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"},
            },
        },
    )
