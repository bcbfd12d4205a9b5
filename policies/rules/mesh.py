"""Zero trust in the mesh: every namespace enrolled, mutual TLS STRICT, authorization by default.

``SOV-ZT-001`` asks a stack that declares namespaces to run an Istio control plane (an ``istiod``
Helm release) and to enroll every namespace it declares (``istio-injection: enabled``) except
the mesh's root namespace and the signature admission controller's (the namespace of a
``policy-controller`` release: the API server is its only caller and it admits istiod's images).
No workload may opt its pods out (``sidecar.istio.io/inject: "false"``) or take inbound ports
out of the sidecar's capture, and no Helm release may set either, except the ports listed in
:data:`CAPTURE_EXCEPTIONS`. ``SOV-ZT-002`` asks for one mesh-wide PeerAuthentication in the root
namespace with ``mtls.mode: STRICT``, and refuses PERMISSIVE or DISABLE in any PeerAuthentication
(port-level included) and a DestinationRule that turns client mTLS off. ``SOV-ZT-003`` asks for
an allow-nothing AuthorizationPolicy in the root namespace (deny by default) and refuses any ALLOW
rule that does not name who it admits: a rule without ``from``, a source without an identity, or
a wildcard principal or namespace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules.base import Context, Resource, stack_rule
from policies.rules.front_door import authenticator_hosts, to_only
from policies.rules.helm_charts import HELM_TYPES, lookup, release_chart
from policies.rules.kubernetes import declared_namespaces, kind_of, object_namespace, pod_spec

ROOT_NAMESPACE = "istio-system"
"""Istio's default root namespace (the istiod release may name another: meshConfig)."""
INJECTION = ("istio-injection", "enabled")
"""The namespace label that enrolls a namespace's new pods (sidecar injection)."""
INJECT = "sidecar.istio.io/inject"
"""Pod label or annotation that opts one pod out of injection when ``"false"``."""
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
"""Pod annotation taking inbound ports out of the sidecar (so out of mTLS and authorization)."""
ADMISSION_CHART = "policy-controller"
"""The signature admission controller's chart: its namespace stays out of the mesh."""
ROOT_CHARTS = ("istiod", "base")
"""The charts that may run in the root namespace."""
ADDON_CHARTS = {
    ADMISSION_CHART: (ADMISSION_CHART,),
    "cert-manager": ("cert-manager", "aws-privateca-issuer"),
}
"""Control-plane add-ons whose namespace stays out of the mesh (defining chart -> the charts that
may share that namespace): the API server calls their webhooks and has no mesh identity, so a
sidecar in STRICT mode would refuse it."""
CAPTURE_EXCEPTIONS = {
    ("keda", "podAnnotations.keda"): {"9666"},
    ("keda", "podAnnotations.metricsAdapter"): {"6443"},
    ("keda", "podAnnotations.webhooks"): {"9443"},
}
"""(chart, values path of a pod's annotations) -> inbound ports that may bypass the sidecar:
KEDA's documented Istio setup. The EKS control plane, which has no mesh identity, calls the
metrics API (6443) and the webhooks (9443); the metrics API reads the operator (9666) with
KEDA's own mutual TLS. The NetworkPolicies still admit only the VPC and the namespace there."""
MODES_OK = ("STRICT", "UNSET")
"""PeerAuthentication modes that keep STRICT (UNSET inherits the mesh-wide STRICT)."""
Findings = list[tuple[Resource | None, str]]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _meta(r: Resource) -> Mapping[str, Any]:
    return _dict(r.inputs.get("metadata"))


def _is(r: Resource, kind: str) -> bool:
    """An Istio object of ``kind`` whichever API version spells it."""
    return r.type.startswith("kubernetes:") and kind_of(r) == kind


def _chart(r: Resource) -> str:
    return str(r.inputs.get("chart") or "").rstrip("/").rsplit("/", 1)[-1]


def _root(resources: list[Resource]) -> str:
    """The mesh's root namespace: meshConfig.rootNamespace of the istiod release, else Istio's
    default."""
    for r in resources:
        if r.type in HELM_TYPES and _chart(r) == "istiod":
            found = lookup(r.inputs.get("values"), "meshConfig.rootNamespace")
            return str(found or ROOT_NAMESPACE)
    return ROOT_NAMESPACE


def _template_meta(r: Resource) -> Mapping[str, Any]:
    """The pod template's metadata of a workload (a Pod's own metadata)."""
    spec = _dict(r.inputs.get("spec"))
    kind = kind_of(r)
    if kind == "Pod":
        return _meta(r)
    if kind == "CronJob":
        spec = _dict(_dict(spec.get("jobTemplate")).get("spec"))
    return _dict(_dict(spec.get("template")).get("metadata"))


def _opt_outs(meta: Mapping[str, Any]) -> list[str]:
    """What in pod metadata takes the pod, or some of its ports, out of the mesh."""
    out = []
    for where in ("labels", "annotations"):
        if str(_dict(meta.get(where)).get(INJECT, "")).lower() == "false":
            out.append(f"{where} {INJECT}: false")
    ports = str(_dict(meta.get("annotations")).get(EXCLUDE_INBOUND) or "").strip()
    if ports:
        out.append(f"annotation {EXCLUDE_INBOUND}: {ports}")
    return out


def _values_opt_outs(values: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(values path of the mapping, key, value) of every injection opt-out or capture
    exclusion a Helm release's values set, at any depth."""
    if isinstance(values, Mapping):
        for k, v in values.items():
            here = f"{path}.{k}" if path else str(k)
            if k == INJECT and str(v).lower() == "false":
                yield path, str(k), str(v)
            elif k == EXCLUDE_INBOUND:
                yield path, str(k), str(v)
            else:
                yield from _values_opt_outs(v, here)
    elif isinstance(values, list):
        for i, v in enumerate(values):
            yield from _values_opt_outs(v, f"{path}[{i}]")


def _ports(value: str) -> set[str]:
    return {p.strip() for p in value.split(",") if p.strip()}


def _exempt(resources: list[Resource], releases: list[Resource]) -> set[str]:
    """Namespaces that may stay out of the mesh: the root (istiod's) and each control-plane
    add-on's (:data:`ADDON_CHARTS`), each only while nothing else runs there (a release of another
    chart or a workload would otherwise escape the mesh by sharing the namespace)."""
    owners = {_root(resources): ROOT_CHARTS}
    owners.update(
        {
            str(r.inputs.get("namespace") or ""): ADDON_CHARTS[_chart(r)]
            for r in releases
            if _chart(r) in ADDON_CHARTS
        }
    )
    for r in resources:
        if r.type in HELM_TYPES:
            ns, chart = str(r.inputs.get("namespace") or "default"), _chart(r)
        elif pod_spec(r) is not None:
            ns, chart = object_namespace(r), ""
        else:
            continue
        if ns in owners and chart not in owners[ns]:
            del owners[ns]
    return set(owners)


@stack_rule(
    "SOV-ZT-001",
    "mesh-namespaces-enrolled",
    "critical",
    "A stack with namespaces runs the mesh and enrolls every namespace it declares (its root and "
    "the admission controller's aside); no workload opts out of the sidecar.",
)
def namespaces_enrolled(resources: list[Resource], ctx: Context) -> Findings:
    namespaces = declared_namespaces(resources)
    out: Findings = []
    if not namespaces:
        return out
    releases = [r for r in resources if r.type in HELM_TYPES]
    if not any(_chart(r) == "istiod" for r in releases):
        out.append(
            (
                None,
                "the stack declares namespaces but no Istio control plane (an istiod Helm "
                "release): nothing encrypts or authenticates pod-to-pod traffic; declare the "
                "mesh (components/mesh.py)",
            )
        )
    exempt = _exempt(resources, releases)
    key, value = INJECTION
    for name, ns in sorted(namespaces.items()):
        labels = _dict(_meta(ns).get("labels"))
        if name not in exempt and labels.get(key) != value:
            out.append(
                (
                    ns,
                    f"namespace {name} is not enrolled in the mesh ({key}="
                    f"{labels.get(key, '(unset)')}): its pods would run without a sidecar, "
                    f"speak plaintext and skip authorization; label it {key}={value}",
                )
            )
    for r in resources:
        if pod_spec(r) is not None:
            for what in _opt_outs(_template_meta(r)):
                out.append(
                    (
                        r,
                        f"{kind_of(r)} {_meta(r).get('name')}: pod template {what} takes it "
                        "out of the mesh's mTLS and authorization; remove it",
                    )
                )
    for r in releases:
        name, _ = release_chart(r)
        for path, k, v in _values_opt_outs(r.inputs.get("values")):
            allowed = CAPTURE_EXCEPTIONS.get((name, path), set())
            if k == EXCLUDE_INBOUND and _ports(v) <= allowed:
                continue
            out.append(
                (
                    r,
                    f"Helm release {r.inputs.get('name') or r.name} (chart {name}): values "
                    f"{path}.{k}: {v} takes pods or ports out of the mesh's mTLS and "
                    "authorization; remove it (exceptions are listed with their reason in "
                    "policies/rules/mesh.py)",
                )
            )
    return out


def _bad_modes(spec: Mapping[str, Any]) -> list[str]:
    out = []
    mode = _dict(spec.get("mtls")).get("mode")
    if mode is not None and str(mode) not in MODES_OK:
        out.append(f"mtls.mode {mode}")
    for port, setting in sorted(_dict(spec.get("portLevelMtls")).items(), key=str):
        port_mode = _dict(setting).get("mode")
        if str(port_mode) not in MODES_OK:
            out.append(f"portLevelMtls[{port}].mode {port_mode}")
    return out


def _relaxations(r: Resource) -> list[str]:
    """Messages for a PeerAuthentication or DestinationRule that lets plaintext through."""
    where = f"{kind_of(r)} {_meta(r).get('namespace', '')}/{_meta(r).get('name')}"
    spec = _dict(r.inputs.get("spec"))
    if _is(r, "PeerAuthentication"):
        return [
            f"{where}: {bad} accepts plaintext: mutual TLS must stay STRICT everywhere (UNSET "
            "inherits it); remove the override"
            for bad in _bad_modes(spec)
        ]
    if not _is(r, "DestinationRule"):
        return []
    policy = _dict(spec.get("trafficPolicy"))
    settings = [("trafficPolicy", policy)] + [
        (f"trafficPolicy.portLevelSettings[{i}]", _dict(p))
        for i, p in enumerate(_list(policy.get("portLevelSettings")))
    ]
    return [
        f"{where}: {path}.tls.mode DISABLE sends plaintext to {spec.get('host')}: leave tls "
        "unset (Istio's automatic mutual TLS) or ISTIO_MUTUAL"
        for path, p in settings
        if str(_dict(p.get("tls")).get("mode")) == "DISABLE"
    ]


def _strict_root(r: Resource, root: str) -> bool:
    spec = _dict(r.inputs.get("spec"))
    return (
        _is(r, "PeerAuthentication")
        and _meta(r).get("namespace") == root
        and not spec.get("selector")
        and _dict(spec.get("mtls")).get("mode") == "STRICT"
    )


@stack_rule(
    "SOV-ZT-002",
    "mesh-mtls-strict",
    "critical",
    "Mutual TLS is STRICT mesh-wide: a root PeerAuthentication without selector says STRICT, "
    "none relaxes it (port-level included) and no DestinationRule turns client mTLS off.",
)
def mtls_strict(resources: list[Resource], ctx: Context) -> Findings:
    out: Findings = [(r, m) for r in resources for m in _relaxations(r)]
    root = _root(resources)
    if declared_namespaces(resources) and not any(_strict_root(r, root) for r in resources):
        out.append(
            (
                None,
                f"no mesh-wide PeerAuthentication in the root namespace {root} with mtls.mode "
                "STRICT: sidecars would accept plaintext; declare one (components/mesh.py)",
            )
        )
    return out


def _identity(source: Mapping[str, Any]) -> list[str]:
    """The identities a source names (principals, namespaces, request principals)."""
    return [
        str(v)
        for key in ("principals", "namespaces", "requestPrincipals")
        for v in _list(source.get(key))
    ]


def _open_rules(spec: Mapping[str, Any], front_door: set[str]) -> list[str]:
    """Why each ALLOW rule admits more than named identities."""
    out = []
    for i, raw in enumerate(_list(spec.get("rules"))):
        rule_ = _dict(raw)
        sources = [_dict(_dict(f).get("source")) for f in _list(rule_.get("from"))]
        if not sources:
            out.append(f"rules[{i}] has no from: it admits every caller")
            continue
        for j, source in enumerate(sources):
            names = _identity(source)
            wild = [
                v
                for key in ("principals", "namespaces")
                for v in _list(source.get(key))
                if "*" in str(v)
            ]
            # The two address-based shapes: passthrough egress (exact SNI names), and the
            # sign-on front door (only hosts an authenticator serves).
            if (
                not names
                and _address_source(spec, source)
                and (_sni_only(rule_) or to_only(rule_, hosts=front_door))
            ):
                continue
            if not names:
                out.append(f"rules[{i}].from[{j}] names no identity: it admits every caller")
            elif wild:
                out.append(f"rules[{i}].from[{j}] admits by wildcard {wild}")
    return out


PASSTHROUGH_MIN_PREFIX = 8
"""The widest private range an address-only source may name (10.0.0.0/8)."""
RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
"""The private ranges (Python's ``is_private`` also counts documentation and other ranges)."""


def _address_source(spec: Mapping[str, Any], source: Mapping[str, Any]) -> bool:
    """Whether an identity-less source names its workload (a selector) and only private ranges
    (``ipBlocks`` alone, each RFC 1918 and no wider than /8)."""
    if not (_dict(spec.get("selector")).get("matchLabels")) or set(source) != {"ipBlocks"}:
        return False
    blocks = [str(b) for b in _list(source.get("ipBlocks"))]
    try:
        nets = [ipaddress.ip_network(b, strict=True) for b in blocks]
    except ValueError:
        return False
    return bool(nets) and not any(
        n.version != 4
        or n.prefixlen < PASSTHROUGH_MIN_PREFIX
        or not any(n.subnet_of(p) for p in RFC1918)
        for n in nets
    )


def _sni_only(rule_: Mapping[str, Any]) -> bool:
    """Whether every condition of a rule is an exact ``connection.sni`` list (no wildcard): the
    TLS passthrough egress gateway, where no mesh principal crosses."""
    when = [_dict(w) for w in _list(rule_.get("when"))]
    snis = [
        str(v) for w in when if w.get("key") == "connection.sni" for v in _list(w.get("values"))
    ]
    return (
        bool(when)
        and all(w.get("key") == "connection.sni" and not w.get("notValues") for w in when)
        and bool(snis)
        and not any("*" in v or not v for v in snis)
    )


def _allow_nothing(r: Resource, root: str) -> bool:
    spec = _dict(r.inputs.get("spec"))
    return (
        _is(r, "AuthorizationPolicy")
        and _meta(r).get("namespace") == root
        and str(spec.get("action") or "ALLOW") == "ALLOW"
        and not any(spec.get(k) for k in ("selector", "targetRef", "targetRefs", "rules"))
    )


@stack_rule(
    "SOV-ZT-003",
    "mesh-authorization-by-identity",
    "critical",
    "Authorization denies by default: an allow-nothing AuthorizationPolicy in the root namespace, "
    "and every ALLOW rule names the identities it admits (no rule without from, no source "
    "without an identity, no wildcard principal or namespace).",
)
def authorization_by_identity(resources: list[Resource], ctx: Context) -> Findings:
    out: Findings = []
    front_door = authenticator_hosts(resources)
    for r in resources:
        spec = _dict(r.inputs.get("spec"))
        if not _is(r, "AuthorizationPolicy") or str(spec.get("action") or "ALLOW") != "ALLOW":
            continue
        where = f"AuthorizationPolicy {_meta(r).get('namespace', '')}/{_meta(r).get('name')}"
        out += [
            (
                r,
                f"{where}: {why}; name the callers' service accounts "
                "(cluster.local/ns/<ns>/sa/<sa>) or namespaces",
            )
            for why in _open_rules(spec, front_door)
        ]
    root = _root(resources)
    if declared_namespaces(resources) and not any(_allow_nothing(r, root) for r in resources):
        out.append(
            (
                None,
                f"no allow-nothing AuthorizationPolicy (empty spec) in the root namespace {root}: "
                "a workload without an ALLOW policy of its own would admit every caller; "
                "declare one (components/mesh.py)",
            )
        )
    return out
