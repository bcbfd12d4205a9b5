"""Pod and network isolation: no host access, declared namespaces, no re-opened namespaces.

Pods (a workload's template or a Helm chart's pod, ``kubernetes.pod_views``) get no host
namespaces, host paths, host ports or privileged containers and tolerate no taint wholesale,
unless an allow-list grant in ``allowlist.py`` names the kube-system add-on and exactly what it
needs. Every namespaced object lands in a namespace the program declares (so the baseline's
Pod Security labels and default-deny reach it), and no NetworkPolicy re-opens a namespace to
every peer. The CrossGuard pack runs the same functions, so ``pulumi up`` refuses what
``sovml check`` refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.allowlist import SYSTEM_NAMESPACE, normalise, system_member
from policies.rules.base import Context, Resource, rule, stack_rule
from policies.rules.helm_charts import HELM_TYPES, release_chart
from policies.rules.kubernetes import (
    CLUSTER_SCOPED,
    PodView,
    declared_namespaces,
    kind_of,
    object_namespace,
    pod_views,
)

ALLOWLIST = "policies/rules/allowlist.py"
NAMESPACE_SHARED = {"hostNetwork": "network", "hostPID": "process", "hostIPC": "IPC"}
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in _list(spec.get(key))
        if isinstance(c, Mapping)
    ]


def _writable(spec: Mapping[str, Any], volume: str) -> bool:
    """True when any container mounts ``volume`` without ``readOnly: true`` (or none mounts it
    and so nothing says it is read-only)."""
    mounts = [
        m
        for c in _containers(spec)
        for m in _list(c.get("volumeMounts"))
        if isinstance(m, Mapping) and m.get("name") == volume
    ]
    return not mounts or any(m.get("readOnly") is not True for m in mounts)


def _host_paths(view: PodView) -> list[str]:
    """Messages for host-path volumes the pod's grant does not cover."""
    grant = view.grant
    granted = {normalise(h.path): h for h in grant.host_paths} if grant else {}
    out = []
    for v in _list(view.spec.get("volumes")):
        if not isinstance(v, Mapping) or "hostPath" not in v:
            continue
        name = str(v.get("name"))
        path = normalise(str(_dict(v.get("hostPath")).get("path") or ""))
        writable = _writable(view.spec, name)
        allowed = granted.get(path)
        if allowed is None:
            out.append(
                f"{view.label}: volume {name} mounts hostPath {path or '(empty)'} "
                f"{'read-write' if writable else 'read-only'}: a pod with a host folder can read "
                "or change the node beneath every other pod; use emptyDir, a ConfigMap, a Secret "
                f"or a PersistentVolumeClaim (host paths are only for the add-ons in {ALLOWLIST})"
            )
        elif allowed.read_only and writable:
            out.append(
                f"{view.label}: volume {name} mounts hostPath {path} read-write, but its "
                f"allow-list grant is read-only: set readOnly: true on every mount of it"
            )
    return out


def host_access(view: PodView) -> list[str]:
    """Every host namespace, privileged container, host port and host path ``view`` uses
    beyond its allow-list grant."""
    grant = view.grant
    allowed = set(grant.host_access) if grant else set()
    out = []
    for field, shared in NAMESPACE_SHARED.items():
        if view.spec.get(field) is True and field not in allowed:
            out.append(
                f"{view.label}: sets {field}{view.where(field)}, sharing the node's {shared} "
                f"namespace with the pod; remove it (host access is only for the add-ons in "
                f"{ALLOWLIST})"
            )
    for c in _containers(view.spec):
        name = c.get("name", "?")
        where = view.where("container.securityContext")
        if _dict(c.get("securityContext")).get("privileged") is True and (
            "privileged" not in allowed
        ):
            out.append(
                f"{view.label}: container {name} is privileged{where}: it holds every "
                "capability and every host device; remove privileged and add only the "
                "capability it needs"
            )
        ports = [p for p in _list(c.get("ports")) if isinstance(p, Mapping) and p.get("hostPort")]
        if ports and "hostPort" not in allowed:
            out.append(
                f"{view.label}: container {name} binds host port(s) "
                f"{', '.join(str(p.get('hostPort')) for p in ports)} on the node; expose it "
                "through a Service instead"
            )
    return out + _host_paths(view)


@rule(
    "SOV-K8S-007",
    "no-host-access",
    "critical",
    "No hostPath, hostNetwork, hostPID, hostIPC, privileged container or hostPort, except the "
    "allow-listed kube-system add-ons (each with its reason).",
)
def no_host_access(r: Resource, ctx: Context) -> list[str]:
    return [m for view in pod_views(r) for m in host_access(view)]


def tolerates_everything(view: PodView) -> list[str]:
    """A message when ``view`` tolerates every taint and its grant does not allow it."""
    grant = view.grant
    tolerations = view.spec.get("tolerations")
    where = view.where("tolerations")
    if isinstance(tolerations, str):
        return [
            f"{view.label}: tolerations given as template text{where} cannot be examined; "
            "give them as a list"
        ]
    wildcard = [
        t
        for t in _list(tolerations)
        if isinstance(t, Mapping) and t.get("operator") == "Exists" and not t.get("key")
    ]
    if not wildcard or (grant and grant.tolerate_all):
        return []
    return [
        f"{view.label}: tolerates every taint{where} (operator Exists without a key), so it "
        "lands on GPU and other dedicated nodes; tolerate only the taints it needs, by key"
    ]


@rule(
    "SOV-K8S-010",
    "no-toleration-of-every-taint",
    "high",
    "No pod tolerates every taint (operator Exists without a key) outside the allow-list.",
)
def no_wildcard_toleration(r: Resource, ctx: Context) -> list[str]:
    return [m for view in pod_views(r) for m in tolerates_everything(view)]


def _object_key(r: Resource) -> tuple[str, tuple[str, ...]]:
    """The allow-list key and images of an object (Helm: ``helm:<chart>``)."""
    if r.type in HELM_TYPES:
        return f"helm:{release_chart(r)[0]}", ()
    name = str(_dict(r.inputs.get("metadata")).get("name") or r.name)
    images = tuple(i for v in pod_views(r) for i in v.images)
    return f"{kind_of(r)}/{name}", images


def _namespaced(r: Resource) -> bool:
    """True for a Kubernetes object that lives in a namespace (Helm releases included)."""
    if r.type in HELM_TYPES:
        return True
    if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:yaml"):
        return False
    kind = kind_of(r)
    return kind not in CLUSTER_SCOPED and not kind.endswith(("List", "Patch"))


@stack_rule(
    "SOV-K8S-008",
    "objects-in-declared-namespaces",
    "high",
    "Every namespaced object lands in a namespace the program declares (so the baseline's Pod "
    "Security labels and default-deny reach it); kube-system only for allow-listed add-ons.",
)
def declared_namespace(
    resources: list[Resource], ctx: Context
) -> list[tuple[Resource | None, str]]:
    declared = declared_namespaces(resources)
    out: list[tuple[Resource | None, str]] = []
    for r in resources:
        if not _namespaced(r):
            continue
        namespace = object_namespace(r)
        key, images = _object_key(r)
        if namespace == SYSTEM_NAMESPACE and namespace not in declared:
            if system_member(key, images) is None:
                out.append((r, (
                    f"{key} is in kube-system, which the program does not declare and no "
                    "default-deny covers; only the add-ons in "
                    f"{ALLOWLIST} may go there: move it to a declared namespace"
                )))  # fmt: skip
        elif namespace not in declared:
            out.append((r, (
                f"{key} is in namespace {namespace}, which the program does not declare: no "
                "Pod Security labels and no default-deny NetworkPolicy reach it; declare the "
                "namespace with the baseline (labels and default-deny) or move the object"
            )))  # fmt: skip
    return out


def _selects_all(selector: Any) -> bool:
    """True for an empty (or missing) label selector: it selects everything."""
    sel = _dict(selector)
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


def _world_peer(peer: Any) -> str:
    """Why ``peer`` admits everyone, or "" when it names specific peers."""
    if not isinstance(peer, Mapping) or not peer:
        return "has an empty peer {} (every source and destination)"
    cidr = str(_dict(peer.get("ipBlock")).get("cidr") or "")
    if cidr.endswith("/0"):
        return f"admits ipBlock {cidr} (every address, the internet included)"
    if (
        "namespaceSelector" in peer
        and _selects_all(peer.get("namespaceSelector"))
        and _selects_all(peer.get("podSelector"))
    ):
        return "admits namespaceSelector {} without a podSelector (every pod of every namespace)"
    return ""


def _policy_types(spec: Mapping[str, Any]) -> set[str]:
    """The directions a NetworkPolicy governs (Kubernetes' defaults when policyTypes is unset)."""
    types = _list(spec.get("policyTypes"))
    if types:
        return {str(t) for t in types}
    return {"Ingress"} | ({"Egress"} if spec.get("egress") else set())


@rule(
    "SOV-K8S-009",
    "no-namespace-wide-allow-all",
    "high",
    "No NetworkPolicy that selects every pod re-opens all ingress or egress (no peers, an empty "
    "peer, 0.0.0.0/0 or every namespace).",
    types=(NETWORK_POLICY,),
)
def no_allow_all(r: Resource, ctx: Context) -> list[str]:
    spec = _dict(r.inputs.get("spec"))
    if not _selects_all(spec.get("podSelector")):
        return []
    meta = _dict(r.inputs.get("metadata"))
    label = f"NetworkPolicy {object_namespace(r)}/{meta.get('name') or r.name}"
    out = []
    for direction, peers_key in (("Ingress", "from"), ("Egress", "to")):
        if direction not in _policy_types(spec):
            continue
        for i, entry in enumerate(_list(spec.get(direction.lower())), start=1):
            entry = _dict(entry)
            peers = _list(entry.get(peers_key))
            reasons = [w for w in (_world_peer(p) for p in peers) if w]
            if not peers:
                reasons = [f"has no {peers_key!r} (every peer)"]
            if reasons:
                out.append(
                    f"{label} selects every pod (empty podSelector) and its {direction.lower()} "
                    f"rule {i} {reasons[0]}: it re-opens what the namespace's default-deny "
                    "closes; name the peers it needs (a namespaceSelector with labels plus a "
                    "podSelector, or exact ipBlock CIDRs)"
                )
    return out
