"""Kubernetes building blocks every component uses, so the hardening is written once.

Workloads here meet Pod Security ``restricted`` and the gate's rules: non-root with a high UID,
no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, read-only root
filesystem, CPU and memory requests and limits, pinned images pulled ``Always``. Most helpers
return plain specs; the last few declare resources (a Helm release, a one-pod store).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._aws import child

RESTRICTED_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
}
POOL_LABEL = "sovereign-ml/pool"
"""Node label naming the node pool (``system``, ``workers``, ``gpu``), set by the node pools."""
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_NODE_SELECTOR = {POOL_LABEL: "gpu"}
NON_ROOT_UID = 10001
ENCRYPTED_STORAGE_CLASS = "gp3-encrypted"
"""The default StorageClass the baseline declares: gp3 encrypted with the volumes key."""
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
"""Service-account annotation naming the IRSA role its pods assume."""
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Label Kubernetes puts on every namespace with its own name."""


def pool_selector(pool: str) -> dict[str, str]:
    """A node selector for one node pool."""
    return {POOL_LABEL: pool}


def role_annotation(role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The annotation binding a service account to an IRSA role."""
    return {ROLE_ARN_ANNOTATION: role_arn}


def runtime_default() -> dict[str, str]:
    """The RuntimeDefault seccomp profile."""
    return {"type": "RuntimeDefault"}


def chart_container_security(**extra: Any) -> dict[str, Any]:
    """The container hardening a Helm chart's values take: no escalation, read-only, no caps."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        **extra,
    }


def namespace_peer(namespace: str, pods: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A NetworkPolicy peer: one namespace by name, optionally only its pods with ``pods``."""
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}
    if pods is not None:
        peer["podSelector"] = {"matchLabels": dict(pods)}
    return peer


def tcp_ports(*ports: int) -> list[dict[str, Any]]:
    """NetworkPolicy ports: each of ``ports`` over TCP."""
    return [{"protocol": "TCP", "port": p} for p in ports]


def claim_spec(size: str) -> dict[str, Any]:
    """A ReadWriteOnce claim of ``size`` on the encrypted StorageClass."""
    return {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": ENCRYPTED_STORAGE_CLASS,
        "resources": {"requests": {"storage": size}},
    }


def cpu_hpa_spec(target: Mapping[str, str], min_replicas: int, max_replicas: int) -> dict:
    """A HorizontalPodAutoscaler spec keeping ``target`` at 70 % of its CPU requests."""
    return {
        "scaleTargetRef": dict(target),
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            }
        ],
    }


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
        **chart_container_security(seccompProfile=runtime_default()),
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
    env: Mapping[str, pulumi.Input[str]] | None = None,
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
            "seccompProfile": runtime_default(),
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


def helm_release(
    resource_name: str,
    chart: tuple[str, str, str],
    *,
    namespace: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    release: str | None = None,
    hooks: bool = True,
) -> k8s.helm.v3.Release:
    """A Helm release of a pinned ``(chart, version, location)``, named ``release``.

    The release is named after the chart unless ``release`` says otherwise. A location of the
    form ``oci://<registry>/<repository>`` is the chart itself (the zone's mirror); any other is
    a chart repository URL the chart name is looked up in. ``hooks=False`` installs and
    uninstalls without the chart's hook jobs (Helm's ``--no-hooks``).
    """
    name, version, location = chart
    oci = location.startswith("oci://")
    return k8s.helm.v3.Release(
        resource_name,
        name=release or name,
        chart=location if oci else name,
        version=version,
        namespace=namespace,
        repository_opts=None if oci else {"repo": location},
        values=dict(values),
        # Omitted when hooks run, so the records of releases with hooks are unchanged.
        disable_webhooks=None if hooks else True,
        opts=opts,
    )


def single_pod_store(
    resource_name: str,
    *,
    parent: pulumi.Resource,
    app: str,
    namespace: str,
    server: Mapping[str, Any],
    port: tuple[str, int],
    volumes: Sequence[Mapping[str, Any]],
    storage: str,
    protect: bool,
) -> pulumi.Output[str]:
    """A one-replica StatefulSet on an encrypted ``data`` volume and its headless Service.

    The small-tier stand-in for a managed database or cache; returns the Service's DNS name.
    ``protect`` keeps the StatefulSet (and so its volume claim) through deletes.
    """
    labels = {"app.kubernetes.io/name": app}
    port_name, number = port
    k8s.apps.v1.StatefulSet(
        resource_name,
        metadata=metadata(app, namespace),
        spec={
            "serviceName": app,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec([server], volumes=volumes, node_selector=pool_selector("system")),
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim_spec(storage)}],
        },
        opts=child(parent, protect=protect, retain_on_delete=protect),
    )
    k8s.core.v1.Service(
        f"{resource_name}-svc",
        metadata=metadata(app, namespace),
        spec={
            "selector": labels,
            "ports": [{"name": port_name, "port": number}],
            "clusterIP": "None",
        },
        opts=child(parent),
    )
    return pulumi.Output.from_input(f"{app}.{namespace}.svc.cluster.local")


def allow_path(
    parent: pulumi.Resource,
    *,
    egress: tuple[str, str],
    ingress: tuple[str, str],
    source: tuple[str, Mapping[str, str]],
    target: tuple[str, Mapping[str, str]],
    port: int,
    to_any_pod: bool = False,
) -> None:
    """The NetworkPolicy pair opening one path past two namespaces' default deny.

    ``source`` and ``target`` are ``(namespace, pod labels)``; ``egress`` and ``ingress`` are
    ``(resource name, policy name)`` of the source's egress to the target pods' TCP ``port`` and
    of the target's ingress from the source pods. ``to_any_pod`` lets the egress reach any pod of
    the target namespace.
    """
    (source_ns, source_pods), (target_ns, target_pods) = source, target
    target_peer = namespace_peer(target_ns, None if to_any_pod else target_pods)
    sides = (
        (egress, source_ns, source_pods, "Egress", "to", target_peer),
        (
            ingress,
            target_ns,
            target_pods,
            "Ingress",
            "from",
            namespace_peer(source_ns, source_pods),
        ),
    )
    for (resource_name, policy_name), ns, pods, direction, way, peer in sides:
        k8s.networking.v1.NetworkPolicy(
            resource_name,
            metadata=metadata(policy_name, ns),
            spec={
                "podSelector": {"matchLabels": dict(pods)},
                "policyTypes": [direction],
                direction.lower(): [{way: [peer], "ports": tcp_ports(port)}],
            },
            opts=child(parent),
        )


def istio_resource(
    resource_name: str,
    group: str,
    kind: str,
    name: str,
    namespace: str,
    spec: Any,
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """One Istio custom resource of ``<group>.istio.io/v1`` (``security`` or ``networking``)."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=f"{group}.istio.io/v1",
        kind=kind,
        metadata=metadata(name, namespace),
        spec=spec,
        opts=opts,
    )
