"""Certificates and single sign-on of one stack (#22): the platform issuer, Dex and oauth2-proxy.

Split from :mod:`infra.platform` like :mod:`infra.tracking`: it takes what it needs as arguments
and imports nothing from the platform at run time. :func:`identity` runs right after the cluster
baseline: cert-manager and the platform issuer come before any workload, since Vault mounts the
certificate issued here and the gateways' certificates name the same issuer. Production stacks
get AWS Private CA; the others an in-cluster bootstrap CA (:mod:`components.cert_issuer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components._dex import VAULT_CLI_CALLBACK, VAULT_CLIENT, WebUi
from components.cert_issuer import CertificateIssuer, CertificateIssuerArgs, issuer_ref
from components.mlflow import LABELS as MLFLOW_PODS
from components.mlflow import NAME as MLFLOW_NAME
from components.mlflow import PORT as MLFLOW_PORT
from components.sso import SingleSignOn, SingleSignOnArgs
from components.vault_layout import OperatorSso
from infra.config import PlatformConfig
from infra.config.sso_keys import LDAP_BIND_PASSWORD, OIDC_CLIENT_SECRET
from infra.images.sources import sources_for

if TYPE_CHECKING:
    from infra.foundation import KubernetesCluster

CERT_MANAGER_NAMESPACE = "cert-manager"
"""cert-manager, the Private CA issuer and the bootstrap CA's key."""
AUTH_NAMESPACE = "auth"
"""Dex and the oauth2-proxies (stacks with single sign-on)."""
KFP_UI = WebUi(
    "pipelines", "pipelines", "kubeflow", "ml-pipeline-ui", 80, 3000, {"app": "ml-pipeline-ui"}
)
"""The Kubeflow Pipelines UI (upstream manifests: Service port 80 to the pods' 3000)."""
MLFLOW_UI = WebUi(
    "mlflow", "mlflow", "kubeflow", MLFLOW_NAME, MLFLOW_PORT, MLFLOW_PORT, MLFLOW_PODS
)
"""MLflow's UI and API (enterprise stacks, :mod:`infra.tracking`)."""
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": "prometheus"}
GRAFANA_UI = WebUi("grafana", "grafana", "monitoring", "prometheus-grafana", 80, 3000, GRAFANA_PODS)
"""Grafana of the ``prometheus`` kube-prometheus-stack release (:mod:`components.monitoring`)."""


@dataclass(frozen=True)
class Identity:
    """What the rest of the platform takes from here."""

    issuer: CertificateIssuer
    """cert-manager and the platform issuer."""
    sso: SingleSignOn | None
    """Dex and the oauth2-proxies (None: ``ssoConnector: none``)."""
    opts: pulumi.ResourceOptions
    """The workloads' options, after the issuer (Vault's certificate exists before Vault)."""


def identity_namespaces(cfg: PlatformConfig) -> tuple[str, ...]:
    """The namespaces this module deploys into (the baseline creates and guards them)."""
    return (CERT_MANAGER_NAMESPACE, *((AUTH_NAMESPACE,) if cfg.sso else ()))


def profile_owners(cfg: PlatformConfig) -> dict[str, str]:
    """Kubeflow profile owner by tenant (empty without single sign-on: single-user KFP)."""
    return dict(cfg.sso.tenant_owners) if cfg.sso else {}


def operator_sso(cfg: PlatformConfig) -> OperatorSso | None:
    """Operators' Vault login through Dex, where the stack names an operator group."""
    if cfg.sso is None or not cfg.sso.operator_group:
        return None
    return OperatorSso(
        issuer=cfg.sso.issuer,
        client_id=VAULT_CLIENT,
        operator_group=cfg.sso.operator_group,
        # Vault's UI is not exposed through the gateway: the CLI's loopback callback only.
        redirect_uris=(VAULT_CLI_CALLBACK,),
    )


def identity(
    cfg: PlatformConfig,
    eks: KubernetesCluster,
    opts: pulumi.ResourceOptions,
) -> Identity:
    """The platform issuer (and Vault's certificate), then single sign-on where configured."""
    issuer = CertificateIssuer(
        "certs",
        CertificateIssuerArgs(
            cluster_access=eks.cluster.access,
            vpc_cidr=cfg.network.cidr,
            ca_common_name=f"sovml {cfg.stack} platform CA"[:64],
            organization=cfg.tags.owner,
            private_ca=cfg.production,
            namespace=CERT_MANAGER_NAMESPACE,
            protect=cfg.production,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )
    after = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[issuer]))
    sso = None
    if cfg.sso is not None:
        # The credential is read as a Pulumi secret, never as plain config (config validation
        # refused a plain value and made sure it is set for oidc and ldap).
        key = {"oidc": OIDC_CLIENT_SECRET, "ldap": LDAP_BIND_PASSWORD}.get(cfg.sso.connector)
        sso = SingleSignOn(
            "sso",
            SingleSignOnArgs(
                settings=cfg.sso,
                uis=[KFP_UI, MLFLOW_UI, GRAFANA_UI],
                issuer_ref=issuer_ref(cfg.production),
                connector_secret=pulumi.Config().require_secret(key) if key else None,
                namespace=AUTH_NAMESPACE,
                sources=sources_for(cfg),
                client_cidrs=[cfg.network.cidr],
            ),
            opts=after,
        )
    return Identity(issuer, sso, after)
