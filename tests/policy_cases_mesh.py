# ruff: noqa: E501  (one case per line, like tests/policy_cases.py)
"""Pass and fail fixtures of the zero-trust mesh rules (SOV-ZT-001..003), as an attacker writes
them: a namespace labelled out, a pod opting out of its sidecar, a port taken out of capture, a
PERMISSIVE port-level override, an ALLOW rule that admits everyone."""

from __future__ import annotations

from typing import Any

from policies.rules import Resource
from tests.policy_fixtures import R

HELM = "kubernetes:helm.sh/v3:Release"
NS = "kubernetes:core/v1:Namespace"
PA = "kubernetes:security.istio.io/v1:PeerAuthentication"
AP = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
DR = "kubernetes:networking.istio.io/v1:DestinationRule"
DEPLOY = "kubernetes:apps/v1:Deployment"
ISTIO = "https://istio-release.storage.googleapis.com/charts"
TRITON = "cluster.local/ns/serving/sa/triton"


def _ns(name: str, injection: str | None = "enabled") -> Resource:
    labels = {"istio-injection": injection} if injection is not None else {}
    return R(NS, f"ns-{name}", {"metadata": {"name": name, "labels": labels}})


def _release(
    chart: str, namespace: str, values: dict[str, Any] | None = None, repo: str = ISTIO
) -> Resource:
    inputs = {
        "name": chart,
        "chart": chart,
        "version": "1.28.10",
        "namespace": namespace,
        "repositoryOpts": {"repo": repo},
        "values": values or {},
    }
    return R(HELM, f"rel-{chart}", inputs)


def _istio(kind: str, typ: str, namespace: str, name: str, spec: dict[str, Any]) -> Resource:
    inputs = {
        "apiVersion": typ.split(":")[1],
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return R(typ, f"{namespace}-{name}", inputs)


def _pa(namespace: str, spec: dict[str, Any], name: str = "default") -> Resource:
    return _istio("PeerAuthentication", PA, namespace, name, spec)


def _ap(namespace: str, spec: dict[str, Any], name: str = "allow-x") -> Resource:
    return _istio("AuthorizationPolicy", AP, namespace, name, spec)


def _dr(traffic_policy: dict[str, Any]) -> Resource:
    return _istio(
        "DestinationRule",
        DR,
        "serving",
        "triton",
        {"host": "triton.serving.svc.cluster.local", "trafficPolicy": traffic_policy},
    )


def _deploy(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    namespace: str = "serving",
) -> Resource:
    meta = {"labels": labels or {}, "annotations": annotations or {}}
    spec = {
        "template": {"metadata": meta, "spec": {"containers": [{"name": "app", "image": "x:1"}]}}
    }
    return R(
        DEPLOY,
        "d",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": namespace},
            "spec": spec,
        },
    )


ISTIOD = _release("istiod", "istio-system", {"meshConfig": {"rootNamespace": "istio-system"}})
STRICT = _pa("istio-system", {"mtls": {"mode": "STRICT"}})
NOTHING = _ap("istio-system", {}, "allow-nothing")
MESH = [ISTIOD, _ns("istio-system", None), _ns("serving"), STRICT, NOTHING]
"""A stack with the mesh, one enrolled namespace, STRICT mTLS and deny by default."""
KEDA_BYPASS = {
    "podAnnotations": {
        "keda": {"traffic.sidecar.istio.io/excludeInboundPorts": "9666"},
        "metricsAdapter": {"traffic.sidecar.istio.io/excludeInboundPorts": "6443"},
        "webhooks": {"traffic.sidecar.istio.io/excludeInboundPorts": "9443"},
    }
}
KEDA_REPO = "https://kedacore.github.io/charts"
BY_TRITON = {
    "from": [{"source": {"principals": [TRITON]}}],
    "to": [{"operation": {"ports": ["6566"]}}],
}


def _pt(
    blocks: list[str] | None = None,
    snis: list[str] | None = ["kms.me-central-1.amazonaws.com"],  # noqa: B006
    extra: dict[str, Any] | None = None,
    when_extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The egress gateway's passthrough ALLOW policy (components/mesh_egress.py), varied."""
    when = ([{"key": "connection.sni", "values": snis}] if snis else []) + (when_extra or [])
    rule: dict[str, Any] = {
        "from": [{"source": {"ipBlocks": blocks or ["10.40.0.0/16"], **(extra or {})}}],
        "to": [{"operation": {"ports": ["8443"]}}],
    }
    if when:
        rule["when"] = when
    return {"selector": {"matchLabels": {"istio": "egressgateway"}}, "rules": [rule]}


HELM = "kubernetes:helm.sh/v3:Release"
FRONT = [
    R(HELM, "auth-dex", {"chart": "dex", "namespace": "auth", "values": {}}),
    R(HELM, "auth-oauth2-proxy", {"chart": "oauth2-proxy", "namespace": "auth", "values": {}}),
    R("kubernetes:networking.istio.io/v1:VirtualService", "sso-pipelines", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "sso-pipelines", "namespace": "auth"},
        "spec": {"hosts": ["pipelines.example.ae"], "gateways": ["istio-ingress/inference-gateway"],
                 "http": [{"route": [{"destination": {"host": "oauth2-proxy.auth.svc.cluster.local"}}]}]},
    }),
    R("kubernetes:networking.istio.io/v1:VirtualService", "triton", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "triton", "namespace": "serving"},
        "spec": {"hosts": ["inference.example.ae"], "gateways": ["istio-ingress/inference-gateway"],
                 "http": [{"route": [{"destination": {"host": "triton.serving.svc.cluster.local"}}]}]},
    }),
]  # fmt: skip
"""A sign-on namespace (Dex, oauth2-proxy only), its route, and a model's route."""


def _fd(hosts: list[str], blocks: list[str] | None = None) -> dict[str, Any]:
    """The ingress gateway's sign-on front-door policy (components/sso.py), varied."""
    operation: dict[str, Any] = {"ports": ["8443"]}
    if hosts:
        operation["hosts"] = hosts
    return {
        "selector": {"matchLabels": {"istio": "inference-gateway"}},
        "rules": [{"from": [{"source": {"ipBlocks": blocks or ["10.40.0.0/16"]}}],
                   "to": [{"operation": operation}]}],
    }  # fmt: skip


MESH_CASES: list[tuple[str, str, list[Resource], int]] = [
    ("SOV-ZT-001", "every namespace enrolled, root unlabelled", MESH, 0),
    ("SOV-ZT-001", "admission controller's namespace stays out", [*MESH, _ns("cosign-system", None), _release("policy-controller", "cosign-system", repo="https://sigstore.github.io/helm-charts")], 0),
    ("SOV-ZT-001", "KEDA's documented capture exceptions", [*MESH, _release("keda", "keda", KEDA_BYPASS, KEDA_REPO)], 0),
    ("SOV-ZT-001", "no namespaces, nothing to enroll", [_deploy()], 0),
    ("SOV-ZT-001", "a policy-controller release does not exempt a workload's namespace", [*MESH, _ns("apps", None), _release("policy-controller", "apps", repo="https://sigstore.github.io/helm-charts"), _deploy(namespace="apps")], 1),
    ("SOV-ZT-001", "a root namespace moved onto a workload's namespace exempts nothing", [_release("istiod", "istio-system", {"meshConfig": {"rootNamespace": "serving"}}), _ns("istio-system", None), _ns("serving", None), _deploy()], 2),
    ("SOV-ZT-001", "namespace labelled istio-injection: disabled", [*MESH, _ns("risk-analytics", "disabled")], 1),
    ("SOV-ZT-001", "namespace without the injection label", [*MESH, _ns("vault", None)], 1),
    ("SOV-ZT-001", "namespaces but no istiod release", [_ns("istio-system", None), _ns("serving"), STRICT, NOTHING], 1),
    ("SOV-ZT-001", "istio-system exempt only as the configured root", [_release("istiod", "istio-system", {"meshConfig": {"rootNamespace": "mesh-root"}}), _ns("mesh-root", None), _ns("istio-system", None)], 1),
    ("SOV-ZT-001", "pod template label opts out of injection", [*MESH, _deploy(labels={"sidecar.istio.io/inject": "false"})], 1),
    ("SOV-ZT-001", "pod template annotation opts out of injection", [*MESH, _deploy(annotations={"sidecar.istio.io/inject": "False"})], 1),
    ("SOV-ZT-001", "pod template takes a port out of capture", [*MESH, _deploy(annotations={"traffic.sidecar.istio.io/excludeInboundPorts": "8000"})], 1),
    ("SOV-ZT-001", "KEDA excludes one port more than documented", [*MESH, _release("keda", "keda", {"podAnnotations": {"keda": {"traffic.sidecar.istio.io/excludeInboundPorts": "9666,8080"}}}, KEDA_REPO)], 1),
    ("SOV-ZT-001", "a chart's values switch injection off", [*MESH, _release("vault", "vault", {"server": {"annotations": {"sidecar.istio.io/inject": "false"}}}, "https://helm.releases.hashicorp.com")], 1),
    ("SOV-ZT-002", "STRICT at the root, a tenant inherits and tightens a port", [*MESH, _pa("risk-analytics", {"mtls": {"mode": "UNSET"}, "portLevelMtls": {"8000": {"mode": "STRICT"}}})], 0),
    ("SOV-ZT-002", "ISTIO_MUTUAL destination rule", [*MESH, _dr({"tls": {"mode": "ISTIO_MUTUAL"}})], 0),
    ("SOV-ZT-002", "no mesh-wide PeerAuthentication", [ISTIOD, _ns("serving"), NOTHING], 1),
    ("SOV-ZT-002", "root PeerAuthentication PERMISSIVE (relaxed, and no STRICT)", [ISTIOD, _ns("serving"), _pa("istio-system", {"mtls": {"mode": "PERMISSIVE"}}), NOTHING], 2),
    ("SOV-ZT-002", "root STRICT only for a selected workload", [ISTIOD, _ns("serving"), _pa("istio-system", {"selector": {"matchLabels": {"app": "x"}}, "mtls": {"mode": "STRICT"}}), NOTHING], 1),
    ("SOV-ZT-002", "tenant PeerAuthentication relaxes to DISABLE", [*MESH, _pa("risk-analytics", {"mtls": {"mode": "DISABLE"}})], 1),
    ("SOV-ZT-002", "port-level PERMISSIVE under a STRICT tenant policy", [*MESH, _pa("serving", {"mtls": {"mode": "STRICT"}, "portLevelMtls": {"8002": {"mode": "PERMISSIVE"}}}, "metrics")], 1),
    ("SOV-ZT-002", "destination rule turns client mTLS off", [*MESH, _dr({"tls": {"mode": "DISABLE"}})], 1),
    ("SOV-ZT-002", "destination rule turns it off on one port", [*MESH, _dr({"portLevelSettings": [{"port": {"number": 8000}, "tls": {"mode": "DISABLE"}}]})], 1),
    ("SOV-ZT-003", "allow by service account and port", [*MESH, _ap("feature-store", {"selector": {"matchLabels": {"app": "feast"}}, "rules": [BY_TRITON]})], 0),
    ("SOV-ZT-003", "allow by namespace identity", [*MESH, _ap("serving", {"rules": [{"from": [{"source": {"namespaces": ["kubeflow"]}}]}]})], 0),
    ("SOV-ZT-003", "DENY without from is not an allow", [*MESH, _ap("serving", {"action": "DENY", "rules": [{"to": [{"operation": {"ports": ["22"]}}]}]})], 0),
    ("SOV-ZT-003", "any valid JWT at the gateway (request principals)", [*MESH, _ap("istio-ingress", {"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]})], 0),
    ("SOV-ZT-003", "passthrough egress gateway: VPC addresses, exact SNI names", [*MESH, _ap("istio-egress", _pt())], 0),
    ("SOV-ZT-003", "passthrough shape without a selector", [*MESH, _ap("istio-egress", {**_pt(), "selector": {}})], 1),
    ("SOV-ZT-003", "passthrough shape from 0.0.0.0/0", [*MESH, _ap("istio-egress", _pt(blocks=["0.0.0.0/0"]))], 1),
    ("SOV-ZT-003", "passthrough shape from a public range", [*MESH, _ap("istio-egress", _pt(blocks=["203.0.113.0/24"]))], 1),
    ("SOV-ZT-003", "passthrough shape wider than /8", [*MESH, _ap("istio-egress", _pt(blocks=["10.0.0.0/7"]))], 1),
    ("SOV-ZT-003", "passthrough shape with a wildcard SNI", [*MESH, _ap("istio-egress", _pt(snis=["*.amazonaws.com"]))], 1),
    ("SOV-ZT-003", "passthrough shape without an SNI condition", [*MESH, _ap("istio-egress", _pt(snis=None))], 1),
    ("SOV-ZT-003", "passthrough shape with notIpBlocks beside", [*MESH, _ap("istio-egress", _pt(extra={"notIpBlocks": ["10.0.0.1/32"]}))], 1),
    ("SOV-ZT-003", "passthrough shape with a second, non-SNI condition", [*MESH, _ap("istio-egress", _pt(when_extra=[{"key": "source.ip", "values": ["10.0.0.1"]}]))], 1),
    ("SOV-ZT-003", "sign-on front door: VPC addresses, only hosts an authenticator serves", [*MESH, *FRONT, _ap("istio-ingress", _fd(["pipelines.example.ae"]))], 0),
    ("SOV-ZT-003", "front door naming a host routed to a model too", [*MESH, *FRONT, _ap("istio-ingress", _fd(["pipelines.example.ae", "inference.example.ae"]))], 1),
    ("SOV-ZT-003", "front door without hosts (every route of the gateway)", [*MESH, *FRONT, _ap("istio-ingress", _fd([]))], 1),
    ("SOV-ZT-003", "front door from a public range", [*MESH, *FRONT, _ap("istio-ingress", _fd(["pipelines.example.ae"], blocks=["0.0.0.0/0"]))], 1),
    ("SOV-ZT-003", "front door host served by a namespace that also runs another chart", [*MESH, *FRONT, R(HELM, "auth-grafana", {"chart": "grafana", "namespace": "auth", "values": {}}), _ap("istio-ingress", _fd(["pipelines.example.ae"]))], 1),
    ("SOV-ZT-003", "no root allow-nothing policy", [ISTIOD, _ns("serving"), STRICT], 1),
    ("SOV-ZT-003", "root allow-nothing only for a selected workload", [ISTIOD, _ns("serving"), STRICT, _ap("istio-system", {"selector": {"matchLabels": {"app": "x"}}}, "allow-nothing")], 1),
    ("SOV-ZT-003", "ALLOW with an empty rule admits everyone", [*MESH, _ap("serving", {"action": "ALLOW", "rules": [{}]})], 1),
    ("SOV-ZT-003", "ALLOW with only ports admits every caller", [*MESH, _ap("serving", {"rules": [{"to": [{"operation": {"ports": ["8000"]}}]}]})], 1),
    ("SOV-ZT-003", "principals wildcard", [*MESH, _ap("serving", {"rules": [{"from": [{"source": {"principals": ["*"]}}]}]})], 1),
    ("SOV-ZT-003", "namespaces wildcard", [*MESH, _ap("serving", {"rules": [{"from": [{"source": {"namespaces": ["*"]}}]}]})], 1),
    ("SOV-ZT-003", "prefix wildcard over every namespace", [*MESH, _ap("serving", {"rules": [{"from": [{"source": {"principals": ["cluster.local/*"]}}]}]})], 1),
    ("SOV-ZT-003", "a source with no identity", [*MESH, _ap("serving", {"rules": [{"from": [{"source": {}}]}]})], 1),
    ("SOV-ZT-003", "only notPrincipals: everyone but one", [*MESH, _ap("serving", {"rules": [{"from": [{"source": {"notPrincipals": [TRITON]}}]}]})], 1),
]  # fmt: skip
"""(rule id, label, resources, violations of that rule)."""
