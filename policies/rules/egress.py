"""Residency on the wire: the mesh lets traffic leave the cluster only to in-zone hosts.

``SOV-ZT-005`` judges the mesh's egress as a whole (a stack rule, because the verdict depends
on istiod's values and on every other Istio object at once):

- a stack that declares any Istio object runs istiod with
  ``meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY``, so a host no ServiceEntry names goes
  to Envoy's ``BlackHoleCluster`` (refused, and counted in the mesh's metrics). A stack with no
  mesh at all is SOV-ZT-001's to refuse (every namespace enrolled), not this rule's;
- no ``Sidecar`` turns that back to ``ALLOW_ANY`` for a namespace or a workload;
- every ``ServiceEntry`` that reaches outside the cluster names only exact hosts that the zone's
  allow-list can hold (:func:`policies.egress.host_in_zone`: the zone regions' VPC endpoint
  hosts, the zone registry of an allowed account, a bucket on a zone region's S3 endpoint, a
  host declared in ``inZoneExternalResources``), resolved by DNS (so Envoy connects to what the
  name resolves to, not to the address the pod asked for: ``resolution: NONE`` and ``STATIC``
  are refused), with no ``addresses`` or ``endpoints`` (an address range or an explicit endpoint
  would carry traffic for an allowed name to any address), over TLS or HTTPS only.

``MESH_INTERNAL`` entries whose hosts are all cluster service names (``*.svc.cluster.local``),
with no addresses, endpoints or workload selector of their own, stay inside the cluster and are
not judged; given endpoints (which may be any address) they are judged like any other.
``EnvoyFilter`` objects are not judged here (they can add clusters of their own): the README's
limits say so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.egress import host_in_zone
from policies.rules.base import Context, Resource, as_list, stack_rule
from policies.rules.helm_charts import HELM_TYPES
from policies.rules.kubernetes import kind_of

RULE_ID = "SOV-ZT-005"
ISTIOD_CHART = "istiod"
REGISTRY_ONLY = "REGISTRY_ONLY"
RESOLUTIONS = ("DNS", "DNS_ROUND_ROBIN")
"""Resolutions under which Envoy itself resolves the entry's host names."""
PROTOCOLS = ("TLS", "HTTPS")
"""Port protocols that keep the bytes encrypted to the AWS endpoint."""
CLUSTER_SUFFIX = ".svc.cluster.local"
ISTIO_TYPE = re.compile(r"kubernetes:[a-z.]+\.istio\.io/[a-z0-9]+:[A-Za-z]+")
"""Type tokens of Istio's custom resources (networking, security, telemetry ...)."""
Findings = list[tuple[Resource | None, str]]


def _spec(r: Resource) -> Mapping[str, Any]:
    spec = r.inputs.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _is(r: Resource, kind: str) -> bool:
    """An Istio ``kind`` object (``kubernetes:networking.istio.io/<version>:<kind>``)."""
    return r.type.startswith("kubernetes:networking.istio.io/") and kind_of(r) == kind


def chart_basename(r: Resource) -> str:
    """The chart a Helm release installs, without repository or ``oci://`` location."""
    return str(r.inputs.get("chart") or "").rstrip("/").rsplit("/", 1)[-1]


def outbound_mode(values: Any) -> str:
    """``meshConfig.outboundTrafficPolicy.mode`` of istiod's values ('' when unset: Istio's
    default then is ALLOW_ANY)."""
    node: Any = values
    for key in ("meshConfig", "outboundTrafficPolicy", "mode"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return str(node or "")


def service_entry_problems(r: Resource, ctx: Context) -> list[str]:
    """What lets one ServiceEntry reach outside the zone (empty: nothing)."""
    spec = _spec(r)
    hosts = [str(h) for h in as_list(spec.get("hosts"))]
    location = str(spec.get("location") or "MESH_EXTERNAL")
    redirected = any(spec.get(f) for f in ("addresses", "endpoints", "workloadSelector"))
    if (
        location == "MESH_INTERNAL"
        and hosts
        and all(h.endswith(CLUSTER_SUFFIX) for h in hosts)
        and not redirected
    ):
        return []
    if location == "MESH_INTERNAL" and hosts and _in_cluster_alias(spec):
        # A name (e.g. the IdP's public one) answered by in-cluster Services: DNS resolution of
        # cluster Service names only, so the traffic never leaves the cluster.
        return []
    out = []
    if not hosts:
        out.append("names no host")
    for host in hosts:
        if "*" in host:
            out.append(
                f"host {host} is a wildcard: it reaches every name it covers, other regions' "
                "endpoints included; list exact hosts (policies/egress.py allow_list)"
            )
        elif not host_in_zone(
            host, ctx.regions, ctx.allowed_account_ids, ctx.in_zone_external_resources
        ):
            out.append(
                f"host {host} is not in the egress allow-list of residency zone '{ctx.zone}' "
                f"({', '.join(ctx.regions) or 'no regions'}): only the zone regions' VPC "
                "endpoint hosts, the zone registry, the stack's buckets and hosts declared in "
                "inZoneExternalResources may leave the mesh"
            )
    resolution = str(spec.get("resolution") or "NONE")
    if resolution not in RESOLUTIONS:
        out.append(
            f"resolution {resolution}: Envoy then connects to whatever address the pod asked "
            f"for, whatever name it claims; use {' or '.join(RESOLUTIONS)}"
        )
    for field in ("addresses", "endpoints", "workloadSelector"):
        if spec.get(field):
            out.append(
                f"sets {field}: an allowed name must resolve through DNS to the service itself, "
                "not to addresses the entry chooses; remove it"
            )
    for port in as_list(spec.get("ports")):
        protocol = str(port.get("protocol") or "") if isinstance(port, Mapping) else ""
        if protocol.upper() not in PROTOCOLS:
            out.append(
                f"port {port.get('number') if isinstance(port, Mapping) else port} protocol "
                f"{protocol or 'unset'}: egress to the zone's endpoints is TLS (TLS or HTTPS)"
            )
    return out


def _in_cluster_alias(spec: Mapping[str, Any]) -> bool:
    """Whether a ServiceEntry only maps its hosts onto cluster Services: resolution DNS, at least
    one endpoint, every endpoint address a ``*.svc.cluster.local`` name, no address ranges, no
    workload selector."""
    endpoints = as_list(spec.get("endpoints"))
    return (
        str(spec.get("resolution") or "") == "DNS"
        and bool(endpoints)
        and not spec.get("addresses")
        and not spec.get("workloadSelector")
        and all(
            isinstance(e, Mapping) and str(e.get("address") or "").endswith(CLUSTER_SUFFIX)
            for e in endpoints
        )
    )


@stack_rule(
    RULE_ID,
    "mesh-egress-in-zone",
    "critical",
    "The mesh refuses every host no ServiceEntry names (istiod REGISTRY_ONLY, no Sidecar "
    "re-opening ALLOW_ANY), and every ServiceEntry names only exact in-zone hosts resolved by DNS "
    "over TLS, with no address ranges or endpoints.",
)
def mesh_egress_in_zone(resources: list[Resource], ctx: Context) -> Findings:
    out: Findings = []
    istiods = [r for r in resources if r.type in HELM_TYPES and chart_basename(r) == ISTIOD_CHART]
    istio = [r for r in resources if ISTIO_TYPE.match(r.type)]
    if istio and not istiods:
        out.append(
            (
                None,
                f"Istio objects ({istio[0].type.rsplit(':', 1)[-1]} {istio[0].name} ...) but no "
                "istiod Helm release: nothing refuses a host "
                "no ServiceEntry names; deploy the mesh (infra/mesh.py) with "
                f"meshConfig.outboundTrafficPolicy.mode {REGISTRY_ONLY}",
            )
        )
    for r in istiods:
        mode = outbound_mode(r.inputs.get("values"))
        if mode != REGISTRY_ONLY:
            out.append(
                (
                    r,
                    f"istiod's meshConfig.outboundTrafficPolicy.mode is "
                    f"{mode or 'unset (ALLOW_ANY)'}: set {REGISTRY_ONLY} so a host no "
                    "ServiceEntry names is refused",
                )
            )
    for r in resources:
        if _is(r, "Sidecar"):
            mode = str((_spec(r).get("outboundTrafficPolicy") or {}).get("mode") or "")
            if mode and mode != REGISTRY_ONLY:
                out.append(
                    (r, f"Sidecar {r.name} sets outboundTrafficPolicy {mode}: remove it, so the "
                        f"mesh-wide {REGISTRY_ONLY} holds for its workloads")
                )  # fmt: skip
        elif _is(r, "ServiceEntry"):
            out.extend((r, f"ServiceEntry {r.name} {m}") for m in service_entry_problems(r, ctx))
    return out
