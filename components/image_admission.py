"""Signature admission: sigstore's policy-controller and the policy that admits only the mirror.

Every namespace that runs workloads carries the opt-in label :data:`ADMISSION_LABEL` (the cluster
baseline sets it); there policy-controller admits a pod only when each image comes from the
zone's registry and carries a cosign signature made with the platform's KMS signing key (or a
listed vendor key). Any image that matches no policy is refused (``no-match-policy: deny``), so
an image from outside the mirror is refused even before its signature is looked at.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child, partition_of, region_of
from components._irsa import ClusterAccess, irsa_role
from components._k8s import (
    helm_release,
    metadata,
    pool_selector,
    role_annotation,
    runtime_default,
    tcp_ports,
)
from policies import inventory

ADMISSION_LABEL = ("policy.sigstore.dev/include", "true")
"""The namespace label policy-controller's webhooks select (the chart's default selector)."""
POLICY_API_VERSION = "policy.sigstore.dev/v1beta1"
"""API version of ``ClusterImagePolicy`` in the pinned chart's CRDs."""
RELEASE = "policy-controller"
"""Helm release name: the chart then names its service account ``policy-controller-webhook``."""
SERVICE_ACCOUNT = f"{RELEASE}-webhook"
WEBHOOK_PORT = 8443
RUN_HOOKS = False
"""Whether the policy-controller release runs its chart's hooks: its only hook is the
post-delete leases cleanup, whose image (a mutable ``latest-dev`` tag) cannot be pinned or
mirrored; without it, an uninstall leaves the webhook's leases in its namespace."""
"""Container port of the admission webhook (the chart's ``https`` port)."""
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?")
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_HOST = re.compile(r"\d{12}\.dkr\.ecr\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com")


@dataclass
class ImageAdmissionArgs:
    """Inputs of :class:`ImageAdmission`."""

    namespace: str
    """Namespace of the controller (created by the baseline, without the opt-in label)."""
    registry_host: str
    """The zone's ECR registry host (``<account>.dkr.ecr.<region>.amazonaws.com``)."""
    signing_key_arn: pulumi.Input[str]
    """ARN of the platform's KMS image-signing key (ECC_NIST_P256, SIGN_VERIFY)."""
    cluster_access: ClusterAccess
    """The cluster's IRSA identity: the webhook reads signatures from ECR and the key's public
    half from KMS with its own role."""
    vpc_cidr: str
    """VPC CIDR: the EKS control plane calls the webhook from ENIs in it."""
    vendor_keys: Mapping[str, str] = field(default_factory=dict)
    """Further trusted signers: authority name -> PEM public key (a vendor's cosign key)."""
    replicas: int = 2
    """Webhook replicas (the webhook fails closed, so one must always answer)."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where the controller's image and chart are pulled from (the zone's mirror)."""


class ImageAdmission(pulumi.ComponentResource):
    """policy-controller (pinned sigstore chart) and one ``ClusterImagePolicy``.

    The policy's only image glob is ``<registry host>/**`` and its authorities are the platform's
    KMS key (``awskms:///<arn>``) and any listed vendor keys; with ``no-match-policy: deny`` an
    image outside the mirror matches no policy and is refused. The webhook fails closed
    (``failurePolicy: Fail``), runs hardened on the system pool with an IRSA role that may only
    read the zone's repositories and the signing key's public half, and a NetworkPolicy lets the
    control plane reach it past the namespace's default deny. Signatures are verified offline:
    no transparency log is consulted (CI signs with ``--tlog-upload=false``; nothing leaves the
    zone).
    """

    policy_name: pulumi.Output[str]
    """Name of the ClusterImagePolicy."""

    def __init__(
        self, name: str, args: ImageAdmissionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not _NAME.fullmatch(args.namespace) or args.namespace == "kube-system":
            raise ValueError(
                f"ImageAdmissionArgs.namespace: {args.namespace!r}; allowed a DNS label other "
                "than kube-system"
            )
        if not _HOST.fullmatch(args.registry_host):
            raise ValueError(
                f"ImageAdmissionArgs.registry_host: {args.registry_host!r}; allowed "
                "<account>.dkr.ecr.<region>.amazonaws.com"
            )
        try:
            ipaddress.ip_network(args.vpc_cidr, strict=True)
        except ValueError:
            raise ValueError(
                f"ImageAdmissionArgs.vpc_cidr: {args.vpc_cidr!r}; allowed an IPv4 CIDR"
            ) from None
        for key_name, pem in args.vendor_keys.items():
            if key_name == "platform" or not _NAME.fullmatch(key_name) or not _PEM.fullmatch(pem):
                raise ValueError(
                    f"ImageAdmissionArgs.vendor_keys[{key_name!r}]: allowed a DNS-label name "
                    "other than 'platform' and a PEM public key"
                )
        if args.replicas < 2:
            raise ValueError(f"ImageAdmissionArgs.replicas: {args.replicas}; allowed >= 2")
        super().__init__(f"{TYPE_PREFIX}:image_admission:ImageAdmission", name, None, opts)

        role = irsa_role(
            f"{name}-irsa",
            access=args.cluster_access,
            namespace=args.namespace,
            service_account=SERVICE_ACCOUNT,
            inline_policy=verifier_policy(
                args.signing_key_arn, args.registry_host, partition_of(self), region_of(self)
            ),
            opts=child(self),
        )
        release = helm_release(
            f"{name}-release",
            args.sources.chart("policy-controller-chart"),
            namespace=args.namespace,
            release=RELEASE,
            values=chart_values(args, role.arn),
            hooks=RUN_HOOKS,
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-from-control-plane",
            metadata=metadata("allow-control-plane", args.namespace),
            spec={
                "podSelector": {},
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
        policy = k8s.apiextensions.CustomResource(
            f"{name}-policy",
            api_version=POLICY_API_VERSION,
            kind="ClusterImagePolicy",
            metadata={"name": "zone-mirror-signed"},
            spec=policy_spec(args.registry_host, args.signing_key_arn, args.vendor_keys),
            # The CRD comes with the chart.
            opts=child(self, depends_on=[release]),
        )

        self.policy_name = policy.metadata.apply(lambda m: m["name"])
        self.register_outputs({"policy_name": self.policy_name})


def kms_key_ref(key_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """cosign's reference to an AWS KMS key: ``awskms:///<key ARN>``."""
    return pulumi.Output.concat("awskms:///", key_arn)


def policy_spec(
    registry_host: str, key_arn: pulumi.Input[str], vendor_keys: Mapping[str, str]
) -> dict[str, Any]:
    """The ClusterImagePolicy spec: the mirror's images, signed by the platform or a vendor."""
    authorities: list[dict[str, Any]] = [
        {"name": "platform", "key": {"kms": kms_key_ref(key_arn), "hashAlgorithm": "sha256"}}
    ]
    authorities += [
        {"name": n, "key": {"data": pem, "hashAlgorithm": "sha256"}}
        for n, pem in sorted(vendor_keys.items())
    ]
    return {"images": [{"glob": f"{registry_host}/**"}], "authorities": authorities}


def chart_values(args: ImageAdmissionArgs, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The policy-controller chart's values: deny what no policy matches, fail closed, harden.

    ``webhook.image`` comes from the inventory (``{repository, version}``, the chart joining a
    ``sha256:`` version with ``@``). The chart's leases-cleanup job (``leasescleanup.image``,
    ``cgr.dev/chainguard/kubectl:latest-dev`` by default, a tag no one can pin) is a
    post-delete hook with no values switch: the release runs without hooks instead
    (:data:`RUN_HOOKS`), so that image is never pulled.
    """
    return args.sources.chart_images(
        "policy-controller-chart",
        {
            "installCRDs": True,
            "webhook": {
                "image": {"pullPolicy": "Always"},
                "replicaCount": args.replicas,
                "failurePolicy": "Fail",
                "configData": {"no-match-policy": "deny"},
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": ADMISSION_LABEL[0],
                            "operator": "In",
                            "values": [ADMISSION_LABEL[1]],
                        }
                    ]
                },
                "serviceAccount": {"create": True, "annotations": role_annotation(role_arn)},
                "securityContext": {
                    "enabled": True,
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "seccompProfile": runtime_default(),
                },
                "podSecurityContext": {
                    "enabled": True,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsUser": 65532,
                    "capabilities": {"drop": ["ALL"]},
                },
                "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
            },
            "commonNodeSelector": pool_selector("system"),
        },
    )


def verifier_policy(
    key_arn: pulumi.Input[str],
    registry_host: str,
    partition: pulumi.Input[str],
    region: pulumi.Input[str],
) -> pulumi.Output[str]:
    """The webhook's IAM policy: read the zone's repositories (signatures live beside the
    images) and the signing key's public half; nothing else."""
    account = registry_host.split(".", 1)[0]

    def document(values: list[str]) -> str:
        arn, part, reg = values
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "RegistryLogin",
                        "Effect": "Allow",
                        "Action": "ecr:GetAuthorizationToken",
                        "Resource": "*",
                    },
                    {
                        "Sid": "ReadZoneRepositories",
                        "Effect": "Allow",
                        "Action": [
                            "ecr:BatchGetImage",
                            "ecr:GetDownloadUrlForLayer",
                            "ecr:BatchCheckLayerAvailability",
                            "ecr:DescribeImages",
                        ],
                        "Resource": f"arn:{part}:ecr:{reg}:{account}:repository/*",
                    },
                    {
                        "Sid": "ReadSigningPublicKey",
                        "Effect": "Allow",
                        "Action": ["kms:GetPublicKey", "kms:DescribeKey", "kms:Verify"],
                        "Resource": arn,
                    },
                ],
            }
        )

    return pulumi.Output.all(key_arn, partition, region).apply(document)
