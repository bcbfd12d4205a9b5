"""The mesh's authorization table: which identities may reach which workloads, on which ports.

One row per path the NetworkPolicies open between pods (``components/k8s_baseline.py`` and the
components' own), written here once and turned into Istio ALLOW AuthorizationPolicies by
:class:`components.mesh.ServiceMesh`. A NetworkPolicy admits a namespace (or its pods by
label); the row admits only the service accounts that actually call, by their mTLS identity
(``cluster.local/ns/<ns>/sa/<sa>``), so a compromised pod elsewhere in that namespace is refused
even where the network lets it through. ``tests/test_mesh.py`` checks, on every example stack's
synth record, that each NetworkPolicy ingress peer has a row here and each row a NetworkPolicy.

Peers that cannot map are listed in :data:`UNMAPPED`: the EKS control plane calls admission
webhooks and aggregated APIs from the VPC with no mesh identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from components import audit_recorder, feature_store, katib, keda, kubeflow, mlflow, monitoring
from components.k8s_baseline import PUSHGATEWAY_PODS, PUSHGATEWAY_PORT, SERVING_PORTS
from policies.gateway_metrics import GATEWAY_NAMESPACE, GATEWAY_WORKLOAD

TRUST_DOMAIN = "cluster.local"
"""The mesh's trust domain (Istio's default): the first part of every workload principal."""
PROMETHEUS_SA = ("monitoring", "prometheus-kube-prometheus-prometheus")
"""The Prometheus server's service account: kube-prometheus-stack's release ``prometheus`` names
it like the server's Service (``monitoring.PROMETHEUS_URL``)."""
ALERTMANAGER_SA = ("monitoring", "prometheus-kube-prometheus-alertmanager")
"""Alertmanager's service account (same chart naming)."""
PIPELINE_SA = "pipeline-runner"
"""The service account Kubeflow Pipelines runs steps as, in ``kubeflow`` and each tenant."""
TRITON_SA = ("serving", "triton")
"""Triton's service account (``components/serving.py``)."""
DRIFT_SA = ("monitoring", "drift-monitor")
"""The drift job's service account (``components/monitoring.py``)."""
KATIB_TRIAL_SA = "default"
"""The service account of Katib's trial pods (pipelines/training/katib.py sets none, and mounts no
token): their metrics collector reports from it to the DB manager."""
KEDA_OPERATOR_SA = ("keda", "keda-operator")
"""The KEDA operator's service account (the kedacore chart's name for it)."""
METACONTROLLER_SA = ("kubeflow", kubeflow.METACONTROLLER_SA)
"""metacontroller's service account (multi-user Kubeflow Pipelines): it calls the pipelines
profile controller's sync hook."""
UNMAPPED = {
    ("keda", "allow-control-plane"): "the EKS control plane (VPC ENIs) calls KEDA's metrics API "
    "and webhooks: no mesh identity",
    ("cosign-system", "allow-control-plane"): "the EKS control plane calls the signature "
    "admission webhook: no mesh identity",
    ("kubeflow", "allow-katib-webhooks"): "the EKS control plane calls Katib's admission "
    "webhooks (port 8443, out of the sidecar by the overlay's annotation): no mesh identity",
    ("istio-ingress", "allow-gateway-clients"): "clients outside the mesh reach the ingress "
    "gateway through the load balancer: they carry a JWT of the stack's issuer (SOV-ZT-004) or "
    "reach the sign-on front door, never a mesh identity",
    ("istio-system", "allow-webhook-from-control-plane"): "the EKS control plane calls istiod's "
    "injection webhook; istiod has no sidecar",
    ("istio-system", "allow-mesh-to-istiod"): "sidecars fetch config and certificates from "
    "istiod over its own TLS (port 15012): istiod runs without a sidecar",
}
"""NetworkPolicies (namespace, name) whose ingress has no authorization counterpart, and why."""
PROXY_PORTS = (15020, 15090)
"""Istio's merged-metrics port and Envoy's Prometheus port: what Prometheus scrapes on a
gateway (policies/rules/front_door.py's proxy ports hold them)."""
TIGHTENED = {
    "allow-same-namespace": "a gateway namespace runs only its gateway, whose pods never call "
    "each other: the mesh admits no same-namespace caller there",
}
"""Baseline NetworkPolicies (by name) the mesh tightens to nothing in gateway namespaces."""
BY_ADDRESS = {
    ("istio-egress", "allow-egress-clients"): "the egress gateway's server is TLS PASSTHROUGH: "
    "the pods' own TLS to the AWS endpoint passes through it unterminated, so no mesh principal "
    "is presented; its ALLOW policy admits the VPC's pod addresses on the gateway port and only "
    "the allow-listed SNI names (components/mesh_egress.py)",
}
"""NetworkPolicies (namespace, name) whose authorization counterpart admits by address and SNI,
not by principal, and why."""


def principal(namespace: str, service_account: str) -> str:
    """The mTLS identity of a workload running as ``service_account`` in ``namespace``."""
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class MeshPath:
    """Who may call which workloads of one namespace, on which ports (one ALLOW policy)."""

    namespace: str
    """Where the called workloads run (the policy's namespace)."""
    name: str
    """The AuthorizationPolicy's name (``allow-`` and what it admits)."""
    principals: tuple[str, ...] = ()
    """Service-account principals admitted (:func:`principal`)."""
    namespaces: tuple[str, ...] = ()
    """Namespaces any of whose mesh identities is admitted (a principal is still required)."""
    selector: dict[str, str] = field(default_factory=dict)
    """Pod labels of the called workloads; empty: every workload of the namespace."""
    ports: tuple[int, ...] = ()
    """Destination ports; empty: every port."""


def mesh_paths(
    enrolled: Sequence[str],
    tenants: Sequence[str],
    *,
    keda_namespace: bool,
    tracking: bool,
    katib_trials: Sequence[str] = (),
    gateways: Sequence[str] = (),
    profiles: bool = False,
) -> list[MeshPath]:
    """The paths of a stack whose mesh enrolls ``enrolled`` (platform and tenant namespaces).

    ``keda_namespace``: KEDA runs (its operator queries Prometheus); ``tracking``: MLflow runs in
    ``kubeflow`` and the tenants' pipelines log to it; ``katib_trials``: the namespaces whose Katib
    trials report metrics to Katib's DB manager in ``kubeflow`` (empty: no Katib); ``gateways``:
    the namespaces of the ingress and egress gateways, which get no same-namespace path (gateways
    never call each other) and are scraped on Istio's proxy ports only (:data:`PROXY_PORTS`);
    ``profiles``: Kubeflow Pipelines runs multi-user (single sign-on), so metacontroller calls the
    pipelines profile controller's hook in ``kubeflow``.
    """
    out: list[MeshPath] = []
    prometheus = principal(*PROMETHEUS_SA)
    for ns in enrolled:
        if ns in gateways:
            # A gateway's pods take requests from outside (ingress) or for outside (egress): a
            # rule without a token or an SNI there would open a route, so only the proxy's own
            # metrics ports are scraped.
            out.append(
                MeshPath(ns, "allow-monitoring-scrape", principals=(prometheus,), ports=PROXY_PORTS)
            )
            continue
        out.append(MeshPath(ns, "allow-same-namespace", namespaces=(ns,)))
        # The NetworkPolicy admits every monitoring pod; only the Prometheus server scrapes.
        out.append(MeshPath(ns, "allow-monitoring-scrape", principals=(prometheus,)))
    # Triton's HTTP and gRPC ports: the inference gateway alone (its chart names the service
    # account after the release), so inference is reachable only with a token through it.
    out.append(
        MeshPath(
            "serving",
            "allow-gateway-clients",
            principals=(principal(GATEWAY_NAMESPACE, GATEWAY_WORKLOAD),),
            ports=SERVING_PORTS,
        )
    )
    out.append(
        MeshPath(
            "feature-store",
            "allow-feature-clients",
            principals=(principal(*TRITON_SA), principal("kubeflow", PIPELINE_SA)),
            selector=dict(feature_store.SERVER_LABELS),
            ports=(feature_store.PORTS["http"],),
        )
    )
    out.append(
        MeshPath(
            "monitoring",
            "allow-pipeline-pushes",
            principals=(principal("kubeflow", PIPELINE_SA),),
            selector=dict(PUSHGATEWAY_PODS),
            ports=(PUSHGATEWAY_PORT,),
        )
    )
    out.append(
        MeshPath(
            "monitoring",
            "allow-alertmanager-to-recorder",
            principals=(principal(*ALERTMANAGER_SA),),
            selector=dict(audit_recorder.LABELS),
            ports=(audit_recorder.PORT,),
        )
    )
    out.append(
        MeshPath(
            "kubeflow",
            "allow-retraining-from-drift",
            principals=(principal(*DRIFT_SA),),
            selector={"app": "ml-pipeline"},
            ports=(monitoring.KFP_PORT,),
        )
    )
    if keda_namespace:
        out.append(
            MeshPath(
                "monitoring",
                "allow-queries-from-keda",
                principals=(principal(*KEDA_OPERATOR_SA),),
                selector=dict(keda.PROMETHEUS_LABELS),
                ports=(keda.KedaArgs.prometheus_port,),
            )
        )
    if tracking and tenants:
        out.append(
            MeshPath(
                "kubeflow",
                "allow-tracking-clients",
                principals=tuple(principal(t, PIPELINE_SA) for t in tenants),
                selector=dict(mlflow.LABELS),
                ports=(mlflow.PORT,),
            )
        )
    if profiles:
        # Both enrolled by the multi-user overlay, so the hook call carries metacontroller's
        # identity over mTLS; the same-namespace row admits it too, this one names the caller.
        out.append(
            MeshPath(
                "kubeflow",
                "allow-profile-sync-hook",
                principals=(principal(*METACONTROLLER_SA),),
                selector=dict(kubeflow.PROFILE_CONTROLLER_PODS),
                ports=(kubeflow.PROFILE_CONTROLLER_PORT,),
            )
        )
    reporters = sorted(set(katib_trials) - {"kubeflow"})  # kubeflow's own: same namespace
    if reporters:
        out.append(
            MeshPath(
                "kubeflow",
                "allow-katib-reports",
                principals=tuple(principal(t, KATIB_TRIAL_SA) for t in reporters),
                selector=dict(katib.DB_MANAGER_PODS),
                ports=(katib.DB_MANAGER_PORT,),
            )
        )
    # A row for a namespace the stack does not have would name nothing.
    return [p for p in out if p.namespace in enrolled]
