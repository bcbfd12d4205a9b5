"""CKV_SOV_4: a pod that asks for GPUs tolerates the GPU taint and selects GPU nodes."""

# ruff: noqa: N999  (checkov convention: one check class per file, named after it)

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

GPU_RESOURCE = "nvidia.com/gpu"
# Node labels that only GPU nodes carry: the platform's pool label, or the GPU operator's.
GPU_NODE_SELECTORS = (("sovereign-ml/pool", "gpu"), ("nvidia.com/gpu.present", "true"))
TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def pod_spec(kind: str, conf: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a Pod, workload template or CronJob, or None."""
    spec = conf.get("spec")
    if not isinstance(spec, dict):
        return None
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if isinstance(spec, dict) else None
    inner = template.get("spec") if isinstance(template, dict) else None
    return inner if isinstance(inner, dict) else None


def requests_gpu(spec: dict[str, Any]) -> bool:
    """Whether any (init) container requests or limits ``nvidia.com/gpu``."""
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            resources = (container or {}).get("resources") or {}
            for part in ("limits", "requests"):
                if GPU_RESOURCE in (resources.get(part) or {}):
                    return True
    return False


def tolerates_gpu_taint(spec: dict[str, Any]) -> bool:
    """A toleration that matches ``nvidia.com/gpu`` with effect NoSchedule (or any effect)."""
    for tol in spec.get("tolerations") or []:
        if not isinstance(tol, dict):
            continue
        key_ok = tol.get("key") == GPU_RESOURCE or (
            not tol.get("key") and tol.get("operator") == "Exists"
        )
        if key_ok and tol.get("effect") in (None, "", "NoSchedule"):
            return True
    return False


def selects_gpu_nodes(spec: dict[str, Any]) -> bool:
    """A nodeSelector that only GPU nodes satisfy."""
    selector = spec.get("nodeSelector") or {}
    return any(str(selector.get(k)).lower() == v for k, v in GPU_NODE_SELECTORS)


class K8sGpuWorkloadToleratesTaint(BaseK8Check):
    """GPU pods must land on the tainted GPU pool on purpose.

    Without the toleration the pod stays Pending forever (every GPU node is tainted); without
    the node selector it can be packed onto a node whose GPUs another pool's drivers own.
    """

    def __init__(self) -> None:
        super().__init__(
            name="Ensure GPU workloads tolerate nvidia.com/gpu:NoSchedule and select GPU nodes",
            id="CKV_SOV_4",
            categories=(CheckCategories.KUBERNETES,),
            supported_entities=("Pod", "CronJob", *TEMPLATE_KINDS),
            guideline="Add tolerations [{key: nvidia.com/gpu, effect: NoSchedule, operator: "
            "Exists}] and nodeSelector {sovereign-ml/pool: gpu}.",
        )

    def get_resource_id(self, conf: dict[str, Any]) -> str:
        """``Kind.namespace.name``, as checkov's built-in Kubernetes checks name resources."""
        meta = conf.get("metadata") or {}
        return f"{conf.get('kind')}.{meta.get('namespace', 'default')}.{meta.get('name')}"

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        """PASSED for pods without GPUs; GPU pods need both the toleration and the selector."""
        self.evaluated_keys = ["spec"]
        spec = pod_spec(str(conf.get("kind")), conf)
        if spec is None:
            return CheckResult.UNKNOWN
        if not requests_gpu(spec):
            return CheckResult.PASSED
        if tolerates_gpu_taint(spec) and selects_gpu_nodes(spec):
            return CheckResult.PASSED
        return CheckResult.FAILED


check = K8sGpuWorkloadToleratesTaint()
