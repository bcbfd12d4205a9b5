"""The cluster's safety baseline: namespaces, quotas, zero-trust networking, default storage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child, region_of
from components._k8s import (
    ENCRYPTED_STORAGE_CLASS,
    RESTRICTED_LABELS,
    metadata,
    namespace_peer,
    tcp_ports,
)
from policies.gateway_metrics import GATEWAY_NAMESPACE, GATEWAY_WORKLOAD

PLATFORM_NAMESPACES = ("kubeflow", "feature-store", "serving", "monitoring", "vault")
SERVING_PORTS = (8000, 8001)
INGRESS_GATEWAY_PODS = {"istio": GATEWAY_WORKLOAD}
"""The inference gateway's pods (the istio gateway chart's label for release
``inference-gateway``): the only callers of Triton's ports."""
PUSHGATEWAY_PORT = 9091
EGRESS_GATEWAY_PODS = {"istio": "egressgateway"}
EGRESS_GATEWAY_PORT = 8443
"""The mesh egress gateway's pods and TLS port (components/mesh_egress.py, which imports them)."""
PUSHGATEWAY_PODS = {"app.kubernetes.io/name": "prometheus-pushgateway"}
"""The monitoring pushgateway's pods (its chart's name label) and port: the training pipeline's
exit task in ``kubeflow`` pushes the run's outcome there (``pipelines/training/outcome.py``)."""


@dataclass(frozen=True)
class TenantQuota:
    """What one tenant namespace may consume."""

    name: str
    """Tenant (and namespace) name."""
    cpu: str = "32"
    """Total CPU requests (and limits) across the namespace."""
    memory: str = "128Gi"
    """Total memory requests (and limits)."""
    gpus: int = 2
    """Total ``nvidia.com/gpu`` requests; 0 keeps the tenant off GPUs entirely."""
    pods: int = 100
    """Pod count limit."""
    owner: str = ""
    """The Kubeflow profile owner (e-mail) of the namespace, its ``owner`` annotation: the
    profile controller adopts an existing namespace only when it names the Profile's owner."""


@dataclass
class K8sBaselineArgs:
    """Inputs of :class:`K8sBaseline`."""

    vpc_cidr: str
    """VPC CIDR: interface endpoints and the private API live here."""
    volume_key_arn: pulumi.Input[str]
    """KMS key of the default StorageClass."""
    tenants: Sequence[TenantQuota] = field(default_factory=list)
    """Tenant namespaces with their quotas."""
    retain_volumes: bool = True
    """Keep EBS volumes when their claims are deleted (production)."""
    platform_namespaces: Sequence[str] = PLATFORM_NAMESPACES
    """Namespaces of the platform services."""
    workload_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of every namespace that runs workloads (the admission policy's opt-in label)."""
    unlabelled_namespaces: Sequence[str] = ()
    """Platform namespaces that do not get ``workload_labels`` (the admission controller's own:
    it must start before it can admit anything)."""
    mesh_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels enrolling a namespace in the service mesh (sidecar injection): every platform and
    tenant namespace gets them but ``outside_mesh``."""
    outside_mesh: Sequence[str] = ()
    """Platform namespaces that do not get ``mesh_labels`` (the mesh's own control plane)."""
    egress_gateway_namespace: str = ""
    """The mesh's egress gateway namespace (components/mesh_egress.py), when there is one: then
    only that namespace reaches S3's prefix list; every other one reaches the VPC (the API
    server, the interface endpoints) and the gateway's TLS port, so S3 is reached through it."""


class K8sBaseline(pulumi.ComponentResource):
    """Namespaces, quotas, default-deny networking and the encrypted default StorageClass.

    Every platform and tenant namespace enforces Pod Security ``restricted`` and starts from a
    default-deny NetworkPolicy for ingress and egress, with explicit allows: DNS, the same
    namespace, Prometheus scrapes from ``monitoring``, the serving gateway (Triton's ports in
    ``serving``), the training pipeline's pushes from ``kubeflow`` to the pushgateway in
    ``monitoring`` (port 9091 of its pods only), HTTPS to the VPC (interface endpoints,
    private API) and to S3's prefix list in the AWS provider's region (the gateway endpoint).
    Tenants get ResourceQuotas (including ``requests.nvidia.com/gpu``) and LimitRange defaults.
    The GPU device plugin and node autoscaling are components of their own
    (:mod:`components.gpu_device_plugin`, :mod:`components.cluster_autoscaler`).
    """

    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(
        self, name: str, args: K8sBaselineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        tenant_names = [t.name for t in args.tenants]
        clash = sorted(set(tenant_names) & set(args.platform_namespaces))
        if clash or len(set(tenant_names)) != len(tenant_names):
            raise ValueError(
                f"K8sBaselineArgs.tenants: {tenant_names}; allowed unique names that are not "
                f"platform namespaces ({', '.join(args.platform_namespaces)})"
            )
        for key in ("unlabelled_namespaces", "outside_mesh"):
            stray = sorted(set(getattr(args, key)) - set(args.platform_namespaces))
            if stray:
                raise ValueError(
                    f"K8sBaselineArgs.{key}: {stray}; allowed platform namespaces "
                    f"({', '.join(args.platform_namespaces)})"
                )
        gateway = args.egress_gateway_namespace
        if gateway and gateway not in args.platform_namespaces:
            raise ValueError(
                f"K8sBaselineArgs.egress_gateway_namespace: {gateway!r}; allowed a platform "
                f"namespace ({', '.join(args.platform_namespaces)})"
            )
        for t in args.tenants:
            if t.gpus < 0 or t.pods < 1:
                raise ValueError(f"K8sBaselineArgs.tenants[{t.name}]: gpus >= 0 and pods >= 1")
        super().__init__(f"{TYPE_PREFIX}:k8s_baseline:K8sBaseline", name, None, opts)

        s3_cidrs = aws.ec2.get_managed_prefix_list_output(
            name=pulumi.Output.concat("com.amazonaws.", region_of(self), ".s3"),
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).entries.apply(lambda entries: sorted(e.cidr for e in entries))
        # Interface endpoints (STS, KMS, ECR, Logs) and the private API server are ENIs in the
        # VPC; S3 goes through the gateway endpoint to the region's S3 prefix list.
        aws_cidrs = s3_cidrs.apply(lambda cidrs: [args.vpc_cidr, *cidrs])
        self._egress = args.egress_gateway_namespace
        self._vpc_only = pulumi.Output.from_input([args.vpc_cidr])

        self.namespaces = {}
        workloads = dict(args.workload_labels)
        mesh = dict(args.mesh_labels)
        for ns in args.platform_namespaces:
            extra = {} if ns in args.unlabelled_namespaces else workloads
            enrolled = {} if ns in args.outside_mesh else mesh
            labels = {"sovereign-ml/role": "platform", **extra, **enrolled}
            self._namespace(name, ns, aws_cidrs, labels)
        for t in args.tenants:
            self._namespace(
                name,
                t.name,
                aws_cidrs,
                {
                    "sovereign-ml/role": "tenant",
                    "sovereign-ml/tenant": t.name,
                    **workloads,
                    **mesh,
                },
                {"owner": t.owner} if t.owner else None,
            )
            self._quota(name, t)

        k8s.storage.v1.StorageClass(
            f"{name}-gp3-encrypted",
            metadata={
                "name": ENCRYPTED_STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            provisioner="ebs.csi.aws.com",
            parameters={
                "type": "gp3",
                "encrypted": "true",
                "kmsKeyId": args.volume_key_arn,
                "csi.storage.k8s.io/fstype": "ext4",
            },
            reclaim_policy="Retain" if args.retain_volumes else "Delete",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=child(self),
        )
        self.register_outputs({"namespaces": list(self.namespaces)})

    def _namespace(
        self,
        name: str,
        ns: str,
        aws_cidrs: pulumi.Output[list[str]],
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
    ) -> None:
        meta: dict[str, object] = {"name": ns, "labels": {**RESTRICTED_LABELS, **labels}}
        if annotations:
            meta["annotations"] = annotations
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns-{ns}",
            metadata=meta,
            opts=child(self),
        )
        self.namespaces[ns] = namespace
        egress = self._egress if self._egress and ns != self._egress else ""
        cidrs = self._vpc_only if egress else aws_cidrs
        for role, spec in namespace_policies(ns, cidrs, egress).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{ns}-{role}",
                metadata=metadata(role, ns),
                spec=spec,
                opts=child(self, depends_on=[namespace]),
            )

    def _quota(self, name: str, t: TenantQuota) -> None:
        ns_opts = child(self, depends_on=[self.namespaces[t.name]])
        k8s.core.v1.ResourceQuota(
            f"{name}-{t.name}-quota",
            metadata=metadata("tenant-quota", t.name),
            spec={
                "hard": {
                    "requests.cpu": t.cpu,
                    "limits.cpu": t.cpu,
                    "requests.memory": t.memory,
                    "limits.memory": t.memory,
                    "requests.nvidia.com/gpu": str(t.gpus),
                    "pods": str(t.pods),
                    "services": "20",
                    "services.loadbalancers": "0",
                    "services.nodeports": "0",
                    "persistentvolumeclaims": "20",
                    "secrets": "100",
                    "configmaps": "100",
                }
            },
            opts=ns_opts,
        )
        k8s.core.v1.LimitRange(
            f"{name}-{t.name}-limits",
            metadata=metadata("tenant-defaults", t.name),
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "1", "memory": "1Gi"},
                        "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                        "max": {"cpu": "16", "memory": "64Gi"},
                    }
                ]
            },
            opts=ns_opts,
        )


def namespace_policies(
    ns: str, aws_cidrs: pulumi.Input[list[str]], egress_gateway: str = ""
) -> dict[str, dict[str, Any]]:
    """The NetworkPolicy specs of one namespace by name: deny everything, then the allows.

    ``aws_cidrs`` are where AWS API calls may go (the VPC and the S3 prefix list); nothing else
    leaves the namespace over HTTPS. With ``egress_gateway`` (a namespace) the namespace may also
    reach that gateway's pods on their TLS port: the only way out the mesh routes.
    """
    every_pod: dict[str, Any] = {"podSelector": {}}
    policies: dict[str, dict[str, Any]] = {
        "default-deny": {**every_pod, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            **every_pod,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [namespace_peer("kube-system", {"k8s-app": "kube-dns"})],
                    "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")],
                }
            ],
        },
        "allow-same-namespace": {
            **every_pod,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": {}}]}],
        },
        "allow-monitoring-scrape": {
            **every_pod,
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [namespace_peer("monitoring")]}],
        },
        "allow-aws-endpoints": {
            **every_pod,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": pulumi.Output.from_input(aws_cidrs).apply(
                        lambda cidrs: [{"ipBlock": {"cidr": c}} for c in cidrs]
                    ),
                    "ports": tcp_ports(443),
                }
            ],
        },
    }
    if egress_gateway:
        policies["allow-to-egress-gateway"] = {
            **every_pod,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [namespace_peer(egress_gateway, EGRESS_GATEWAY_PODS)],
                    "ports": tcp_ports(EGRESS_GATEWAY_PORT),
                }
            ],
        }
    if ns == "kubeflow":
        policies["allow-to-pushgateway"] = {
            **every_pod,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [namespace_peer("monitoring", PUSHGATEWAY_PODS)],
                    "ports": tcp_ports(PUSHGATEWAY_PORT),
                }
            ],
        }
    if ns == "monitoring":
        policies["allow-pipeline-pushes"] = {
            "podSelector": {"matchLabels": dict(PUSHGATEWAY_PODS)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [namespace_peer("kubeflow")], "ports": tcp_ports(PUSHGATEWAY_PORT)}
            ],
        }
    # Inference only through the authenticated gateway (#22): Triton's ports admit the ingress
    # gateway's pods, and only its namespace may send there.
    if ns == "serving":
        policies["allow-gateway-clients"] = {
            **every_pod,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [namespace_peer(GATEWAY_NAMESPACE, INGRESS_GATEWAY_PODS)],
                    "ports": tcp_ports(*SERVING_PORTS),
                }
            ],
        }
    elif ns == GATEWAY_NAMESPACE:
        policies["allow-to-serving-gateway"] = {
            **every_pod,
            "policyTypes": ["Egress"],
            "egress": [{"to": [namespace_peer("serving")], "ports": tcp_ports(*SERVING_PORTS)}],
        }
    return policies
