"""The automated-action recorder on the cluster: Alertmanager's webhook into the lifecycle log.

One replica of ``python -m pipelines.audit.recorder`` (:mod:`pipelines.audit.recorder`) in the
monitoring namespace, from the project's pinned image, under Pod Security ``restricted``. It
appends to the lifecycle chain in the object-locked audit bucket (``SOVML_AUDIT_BUCKET``,
``SOVML_AUDIT_PREFIX``) through an IRSA role that may list the bucket, read and put objects
under the chain's prefix only (and list their versions: at start it reads the chain once for
the firings already recorded), and use the bucket's key. Alertmanager reaches it with a bearer
token generated here (the Secret :data:`TOKEN_SECRET`; :class:`components.alerting.Alerting`
writes the same token into Alertmanager's configuration), and a NetworkPolicy admits only
Alertmanager's pods to its port.

One replica because the recorder drops repeated notifications by what it has recorded: two
replicas could each record the same firing once (the chain itself stays intact either way).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components._aws import TYPE_PREFIX, child, partition_of
from components._irsa import ClusterAccess, irsa_service_account
from components._k8s import container, metadata, namespace_peer, pod_spec, pool_selector, tcp_ports
from policies.lifecycle import ROOT as LIFECYCLE_ROOT

NAME = "audit-recorder"
"""Name of the Deployment, Service, service account and pods' ``app.kubernetes.io/name``."""
PORT = 8080
TOKEN_SECRET = "audit-recorder-token"
"""Secret (in the recorder's namespace) holding the bearer token, key ``token``."""
LABELS = {"app.kubernetes.io/name": NAME}
ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager"}
"""Labels kube-prometheus-stack's operator puts on the Alertmanager pods."""
_CHAIN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""One chain name: a DNS label, as :func:`policies.lifecycle.chain_prefix` requires."""


@dataclass(frozen=True)
class AuditRecorderArgs:
    """Inputs of :class:`AuditRecorder`."""

    namespace: str
    """Namespace of Alertmanager (the recorder runs beside it)."""
    image: str
    """Pinned image holding the project's ``pipelines`` package (the drift job's image)."""
    audit_bucket: pulumi.Input[str]
    """Name of the object-locked audit bucket holding the lifecycle chain."""
    audit_key_arn: pulumi.Input[str]
    """KMS key the bucket encrypts with."""
    cluster_access: ClusterAccess
    """The cluster's IRSA identity provider."""
    audit_prefix: str
    """Folder of the chain in the bucket (``SOVML_AUDIT_PREFIX``): its own chain under
    ``lifecycle/`` (``policies.lifecycle.chain_prefix(RECORDER_CHAIN)``), never a namespace's."""


def recorder_url(namespace: str) -> str:
    """The recorder's webhook URL inside the cluster."""
    return f"http://{NAME}.{namespace}.svc:{PORT}/alerts"


def chain_policy(
    bucket_arn: pulumi.Input[str], key_arn: pulumi.Input[str], prefix: str
) -> pulumi.Output[str]:
    """List the bucket (under the prefix), read and add objects of the chain, use its key."""

    def document(values: list[str]) -> str:
        bucket, key = values
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        # The head (one-key LISTs), and once at start the recorded firings.
                        "Sid": "FindTheChainsHead",
                        "Effect": "Allow",
                        "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
                        "Resource": bucket,
                        "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", f"{prefix}/"]}},
                    },
                    {
                        "Sid": "ReadAndAppendEntries",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject"],
                        "Resource": f"{bucket}/{prefix}/*",
                    },
                    {
                        "Sid": "UseTheBucketKey",
                        "Effect": "Allow",
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                        "Resource": key,
                    },
                ],
            }
        )

    return pulumi.Output.all(bucket_arn, key_arn).apply(document)


class AuditRecorder(pulumi.ComponentResource):
    """The recorder's IRSA account, token, Deployment, Service and NetworkPolicy.

    ``url`` and ``token`` (a secret Output) are what Alertmanager's configuration needs.
    """

    url: str
    """Where Alertmanager posts (:func:`recorder_url`)."""
    token: pulumi.Output[str]
    """The bearer token Alertmanager sends (secret)."""

    def __init__(
        self, name: str, args: AuditRecorderArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        tag = args.image.rsplit("/", 1)[-1]
        if ":" not in tag or args.image.endswith(":latest"):
            raise ValueError(f"AuditRecorderArgs.image: {args.image}; allowed a pinned tag")
        prefix = args.audit_prefix
        root, _, chain = prefix.partition("/")
        if root != LIFECYCLE_ROOT or not _CHAIN.match(chain):
            raise ValueError(
                f"AuditRecorderArgs.audit_prefix: {prefix!r}; allowed {LIFECYCLE_ROOT}/<chain> "
                "(one DNS label, its own chain)"
            )
        super().__init__(f"{TYPE_PREFIX}:audit_recorder:AuditRecorder", name, None, opts)
        ns = args.namespace
        irsa_service_account(
            self,
            name,
            access=args.cluster_access,
            namespace=ns,
            service_account=NAME,
            inline_policy=chain_policy(
                pulumi.Output.concat("arn:", partition_of(self), ":s3:::", args.audit_bucket),
                args.audit_key_arn,
                prefix,
            ),
        )
        token = random.RandomPassword(f"{name}-token", length=48, special=False, opts=child(self))
        self.token = pulumi.Output.secret(token.result)
        k8s.core.v1.Secret(
            f"{name}-token",
            metadata=metadata(TOKEN_SECRET, ns),
            type="Opaque",
            string_data={"token": self.token},
            opts=child(self),
        )
        self._deployment(name, args, prefix)
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(NAME, ns),
            spec={"selector": LABELS, "ports": [{"name": "http", "port": PORT}]},
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-from-alertmanager",
            metadata=metadata("allow-alertmanager-to-recorder", ns),
            spec={
                "podSelector": {"matchLabels": LABELS},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [namespace_peer(ns, ALERTMANAGER_PODS)], "ports": tcp_ports(PORT)}
                ],
            },
            opts=child(self),
        )
        self.url = recorder_url(ns)
        self.register_outputs({})

    def _deployment(self, name: str, args: AuditRecorderArgs, prefix: str) -> None:
        server = container(
            "recorder",
            args.image,
            cpu="50m",
            memory="128Mi",
            cpu_limit="250m",
            command=["python", "-m", "pipelines.audit.recorder"],
            args=["--port", str(PORT), "--token-file", "/var/run/recorder/token"],
            env={
                "SOVML_AUDIT_BUCKET": args.audit_bucket,
                "SOVML_AUDIT_PREFIX": prefix,
                "SOVML_ACTOR": f"system:serviceaccount:{args.namespace}:{NAME}",
            },
            ports=[{"name": "http", "containerPort": PORT}],
            probe_path="/healthz",
            probe_port=PORT,
            volume_mounts=[
                {"name": "token", "mountPath": "/var/run/recorder", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        )
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(NAME, args.namespace),
            spec={
                "replicas": 1,
                # Never two at once: each would drop repeats by its own memory.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": {**LABELS, "app.kubernetes.io/part-of": "sovereign-ml"}},
                    "spec": pod_spec(
                        [server],
                        service_account=NAME,
                        volumes=[
                            {"name": "token", "secret": {"secretName": TOKEN_SECRET}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                        node_selector=pool_selector("system"),
                    ),
                },
            },
            opts=child(self),
        )
