"""Kubernetes building blocks every component uses, so the hardening is written once.

Workloads here meet Pod Security ``restricted`` and the gate's rules: non-root with a high UID,
no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, read-only root
filesystem, CPU and memory requests and limits, pinned images pulled ``Always``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

RESTRICTED_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_NODE_SELECTOR = {"sovereign-ml/pool": "gpu"}
NON_ROOT_UID = 10001


def resources(cpu: str, memory: str, cpu_limit: str | None = None, gpu: int = 0) -> dict:
    """Requests and limits; memory limit equals request (no overcommit of memory)."""
    out: dict[str, dict[str, Any]] = {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit or cpu, "memory": memory},
    }
    if gpu:
        out["requests"]["nvidia.com/gpu"] = gpu
        out["limits"]["nvidia.com/gpu"] = gpu
    return out


def container_security(uid: int = NON_ROOT_UID) -> dict[str, Any]:
    """The container securityContext of Pod Security 'restricted', plus a read-only root."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container(
    name: str,
    image: str,
    *,
    cpu: str,
    memory: str,
    cpu_limit: str | None = None,
    gpu: int = 0,
    args: Sequence[str] | None = None,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    ports: Sequence[Mapping[str, Any]] = (),
    probe_path: str | None = None,
    probe_port: int | str | None = None,
    volume_mounts: Sequence[Mapping[str, Any]] = (),
    uid: int = NON_ROOT_UID,
) -> dict[str, Any]:
    """A hardened container spec; liveness/readiness probes when a path or port is given."""
    c: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "Always",
        "securityContext": container_security(uid),
        "resources": resources(cpu, memory, cpu_limit, gpu),
    }
    if command:
        c["command"] = list(command)
    if args:
        c["args"] = list(args)
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if ports:
        c["ports"] = [dict(p) for p in ports]
    if probe_port is not None:
        check = (
            {"httpGet": {"path": probe_path, "port": probe_port}}
            if probe_path
            else {"tcpSocket": {"port": probe_port}}
        )
        # Separate copies: callers adjust one probe (e.g. a distinct liveness path).
        c["livenessProbe"] = {
            **copy.deepcopy(check),
            "initialDelaySeconds": 15,
            "periodSeconds": 20,
        }
        c["readinessProbe"] = {
            **copy.deepcopy(check),
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        }
    if volume_mounts:
        c["volumeMounts"] = [dict(m) for m in volume_mounts]
    return c


def pod_spec(
    containers: Sequence[Mapping[str, Any]],
    *,
    service_account: str | None = None,
    gpu: bool = False,
    volumes: Sequence[Mapping[str, Any]] = (),
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    uid: int = NON_ROOT_UID,
    spread_label: Mapping[str, str] | None = None,
    restart_policy: str | None = None,
    api_access: bool = False,
) -> dict[str, Any]:
    """A hardened pod spec; GPU pods tolerate the GPU taint and select GPU nodes.

    The Kubernetes API token is mounted only for ``api_access``: IRSA does not need it (the
    EKS pod identity webhook projects its own web-identity token).
    """
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": api_access,
        "containers": [dict(c) for c in containers],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    selector = dict(node_selector or {})
    tols = [dict(t) for t in tolerations]
    if gpu:
        selector.update(GPU_NODE_SELECTOR)
        tols.append(dict(GPU_TOLERATION))
    if selector:
        spec["nodeSelector"] = selector
    if tols:
        spec["tolerations"] = tols
    if volumes:
        spec["volumes"] = [dict(v) for v in volumes]
    if spread_label:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(spread_label)},
            }
        ]
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return spec


def metadata(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    """Object metadata with the standard app labels."""
    meta: dict[str, Any] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": "sovereign-ml",
            **labels,
        },
    }
    if namespace:
        meta["namespace"] = namespace
    return meta
