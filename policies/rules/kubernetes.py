"""Kubernetes workloads: Pod Security 'restricted', bounded resources, pinned images, deny-all."""

from __future__ import annotations

import re
from typing import Any

from policies.rules.base import Context, Resource, rule, stack_rule

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


def pod_spec(r: Resource) -> dict[str, Any] | None:
    """The pod spec inside any workload kind, or None for non-workloads."""
    if not r.type.startswith("kubernetes:") or r.inputs.get("kind") not in WORKLOAD_KINDS:
        return None
    spec = r.inputs.get("spec") or {}
    kind = r.inputs.get("kind")
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    ]


def _workload_rule(check: Any) -> Any:
    def wrapped(r: Resource, ctx: Context) -> list[str]:
        spec = pod_spec(r)
        return [] if spec is None else check(spec)

    wrapped.__doc__ = check.__doc__
    return wrapped


def _restricted(spec: dict[str, Any]) -> list[str]:
    out = []
    pod_sc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"pod sets {key}: not allowed under Pod Security 'restricted'")
    for c in _containers(spec):
        sc = c.get("securityContext") or {}
        name = c.get("name", "?")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            out.append(f"container {name}: set runAsNonRoot=true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            out.append(f"container {name}: runs as UID 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"container {name}: set allowPrivilegeEscalation=false")
        if sc.get("privileged") is True:
            out.append(f"container {name}: privileged containers are not allowed")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"container {name}: drop ALL capabilities")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"container {name}: only NET_BIND_SERVICE may be added")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"container {name}: set seccompProfile.type=RuntimeDefault")
    return out


def _read_only(spec: dict[str, Any]) -> list[str]:
    return [
        f"container {c.get('name', '?')}: set readOnlyRootFilesystem=true (emptyDir for scratch)"
        for c in _containers(spec)
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True
    ]


def _resources(spec: dict[str, Any]) -> list[str]:
    out = []
    for c in _containers(spec):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = [k for k in ("cpu", "memory") if k not in (res.get(kind) or {})]
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
    _workload_rule(_restricted))  # fmt: skip
rule("SOV-K8S-002", "read-only-root-filesystem", "medium",
     "Containers run with a read-only root filesystem.")(_workload_rule(_read_only))  # fmt: skip
rule("SOV-K8S-003", "resource-requests-and-limits", "medium",
     "Containers declare CPU and memory requests and limits.")(
    _workload_rule(_resources))  # fmt: skip
rule("SOV-K8S-004", "images-pinned", "high",
     "Container images are pinned by version tag or digest (no latest, no untagged).")(
    _workload_rule(_pinned))  # fmt: skip


def _is_default_deny(r: Resource) -> bool:
    spec = r.inputs.get("spec") or {}
    return (
        spec.get("podSelector") in ({}, None)
        and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or [])
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
    namespaces = {
        (r.inputs.get("metadata") or {}).get("name"): r
        for r in resources
        if r.type == "kubernetes:core/v1:Namespace"
    }
    if not namespaces:
        return []
    denied = {
        (r.inputs.get("metadata") or {}).get("namespace")
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
    ref = (r.inputs.get("spec") or {}).get("scaleTargetRef") or {}
    namespace = (r.inputs.get("metadata") or {}).get("namespace") or "default"
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
