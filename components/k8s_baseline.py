"""The cluster's safety baseline: namespaces, quotas, zero-trust networking, GPUs, scaling."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child, irsa_role
from components._k8s import RESTRICTED_LABELS, metadata

PLATFORM_NAMESPACES = ("kubeflow", "feature-store", "serving", "monitoring", "vault")
SERVING_PORTS = (8000, 8001)
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
AUTOSCALER_CHART = ("cluster-autoscaler", "9.46.6", "https://kubernetes.github.io/autoscaler")
AUTOSCALER_IMAGE_TAG = {"1.32": "v1.32.1", "1.33": "v1.33.0", "1.34": "v1.34.0"}


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


@dataclass
class K8sBaselineArgs:
    """Inputs of :class:`K8sBaseline`."""

    cluster_name: pulumi.Input[str]
    """EKS cluster name (cluster-autoscaler discovery)."""
    kubernetes_version: str
    """Cluster minor version; picks the matching cluster-autoscaler image."""
    region: str
    """Region, for the autoscaler and the S3 prefix list."""
    vpc_cidr: str
    """VPC CIDR: interface endpoints and the private API live here."""
    volume_key_arn: pulumi.Input[str]
    """KMS key of the default StorageClass."""
    oidc_provider_arn: pulumi.Input[str]
    """IRSA OIDC provider."""
    oidc_issuer_url: pulumi.Input[str]
    """Its issuer URL."""
    account_id: pulumi.Input[str]
    """Account id, to scope the autoscaler's IAM policy to this account's groups."""
    partition: str = "aws"
    """AWS partition."""
    tenants: Sequence[TenantQuota] = field(default_factory=list)
    """Tenant namespaces with their quotas."""
    gpu_enabled: bool = True
    """Deploy the NVIDIA device plugin (the stack has a GPU pool)."""
    retain_volumes: bool = True
    """Keep EBS volumes when their claims are deleted (production)."""
    platform_namespaces: Sequence[str] = PLATFORM_NAMESPACES
    """Namespaces of the platform services."""


class K8sBaseline(pulumi.ComponentResource):
    """Namespaces, quotas, default-deny networking, the GPU device plugin, storage, autoscaling.

    Every platform and tenant namespace enforces Pod Security ``restricted`` and starts from a
    default-deny NetworkPolicy for ingress and egress, with explicit allows: DNS, the same
    namespace, Prometheus scrapes from ``monitoring``, the serving gateway (Triton's ports in
    ``serving``), HTTPS to the VPC (interface endpoints, private API) and to S3's regional prefix
    list (the gateway endpoint). Tenants get ResourceQuotas (including ``requests.nvidia.com/gpu``)
    and LimitRange defaults. Node autoscaling is cluster-autoscaler with IRSA (scale from zero is
    possible because the node groups carry node-template tags).
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
        if args.kubernetes_version not in AUTOSCALER_IMAGE_TAG:
            raise ValueError(
                f"K8sBaselineArgs.kubernetes_version: {args.kubernetes_version}; allowed "
                f"{', '.join(AUTOSCALER_IMAGE_TAG)}"
            )
        for t in args.tenants:
            if t.gpus < 0 or t.pods < 1:
                raise ValueError(f"K8sBaselineArgs.tenants[{t.name}]: gpus >= 0 and pods >= 1")
        super().__init__(f"{TYPE_PREFIX}:k8s_baseline:K8sBaseline", name, None, opts)

        s3_cidrs = aws.ec2.get_managed_prefix_list_output(
            name=f"com.amazonaws.{args.region}.s3",
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).entries.apply(lambda entries: sorted(e.cidr for e in entries))

        self.namespaces = {}
        for ns in args.platform_namespaces:
            self._namespace(name, ns, args, s3_cidrs, {"sovereign-ml/role": "platform"})
        for t in args.tenants:
            self._namespace(
                name,
                t.name,
                args,
                s3_cidrs,
                {"sovereign-ml/role": "tenant", "sovereign-ml/tenant": t.name},
            )
            self._quota(name, t)

        k8s.storage.v1.StorageClass(
            f"{name}-gp3-encrypted",
            metadata={
                "name": "gp3-encrypted",
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
        if args.gpu_enabled:
            self._device_plugin(name)
        self._autoscaler(name, args)
        self.register_outputs({"namespaces": list(self.namespaces)})

    def _namespace(
        self,
        name: str,
        ns: str,
        args: K8sBaselineArgs,
        s3_cidrs: pulumi.Output[list[str]],
        labels: dict[str, str],
    ) -> None:
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns-{ns}",
            metadata={"name": ns, "labels": {**RESTRICTED_LABELS, **labels}},
            opts=child(self),
        )
        self.namespaces[ns] = namespace
        in_ns = child(self, depends_on=[namespace])

        def netpol(role: str, spec: dict) -> None:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{ns}-{role}",
                metadata=metadata(role, ns),
                spec=spec,
                opts=in_ns,
            )

        netpol("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        netpol(
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                                },
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")],
                    }
                ],
            },
        )
        netpol(
            "allow-same-namespace",
            {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [{"to": [{"podSelector": {}}]}],
            },
        )
        netpol(
            "allow-monitoring-scrape",
            {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                                }
                            }
                        ]
                    }
                ],
            },
        )
        netpol(
            "allow-aws-endpoints",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        # Interface endpoints (STS, KMS, ECR, Logs) and the private API server
                        # are ENIs in the VPC; S3 goes through the gateway endpoint to the
                        # region's S3 prefix list. Nothing else leaves the namespace.
                        "to": s3_cidrs.apply(
                            lambda cidrs: [
                                {"ipBlock": {"cidr": c}} for c in [args.vpc_cidr, *cidrs]
                            ]
                        ),
                        "ports": [{"protocol": "TCP", "port": 443}],
                    }
                ],
            },
        )
        if ns == "serving":
            netpol(
                "allow-gateway-clients",
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {"namespaceSelector": {"matchLabels": {"sovereign-ml/role": r}}}
                                for r in ("platform", "tenant")
                            ],
                            "ports": [{"protocol": "TCP", "port": p} for p in SERVING_PORTS],
                        }
                    ],
                },
            )
        else:
            netpol(
                "allow-to-serving-gateway",
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"kubernetes.io/metadata.name": "serving"}
                                    }
                                }
                            ],
                            "ports": [{"protocol": "TCP", "port": p} for p in SERVING_PORTS],
                        }
                    ],
                },
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

    def _device_plugin(self, name: str) -> None:
        labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
        k8s.apps.v1.DaemonSet(
            f"{name}-nvidia-device-plugin",
            metadata=metadata("nvidia-device-plugin", "kube-system"),
            spec={
                "selector": {"matchLabels": labels},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        # Registers GPUs with the kubelet through a host socket: it must run as
                        # root with a hostPath, so it lives in kube-system, not a restricted
                        # namespace. Everything else is dropped.
                        "priorityClassName": "system-node-critical",
                        "automountServiceAccountToken": False,
                        "nodeSelector": {"sovereign-ml/pool": "gpu"},
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                            {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        ],
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            {
                                "name": "nvidia-device-plugin",
                                "image": DEVICE_PLUGIN_IMAGE,
                                "imagePullPolicy": "Always",
                                "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"cpu": "200m", "memory": "128Mi"},
                                },
                                "volumeMounts": [
                                    {
                                        "name": "device-plugin",
                                        "mountPath": "/var/lib/kubelet/device-plugins",
                                    }
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "device-plugin",
                                "hostPath": {"path": "/var/lib/kubelet/device-plugins"},
                            }
                        ],
                    },
                },
            },
            opts=child(self),
        )

    def _autoscaler(self, name: str, args: K8sBaselineArgs) -> None:
        cluster = pulumi.Output.from_input(args.cluster_name)
        role = irsa_role(
            f"{name}-autoscaler-irsa",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            namespace="kube-system",
            service_account="cluster-autoscaler",
            inline_policy=autoscaler_policy(cluster, args.account_id, args.region, args.partition),
            opts=child(self),
        )
        chart, version, repo = AUTOSCALER_CHART
        k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler",
            name="cluster-autoscaler",
            chart=chart,
            version=version,
            namespace="kube-system",
            repository_opts={"repo": repo},
            values={
                "cloudProvider": "aws",
                "awsRegion": args.region,
                "autoDiscovery": {"clusterName": args.cluster_name},
                "image": {"tag": AUTOSCALER_IMAGE_TAG[args.kubernetes_version]},
                "rbac": {
                    "serviceAccount": {
                        "name": "cluster-autoscaler",
                        "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                    }
                },
                "extraArgs": {
                    "balance-similar-node-groups": True,
                    "skip-nodes-with-system-pods": False,
                    "expander": "least-waste",
                    "scale-down-unneeded-time": "10m",
                },
                "nodeSelector": {"sovereign-ml/pool": "system"},
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65534,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containerSecurityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "100m", "memory": "300Mi"},
                    "limits": {"cpu": "500m", "memory": "300Mi"},
                },
            },
            opts=child(self),
        )


def autoscaler_policy(
    cluster_name: pulumi.Input[str], account_id: pulumi.Input[str], region: str, partition: str
) -> pulumi.Output[str]:
    """cluster-autoscaler's IAM policy: read scaling state, scale only this cluster's groups."""

    def document(args: list[str]) -> str:
        cluster, account = args
        asg = (
            f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:"
            "autoScalingGroupName/*"
        )
        nodegroups = f"arn:{partition}:eks:{region}:{account}:nodegroup/{cluster}/*/*"
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ReadScalingState",
                        "Effect": "Allow",
                        "Action": [
                            "autoscaling:DescribeAutoScalingGroups",
                            "autoscaling:DescribeAutoScalingInstances",
                            "autoscaling:DescribeLaunchConfigurations",
                            "autoscaling:DescribeScalingActivities",
                            "autoscaling:DescribeTags",
                            "ec2:DescribeImages",
                            "ec2:DescribeInstanceTypes",
                            "ec2:DescribeLaunchTemplateVersions",
                            "ec2:GetInstanceTypesFromInstanceRequirements",
                        ],
                        "Resource": "*",
                    },
                    {
                        "Sid": "ReadThisClustersNodeGroups",
                        "Effect": "Allow",
                        "Action": "eks:DescribeNodegroup",
                        "Resource": nodegroups,
                    },
                    {
                        "Sid": "ScaleOnlyThisClustersGroups",
                        "Effect": "Allow",
                        "Action": [
                            "autoscaling:SetDesiredCapacity",
                            "autoscaling:TerminateInstanceInAutoScalingGroup",
                        ],
                        "Resource": asg,
                        "Condition": {
                            "StringEquals": {
                                f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"
                            }
                        },
                    },
                ],
            }
        )

    return pulumi.Output.all(cluster_name, account_id).apply(document)
