"""HashiCorp Vault on the cluster: HA raft, KMS auto-unseal through IRSA, TLS, audit storage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components._aws import TYPE_PREFIX, child, policy, region_of
from components._irsa import ClusterAccess, irsa_role
from components._k8s import (
    ENCRYPTED_STORAGE_CLASS,
    chart_container_security,
    helm_release,
    pool_selector,
    role_annotation,
    runtime_default,
)
from policies import inventory

CHART = inventory.chart("vault-chart")
IMAGE = (inventory.entry("vault", "image").upstream, inventory.entry("vault", "image").version)
TLS_SECRET = "vault-server-tls"


@dataclass
class VaultArgs:
    """Inputs of :class:`Vault`."""

    namespace: str
    """Namespace to install into (created by the baseline, Pod Security restricted)."""
    unseal_key_arn: pulumi.Input[str]
    """Dedicated KMS key for auto-unseal."""
    cluster_access: ClusterAccess
    """IRSA access to the cluster (its OIDC provider)."""
    replicas: int = 3
    """Raft voters; 3 or 5 (an odd number keeps quorum through one or two losses)."""
    storage_class: str = ENCRYPTED_STORAGE_CLASS
    """StorageClass of the data and audit volumes (KMS-encrypted EBS)."""
    data_size: str = "10Gi"
    """Raft data volume size per replica."""
    protect: bool = True
    """Protect the release (and so its volumes) from deletion (production)."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


def server_config(region: str, key_arn: str, replicas: int) -> str:
    """Vault's HCL: TLS listener, raft storage joining its peers, awskms seal."""
    joins = "\n".join(f"""  retry_join {{
    leader_api_addr         = "https://vault-{i}.vault-internal:8200"
    leader_ca_cert_file     = "/vault/userconfig/{TLS_SECRET}/ca.crt"
    leader_client_cert_file = "/vault/userconfig/{TLS_SECRET}/tls.crt"
    leader_client_key_file  = "/vault/userconfig/{TLS_SECRET}/tls.key"
  }}""" for i in range(replicas))
    return f"""ui = true
disable_mlock = true
listener "tcp" {{
  address            = "[::]:8200"
  cluster_address    = "[::]:8201"
  tls_cert_file      = "/vault/userconfig/{TLS_SECRET}/tls.crt"
  tls_key_file       = "/vault/userconfig/{TLS_SECRET}/tls.key"
  tls_client_ca_file = "/vault/userconfig/{TLS_SECRET}/ca.crt"
  tls_min_version    = "tls12"
}}
storage "raft" {{
  path = "/vault/data"
{joins}
}}
seal "awskms" {{
  region     = "{region}"
  kms_key_id = "{key_arn}"
}}
service_registration "kubernetes" {{}}
"""


class Vault(pulumi.ComponentResource):
    """Vault from its official Helm chart (pinned): the platform's key and secret service.

    Three raft replicas spread across zones with a PodDisruptionBudget, auto-unseal with a
    dedicated KMS key reached through IRSA (no unseal keys to hand out), TLS on every listener
    from the ``vault-server-tls`` Secret (issued by the cluster's CA, e.g. cert-manager), data
    and audit volumes on the KMS-encrypted StorageClass, restricted pod security, no injector.
    The unseal key is reached in the AWS provider's region. Vault's own configuration (engines,
    policies, roles, audit device) is
    :class:`~components.vault_config.VaultConfig`, applied once Vault is up and initialised.
    """

    release_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: VaultArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.replicas not in (3, 5):
            raise ValueError(f"VaultArgs.replicas: {args.replicas}; allowed 3 or 5")
        super().__init__(f"{TYPE_PREFIX}:vault:Vault", name, None, opts)

        unseal = irsa_role(
            f"{name}-unseal-irsa",
            access=args.cluster_access,
            namespace=args.namespace,
            service_account="vault",
            inline_policy=policy(
                [
                    {
                        "Sid": "AutoUnsealWithTheVaultKeyOnly",
                        "Effect": "Allow",
                        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                        "Resource": args.unseal_key_arn,
                    }
                ]
            ),
            opts=child(self),
        )
        region = region_of(self)
        config = pulumi.Output.all(region, args.unseal_key_arn).apply(
            lambda a: server_config(a[0], a[1], args.replicas)
        )
        release = helm_release(
            f"{name}-release",
            args.sources.chart("vault-chart"),
            namespace=args.namespace,
            values=chart_values(args, region, unseal.arn, config),
            # Raft data lives on the release's volumes: deleting it loses every secret.
            opts=child(self, protect=args.protect, retain_on_delete=args.protect),
        )
        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})


def chart_values(
    args: VaultArgs,
    region: pulumi.Input[str],
    unseal_role_arn: pulumi.Input[str],
    config: pulumi.Input[str],
) -> dict[str, Any]:
    """The official chart's values: HA raft with ``config``, TLS, encrypted volumes, hardened."""
    selector = {"app.kubernetes.io/name": "vault", "component": "server"}
    # server.image from the inventory; the injector (agent injector and agent images) is off.
    return args.sources.chart_images(
        "vault-chart",
        {
            "global": {"enabled": True, "tlsDisable": False},
            "injector": {"enabled": False},
            "server": {
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "256Mi"},
                },
                "serviceAccount": {
                    "create": True,
                    "name": "vault",
                    "annotations": role_annotation(unseal_role_arn),
                },
                "extraEnvironmentVars": {
                    "VAULT_CACERT": f"/vault/userconfig/{TLS_SECRET}/ca.crt",
                    "AWS_REGION": region,
                },
                "volumes": [{"name": TLS_SECRET, "secret": {"secretName": TLS_SECRET}}],
                "volumeMounts": [
                    {
                        "name": TLS_SECRET,
                        "mountPath": f"/vault/userconfig/{TLS_SECRET}",
                        "readOnly": True,
                    }
                ],
                "ha": {
                    "enabled": True,
                    "replicas": args.replicas,
                    "raft": {"enabled": True, "setNodeId": True, "config": config},
                    "disruptionBudget": {"enabled": True, "maxUnavailable": 1},
                },
                "dataStorage": {
                    "enabled": True,
                    "size": args.data_size,
                    "storageClass": args.storage_class,
                },
                "auditStorage": {
                    "enabled": True,
                    "size": "10Gi",
                    "storageClass": args.storage_class,
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": selector},
                    }
                ],
                "nodeSelector": pool_selector("system"),
                "statefulSet": {
                    "securityContext": {
                        "pod": {
                            "runAsNonRoot": True,
                            "runAsUser": 100,
                            "runAsGroup": 1000,
                            "fsGroup": 1000,
                            "seccompProfile": runtime_default(),
                        },
                        "container": chart_container_security(),
                    }
                },
            },
            "ui": {"enabled": True, "serviceType": "ClusterIP"},
        },
    )
