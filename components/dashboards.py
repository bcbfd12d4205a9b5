"""Dashboards as code: the Grafana dashboards of :mod:`components._dashboards` as ConfigMaps.

kube-prometheus-stack's Grafana runs a sidecar that watches ConfigMaps carrying
:data:`SIDECAR_LABEL` and loads each data key as a dashboard, so provisioning is one ConfigMap
per dashboard in the monitoring namespace; nobody edits dashboards in the UI (they are read-only)
and a change is a reviewed change to the Python that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child
from components._cost_rules import UnitPrices
from components._dashboards import dashboards, to_json
from components._k8s import metadata
from components.monitoring import DASHBOARD_LABEL as SIDECAR_LABEL


@dataclass(frozen=True)
class DashboardsArgs:
    """Inputs of :class:`Dashboards`."""

    namespace: str
    """Namespace of Grafana (kube-prometheus-stack's), where its sidecar looks."""
    drift_threshold: float = 0.2
    """PSI above which a feature counts as drifted (the drift dashboard's threshold)."""
    unit_prices: UnitPrices | None = None
    """The prices the cost rules use, stated on the cost-per-tenant panel (None: none)."""


class Dashboards(pulumi.ComponentResource):
    """One ConfigMap per dashboard (platform, GPU, serving, feature store, drift), labelled for
    Grafana's sidecar."""

    def __init__(
        self, name: str, args: DashboardsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not 0 < args.drift_threshold < 10:
            raise ValueError(
                f"DashboardsArgs.drift_threshold: {args.drift_threshold}; allowed (0, 10)"
            )
        super().__init__(f"{TYPE_PREFIX}:dashboards:Dashboards", name, None, opts)
        key, value = SIDECAR_LABEL
        for uid, board in dashboards(args.drift_threshold, args.unit_prices).items():
            k8s.core.v1.ConfigMap(
                f"{name}-{uid}",
                metadata=metadata(f"dashboard-{uid}", args.namespace, **{key: value}),
                data={f"{uid}.json": to_json(board)},
                opts=child(self),
            )
        self.register_outputs({})
