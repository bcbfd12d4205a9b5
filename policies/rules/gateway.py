"""Every route from outside the mesh is authenticated: TLS, a validated token, a principal.

``SOV-ZT-004`` judges each Istio ``Gateway`` and the ``VirtualService`` objects bound to one (a
``gateways`` entry other than ``mesh``):

* every server of a Gateway terminates TLS (``tls.mode`` SIMPLE or MUTUAL on an HTTPS or TLS
  port): no plain-HTTP server, not even one that only redirects; no ``*`` host on a server;
* no route bound to a gateway has a ``*`` host (a catch-all that answers any name);
* the gateway workload of every route (the pods the Gateway's ``selector`` picks, in its
  namespace) has a ``RequestAuthentication`` with at least one JWT rule whose issuer and JWKS
  URL are https, and at least one ALLOW ``AuthorizationPolicy``; every ALLOW policy on it
  requires, in every rule and every ``from`` source, request principals of those issuers
  (``<issuer>/*`` or ``<issuer>/<subject>``; ``*`` or another issuer is any token at all).

Not judged as ways in (policies/rules/front_door.py decides each from the record): an
egress-only gateway (TLS passthrough to MESH_EXTERNAL ServiceEntry hosts: SOV-ZT-005's), a route
whose every destination is an authenticator (Dex or oauth2-proxy, in a namespace running nothing
else: the sign-on front door, where the person logs in), and an ALLOW rule limited to Istio's
proxy ports (metrics scraping) or to the front door's hosts.

With one ALLOW policy on a workload Istio denies what no policy allows, so these three together
mean no request reaches a route without a valid token of the stack's issuer. A policy without a
selector applies to its whole namespace, and one in the root namespace (``istio-system``) to
every workload: both count. The gate approximates the gateway workload by the Gateway's own
namespace and selector labels (Istio's default scoping may pick pods in any namespace); the
mesh's own rules (SOV-ZT-001..003) hold the rest of the mesh.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from policies.rules.base import Context, Resource, stack_rule
from policies.rules.front_door import (
    PROXY_PORTS,
    authenticator_hosts,
    authenticator_namespaces,
    egress_only,
    external_hosts,
    is_authenticator_route,
    to_only,
)
from policies.rules.kubernetes import kind_of, object_namespace

ROOT_NAMESPACE = "istio-system"
"""Istio's root namespace: a selector-less policy there applies to every workload."""
TLS_MODES = ("SIMPLE", "MUTUAL")
"""Server TLS modes that terminate a client's TLS at the gateway."""
FIX = "(components/inference_gateway.py)"
Findings = list[tuple[Resource | None, str]]


def _istio(r: Resource, group: str, kind: str) -> bool:
    """``r`` is an Istio ``kind`` of ``<group>.istio.io`` in any API version."""
    return r.type.startswith(f"kubernetes:{group}.istio.io/") and kind_of(r) == kind


def _spec(r: Resource) -> Mapping[str, Any]:
    spec = r.inputs.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _name(r: Resource) -> str:
    meta = r.inputs.get("metadata")
    return str((meta or {}).get("name") or r.name) if isinstance(meta, Mapping) else r.name


def _https(url: Any) -> bool:
    parts = urllib.parse.urlsplit(str(url or ""))
    return parts.scheme == "https" and bool(parts.hostname) and "*" not in str(url)


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _selects(policy: Resource, selector_key: str, ns: str, workload: Mapping[str, str]) -> bool:
    """Whether ``policy`` applies to a workload labelled ``workload`` in namespace ``ns``."""
    where = object_namespace(policy)
    raw = _spec(policy).get(selector_key)
    if selector_key == "selector":  # RequestAuthentication / AuthorizationPolicy
        wanted = _labels((raw or {}).get("matchLabels") if isinstance(raw, Mapping) else None)
    else:
        wanted = _labels(raw)
    if not wanted:
        return where in (ns, ROOT_NAMESPACE)
    return where == ns and all(workload.get(k) == v for k, v in wanted.items())


def _server_problems(gw: Resource) -> list[str]:
    out = []
    for i, server in enumerate(_spec(gw).get("servers") or []):
        server = server if isinstance(server, Mapping) else {}
        port = server.get("port") if isinstance(server.get("port"), Mapping) else {}
        protocol = str((port or {}).get("protocol") or "").upper()
        tls = server.get("tls") if isinstance(server.get("tls"), Mapping) else {}
        mode = str((tls or {}).get("mode") or "")
        where = f"Gateway {_name(gw)} server {i} (port {(port or {}).get('number')})"
        if protocol not in ("HTTPS", "TLS") or mode not in TLS_MODES:
            out.append(
                f"{where}: {protocol or 'no protocol'} without TLS termination (tls.mode "
                f"{mode or 'unset'}): serve HTTPS with tls.mode SIMPLE or MUTUAL and a "
                f"credentialName only, no plain-HTTP server {FIX}"
            )
        hosts = [str(h) for h in server.get("hosts") or []]
        if any(h.rsplit("/", 1)[-1] == "*" for h in hosts):
            out.append(f"{where}: host '*' answers any name: list the gateway's DNS names {FIX}")
    return out


def _bound_gateways(vs: Resource) -> list[str]:
    """``namespace/name`` of the Gateways a VirtualService is bound to (``mesh`` excluded)."""
    ns = object_namespace(vs)
    out = []
    for g in _spec(vs).get("gateways") or []:
        g = str(g)
        if g != "mesh":
            out.append(g if "/" in g else f"{ns}/{g}")
    return out


def _issuers(ra: Resource) -> list[str]:
    """The issuers of a RequestAuthentication's usable JWT rules (https issuer and keys)."""
    out = []
    for jwt_rule in _spec(ra).get("jwtRules") or []:
        if not isinstance(jwt_rule, Mapping):
            continue
        keys_ok = _https(jwt_rule.get("jwksUri")) or bool(jwt_rule.get("jwks"))
        if _https(jwt_rule.get("issuer")) and keys_ok:
            out.append(str(jwt_rule["issuer"]))
    return out


def _principal_ok(principal: str, issuers: list[str]) -> bool:
    return any(principal.startswith(f"{iss}/") and len(principal) > len(iss) + 1 for iss in issuers)


def _allow_problems(policy: Resource, issuers: list[str], front_door: set[str]) -> list[str]:
    """Why an ALLOW policy on the gateway lets a request without the issuer's token through.

    A rule limited to Istio's proxy ports (metrics scraping) or to hosts served only by an
    authenticator (``front_door``: the single sign-on routes) reaches no inference route."""
    rules = _spec(policy).get("rules")
    rules = rules if isinstance(rules, list) else []
    out = []
    for i, rule in enumerate(rules):
        rule = rule if isinstance(rule, Mapping) else {}
        if to_only(rule, ports=PROXY_PORTS, hosts=front_door):
            continue
        sources = [f.get("source") for f in rule.get("from") or [] if isinstance(f, Mapping)]
        if not sources:
            out.append(f"rule {i} has no 'from': it allows requests without any token")
        for j, source in enumerate(sources):
            principals = (
                (source or {}).get("requestPrincipals") if isinstance(source, Mapping) else None
            )
            principals = [str(p) for p in principals or []]
            bad = [p for p in principals if not _principal_ok(p, issuers)]
            if not principals:
                out.append(f"rule {i} from {j} requires no request principal")
            elif bad:
                out.append(
                    f"rule {i} from {j} accepts request principals {bad}: allowed only "
                    f"'<issuer>/*' of the gateway's issuers {issuers or '(none)'}"
                )
    return out


@stack_rule(
    "SOV-ZT-004",
    "gateway-routes-authenticated",
    "critical",
    "Every route through an Istio Gateway is TLS-only and reachable only with a valid JWT of the "
    "stack's issuer: a RequestAuthentication and ALLOW policies requiring its request principals "
    "on the gateway workload, no '*' hosts.",
)
def gateway_routes_authenticated(resources: list[Resource], ctx: Context) -> Findings:
    # Egress-only gateways let traffic out, never in: SOV-ZT-005 judges their hosts.
    external = external_hosts(resources)
    gateways: dict[str, Resource] = {}
    outbound: set[str] = set()
    for r in resources:
        if _istio(r, "networking", "Gateway"):
            key = f"{object_namespace(r)}/{_name(r)}"
            if egress_only(r, external):
                outbound.add(key)
            else:
                gateways[key] = r
    authenticators = authenticator_namespaces(resources)
    front_door = authenticator_hosts(resources, authenticators)
    out: Findings = [(gw, m) for gw in gateways.values() for m in _server_problems(gw)]
    auths = [r for r in resources if _istio(r, "security", "RequestAuthentication")]
    allows = [
        r
        for r in resources
        if _istio(r, "security", "AuthorizationPolicy")
        and str(_spec(r).get("action") or "ALLOW") == "ALLOW"
    ]
    judged: dict[str, list[str]] = {}
    for vs in (r for r in resources if _istio(r, "networking", "VirtualService")):
        bound = [g for g in _bound_gateways(vs) if g not in outbound]
        if not bound or is_authenticator_route(vs, authenticators):
            continue  # the mesh's own, an exit, or a login in front of everything it serves
        hosts = [str(h) for h in _spec(vs).get("hosts") or []]
        if any("*" in h for h in hosts):
            out.append((vs, f"VirtualService {_name(vs)} on a gateway has a wildcard host "
                            f"{hosts}: route the gateway's DNS names only {FIX}"))  # fmt: skip
        for key in bound:
            gw = gateways.get(key)
            if gw is None:
                out.append((vs, f"VirtualService {_name(vs)} is bound to Gateway {key}, which "
                                "the stack does not declare: its authentication cannot be "
                                f"judged {FIX}"))  # fmt: skip
                continue
            if key not in judged:
                judged[key] = _workload_problems(gw, auths, allows, front_door)
            out += [(vs, f"VirtualService {_name(vs)} via Gateway {key}: {m}") for m in judged[key]]
    return out


def _workload_problems(
    gw: Resource, auths: list[Resource], allows: list[Resource], front_door: set[str]
) -> list[str]:
    """Why requests through ``gw``'s workload may arrive without a valid token."""
    ns, workload = object_namespace(gw), _labels(_spec(gw).get("selector"))
    issuers = [
        iss for ra in auths if _selects(ra, "selector", ns, workload) for iss in _issuers(ra)
    ]
    policies = [p for p in allows if _selects(p, "selector", ns, workload)]
    out = []
    if not issuers and any(_spec(p).get("rules") for p in policies):
        out.append(
            "no RequestAuthentication with an https issuer and JWKS selects the gateway "
            f"workload {workload}: declare one for the stack's OIDC issuer {FIX}"
        )
    if not policies:
        out.append(
            "no ALLOW AuthorizationPolicy selects the gateway workload, so Istio allows every "
            "request, with or without a token: declare one per route requiring request "
            f"principals {FIX}"
        )
    for p in policies:
        out += [
            f"AuthorizationPolicy {_name(p)}: {m} {FIX}"
            for m in _allow_problems(p, issuers, front_door)
        ]
    return out
