"""The chart table's vocabulary: where a chart puts each pod's security values.

Split from :mod:`policies.rules.helm_charts` so that chart tables can live in modules of their
own (:mod:`policies.rules.identity_charts`) and the rule module stays short. Stdlib and the
inventory only, like every rule module (the CrossGuard pack loads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies import inventory


@dataclass(frozen=True)
class HostPathValue:
    """A hostPath volume a chart template renders always, or when a value turns it on."""

    default: str
    """The host path in the pinned version's defaults."""
    value: str = ""
    """Values path that overrides the host path ("" when the template fixes it)."""
    when: str = ""
    """Values path of the boolean that turns the mount on ("" when it is always rendered)."""
    when_default: bool = True
    """That boolean's default in the pinned version."""
    read_only: bool = True
    """Whether the template mounts it read-only."""


@dataclass(frozen=True)
class ChartPod:
    """One pod template of a chart and the values paths that shape it (dotted, "" if none)."""

    name: str
    """The pod's role in the chart (``server``, ``controller``, ``node-exporter``)."""
    enabled: str = ""
    """Values path of the boolean that renders the pod ("" when always rendered)."""
    enabled_default: bool = True
    """That boolean's default in the pinned version."""
    pod_security: str = ""
    """The pod ``securityContext``."""
    container_security: str = ""
    """The main container's ``securityContext``."""
    host_network: str = ""
    """``hostNetwork``."""
    host_pid: str = ""
    """``hostPID``."""
    host_ipc: str = ""
    """``hostIPC``."""
    node_selector: str = ""
    """``nodeSelector``."""
    tolerations: str = ""
    """``tolerations``."""
    affinity: str = ""
    """``affinity``."""
    resources: str = ""
    """The main container's ``resources``."""
    volumes: tuple[str, ...] = ()
    """Lists of extra pod volumes (Kubernetes volume objects, hostPath included)."""
    volume_mounts: tuple[str, ...] = ()
    """Lists of the main container's mounts of the ``volumes`` above (``{name, readOnly}``)."""
    host_volume_lists: tuple[str, ...] = ()
    """Lists of chart-specific host mounts: ``{name, hostPath, readOnly}`` entries."""
    host_paths: tuple[HostPathValue, ...] = ()
    """Host folders the template itself mounts."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Pinned-version defaults of the paths above that matter to the rules."""


@dataclass(frozen=True)
class Chart:
    """A chart we ship: where it comes from, the version the table was read from, its pods."""

    repo: str
    """Repository URL (``repositoryOpts.repo``); another repository is another chart."""
    version: str
    """The chart version whose values the table describes."""
    pods: tuple[ChartPod, ...]
    """Every pod the chart renders."""


def common(prefix: str = "", **extra: Any) -> dict[str, Any]:
    """The scheduling and resources paths most charts spell alike, under ``prefix``."""
    p = f"{prefix}." if prefix else ""
    return {
        "node_selector": f"{p}nodeSelector",
        "tolerations": f"{p}tolerations",
        "affinity": f"{p}affinity",
        "resources": f"{p}resources",
        **extra,
    }


def pinned(ident: str) -> tuple[str, str]:
    """``(repository URL, version)`` of inventory chart ``ident``: the table reads the pin there."""
    _, version, repo = inventory.chart(ident)
    return repo, version
