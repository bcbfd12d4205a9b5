"""The NVIDIA device plugin: registers each GPU node's GPUs with its kubelet."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child
from components._k8s import (
    GPU_NODE_SELECTOR,
    GPU_TOLERATION,
    chart_container_security,
    metadata,
    runtime_default,
)
from policies import inventory

DEVICE_PLUGIN_IMAGE = inventory.image("nvidia-device-plugin")
SOCKET_DIR = "/var/lib/kubelet/device-plugins"
"""Host folder of the kubelet's device-plugin sockets."""


@dataclass
class GpuDevicePluginArgs:
    """Inputs of :class:`GpuDevicePlugin`."""

    image: str = DEVICE_PLUGIN_IMAGE
    """Pinned device-plugin image."""


class GpuDevicePlugin(pulumi.ComponentResource):
    """A DaemonSet of the NVIDIA device plugin on the GPU pool, in ``kube-system``.

    It registers GPUs with the kubelet through a host socket, so it must run as root with a
    hostPath: it lives in ``kube-system``, not a restricted namespace, and drops everything else.
    The platform declares it only for stacks with a GPU pool.

    Its DaemonSet was a child of :class:`~components.k8s_baseline.K8sBaseline`; ``moved_from``
    (that baseline) gives it an alias to its old parent so deployed stacks keep the resource.
    """

    def __init__(
        self,
        name: str,
        args: GpuDevicePluginArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        moved_from: pulumi.Resource | None = None,
    ) -> None:
        if ":" not in args.image.rsplit("/", 1)[-1] or args.image.endswith(":latest"):
            raise ValueError(f"GpuDevicePluginArgs.image: {args.image}; allowed a pinned tag")
        super().__init__(f"{TYPE_PREFIX}:gpu_device_plugin:GpuDevicePlugin", name, None, opts)
        aliases = [pulumi.Alias(parent=moved_from)] if moved_from is not None else None

        labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
        k8s.apps.v1.DaemonSet(
            f"{name}-nvidia-device-plugin",
            metadata=metadata("nvidia-device-plugin", "kube-system"),
            spec={
                "selector": {"matchLabels": labels},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        "automountServiceAccountToken": False,
                        "nodeSelector": dict(GPU_NODE_SELECTOR),
                        "tolerations": [
                            dict(GPU_TOLERATION),
                            {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        ],
                        "securityContext": {"seccompProfile": runtime_default()},
                        "containers": [
                            {
                                "name": "nvidia-device-plugin",
                                "image": args.image,
                                "imagePullPolicy": "Always",
                                "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                                "securityContext": chart_container_security(
                                    seccompProfile=runtime_default()
                                ),
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"cpu": "200m", "memory": "128Mi"},
                                },
                                "volumeMounts": [
                                    {"name": "device-plugin", "mountPath": SOCKET_DIR}
                                ],
                            }
                        ],
                        "volumes": [{"name": "device-plugin", "hostPath": {"path": SOCKET_DIR}}],
                    },
                },
            },
            opts=child(self, aliases=aliases),
        )
        self.register_outputs({})
