"""GPU isolation: GPU nodes are tainted, and only GPU workloads tolerate and select them."""

from __future__ import annotations

from policies.rules.base import Context, Resource, rule
from policies.rules.kubernetes import pod_spec

GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e", "p5en")
GPU_KEY = "nvidia.com/gpu"
GPU_SELECTORS = {"sovereign-ml/pool": "gpu", "nvidia.com/gpu.present": "true"}


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


@rule(
    "SOV-GPU-002",
    "gpu-workloads-tolerate-and-select",
    "high",
    "A workload requesting nvidia.com/gpu tolerates the GPU taint and selects GPU nodes.",
)
def gpu_workload(r: Resource, ctx: Context) -> list[str]:
    spec = pod_spec(r)
    if spec is None:
        return []
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    wants_gpu = any(
        GPU_KEY in ((c.get("resources") or {}).get(kind) or {})
        for c in containers
        for kind in ("limits", "requests")
    )
    if not wants_gpu:
        return []
    out = []
    tolerations = spec.get("tolerations") or []
    if not any(
        t.get("key") == GPU_KEY and t.get("effect") in ("NoSchedule", None, "") for t in tolerations
    ):
        out.append("requests nvidia.com/gpu but does not tolerate the nvidia.com/gpu taint")
    selector = spec.get("nodeSelector") or {}
    affinity = str(spec.get("affinity") or "")
    if not any(selector.get(k) == v for k, v in GPU_SELECTORS.items()) and not any(
        k in affinity for k in GPU_SELECTORS
    ):
        out.append(
            "requests nvidia.com/gpu but does not select GPU nodes: add nodeSelector "
            "sovereign-ml/pool: gpu"
        )
    return out
