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
]  # fmt: skip
