"""Katib, the cluster's tuner: the training pipeline's search space runs as a Katib Experiment.

Katib v0.19.0's standalone manifests (pinned by tag, ``components/manifests/katib``) applied
through Pulumi's kustomize provider, as Kubeflow Pipelines is: the controller (with its
admission webhooks), the DB manager and its MySQL on a volume of the encrypted StorageClass, in
the pipelines' namespace, without the UI (nothing is exposed) and with the platform's closed
KatibConfig (Job trials, the StdOut metrics collector, one algorithm: ``tpe`` on the Optuna
suggestion service, the sampler the local tune step runs). The pods are patched to Pod Security
``restricted`` and the system pool. The Experiment itself is :mod:`pipelines.training.katib`'s,
its trial image the inventory's ``katib-trial``.

Past the namespaces' default deny this component opens only what Katib needs beyond its own
namespace (whose pods already reach each other): the EKS control plane to the controller's
webhooks, and each trial namespace's pods (the injected metrics collector) to the DB manager.
Trial namespaces get the label Katib's webhook selects to inject that collector.

Every image is pulled from the stack's source (:mod:`components._kustomize`): the manifests'
pods, and the collector and suggestion images the KatibConfig names (Katib's controller
creates those pods later, so their references are rewritten inside the config's YAML).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components._aws import TYPE_PREFIX, child
from components._k8s import allow_path, metadata, tcp_ports
from components._kustomize import Extra, image_transform, rewrite_images
from policies import inventory

OVERLAY = Path(__file__).parent / "manifests" / "katib"
"""The kustomize overlay over Katib's pinned standalone manifests."""
CONTROLLER_PODS = {"katib.kubeflow.org/component": "controller"}
"""Labels of the controller's pods (upstream ``controller.yaml``)."""
DB_MANAGER_PODS = {"app": "katib-db-manager"}
"""Labels of the DB manager's pods (upstream ``db-manager.yaml``)."""
WEBHOOK_PORT = 8443
"""The controller's admission webhooks (KatibConfig ``init.controller.webhookPort``)."""
DB_MANAGER_PORT = 6789
"""The DB manager's gRPC API, where the metrics collectors report."""
INJECTION_LABEL = ("katib.kubeflow.org/metrics-collector-injection", "enabled")
"""The namespace label Katib's webhook selects to inject the metrics collector into trials."""
CONFIG = ("katib-config", "katib-config.yaml")
"""The KatibConfig's ConfigMap (the overlay's configMapGenerator) and its file's key."""


@dataclass(frozen=True)
class KatibArgs:
    """Inputs of :class:`Katib`."""

    vpc_cidr: str
    """VPC CIDR: the EKS control plane calls the webhooks from ENIs in it."""
    namespace: str = "kubeflow"
    """Namespace of Katib's pods (the pipelines'; restricted, default-deny, baseline-owned)."""
    trial_namespaces: Sequence[str] = field(default_factory=list)
    """Namespaces whose Experiments' trials run there (the pipelines' and the tenants')."""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels the baseline gives those namespaces (the image-admission opt-in), restated in the
    label patch: server-side apply keeps them either way, and the gate judges every Namespace
    object, patches included, by its labels."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images are pulled from (the zone's mirror in production)."""


class Katib(pulumi.ComponentResource):
    """Katib (pinned manifests) with the platform's KatibConfig, restricted, default-deny."""

    def __init__(
        self, name: str, args: KatibArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        for value in (args.namespace, *args.trial_namespaces):
            if not value or value == "kube-system":
                raise ValueError(f"KatibArgs: namespace {value!r}; allowed a platform namespace")
        try:
            ipaddress.ip_network(args.vpc_cidr, strict=True)
        except ValueError:
            raise ValueError(
                f"KatibArgs.vpc_cidr: {args.vpc_cidr!r}; allowed an IPv4 CIDR such as 10.40.0.0/16"
            ) from None
        super().__init__(f"{TYPE_PREFIX}:katib:Katib", name, None, opts)
        ns = args.namespace
        transform = image_transform(args.sources, OVERLAY.name, config_images(args.sources))
        k8s.kustomize.v2.Directory(
            f"{name}-manifests",
            directory=str(OVERLAY),
            namespace=ns,
            opts=child(self, transforms=[transform]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-webhooks",
            metadata=metadata("allow-katib-webhooks", ns),
            spec={
                "podSelector": {"matchLabels": dict(CONTROLLER_PODS)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"ipBlock": {"cidr": args.vpc_cidr}}],
                        "ports": tcp_ports(WEBHOOK_PORT),
                    }
                ],
            },
            opts=child(self),
        )
        for trial_ns in sorted(set(args.trial_namespaces)):
            # Katib injects the collector only into labelled namespaces' trial pods.
            k8s.core.v1.NamespacePatch(
                f"{name}-inject-{trial_ns}",
                metadata={
                    "name": trial_ns,
                    "labels": {**args.namespace_labels, INJECTION_LABEL[0]: INJECTION_LABEL[1]},
                },
                opts=child(self),
            )
            if trial_ns == ns:
                continue  # the same namespace: allow-same-namespace already admits it
            allow_path(
                self,
                egress=(f"{name}-report-{trial_ns}", "allow-to-katib-db-manager"),
                ingress=(f"{name}-reports-from-{trial_ns}", f"allow-katib-reports-{trial_ns}"),
                source=(trial_ns, {}),
                target=(ns, DB_MANAGER_PODS),
                port=DB_MANAGER_PORT,
            )
        self.register_outputs({})


def config_images(sources: inventory.Sources) -> Extra:
    """The transform step that rewrites the images the KatibConfig names (metrics collectors,
    suggestion services, early stopping) inside its ConfigMap's YAML; other objects pass."""

    def extra(type_: str, props: dict[str, Any]) -> dict[str, Any]:
        meta = props.get("metadata") or {}
        if type_ != "kubernetes:core/v1:ConfigMap" or meta.get("name") != CONFIG[0]:
            return props
        data = props.get("data") or {}
        text = data.get(CONFIG[1])
        if not isinstance(text, str):
            raise ValueError(f"ConfigMap {CONFIG[0]}: no {CONFIG[1]} to read the images from")
        parsed = yaml.safe_load(text)
        rewritten = rewrite_images(parsed, sources, OVERLAY.name)
        if rewritten == parsed:
            return props  # upstream stacks: the reviewed file, comments included, as written
        dumped = yaml.safe_dump(rewritten, sort_keys=False)
        return {**props, "data": {**data, CONFIG[1]: dumped}}

    return extra
