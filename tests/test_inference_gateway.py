"""The inference gateway under the recording mocks, the canary on the mesh, and the stack records.

What the component declares is judged by the gate's own rule (SOV-ZT-004) as well as field by
field, and the Rollout's traffic routing is checked against the VirtualService the gateway
declares for the same model (the two components agree on names through
:mod:`policies.gateway_metrics`).
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.rules import Context, Resource, evaluate
from tests.component_mocks import ACCESS, KEY, children_named_after, of_type, record

ISS = "https://login.example.ae/realms/ml"
NET, SEC = "kubernetes:networking.istio.io/v1", "kubernetes:security.istio.io/v1"
COMPONENT = "sovereign-ml:gateway:InferenceGateway"


def _args(**kw: Any) -> Any:
    from components.inference_gateway import InferenceGatewayArgs

    base: dict[str, Any] = dict(
        models=["credit-risk", "fraud"], serving_namespace="serving",
        hostname="inference.example.ae", issuer=ISS, audiences=["sovml-inference"],
        jwks_uri=f"{ISS}/certs", tenants=["risk", "insights"], client_cidrs=["10.40.0.0/16"],
    )  # fmt: skip
    return InferenceGatewayArgs(**{**base, **kw})


def _gateway(**kw: Any) -> list[dict[str, Any]]:
    from components.inference_gateway import InferenceGateway

    return record(lambda: InferenceGateway("inference-gateway", _args(**kw)))


def _zt004(res: list[dict[str, Any]]) -> list[str]:
    resources = [Resource(r["type"], r["name"], r["inputs"], urn=r["urn"]) for r in res]
    return [v.message for v in evaluate(resources, Context()) if v.rule_id == "SOV-ZT-004"]


def test_gateway_is_https_only_with_a_platform_ca_certificate() -> None:
    res = _gateway()
    children_named_after(res, COMPONENT, "inference-gateway")
    (cert,) = of_type(res, "kubernetes:cert-manager.io/v1:Certificate")
    spec = cert["inputs"]["spec"]
    assert cert["inputs"]["metadata"]["namespace"] == "istio-ingress"
    assert spec["issuerRef"] == {
        "name": "sovml-platform-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert spec["dnsNames"] == ["inference.example.ae"]
    (gw,) = of_type(res, f"{NET}:Gateway")
    (server,) = gw["inputs"]["spec"]["servers"]
    assert server["port"] == {"number": 443, "name": "https", "protocol": "HTTPS"}
    assert server["tls"]["mode"] == "SIMPLE"
    assert server["tls"]["credentialName"] == spec["secretName"]
    assert server["hosts"] == ["serving/inference.example.ae"]


def test_chart_is_pinned_hardened_and_internal_in_production() -> None:
    res = _gateway()
    (release,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    inputs = release["inputs"]
    assert (inputs["chart"], inputs["version"], inputs["namespace"]) == (
        "gateway",
        "1.28.10",
        "istio-ingress",
    )
    values = inputs["values"]
    annotations = values["service"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    assert values["securityContext"]["runAsNonRoot"] is True
    assert values["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    assert values["podDisruptionBudget"] == {"minAvailable": 1}
    assert "image" not in values, "istiod injects the proxy (image: auto)"
    public = of_type(_gateway(internal=False), "kubernetes:helm.sh/v3:Release")[0]
    scheme = "service.beta.kubernetes.io/aws-load-balancer-scheme"
    assert scheme not in public["inputs"]["values"]["service"]["annotations"]
    (netpol,) = of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert netpol["inputs"]["spec"]["ingress"] == [
        {
            "from": [{"ipBlock": {"cidr": "10.40.0.0/16"}}],
            "ports": [{"protocol": "TCP", "port": 8443}],
        }
    ]


def test_tokens_of_the_issuer_only_and_claims_per_model() -> None:
    res = _gateway()
    (ra,) = of_type(res, f"{SEC}:RequestAuthentication")
    assert ra["inputs"]["spec"]["jwtRules"] == [
        {
            "issuer": ISS,
            "jwksUri": f"{ISS}/certs",
            "audiences": ["sovml-inference"],
            "forwardOriginalToken": False,
        }
    ]
    policies = {
        p["inputs"]["metadata"]["name"]: p for p in of_type(res, f"{SEC}:AuthorizationPolicy")
    }
    assert set(policies) == {"inference-gateway-credit-risk", "inference-gateway-fraud"}
    (rule,) = policies["inference-gateway-fraud"]["inputs"]["spec"]["rules"]
    assert rule["from"] == [{"source": {"requestPrincipals": [f"{ISS}/*"]}}]
    assert rule["to"][0]["operation"]["paths"] == ["/v2/models/fraud", "/v2/models/fraud/*"]
    assert rule["when"] == [
        {"key": "request.auth.claims[tenant]", "values": ["risk", "insights"]},
        {"key": "request.auth.claims[scope]", "values": ["sovml:infer:fraud"]},
    ]
    assert _zt004(res) == []


def test_limits_are_envoy_buffer_and_local_rate_limit() -> None:
    res = _gateway(max_request_bytes=65536, rate_limit_rps=7)
    (ef,) = of_type(res, "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter")
    filters = {p["patch"]["value"]["name"]: p["patch"]["value"]["typed_config"]
               for p in ef["inputs"]["spec"]["configPatches"]}  # fmt: skip
    assert filters["envoy.filters.http.buffer"]["max_request_bytes"] == 65536
    bucket = filters["envoy.filters.http.local_ratelimit"]["token_bucket"]
    assert bucket == {"max_tokens": 7, "tokens_per_fill": 7, "fill_interval": "1s"}


def test_without_an_issuer_the_gateway_admits_nothing() -> None:
    res = _gateway(issuer="", jwks_uri="")
    assert of_type(res, f"{SEC}:RequestAuthentication") == []
    (policy,) = of_type(res, f"{SEC}:AuthorizationPolicy")
    assert policy["inputs"]["spec"] == {
        "selector": {"matchLabels": {"istio": "inference-gateway"}},
        "action": "ALLOW",
    }
    assert _zt004(res) == []
    assert len(of_type(_gateway(tenants=[]), f"{SEC}:AuthorizationPolicy")) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"issuer": "http://login.example.ae/realms/ml"}, "issuer"),
        ({"jwks_uri": "https://user@login.example.ae/certs"}, "jwks_uri"),
        ({"jwks_uri": ""}, "jwks_uri"),
        ({"issuer": ""}, "issuer"),
        ({"audiences": []}, "audiences"),
        ({"audiences": ["*"]}, "audiences"),
        ({"tenants": ["*"]}, "tenants"),
        ({"models": ["a", "a"]}, "models"),
        ({"hostname": "*.example.ae"}, "hostname"),
        ({"client_cidrs": []}, "client_cidrs"),
        ({"max_request_bytes": 10}, "max_request_bytes"),
    ],
)
def test_bad_args_are_refused(change: dict[str, Any], field: str) -> None:
    from components.inference_gateway import validate

    with pytest.raises(ValueError, match=f"InferenceGatewayArgs.{field}"):
        validate(_args(**change))


def test_rollout_steers_the_gateway_route_with_exact_weights_and_a_header() -> None:
    """The Rollout names the VirtualService and route the gateway declares; its Services are the
    route's destinations; A/B clients opt in with the model's header from the first step."""
    from components.serving import ServedModel, Serving, ServingArgs

    serving = record(
        lambda: Serving(
            "serving",
            ServingArgs(
                namespace="serving", models=[ServedModel("fraud", "cpu", min_replicas=1)],
                models_bucket="b", models_bucket_arn="arn:aws:s3:::b", storage_key_arn=KEY,
                cluster_access=ACCESS, puller_image="ghcr.io/sovereign-ml/model-puller:0.1.0",
            ),
        )
    )  # fmt: skip
    (rollout,) = of_type(serving, "kubernetes:argoproj.io/v1alpha1:Rollout")
    canary = rollout["inputs"]["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"] == {
        "managedRoutes": [{"name": "ab-header"}],
        "istio": {"virtualService": {"name": "triton-fraud", "routes": ["primary"]}},
    }
    assert canary["steps"][0] == {
        "setHeaderRoute": {
            "name": "ab-header",
            "match": [{"headerName": "x-sovml-canary", "headerValue": {"exact": "fraud"}}],
        }
    }
    assert [s["setWeight"] for s in canary["steps"] if "setWeight" in s] == [5, 25, 50]
    vs = next(
        v for v in of_type(_gateway(), f"{NET}:VirtualService")
        if v["inputs"]["metadata"]["name"] == "triton-fraud"
    )  # fmt: skip
    assert vs["inputs"]["metadata"]["namespace"] == rollout["inputs"]["metadata"]["namespace"]
    (route,) = vs["inputs"]["spec"]["http"]
    assert route["name"] == "primary"
    hosts = [d["destination"]["host"].split(".")[0] for d in route["route"]]
    assert hosts == [canary["stableService"], canary["canaryService"]]
    assert [d["weight"] for d in route["route"]] == [100, 0]
    assert route["match"] == [{"uri": {"exact": "/v2/models/fraud"}},
                              {"uri": {"prefix": "/v2/models/fraud/"}}]  # fmt: skip


def test_prod_uae_inference_only_through_the_authenticated_gateway(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    """Every served model of prod-uae has a route on the gateway and an authorization policy,
    the gate's SOV-ZT-004 passes, and istio-ingress is a platform namespace."""
    rec = stack_records["prod-uae"]
    res = rec["resources"]
    models = [m for m, _ in rec["config"]["served_models"]]
    routes = {v["inputs"]["metadata"]["name"] for v in of_type(res, f"{NET}:VirtualService")}
    assert routes >= {f"triton-{m}" for m in models}
    policies = {p["inputs"]["metadata"]["name"] for p in of_type(res, f"{SEC}:AuthorizationPolicy")}
    assert policies >= {f"inference-gateway-{m}" for m in models}
    namespaces = {
        n["inputs"]["metadata"]["name"] for n in of_type(res, "kubernetes:core/v1:Namespace")
    }
    assert "istio-ingress" in namespaces
    (ra,) = of_type(res, f"{SEC}:RequestAuthentication")
    assert ra["inputs"]["spec"]["jwtRules"][0]["issuer"] == rec["config"]["gateway"]["issuer"]
    assert _zt004(res) == []

    # Nothing else reaches Triton's ports: the network admits the gateway's pods only, and the
    # mesh the gateway's identity only (no tenant or platform pod calls a model directly).
    def meta(r: dict[str, Any]) -> tuple[str, str]:
        return r["inputs"]["metadata"]["namespace"], r["inputs"]["metadata"]["name"]

    netpols = {
        meta(r): r["inputs"]["spec"]
        for r in of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    (rule,) = netpols[("serving", "allow-gateway-clients")]["ingress"]
    assert rule["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-ingress"}},
        "podSelector": {"matchLabels": {"istio": "inference-gateway"}},
    }]  # fmt: skip
    senders = {ns for ns, name in netpols if name == "allow-to-serving-gateway"}
    assert senders == {"istio-ingress"}
    allows = {meta(r): r["inputs"]["spec"] for r in of_type(res, f"{SEC}:AuthorizationPolicy")}
    (allow,) = allows[("serving", "allow-gateway-clients")]["rules"]
    assert allow["from"] == [
        {"source": {"principals": ["cluster.local/ns/istio-ingress/sa/inference-gateway"]}}
    ]


def test_config_requires_an_https_issuer_in_production() -> None:
    from infra import config as cfgmod

    base = {"aws:region": "me-central-1", "owner": "o", "costCenter": "c",
            "alertWebhookUrl": "https://itsm.example.ae/x"}  # fmt: skip

    def problems(**raw: Any) -> dict[str, str]:
        out = cfgmod.parse({**base, **raw}, stack="t", source="s")
        return {p.key: str(p) for p in out} if isinstance(out, list) else {}

    assert "sovereign-ml:gatewayOidcIssuer" in problems()
    bad = problems(gatewayOidcIssuer="http://login.example.ae", gatewayOidcJwksUri=f"{ISS}/c")
    assert "an https:// URL" in bad["sovereign-ml:gatewayOidcIssuer"]
    assert "sovereign-ml:gatewayOidcJwksUri" in problems(gatewayOidcIssuer=ISS)
    assert "sovereign-ml:gatewayOidcAudiences" in problems(
        gatewayOidcIssuer=ISS, gatewayOidcJwksUri=f"{ISS}/c", gatewayOidcAudiences=[]
    )
    assert problems(gatewayOidcIssuer=ISS, gatewayOidcJwksUri=f"{ISS}/c") == {}
    # dev may go without an identity provider: its gateway is closed.
    assert problems(environment="dev") == {}
