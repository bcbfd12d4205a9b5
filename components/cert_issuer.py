"""The cluster's certificate authority: cert-manager and the one platform issuer everyone uses.

:data:`PLATFORM_ISSUER` is the single issuer name the mesh gateways, the SSO front door and Vault
ask for. In production it is AWS Private CA (a private root CA in the stack's region, its key in
AWS's HSMs, protected from deletion) reached by the ``aws-privateca-issuer`` controller; elsewhere
a self-signed bootstrap issuer signs a CA certificate kept in cert-manager's namespace and a CA
issuer of the same name signs with it. Either way the issuer reference is :func:`issuer_ref`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child, partition_of, policy, region_of
from components._irsa import ClusterAccess, irsa_role
from components._k8s import (
    chart_container_security,
    helm_release,
    metadata,
    pool_selector,
    role_annotation,
    runtime_default,
    tcp_ports,
)
from policies import inventory

PLATFORM_ISSUER = "sovml-platform-ca"
"""The one cluster-wide issuer of the platform's TLS certificates (gateways, SSO, Vault)."""
BOOTSTRAP_ISSUER = "sovml-selfsigned-bootstrap"
"""Non-production only: signs the platform CA's own certificate, nothing else."""
PCA_ISSUER_SERVICE_ACCOUNT = "aws-privateca-issuer"
"""Service account of the AWS Private CA issuer (its IRSA role trusts exactly this one)."""
PCA_GROUP = "awspca.cert-manager.io"
"""API group of ``AWSPCAClusterIssuer``."""
PCA_KEY_STORAGE = "FIPS_140_2_LEVEL_2_OR_HIGHER"
"""AWS Private CA key storage: the standard every region that offers the service accepts (the
API's default, Level 3, is refused in some newer regions; the HSMs may still be Level 3)."""
WEBHOOK_PORT = 10250
"""cert-manager webhook's container port (the chart's ``webhook.securePort``)."""
VAULT_TLS_SECRET = "vault-server-tls"
"""The Secret :mod:`components.vault` mounts (tls.crt, tls.key, ca.crt)."""
CA_VALIDITY_YEARS = 10
"""Validity of the private root CA certificate."""


def issuer_ref(private_ca: bool) -> dict[str, str]:
    """The ``issuerRef`` of a cert-manager Certificate signed by :data:`PLATFORM_ISSUER`."""
    if private_ca:
        return {"name": PLATFORM_ISSUER, "kind": "AWSPCAClusterIssuer", "group": PCA_GROUP}
    return {"name": PLATFORM_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"}


@dataclass
class CertificateIssuerArgs:
    """Inputs of :class:`CertificateIssuer`."""

    cluster_access: ClusterAccess
    """IRSA access to the cluster (the Private CA issuer's role trusts its OIDC provider)."""
    vpc_cidr: str
    """The EKS control plane calls cert-manager's webhook from ENIs in this CIDR."""
    ca_common_name: str
    """Subject common name of the platform CA (e.g. ``sovml prod-uae platform CA``)."""
    organization: str
    """Subject organization of the platform CA (the stack's owner)."""
    private_ca: bool = True
    """AWS Private CA (production) instead of the in-cluster bootstrap CA."""
    namespace: str = "cert-manager"
    """Namespace of cert-manager, the Private CA issuer and the bootstrap CA's key."""
    vault_namespace: str = "vault"
    """Namespace of Vault, whose server certificate is issued here."""
    vault_replicas: int = 3
    """Vault's raft peers (``vault-<i>.vault-internal`` are in its certificate)."""
    protect: bool = True
    """Protect the private CA and cert-manager's release (production)."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


class CertificateIssuer(pulumi.ComponentResource):
    """cert-manager (pinned jetstack chart, CRDs with it, restricted pods on the system pool),
    :data:`PLATFORM_ISSUER`, and Vault's server certificate.

    Production: an ``aws.acmpca.CertificateAuthority`` (private ROOT, general purpose, RSA 4096,
    in the AWS provider's region, protected) self-signs its CA certificate; the
    ``aws-privateca-issuer`` controller signs with it through an IRSA role allowed only
    ``acm-pca:IssueCertificate``, ``GetCertificate`` and ``DescribeCertificateAuthority`` on that
    CA's ARN. Elsewhere: self-signed bootstrap issuer -> CA Certificate (ECDSA P-256, 10 years) ->
    CA ClusterIssuer. The Vault certificate (``vault-server-tls``) names the service, its
    headless peers and loopback, for server and client auth (raft peers present it to each
    other), so Vault's TLS no longer depends on anything outside the program.
    """

    ca_arn: pulumi.Output[str] | None
    """ARN of the private CA (production), else None."""
    ca_certificate_pem: pulumi.Output[str] | None
    """PEM of the private CA's certificate (production), else None: the bootstrap CA lives only
    in the cluster (Secret ``sovml-platform-ca`` in cert-manager's namespace)."""

    def __init__(
        self, name: str, args: CertificateIssuerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        for key in ("namespace", "vault_namespace"):
            if getattr(args, key) in ("", "kube-system", "default"):
                raise ValueError(
                    f"CertificateIssuerArgs.{key}: {getattr(args, key)!r}; allowed "
                    "a platform namespace"
                )
        if not args.ca_common_name.strip() or len(args.ca_common_name) > 64:
            raise ValueError(
                f"CertificateIssuerArgs.ca_common_name: {args.ca_common_name!r}; allowed 1-64 "
                "characters (X.509 upper bound)"
            )
        try:
            ipaddress.ip_network(args.vpc_cidr, strict=True)
        except ValueError:
            raise ValueError(
                f"CertificateIssuerArgs.vpc_cidr: {args.vpc_cidr!r}; allowed an IPv4 CIDR"
            ) from None
        super().__init__(f"{TYPE_PREFIX}:cert_issuer:CertificateIssuer", name, None, opts)
        ns = args.namespace
        release = helm_release(
            f"{name}-cert-manager",
            args.sources.chart("cert-manager-chart"),
            namespace=ns,
            values=cert_manager_values(args),
            opts=child(self, protect=args.protect),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-webhook-from-control-plane",
            metadata=metadata("allow-control-plane-to-webhook", ns),
            spec={
                "podSelector": {"matchLabels": {"app.kubernetes.io/component": "webhook"}},
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
        after = child(self, depends_on=[release])
        if args.private_ca:
            issuer = self._private_ca(name, args, after)
        else:
            self.ca_arn = None
            self.ca_certificate_pem = None
            issuer = self._bootstrap_ca(name, args, after)
        self.issuer = issuer
        k8s.apiextensions.CustomResource(
            f"{name}-vault-tls",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=metadata(VAULT_TLS_SECRET, args.vault_namespace),
            spec=vault_certificate_spec(args),
            opts=child(self, depends_on=[issuer]),
        )
        self.register_outputs({"ca_arn": self.ca_arn})

    def _private_ca(
        self, name: str, args: CertificateIssuerArgs, opts: pulumi.ResourceOptions
    ) -> pulumi.Resource:
        ca = aws.acmpca.CertificateAuthority(
            f"{name}-private-ca",
            type="ROOT",
            usage_mode="GENERAL_PURPOSE",
            key_storage_security_standard=PCA_KEY_STORAGE,
            certificate_authority_configuration={
                "key_algorithm": "RSA_4096",
                "signing_algorithm": "SHA512WITHRSA",
                "subject": {
                    "common_name": args.ca_common_name,
                    "organization": args.organization,
                },
            },
            permanent_deletion_time_in_days=30,
            opts=child(self, protect=args.protect),
        )
        cert = aws.acmpca.Certificate(
            f"{name}-private-ca-certificate",
            certificate_authority_arn=ca.arn,
            certificate_signing_request=ca.certificate_signing_request,
            signing_algorithm="SHA512WITHRSA",
            template_arn=pulumi.Output.concat(
                "arn:", partition_of(self), ":acm-pca:::template/RootCACertificate/V1"
            ),
            validity={"type": "YEARS", "value": str(CA_VALIDITY_YEARS)},
            opts=child(self, protect=args.protect),
        )
        installed = aws.acmpca.CertificateAuthorityCertificate(
            f"{name}-private-ca-installed",
            certificate_authority_arn=ca.arn,
            certificate=cert.certificate,
            certificate_chain=cert.certificate_chain,
            opts=child(self, protect=args.protect),
        )
        self.ca_arn = ca.arn
        self.ca_certificate_pem = cert.certificate
        role = irsa_role(
            f"{name}-pca-issuer-irsa",
            access=args.cluster_access,
            namespace=args.namespace,
            service_account=PCA_ISSUER_SERVICE_ACCOUNT,
            inline_policy=policy(
                [
                    {
                        "Sid": "IssueFromThePlatformCaOnly",
                        "Effect": "Allow",
                        "Action": [
                            "acm-pca:IssueCertificate",
                            "acm-pca:GetCertificate",
                            "acm-pca:DescribeCertificateAuthority",
                        ],
                        "Resource": ca.arn,
                    }
                ]
            ),
            opts=child(self),
        )
        pca_release = helm_release(
            f"{name}-pca-issuer",
            args.sources.chart("aws-privateca-issuer-chart"),
            namespace=args.namespace,
            values=pca_issuer_values(args, role.arn),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[installed])),
        )
        return k8s.apiextensions.CustomResource(
            f"{name}-platform-issuer",
            api_version=f"{PCA_GROUP}/v1beta1",
            kind="AWSPCAClusterIssuer",
            metadata=metadata(PLATFORM_ISSUER),
            spec={"arn": ca.arn, "region": region_of(self)},
            opts=child(self, depends_on=[pca_release, installed]),
        )

    def _bootstrap_ca(
        self, name: str, args: CertificateIssuerArgs, opts: pulumi.ResourceOptions
    ) -> pulumi.Resource:
        bootstrap = k8s.apiextensions.CustomResource(
            f"{name}-bootstrap-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=metadata(BOOTSTRAP_ISSUER),
            spec={"selfSigned": {}},
            opts=opts,
        )
        ca = k8s.apiextensions.CustomResource(
            f"{name}-bootstrap-ca",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=metadata(PLATFORM_ISSUER, args.namespace),
            spec={
                "isCA": True,
                "commonName": args.ca_common_name,
                "subject": {"organizations": [args.organization]},
                "secretName": PLATFORM_ISSUER,
                "duration": f"{CA_VALIDITY_YEARS * 365 * 24}h",
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "issuerRef": {
                    "name": BOOTSTRAP_ISSUER,
                    "kind": "ClusterIssuer",
                    "group": "cert-manager.io",
                },
            },
            opts=child(self, depends_on=[bootstrap]),
        )
        # A ClusterIssuer's CA Secret is read from cert-manager's own namespace.
        return k8s.apiextensions.CustomResource(
            f"{name}-platform-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=metadata(PLATFORM_ISSUER),
            spec={"ca": {"secretName": PLATFORM_ISSUER}},
            opts=child(self, depends_on=[ca]),
        )


def vault_certificate_spec(args: CertificateIssuerArgs) -> dict[str, Any]:
    """Vault's server certificate: the service, its raft peers, loopback; server and client
    auth (peers present it when joining)."""
    ns = args.vault_namespace
    names = [
        "vault",
        f"vault.{ns}",
        f"vault.{ns}.svc",
        f"vault.{ns}.svc.cluster.local",
        "vault-active",
        f"vault-active.{ns}.svc",
        "*.vault-internal",
        f"*.vault-internal.{ns}.svc.cluster.local",
        *(f"vault-{i}.vault-internal" for i in range(args.vault_replicas)),
    ]
    return {
        "secretName": VAULT_TLS_SECRET,
        "commonName": f"vault.{ns}.svc",
        "dnsNames": names,
        "ipAddresses": ["127.0.0.1"],
        "duration": "2160h",
        "renewBefore": "360h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
        "issuerRef": issuer_ref(args.private_ca),
    }


def _pod_hardening() -> dict[str, Any]:
    return {"runAsNonRoot": True, "seccompProfile": runtime_default()}


def cert_manager_values(args: CertificateIssuerArgs) -> dict[str, Any]:
    """The jetstack chart's values: CRDs installed and kept, restricted pods, system pool."""
    per_pod = {
        "nodeSelector": pool_selector("system"),
        "securityContext": _pod_hardening(),
        "containerSecurityContext": chart_container_security(),
    }
    values: dict[str, Any] = {
        # crds.enabled replaces installCRDs since v1.15; keep stops an uninstall deleting every
        # Certificate in the cluster with the CRDs.
        "crds": {"enabled": True, "keep": True},
        "replicaCount": 2,
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "enableCertificateOwnerRef": True,
        "prometheus": {"enabled": True},
        **per_pod,
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "webhook": {
            "replicaCount": 2,
            "securePort": WEBHOOK_PORT,
            "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
            **per_pod,
        },
        "cainjector": {
            "replicaCount": 2,
            "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
            **per_pod,
        },
        "startupapicheck": {**per_pod},
    }
    return args.sources.chart_images("cert-manager-chart", values)


def pca_issuer_values(args: CertificateIssuerArgs, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The aws-privateca-issuer chart's values: its IRSA service account, hardened pods, and
    cert-manager allowed to approve its requests."""
    return args.sources.chart_images(
        "aws-privateca-issuer-chart",
        {
            "replicaCount": 2,
            "serviceAccount": {
                "create": True,
                "name": PCA_ISSUER_SERVICE_ACCOUNT,
                "annotations": role_annotation(role_arn),
            },
            "podSecurityContext": {**_pod_hardening(), "runAsUser": 65532},
            "securityContext": chart_container_security(),
            "nodeSelector": pool_selector("system"),
            "approverRole": {
                "enabled": True,
                "serviceAccountName": "cert-manager",
                "namespace": args.namespace,
            },
        },
    )
