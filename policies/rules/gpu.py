"""GPU isolation: GPU nodes are tainted, and only GPU workloads tolerate and select them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.base import Context, Resource, rule
from policies.rules.kubernetes import PodView, pod_views

GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e", "p5en")
GPU_KEY = "nvidia.com/gpu"
GPU_SELECTORS = {"sovereign-ml/pool": "gpu", "nvidia.com/gpu.present": "true"}
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


def is_gpu_node_group(r: Resource) -> bool:
    """True when a node group runs GPU instances or a GPU AMI."""
    ami = str(r.inputs.get("amiType") or "")
    types = r.inputs.get("instanceTypes") or []
    return (
        "NVIDIA" in ami or "GPU" in ami or any(str(t).split(".")[0] in GPU_FAMILIES for t in types)
    )


@rule(
    "SOV-GPU-001",
    "gpu-node-group-tainted",
    "high",
    "GPU node groups carry the nvidia.com/gpu NoSchedule taint.",
)
def gpu_tainted(r: Resource, ctx: Context) -> list[str]:
    if r.type != "aws:eks/nodeGroup:NodeGroup" or not is_gpu_node_group(r):
        return []
    taints = r.inputs.get("taints") or []
    if not any(t.get("key") == GPU_KEY and t.get("effect") == "NO_SCHEDULE" for t in taints):
        return [
            "GPU node group without the nvidia.com/gpu=true:NoSchedule taint: CPU pods would "
            "take the GPU nodes; add the taint"
        ]
    return []


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def requests_gpu(spec: Mapping[str, Any]) -> bool:
    """True when any container requests or limits a non-zero count of ``nvidia.com/gpu``."""
    for c in _list(spec.get("containers")) + _list(spec.get("initContainers")):
        resources = _dict(_dict(c).get("resources"))
        for kind in ("limits", "requests"):
            count = _dict(resources.get(kind)).get(GPU_KEY)
            if count is not None and str(count) not in ("0", ""):
                return True
    return False


def _gpu_instance_type(value: Any) -> bool:
    return str(value).split(".")[0] in GPU_FAMILIES


def _gpu_label(key: str, values: list[Any], operator: str = "In") -> bool:
    """True when a node label requirement picks GPU nodes."""
    if key.startswith(GPU_KEY):
        return operator in ("In", "Exists") and (operator == "Exists" or "false" not in values)
    if key in INSTANCE_TYPE_LABELS:
        return operator == "In" and any(_gpu_instance_type(v) for v in values)
    return operator == "In" and GPU_SELECTORS.get(key) in [str(v) for v in values]


def selects_gpu_nodes(spec: Mapping[str, Any]) -> bool:
    """True when the pod's nodeSelector or node affinity (required or preferred) picks GPU nodes."""
    selector = spec.get("nodeSelector")
    if isinstance(selector, str):
        return any(k in selector for k in (*GPU_SELECTORS, GPU_KEY))
    if any(_gpu_label(str(k), [v]) for k, v in _dict(selector).items()):
        return True
    affinity = spec.get("affinity")
    if isinstance(affinity, str):
        return any(k in affinity for k in (*GPU_SELECTORS, GPU_KEY))
    node = _dict(_dict(affinity).get("nodeAffinity"))
    terms = _list(_dict(node.get("requiredDuringSchedulingIgnoredDuringExecution")).get(
        "nodeSelectorTerms"
    )) + [_dict(p).get("preference") for p in _list(
        node.get("preferredDuringSchedulingIgnoredDuringExecution")
    )]  # fmt: skip
    return any(
        _gpu_label(str(e.get("key")), _list(e.get("values")), str(e.get("operator")))
        for term in terms
        for e in _list(_dict(term).get("matchExpressions"))
        if isinstance(e, Mapping)
    )


def tolerates_gpu_taint(spec: Mapping[str, Any]) -> bool:
    """True when a toleration matches the GPU taint: by key, or every taint (Exists, no key)."""
    tolerations = spec.get("tolerations")
    if isinstance(tolerations, str):
        return GPU_KEY in tolerations or "Exists" in tolerations
    return any(
        isinstance(t, Mapping)
        and (t.get("key") == GPU_KEY or (t.get("operator") == "Exists" and not t.get("key")))
        and t.get("effect") in ("NoSchedule", None, "")
        for t in _list(tolerations)
    )


def _gpu_workload(view: PodView) -> list[str]:
    spec = view.spec
    if not requests_gpu(spec):
        return []
    out = []
    if not any(
        isinstance(t, Mapping)
        and t.get("key") == GPU_KEY
        and t.get("effect") in ("NoSchedule", None, "")
        for t in _list(spec.get("tolerations"))
    ):
        out.append("requests nvidia.com/gpu but does not tolerate the nvidia.com/gpu taint")
    if not selects_gpu_nodes(spec):
        out.append(
            "requests nvidia.com/gpu but does not select GPU nodes: add nodeSelector "
            "sovereign-ml/pool: gpu"
        )
    return out


@rule(
    "SOV-GPU-002",
    "gpu-workloads-tolerate-and-select",
    "high",
    "A workload requesting nvidia.com/gpu tolerates the GPU taint and selects GPU nodes.",
)
def gpu_workload(r: Resource, ctx: Context) -> list[str]:
    return [m for view in pod_views(r) for m in _gpu_workload(view)]


def gpu_nodes_reserved(view: PodView) -> list[str]:
    """Messages when a pod that requests no GPU tolerates the GPU taint or selects GPU nodes."""
    grant = view.grant
    if requests_gpu(view.spec) or (grant and grant.gpu_nodes):
        return []
    out = []
    if tolerates_gpu_taint(view.spec):
        out.append(
            f"{view.label}: requests no nvidia.com/gpu but tolerates the GPU taint"
            f"{view.where('tolerations')}: GPU nodes are reserved for GPU work; remove the "
            "toleration (or request nvidia.com/gpu)"
        )
    if selects_gpu_nodes(view.spec):
        where = view.where("nodeSelector") or view.where("affinity")
        out.append(
            f"{view.label}: requests no nvidia.com/gpu but selects GPU nodes{where}: select "
            "the system or workers pool instead (or request nvidia.com/gpu)"
        )
    return out


@rule(
    "SOV-GPU-003",
    "gpu-nodes-only-for-gpu-workloads",
    "high",
    "Only workloads that request nvidia.com/gpu tolerate the GPU taint or select GPU nodes "
    "(allow-listed node agents aside).",
)
def gpu_nodes_only_for_gpu(r: Resource, ctx: Context) -> list[str]:
    return [m for view in pod_views(r) for m in gpu_nodes_reserved(view)]
