"""Which routes end at an authenticator, and which gateways only let traffic out: shared facts of
the zero-trust rules SOV-ZT-003 and SOV-ZT-004.

* An **authenticator namespace** runs nothing but the charts of :data:`AUTHENTICATORS` (Dex, the
  OIDC broker, and oauth2-proxy, which admits a browser only with a session from it): at least
  one such Helm release, no release of another chart, no workload declared outside a chart.
* An **authenticator route** is a gateway-bound ``VirtualService`` whose every destination is a
  Service of an authenticator namespace (``<svc>.<ns>.svc.cluster.local``): the request meets a
  login before it meets anything else, so the gateway need not ask for a token there.
* An **egress-only gateway** has only TLS ``PASSTHROUGH`` servers whose every host is a host of a
  ``MESH_EXTERNAL`` ServiceEntry: traffic through it leaves the mesh (SOV-ZT-005 judges those
  hosts); nothing outside the mesh reaches a workload through it.
* **Proxy ports** (:data:`PROXY_PORTS`) are Istio's own (merged metrics, health, Envoy's
  Prometheus endpoint): they never carry a route, so a scrape rule limited to them opens none.

All three are judged by construction from the record: a namespace that also runs anything else,
a route with one destination elsewhere, a gateway with one host that is not a ServiceEntry's,
all fall back to the strict rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.base import Resource
from policies.rules.helm_charts import HELM_TYPES
from policies.rules.kubernetes import kind_of, object_namespace, pod_spec

AUTHENTICATORS = ("dex", "oauth2-proxy")
"""Charts whose only job is to authenticate people (the single sign-on front door)."""
PROXY_PORTS = frozenset({"15020", "15021", "15090"})
"""Istio's proxy ports: merged Prometheus metrics, health, Envoy's own stats."""
CLUSTER_SUFFIX = ".svc.cluster.local"


def _spec(r: Resource) -> Mapping[str, Any]:
    spec = r.inputs.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is(r: Resource, kind: str) -> bool:
    return ".istio.io/" in r.type and kind_of(r) == kind


def _chart(r: Resource) -> str:
    return str(r.inputs.get("chart") or "").rstrip("/").rsplit("/", 1)[-1]


def authenticator_namespaces(resources: list[Resource]) -> set[str]:
    """Namespaces running authenticator charts and nothing else."""
    charts: dict[str, set[str]] = {}
    for r in resources:
        if r.type in HELM_TYPES:
            ns = str(r.inputs.get("namespace") or "default")
            charts.setdefault(ns, set()).add(_chart(r))
    bare = {object_namespace(r) for r in resources if pod_spec(r) is not None}
    return {
        ns
        for ns, names in charts.items()
        if names and names <= set(AUTHENTICATORS) and ns not in bare
    }


def _destinations(vs: Resource) -> list[str]:
    """Every route destination host of a VirtualService (http, tls and tcp routes)."""
    spec = _spec(vs)
    hosts = []
    for kind in ("http", "tls", "tcp"):
        for route in _list(spec.get(kind)):
            for dest in _list(route.get("route") if isinstance(route, Mapping) else None):
                d = dest.get("destination") if isinstance(dest, Mapping) else None
                hosts.append(str(d.get("host") or "") if isinstance(d, Mapping) else "")
    return hosts


def _service_namespace(host: str) -> str:
    """The namespace of a ``<svc>.<ns>.svc.cluster.local`` host ('' for anything else)."""
    if not host.endswith(CLUSTER_SUFFIX):
        return ""
    parts = host[: -len(CLUSTER_SUFFIX)].split(".")
    return parts[1] if len(parts) == 2 and all(parts) else ""


def is_authenticator_route(vs: Resource, namespaces: set[str]) -> bool:
    """Whether every destination of ``vs`` is a Service of an authenticator namespace."""
    dests = _destinations(vs)
    return bool(dests) and all(_service_namespace(h) in namespaces for h in dests)


def authenticator_hosts(resources: list[Resource], namespaces: set[str] | None = None) -> set[str]:
    """Hosts served only by authenticator routes (a host also routed elsewhere is not one);
    ``namespaces``: :func:`authenticator_namespaces` of ``resources`` when already known."""
    if namespaces is None:
        namespaces = authenticator_namespaces(resources)
    good: set[str] = set()
    bad: set[str] = set()
    for r in resources:
        if _is(r, "VirtualService"):
            hosts = {str(h) for h in _list(_spec(r).get("hosts"))}
            (good if is_authenticator_route(r, namespaces) else bad).update(hosts)
    return {h for h in good - bad if "*" not in h}


def external_hosts(resources: list[Resource]) -> set[str]:
    """Every host a ``MESH_EXTERNAL`` ServiceEntry names (where traffic may leave the mesh)."""
    return {
        str(h)
        for r in resources
        if _is(r, "ServiceEntry")
        and str(_spec(r).get("location") or "MESH_EXTERNAL") == "MESH_EXTERNAL"
        for h in _list(_spec(r).get("hosts"))
    }


def egress_only(gateway: Resource, external: set[str]) -> bool:
    """Whether a Gateway only lets traffic out of the mesh (see the module docstring);
    ``external``: :func:`external_hosts` of the record."""
    servers = [s for s in _list(_spec(gateway).get("servers")) if isinstance(s, Mapping)]
    if not servers:
        return False
    for server in servers:
        tls = server.get("tls") if isinstance(server.get("tls"), Mapping) else {}
        hosts = [str(h).rsplit("/", 1)[-1] for h in _list(server.get("hosts"))]
        if str((tls or {}).get("mode") or "") != "PASSTHROUGH" or not hosts:
            return False
        if any(h not in external for h in hosts):
            return False
    return True


def to_only(
    rule: Mapping[str, Any], *, ports: frozenset[str] = frozenset(), hosts: set[str]
) -> bool:
    """Whether every ``to`` operation of ``rule`` is limited to ``ports`` (all of its ports in
    them) or to ``hosts`` (all of its hosts in them, none negated); a rule without ``to``
    reaches everything."""
    ops = [t.get("operation") for t in _list(rule.get("to")) if isinstance(t, Mapping)]
    if not ops:
        return False
    for op in ops:
        op = op if isinstance(op, Mapping) else {}
        if any(op.get(k) for k in ("notPorts", "notHosts", "notPaths", "notMethods")):
            return False
        op_ports = {str(p) for p in _list(op.get("ports"))}
        op_hosts = {str(h) for h in _list(op.get("hosts"))}
        by_port = bool(ports) and bool(op_ports) and op_ports <= ports
        by_host = bool(hosts) and bool(op_hosts) and op_hosts <= hosts
        if not (by_port or by_host):
            return False
    return True
