"""The explicit allow-list of add-ons that may live in ``kube-system`` and touch the host.

Rules never read ``policies/suppressions.yaml`` (the CrossGuard pack cannot), so an exception that
must hold in ``pulumi up`` as well as in ``sovml check`` is data here, next to the rules, with its
reason. A grant holds only in ``kube-system`` (the namespace EKS creates for node agents; every
other namespace is declared by the program, labelled Pod Security ``restricted`` and denied by
default) and only for the workload it names: ``<Kind>/<metadata.name>`` with the image
repositories listed, or ``helm:<chart>/<pod>`` for a pod a Helm chart renders.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from policies import inventory

SYSTEM_NAMESPACE = "kube-system"
"""The one namespace the program uses without declaring it; only granted workloads go there."""
HOST_FIELDS = ("hostNetwork", "hostPID", "hostIPC", "privileged", "hostPort")
"""Host access a grant may name besides host paths (pod fields, ``privileged``, ``hostPort``)."""


@dataclass(frozen=True)
class HostPath:
    """A host folder a granted workload may mount."""

    path: str
    """The exact host path (normalised; a grant for a folder never covers its parent)."""
    read_only: bool
    """True when every mount of it must be ``readOnly``."""


@dataclass(frozen=True)
class Grant:
    """One workload allowed in ``kube-system``, with exactly the host access it needs and why."""

    workload: str
    """``<Kind>/<name>`` of a workload, or ``helm:<chart>`` / ``helm:<chart>/<pod>`` for Helm."""
    reason: str
    """Why the workload needs this; shown in rule messages and reviewed like a suppression."""
    images: tuple[str, ...] = ()
    """Image repositories (no tag) every container must come from; empty for Helm pods, whose
    chart and repository identify them."""
    mirrors: tuple[str, ...] = ()
    """The same images' repository paths in an ECR registry (the zone's mirror)."""
    host_paths: tuple[HostPath, ...] = ()
    """Host folders it may mount."""
    host_access: tuple[str, ...] = ()
    """Entries of ``HOST_FIELDS`` it may use."""
    run_as_root: bool = False
    """May run as UID 0 (Pod Security ``restricted`` fields otherwise still apply)."""
    gpu_nodes: bool = False
    """May tolerate the GPU taint and select GPU nodes without requesting ``nvidia.com/gpu``."""
    tolerate_all: bool = False
    """May tolerate every taint (``operator: Exists`` without a key)."""
    namespace: str = SYSTEM_NAMESPACE
    """Where the grant holds; anything but ``kube-system`` is ignored (see ``grant_for``)."""


GRANTS: tuple[Grant, ...] = (
    Grant(
        workload="DaemonSet/nvidia-device-plugin",
        images=(inventory.entry("nvidia-device-plugin", "image").upstream,),
        mirrors=(inventory.entry("nvidia-device-plugin", "image").mirror,),
        host_paths=(HostPath("/var/lib/kubelet/device-plugins", read_only=False),),
        run_as_root=True,
        gpu_nodes=True,
        reason=(
            "the NVIDIA device plugin registers each node's GPUs with the kubelet by creating a "
            "socket in the kubelet's root-owned /var/lib/kubelet/device-plugins, so it runs as "
            "root with that one folder writable, on GPU nodes only (it requests no GPU itself)"
        ),
    ),
    Grant(
        workload="helm:dcgm-exporter/exporter",
        host_paths=(HostPath("/var/lib/kubelet/pod-resources", read_only=True),),
        run_as_root=True,
        gpu_nodes=True,
        reason=(
            "the DCGM exporter reads GPU telemetry on every GPU node and maps it to pods through "
            "the kubelet's pod-resources socket (mounted read-only); it requests no GPU itself"
        ),
    ),
    Grant(
        workload="helm:fluent-bit/fluent-bit",
        host_paths=(HostPath("/var/log", read_only=True),),
        run_as_root=True,
        gpu_nodes=True,
        reason=(
            "Fluent Bit ships every container's log from the node: it reads /var/log/containers "
            "and /var/log/pods (root-owned, mode 0640) through a read-only /var/log mount as "
            "root, on every node including GPU nodes (it requests no GPU itself)"
        ),
    ),
    Grant(
        workload="helm:cni/istio-cni-node",
        host_paths=(
            HostPath("/opt/cni/bin", read_only=False),
            HostPath("/etc/cni/net.d", read_only=False),
            HostPath("/var/run/istio-cni", read_only=False),
            HostPath("/var/run/netns", read_only=False),
            HostPath("/proc", read_only=True),
        ),
        run_as_root=True,
        gpu_nodes=True,
        reason=(
            "Istio's CNI node agent installs the mesh's CNI plugin on every node (its binary in "
            "/opt/cni/bin, its chained config in /etc/cni/net.d) and then redirects each new "
            "pod's traffic to the sidecar itself, so injected pods need no NET_ADMIN init "
            "container and stay Pod Security restricted; it repairs pods through /proc "
            "(read-only) and /var/run/netns, logs through /var/run/istio-cni, as root, on GPU "
            "nodes too (it requests no GPU)"
        ),
    ),
    Grant(
        workload="helm:cluster-autoscaler",
        reason=(
            "cluster-autoscaler is a control-plane add-on: it runs beside CoreDNS in kube-system "
            "with no host access, scaling only this account's node groups (IRSA)"
        ),
    ),
)
"""Every workload allowed in kube-system. Adding one is a reviewed change to this file."""


def normalise(path: str) -> str:
    """A host path compared by value: ``/var/lib/x/`` and ``/var/lib//x`` are ``/var/lib/x``."""
    path = path.strip()
    return posixpath.normpath("/" + path.lstrip("/")) if path else ""


def image_repository(image: str) -> str:
    """The repository of an image reference, without tag or digest."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    return repo[: len(repo) - len(last)] + last.split(":", 1)[0]


def _images_match(grant: Grant, images: Iterable[str]) -> bool:
    """True when the grant names no images or every container image comes from one it names."""
    images = list(images)
    if not grant.images:
        return True
    allowed = set(grant.images)
    return bool(images) and all(
        image_repository(i) in allowed or inventory.mirror_path(i) in grant.mirrors for i in images
    )


def grant_for(namespace: str, workload: str, images: Iterable[str] = ()) -> Grant | None:
    """The grant covering ``workload`` in ``namespace``, or None.

    Grants hold only in kube-system, and a workload grant that lists images holds only when every
    container image comes from one of them: a look-alike name with another image gets nothing.
    """
    if namespace != SYSTEM_NAMESPACE:
        return None
    images = list(images)
    return next(
        (
            g
            for g in GRANTS
            if g.namespace == SYSTEM_NAMESPACE
            and g.workload == workload
            and _images_match(g, images)
        ),
        None,
    )


def system_member(workload: str, images: Iterable[str] = ()) -> Grant | None:
    """The grant that lets an object keyed ``workload`` live in kube-system at all.

    A Helm release ``helm:<chart>`` belongs when any grant names the chart or one of its pods; a
    workload belongs when a grant names it and its images match.
    """
    images = list(images)
    return next(
        (
            g
            for g in GRANTS
            if g.namespace == SYSTEM_NAMESPACE
            and (g.workload == workload or g.workload.startswith(workload + "/"))
            and _images_match(g, images)
        ),
        None,
    )
