"""KEDA, the event-driven autoscaler that lets served models scale to zero replicas."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child
from components._k8s import (
    allow_path,
    chart_container_security,
    helm_release,
    metadata,
    pool_selector,
    runtime_default,
    tcp_ports,
)
from policies import inventory

# 2.19 is the KEDA release tested against Kubernetes 1.32-1.34, exactly the versions
# infra/config/keys.py allows (2.20 starts at 1.33, 2.21 at 1.34). Chart and app versions
# are equal.
KEDA_CHART = inventory.chart("keda")
METRICS_API_PORT = 6443
"""Container port of KEDA's metrics API server (the external.metrics.k8s.io APIService)."""
WEBHOOK_PORT = 9443
"""Container port of KEDA's admission webhooks."""
OPERATOR_GRPC_PORT = 9666
"""The operator's gRPC port the metrics API server reads metrics from (KEDA's own mTLS)."""
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
"""Istio pod annotation: inbound ports the sidecar does not capture."""
EXCLUDE_OUTBOUND = "traffic.sidecar.istio.io/excludeOutboundPorts"
"""Istio pod annotation: outbound ports the sidecar does not capture."""
OPERATOR_LABELS = {"app": "keda-operator"}
"""Pod labels the chart gives the operator, the pod that runs the scalers' queries."""
PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}
"""Pod labels of the Prometheus server kube-prometheus-stack runs."""


@dataclass
class KedaArgs:
    """Inputs of :class:`Keda`."""

    namespace: str
    """Namespace of KEDA's pods (restricted, default-deny; the baseline creates it)."""
    vpc_cidr: str
    """VPC CIDR: the EKS control plane reaches the metrics API and webhooks from ENIs in it."""
    watch_namespace: str = "serving"
    """The one namespace whose ScaledObjects KEDA reconciles."""
    prometheus_namespace: str = "monitoring"
    """Namespace of the Prometheus the scalers query."""
    prometheus_port: int = 9090
    """Port of that Prometheus server's pods."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


class Keda(pulumi.ComponentResource):
    """KEDA (pinned kedacore chart) so that a ``ScaledObject`` can take a workload to zero.

    Kubernetes' own HPA cannot go below one replica on EKS (``HPAScaleToZero`` is an alpha
    feature gate the managed control plane does not enable); KEDA activates a workload from zero
    and hands 1..N to an HPA it creates and owns. Hardened for a restricted namespace: non-root,
    RuntimeDefault seccomp, no privilege escalation, all capabilities dropped, read-only root,
    bounded resources, on the on-demand system pool. Least privilege: it reconciles only the
    ``watch_namespace``, may scale only Argo ``rollouts`` besides the built-in kinds, and gets no
    cluster-wide read access to Secrets (no scaler here authenticates with one). Two
    NetworkPolicies open exactly what it needs past the namespace's default deny: the control
    plane to the metrics API and the webhooks, and the operator to Prometheus (with the matching
    ingress in the Prometheus namespace). No IRSA: KEDA calls no AWS API.
    """

    release_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        for key in ("namespace", "watch_namespace", "prometheus_namespace"):
            value = getattr(args, key)
            if not value or value == "kube-system":
                raise ValueError(f"KedaArgs.{key}: {value!r}; allowed a platform namespace")
        try:
            ipaddress.ip_network(args.vpc_cidr, strict=True)
        except ValueError:
            raise ValueError(
                f"KedaArgs.vpc_cidr: {args.vpc_cidr!r}; allowed an IPv4 CIDR such as 10.40.0.0/16"
            ) from None
        if not 1 <= args.prometheus_port <= 65535:
            raise ValueError(f"KedaArgs.prometheus_port: {args.prometheus_port}; allowed 1-65535")
        super().__init__(f"{TYPE_PREFIX}:keda:Keda", name, None, opts)

        release = helm_release(
            f"{name}-release",
            args.sources.chart("keda"),
            namespace=args.namespace,
            values=chart_values(args),
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-from-control-plane",
            metadata=metadata("allow-control-plane", args.namespace),
            spec={
                "podSelector": {},
                "policyTypes": ["Ingress"],
                # The API server aggregates the metrics API and calls the webhooks from the EKS
                # control-plane ENIs, which live in the VPC's subnets.
                "ingress": [
                    {
                        "from": [{"ipBlock": {"cidr": args.vpc_cidr}}],
                        "ports": tcp_ports(METRICS_API_PORT, WEBHOOK_PORT),
                    }
                ],
            },
            opts=child(self),
        )
        # The operator runs the scalers' queries against Prometheus.
        allow_path(
            self,
            egress=(f"{name}-to-prometheus", "allow-keda-to-prometheus"),
            ingress=(f"{name}-prometheus-from-keda", "allow-queries-from-keda"),
            source=(args.namespace, OPERATOR_LABELS),
            target=(args.prometheus_namespace, PROMETHEUS_LABELS),
            port=args.prometheus_port,
        )

        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})


def chart_values(args: KedaArgs) -> dict[str, Any]:
    """The kedacore chart's values: one watched namespace, least privilege, hardened."""
    components = ("operator", "metricServer", "webhooks")
    # The operator, metrics API server and webhooks images (image.keda, .metricsApiServer,
    # .webhooks) come from the inventory.
    return args.sources.chart_images(
        "keda",
        {
            "crds": {"install": True},
            "watchNamespace": args.watch_namespace,
            # One operator leads, the other stands by (leader election); the metrics API
            # serves external.metrics.k8s.io from a single active replica by design.
            "operator": {"replicaCount": 2},
            "podDisruptionBudget": {"operator": {"minAvailable": 1}},
            "rbac": {
                "enabledCustomScaledRefKinds": True,
                # The chart's default grants */scale on every API group; Triton runs as Argo
                # Rollouts. "kind" is the resource plural here (the chart builds
                # "<kind>/scale" from it).
                "scaledRefKinds": [{"apiGroup": "argoproj.io", "kind": "rollouts"}],
            },
            "permissions": {"operator": {"restrict": {"secret": True}}},
            "nodeSelector": pool_selector("system"),
            # KEDA's documented Istio setup: the control plane (no mesh identity) calls the
            # metrics API and webhooks, and KEDA's parts call each other with their own mTLS,
            # so those ports bypass the sidecars; everything else (Prometheus) rides the mesh.
            "podAnnotations": mesh_bypass(),
            # Per component: the chart reads .operator/.metricServer/.webhooks before the
            # shared keys, and its own defaults set those, so shared keys would be ignored.
            "podSecurityContext": {
                c: {"runAsNonRoot": True, "seccompProfile": runtime_default()} for c in components
            },
            "securityContext": {
                c: chart_container_security(seccompProfile=runtime_default()) for c in components
            },
            "resources": {
                c: {
                    "requests": {"cpu": "100m", "memory": memory},
                    "limits": {"cpu": "500m", "memory": memory},
                }
                for c, memory in zip(components, ("512Mi", "512Mi", "256Mi"), strict=True)
            },
        },
    )


def mesh_bypass() -> dict[str, dict[str, str]]:
    """Per KEDA pod (the chart's ``podAnnotations`` keys), the ports its sidecar leaves alone."""
    ports = {
        "keda": OPERATOR_GRPC_PORT,
        "metricsAdapter": METRICS_API_PORT,
        "webhooks": WEBHOOK_PORT,
    }
    return {
        pod: {
            EXCLUDE_INBOUND: str(port),
            EXCLUDE_OUTBOUND: ",".join(str(p) for p in sorted(set(ports.values()) - {port})),
        }
        for pod, port in ports.items()
    }
