# ruff: noqa: E501  (the case table reads best one case per line)
"""Pass and fail fixtures of SOV-ZT-004 (every route through a Gateway authenticated).

The passing stack is what :mod:`components.inference_gateway` declares (its spec functions);
each failing case breaks one thing an attacker would look for: a plain-HTTP server, a redirect
server, a wildcard host, no RequestAuthentication, an http JWKS, no ALLOW policy, a rule without
``from``, ``requestPrincipals: ["*"]``, another issuer's principals, a route bound to an
undeclared Gateway.
"""

from __future__ import annotations

import copy
from typing import Any

from components.inference_gateway import (
    InferenceGatewayArgs,
    authorization_spec,
    gateway_spec,
    request_authentication_spec,
    virtual_service_spec,
)
from policies.rules import Resource
from tests.policy_fixtures import R

ISS = "https://login.example.ae/realms/ml"
ARGS = InferenceGatewayArgs(
    models=["credit-risk"], serving_namespace="serving", hostname="inference.example.ae",
    issuer=ISS, audiences=["sovml-inference"], jwks_uri=f"{ISS}/certs", tenants=["risk"],
    client_cidrs=["10.0.0.0/16"],
)  # fmt: skip
NET, SEC = "kubernetes:networking.istio.io/v1", "kubernetes:security.istio.io/v1"


def _obj(typ: str, kind: str, name: str, ns: str, spec: dict[str, Any]) -> Resource:
    api = typ.removeprefix("kubernetes:")
    return R(
        f"{typ}:{kind}",
        name,
        {
            "apiVersion": api,
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        },
    )


def _gw(**change: Any) -> Resource:
    spec = copy.deepcopy(gateway_spec(ARGS))
    spec["servers"][0].update(change)
    return _obj(NET, "Gateway", "inference-gateway", "istio-ingress", spec)


def _vs(hosts: list[str] | None = None, gateways: list[str] | None = None) -> Resource:
    spec = copy.deepcopy(virtual_service_spec("credit-risk", ARGS))
    spec["hosts"] = hosts or spec["hosts"]
    spec["gateways"] = gateways or spec["gateways"]
    return _obj(NET, "VirtualService", "triton-credit-risk", "serving", spec)


def _ra(**rule: Any) -> Resource:
    spec = copy.deepcopy(request_authentication_spec(ARGS))
    spec["jwtRules"][0].update(rule)
    return _obj(SEC, "RequestAuthentication", "inference-gateway", "istio-ingress", spec)


def _authz(
    name: str = "inference-gateway-credit-risk", ns: str = "istio-ingress", **change: Any
) -> Resource:
    spec = copy.deepcopy(authorization_spec("credit-risk", ARGS))
    spec.update(change)
    return _obj(SEC, "AuthorizationPolicy", name, ns, spec)


def _from(principals: list[str] | None) -> dict[str, Any]:
    rule = copy.deepcopy(authorization_spec("credit-risk", ARGS)["rules"][0])
    if principals is None:
        rule.pop("from")
    else:
        rule["from"] = [{"source": {"requestPrincipals": principals}}]
    return {"rules": [rule]}


# --- exits and front doors (policies/rules/front_door.py) -------------------------------------
RELEASE = "kubernetes:helm.sh/v3:Release"
SE_HOST = "kms.me-central-1.amazonaws.com"


def _release(chart: str, ns: str) -> Resource:
    return R(RELEASE, f"{ns}-{chart}", {"chart": chart, "namespace": ns, "values": {}})


def _egress_gw(hosts: list[str]) -> Resource:
    return _obj(NET, "Gateway", "egress", "istio-egress", {
        "selector": {"istio": "egressgateway"},
        "servers": [{"port": {"number": 443, "name": "tls", "protocol": "TLS"}, "hosts": hosts,
                     "tls": {"mode": "PASSTHROUGH"}}],
    })  # fmt: skip


def _se(host: str, location: str = "MESH_EXTERNAL") -> Resource:
    return _obj(NET, "ServiceEntry", f"se-{host}", "istio-egress", {
        "hosts": [host], "location": location, "resolution": "DNS",
        "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
    })  # fmt: skip


def _exit_vs(host: str = SE_HOST) -> Resource:
    return _obj(NET, "VirtualService", f"exit-{host}", "istio-egress", {
        "hosts": [host], "gateways": ["istio-egress/egress", "mesh"],
        "tls": [{"match": [{"sniHosts": [host]}], "route": [{"destination": {"host": host}}]}],
    })  # fmt: skip


def _sso_vs(*services: str, host: str = "pipelines.example.ae") -> Resource:
    return _obj(NET, "VirtualService", f"sso-{host}", "auth", {
        "hosts": [host], "gateways": ["istio-ingress/inference-gateway"],
        "http": [{"route": [{"destination": {"host": f"{svc}.svc.cluster.local"}} for svc in services]}],
    })  # fmt: skip


AUTH_NS = [_release("dex", "auth"), _release("oauth2-proxy", "auth")]
SCRAPE = {"selector": {"matchLabels": {"istio": "inference-gateway"}}, "rules": [
    {"from": [{"source": {"principals": ["cluster.local/ns/monitoring/sa/prometheus"]}}],
     "to": [{"operation": {"ports": ["15020", "15090"]}}]}]}  # fmt: skip

GOOD = [_gw(), _vs(), _ra(), _authz()]
MESH_ONLY = _obj(
    NET, "VirtualService", "internal", "serving", {"hosts": ["*"], "gateways": ["mesh"], "http": []}
)

GATEWAY_CASES: list[tuple[str, str, list[Resource], int]] = [
    ("SOV-ZT-004", "the inference gateway as the component declares it", GOOD, 0),
    ("SOV-ZT-004", "a mesh-only route is not the gateway's business", [*GOOD, MESH_ONLY], 0),
    ("SOV-ZT-004", "a DENY policy beside the ALLOW ones changes nothing", [*GOOD, _authz("deny-admin", action="DENY", rules=[{"to": [{"operation": {"paths": ["/v2/repository/*"]}}]}])], 0),
    ("SOV-ZT-004", "a root-namespace RequestAuthentication without selector serves the gateway", [_gw(), _vs(), _obj(SEC, "RequestAuthentication", "mesh-jwt", "istio-system", {"jwtRules": [{"issuer": ISS, "jwksUri": f"{ISS}/certs"}]}), _authz()], 0),
    ("SOV-ZT-004", "a closed gateway: no issuer, one allow-nothing policy", [_gw(), _vs(), _obj(SEC, "AuthorizationPolicy", "allow-nothing", "istio-ingress", {"selector": {"matchLabels": {"istio": "inference-gateway"}}, "action": "ALLOW"})], 0),
    ("SOV-ZT-004", "plain HTTP server", [_gw(port={"number": 80, "name": "http", "protocol": "HTTP"}, tls=None), _vs(), _ra(), _authz()], 1),
    ("SOV-ZT-004", "HTTP server that only redirects", [_gw(port={"number": 80, "name": "http", "protocol": "HTTP"}, tls={"httpsRedirect": True}), _vs(), _ra(), _authz()], 1),
    ("SOV-ZT-004", "TLS passthrough (the gateway never sees the token)", [_gw(tls={"mode": "PASSTHROUGH"}), _vs(), _ra(), _authz()], 1),
    ("SOV-ZT-004", "Gateway server host '*'", [_gw(hosts=["serving/*"]), _vs(), _ra(), _authz()], 1),
    ("SOV-ZT-004", "route with hosts ['*']", [_gw(), _vs(hosts=["*"]), _ra(), _authz()], 1),
    ("SOV-ZT-004", "route on the gateway without a RequestAuthentication", [_gw(), _vs(), _authz()], 2),
    ("SOV-ZT-004", "RequestAuthentication with a plain-http JWKS", [_gw(), _vs(), _ra(jwksUri="http://login.example.ae/certs"), _authz()], 2),
    ("SOV-ZT-004", "RequestAuthentication selecting other pods", [_gw(), _vs(), _obj(SEC, "RequestAuthentication", "other", "istio-ingress", {"selector": {"matchLabels": {"istio": "egress"}}, "jwtRules": [{"issuer": ISS, "jwksUri": f"{ISS}/certs"}]}), _authz()], 2),
    ("SOV-ZT-004", "no ALLOW policy: Istio allows everything", [_gw(), _vs(), _ra()], 1),
    ("SOV-ZT-004", "ALLOW policy without requestPrincipals", [_gw(), _vs(), _ra(), _authz(**_from(None))], 1),
    ("SOV-ZT-004", "ALLOW policy with requestPrincipals ['*']", [_gw(), _vs(), _ra(), _authz(**_from(["*"]))], 1),
    ("SOV-ZT-004", "ALLOW policy for another issuer's principals", [_gw(), _vs(), _ra(), _authz(**_from(["https://evil.example/*"]))], 1),
    ("SOV-ZT-004", "ALLOW policy whose issuer is a prefix of the real one", [_gw(), _vs(), _ra(), _authz(**_from([f"{ISS}-evil/*"]))], 1),
    ("SOV-ZT-004", "an allow-all policy beside the good one", [*GOOD, _authz("allow-all", rules=[{}])], 1),
    ("SOV-ZT-004", "route bound to an undeclared gateway", [_vs(gateways=["istio-ingress/other"]), _ra(), _authz()], 1),
    ("SOV-ZT-004", "an egress-only passthrough gateway (every host a MESH_EXTERNAL entry's)", [*GOOD, _egress_gw([SE_HOST]), _se(SE_HOST), _exit_vs()], 0),
    ("SOV-ZT-004", "passthrough gateway with a host no ServiceEntry names is judged as a way in", [*GOOD, _egress_gw([SE_HOST, "admin.example.ae"]), _se(SE_HOST), _exit_vs()], 2),
    ("SOV-ZT-004", "passthrough gateway whose host is only a MESH_INTERNAL entry's is judged", [*GOOD, _egress_gw([SE_HOST]), _se(SE_HOST, "MESH_INTERNAL"), _exit_vs()], 2),
    ("SOV-ZT-004", "a sign-on route to oauth2-proxy in a namespace of authenticators only", [*GOOD, *AUTH_NS, _sso_vs("oauth2-proxy-pipelines.auth")], 0),
    ("SOV-ZT-004", "the 'authenticator' namespace also runs another chart", [_gw(), _ra(), _release("dex", "auth"), _release("grafana", "auth"), _sso_vs("dex.auth")], 1),
    ("SOV-ZT-004", "a sign-on route with one destination outside the authenticators", [_gw(), _ra(), *AUTH_NS, _sso_vs("dex.auth", "triton.serving")], 1),
    ("SOV-ZT-004", "a scrape rule on the gateway limited to Istio's proxy ports", [*GOOD, _authz("allow-monitoring-scrape", **SCRAPE)], 0),
    ("SOV-ZT-004", "a scrape rule that also opens the HTTPS port", [*GOOD, _authz("allow-monitoring-scrape", **{**SCRAPE, "rules": [{**SCRAPE["rules"][0], "to": [{"operation": {"ports": ["15090", "8443"]}}]}]})], 1),
    ("SOV-ZT-004", "a front-door rule naming a model's host, not only sign-on hosts", [*GOOD, *AUTH_NS, _sso_vs("oauth2-proxy-pipelines.auth"), _authz("allow-sso-front-door", rules=[{"from": [{"source": {"ipBlocks": ["10.0.0.0/16"]}}], "to": [{"operation": {"hosts": ["pipelines.example.ae", "inference.example.ae"]}}]}])], 1),
]  # fmt: skip
