"""CKV_SOV_1: a GPU node group must carry the ``nvidia.com/gpu`` NoSchedule taint."""

# ruff: noqa: N999  (checkov convention: one check class per file, named after it)

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

# Instance families with NVIDIA GPUs that EKS schedules with the device plugin.
GPU_FAMILIES = frozenset(
    {
        *("g4dn", "g5", "g5g", "g6", "g6e", "g6f", "gr6"),
        *("p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en"),
    }
)
GPU_TAINT_KEY = "nvidia.com/gpu"


def _one(value: Any) -> Any:
    # checkov wraps every plan value in a one-element list; a block is a list of dicts.
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def is_gpu_node_group(conf: dict[str, Any]) -> bool:
    """GPU AMI (``*_NVIDIA``, ``*_GPU``) or a GPU instance family."""
    ami = str(_one(conf.get("ami_type")) or "").upper()
    if "NVIDIA" in ami or "GPU" in ami:
        return True
    return any(t.split(".")[0] in GPU_FAMILIES for t in _strings(conf.get("instance_types")))


class EksGpuNodeGroupTainted(BaseResourceCheck):
    """GPU nodes must repel pods that did not ask for a GPU.

    Without the taint, ordinary pods fill the (expensive, scarce) GPU nodes and GPU jobs stay
    pending; the NVIDIA device plugin and GPU workloads tolerate ``nvidia.com/gpu``.
    """

    def __init__(self) -> None:
        super().__init__(
            name="Ensure EKS GPU node groups are tainted nvidia.com/gpu:NoSchedule",
            id="CKV_SOV_1",
            categories=(CheckCategories.KUBERNETES,),
            supported_resources=("aws_eks_node_group",),
            guideline="GPU pools need taint {key: nvidia.com/gpu, effect: NO_SCHEDULE}.",
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        """PASSED for non-GPU groups and tainted GPU groups, FAILED otherwise."""
        self.evaluated_keys = ["ami_type", "instance_types", "taint"]
        if not is_gpu_node_group(conf):
            return CheckResult.PASSED
        for taint in conf.get("taint") or []:
            taint = _one(taint)
            if not isinstance(taint, dict):
                continue
            key, effect = _one(taint.get("key")), _one(taint.get("effect"))
            if key == GPU_TAINT_KEY and effect == "NO_SCHEDULE":
                return CheckResult.PASSED
        return CheckResult.FAILED


check = EksGpuNodeGroupTainted()
