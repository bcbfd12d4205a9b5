"""Kubernetes workloads: Pod Security 'restricted', bounded resources, pinned images, deny-all.

Also the shared views the isolation rules use: where an object lands (``object_namespace``) and
every pod a resource runs (``pod_views``: a workload's template, or each pod of a Helm chart).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.rules.allowlist import Grant, grant_for
from policies.rules.base import Context, Resource, rule, stack_rule
from policies.rules.helm_charts import helm_pods, release_chart

WORKLOAD_KINDS = {
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Rollout",
}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "RuntimeClass",
        "IngressClass",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "PodSecurityPolicy",
        "CertificateSigningRequest",
        "FlowSchema",
        "PriorityLevelConfiguration",
        "ClusterIssuer",
        "AWSPCAClusterIssuer",
        "Profile",
        "ClusterPolicy",
        "ClusterImagePolicy",
    }
)
"""Kinds without a namespace (the gate's manifests and the namespace rule both need the list)."""


def _list(value: Any) -> list[Any]:
    """``value`` when it is a list, else empty (see ``_mapping``)."""
    return value if isinstance(value, list) else []


def declared_namespaces(resources: list[Resource]) -> dict[str, Resource]:
    """The namespaces the program declares, by name."""
    return {
        str(_mapping(r.inputs.get("metadata")).get("name")): r
        for r in resources
        if r.type == "kubernetes:core/v1:Namespace"
    }


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else empty: objects from YAML may be malformed, and a
    malformed field is the schema check's to report, never a crash of the rules."""
    return value if isinstance(value, dict) else {}


def pod_spec(r: Resource) -> dict[str, Any] | None:
    """The pod spec inside any workload kind, or None for non-workloads."""
    kind = kind_of(r)
    if not r.type.startswith("kubernetes:") or kind not in WORKLOAD_KINDS:
        return None
    spec = _mapping(r.inputs.get("spec"))
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
    return _mapping(_mapping(spec.get("template")).get("spec"))


def kind_of(r: Resource) -> str:
    """The object kind: the ``kind`` input, else the type token's last part."""
    return str(r.inputs.get("kind") or r.type.rsplit(":", 1)[-1])


def object_namespace(r: Resource) -> str:
    """Where a namespaced object lands: its metadata, else its provider's default, else default.

    A Helm release's objects land in the release's ``namespace``.
    """
    if r.type.startswith("kubernetes:helm.sh/"):
        explicit = r.inputs.get("namespace")
    else:
        explicit = _mapping(r.inputs.get("metadata")).get("namespace")
    return str(explicit or r.provider_inputs.get("namespace") or "default")


@dataclass(frozen=True)
class PodView:
    """A pod as the isolation rules judge it: a workload's template or a Helm chart's pod."""

    label: str
    """How messages name it (``DaemonSet kube-system/x``, ``Helm release r (chart c), pod p``)."""
    namespace: str
    """Namespace it runs in."""
    workload: str
    """Its allow-list key: ``<Kind>/<name>`` or ``helm:<chart>/<pod>``."""
    spec: Mapping[str, Any]
    """The pod spec."""
    images: tuple[str, ...] = ()
    """Container images (workloads only; a chart's images come from the chart)."""
    paths: Mapping[str, str] = field(default_factory=dict)
    """Values path of each spec field, for Helm pods (``container.<field>`` for containers)."""

    @property
    def grant(self) -> Grant | None:
        """The allow-list grant covering this pod, if any."""
        return grant_for(self.namespace, self.workload, self.images)

    def where(self, spec_field: str) -> str:
        """`` (values <path>)`` when a Helm value sets ``spec_field``, else ""."""
        path = self.paths.get(spec_field)
        return f" (values {path})" if path else ""


def pod_views(r: Resource) -> list[PodView]:
    """Every pod a resource would run: a workload's template, or each pod of a known chart."""
    spec = pod_spec(r)
    if spec is not None:
        kind = kind_of(r)
        name = str(_mapping(r.inputs.get("metadata")).get("name") or r.name)
        namespace = object_namespace(r)
        images = tuple(str(c.get("image") or "") for c in _containers(spec))
        return [PodView(f"{kind} {namespace}/{name}", namespace, f"{kind}/{name}", spec, images)]
    pods = helm_pods(r)
    if not pods:
        return []
    namespace = object_namespace(r)
    release = str(r.inputs.get("name") or r.name)
    chart = release_chart(r)[0]
    return [
        PodView(
            f"Helm release {namespace}/{release} (chart {chart}), pod {p.pod.name}",
            namespace,
            f"helm:{chart}/{p.pod.name}",
            p.spec,
            paths=p.paths,
        )
        for p in pods
    ]


def _containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in (spec.get(key) if isinstance(spec.get(key), list) else [])
        if isinstance(c, dict)
    ]


def _workload_rule(check: Any) -> Any:
    def wrapped(r: Resource, ctx: Context) -> list[str]:
        spec = pod_spec(r)
        return [] if spec is None else check(spec)

    wrapped.__doc__ = check.__doc__
    return wrapped


def _restricted_pod(r: Resource, ctx: Context) -> list[str]:
    """Pod Security 'restricted' user and capability fields of a workload's pod.

    Host namespaces, privileged containers, host paths and host ports are SOV-K8S-007's, judged
    once there with the allow-list; an allow-listed add-on that must run as root (the device
    plugin) is exempt from the two root checks here, and only from those.
    """
    views = pod_views(r) if pod_spec(r) is not None else []
    if not views:
        return []
    grant = views[0].grant
    return _restricted(views[0].spec, root_allowed=bool(grant and grant.run_as_root))


def _restricted(spec: Mapping[str, Any], *, root_allowed: bool = False) -> list[str]:
    out = []
    pod_sc = _mapping(spec.get("securityContext"))
    for c in _containers(spec):
        sc = _mapping(c.get("securityContext"))
        name = c.get("name", "?")
        if not root_allowed:
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                out.append(f"container {name}: set runAsNonRoot=true")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
                out.append(f"container {name}: runs as UID 0; set runAsUser to a non-zero UID")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"container {name}: set allowPrivilegeEscalation=false")
        caps = _mapping(sc.get("capabilities"))
        if "ALL" not in _list(caps.get("drop")):
            out.append(f"container {name}: drop ALL capabilities")
        if {str(a) for a in _list(caps.get("add"))} - {"NET_BIND_SERVICE"}:
            out.append(f"container {name}: only NET_BIND_SERVICE may be added")
        seccomp = _mapping(sc.get("seccompProfile") or pod_sc.get("seccompProfile")).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"container {name}: set seccompProfile.type=RuntimeDefault")
    return out


def _read_only(spec: dict[str, Any]) -> list[str]:
    return [
        f"container {c.get('name', '?')}: set readOnlyRootFilesystem=true (emptyDir for scratch)"
        for c in _containers(spec)
        if _mapping(c.get("securityContext")).get("readOnlyRootFilesystem") is not True
    ]


def _resources(spec: dict[str, Any]) -> list[str]:
    out = []
    for c in _containers(spec):
        res = _mapping(c.get("resources"))
        for kind in ("requests", "limits"):
            missing = [k for k in ("cpu", "memory") if k not in _mapping(res.get(kind))]
            if missing:
                out.append(f"container {c.get('name', '?')}: no {kind} for {', '.join(missing)}")
    return out


def image_pinned(image: str) -> bool:
    """True for ``repo@sha256:<digest>`` or ``repo:tag`` with a tag other than latest."""
    if DIGEST.search(image):
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def _pinned(spec: dict[str, Any]) -> list[str]:
    return [
        f"container {c.get('name', '?')}: image {c.get('image')!r} is not pinned: use a version "
        "tag or a digest, never latest"
        for c in _containers(spec)
        if not image_pinned(str(c.get("image") or ""))
    ]


rule("SOV-K8S-001", "pod-security-restricted", "high",
     "Workloads meet Pod Security 'restricted': non-root, no escalation, drop ALL, seccomp.")(
    _restricted_pod)  # fmt: skip
rule("SOV-K8S-002", "read-only-root-filesystem", "medium",
     "Containers run with a read-only root filesystem.")(_workload_rule(_read_only))  # fmt: skip
rule("SOV-K8S-003", "resource-requests-and-limits", "medium",
     "Containers declare CPU and memory requests and limits.")(
    _workload_rule(_resources))  # fmt: skip
rule("SOV-K8S-004", "images-pinned", "high",
     "Container images are pinned by version tag or digest (no latest, no untagged).")(
    _workload_rule(_pinned))  # fmt: skip


def _is_default_deny(r: Resource) -> bool:
    spec = _mapping(r.inputs.get("spec"))
    return (
        spec.get("podSelector") in ({}, None)
        and {"Ingress", "Egress"} <= {str(t) for t in _list(spec.get("policyTypes"))}
        and not spec.get("ingress")
        and not spec.get("egress")
    )


@stack_rule(
    "SOV-K8S-005",
    "default-deny-network-policy",
    "high",
    "Every platform and tenant namespace has a default-deny ingress+egress NetworkPolicy.",
)
def default_deny(resources: list[Resource], ctx: Context) -> list[tuple[Resource | None, str]]:
    namespaces = declared_namespaces(resources)
    if not namespaces:
        return []
    denied = {
        object_namespace(r)
        for r in resources
        if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy" and _is_default_deny(r)
    }
    out: list[tuple[Resource | None, str]] = [
        (ns, f"namespace {name} has no default-deny NetworkPolicy (podSelector {{}}, "
             "policyTypes Ingress+Egress, no rules)")
        for name, ns in sorted(namespaces.items())
        if name not in denied
    ]  # fmt: skip
    for name in ctx.platform_namespaces:
        if name not in namespaces:
            out.append((None, f"platform namespace {name} is not declared"))
    return out


AUTOSCALER_KINDS = {"HorizontalPodAutoscaler", "ScaledObject"}


def _scale_target(r: Resource) -> tuple[str, str, str] | None:
    """(namespace, kind, name) an HPA or KEDA ScaledObject scales, or None for other resources.

    A ScaledObject's ``scaleTargetRef`` defaults to a Deployment; an HPA's names its kind.
    """
    kind = r.inputs.get("kind") or r.type.rsplit(":", 1)[-1]
    if not r.type.startswith("kubernetes:") or kind not in AUTOSCALER_KINDS:
        return None
    ref = _mapping(_mapping(r.inputs.get("spec")).get("scaleTargetRef"))
    namespace = object_namespace(r)
    return namespace, str(ref.get("kind") or "Deployment"), str(ref.get("name") or "")


@stack_rule(
    "SOV-K8S-006",
    "one-autoscaler-per-workload",
    "high",
    "A workload is scaled by one HorizontalPodAutoscaler or one KEDA ScaledObject, never two.",
)
def one_autoscaler(resources: list[Resource], ctx: Context) -> list[tuple[Resource | None, str]]:
    seen: dict[tuple[str, str, str], Resource] = {}
    out: list[tuple[Resource | None, str]] = []
    for r in resources:
        target = _scale_target(r)
        if target is None:
            continue
        first = seen.setdefault(target, r)
        if first is not r:
            namespace, kind, name = target
            out.append(
                (
                    r,
                    f"{kind} {namespace}/{name} is already scaled by {first.name}: two "
                    "autoscalers overwrite each other's replica count; keep one (a ScaledObject "
                    "creates and owns its own HPA)",
                )
            )
    return out
