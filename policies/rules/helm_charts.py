"""Helm releases as pods the rules can judge: where each chart we ship puts its security values.

No Helm runs here, so a release is judged through its values: for each chart, a table names the
values paths of every pod the chart renders (pod and container security context, host
namespaces, host volumes, node selection, tolerations) and the defaults of those paths in the
pinned chart version where they matter (a host mount or host namespace the chart turns on by
itself). ``helm_pods`` merges a release's values over those defaults into one pod spec per
rendered pod; the isolation and GPU rules then judge it like any workload's pod.

Not examined (the README's limits say so): every other template field of a chart (probes,
images, init containers a chart adds, RBAC, Services, CRDs), the Pod Security ``restricted``
fields the values leave to chart defaults, and ``hostPort``; ``SOV-K8S-011`` refuses a chart or
a chart version the table does not know, so nothing unexamined slips in silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies import inventory
from policies.rules.base import Context, Resource, rule

HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
"""Helm releases: v3 is one custom resource, v4 a component the provider renders."""


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


def _common(prefix: str = "", **extra: Any) -> dict[str, Any]:
    """The scheduling and resources paths most charts spell alike, under ``prefix``."""
    p = f"{prefix}." if prefix else ""
    return {
        "node_selector": f"{p}nodeSelector",
        "tolerations": f"{p}tolerations",
        "affinity": f"{p}affinity",
        "resources": f"{p}resources",
        **extra,
    }


def _pinned(ident: str) -> tuple[str, str]:
    """``(repository URL, version)`` of inventory chart ``ident``: the table reads the pin there."""
    _, version, repo = inventory.chart(ident)
    return repo, version


NODE_EXPORTER = "prometheus-node-exporter"
CHARTS: dict[str, Chart] = {
    "cluster-autoscaler": Chart(
        *_pinned("cluster-autoscaler"),
        (
            ChartPod(
                "cluster-autoscaler",
                pod_security="securityContext",
                container_security="containerSecurityContext",
                host_network="hostNetwork",
                volumes=("extraVolumes",),
                **_common(),
            ),
        ),
    ),
    "argo-rollouts": Chart(
        *_pinned("argo-rollouts"),
        (
            ChartPod(
                "controller",
                pod_security="podSecurityContext",
                container_security="containerSecurityContext",
                volumes=("controller.volumes",),
                **_common("controller"),
            ),
            ChartPod(
                "dashboard",
                enabled="dashboard.enabled",
                enabled_default=False,
                pod_security="dashboard.podSecurityContext",
                container_security="dashboard.containerSecurityContext",
                volumes=("dashboard.volumes",),
                **_common("dashboard"),
            ),
        ),
    ),
    "kube-prometheus-stack": Chart(
        *_pinned("kube-prometheus-stack"),
        (
            ChartPod(
                "prometheus",
                pod_security="prometheus.prometheusSpec.securityContext",
                volumes=("prometheus.prometheusSpec.volumes",),
                **_common("prometheus.prometheusSpec"),
            ),
            ChartPod(
                "alertmanager",
                enabled="alertmanager.enabled",
                pod_security="alertmanager.alertmanagerSpec.securityContext",
                volumes=("alertmanager.alertmanagerSpec.volumes",),
                **_common("alertmanager.alertmanagerSpec"),
            ),
            ChartPod(
                "operator",
                enabled="prometheusOperator.enabled",
                pod_security="prometheusOperator.securityContext",
                container_security="prometheusOperator.containerSecurityContext",
                host_network="prometheusOperator.hostNetwork",
                **_common("prometheusOperator"),
            ),
            ChartPod(
                "kube-state-metrics",
                enabled="kubeStateMetrics.enabled",
                pod_security="kube-state-metrics.securityContext",
                container_security="kube-state-metrics.containerSecurityContext",
                host_network="kube-state-metrics.hostNetwork",
                volumes=("kube-state-metrics.volumes",),
                **_common("kube-state-metrics"),
            ),
            ChartPod(
                "grafana",
                enabled="grafana.enabled",
                pod_security="grafana.securityContext",
                container_security="grafana.containerSecurityContext",
                volumes=("grafana.extraVolumes",),
                **_common("grafana"),
            ),
            # The node exporter subchart reads the node itself: host network and PID namespace,
            # /proc, /sys and / from the host, tolerating every NoSchedule taint, by default.
            ChartPod(
                "node-exporter",
                enabled="nodeExporter.enabled",
                pod_security=f"{NODE_EXPORTER}.securityContext",
                container_security=f"{NODE_EXPORTER}.containerSecurityContext",
                host_network=f"{NODE_EXPORTER}.hostNetwork",
                host_pid=f"{NODE_EXPORTER}.hostPID",
                host_ipc=f"{NODE_EXPORTER}.hostIPC",
                volumes=(f"{NODE_EXPORTER}.extraVolumes",),
                host_volume_lists=(f"{NODE_EXPORTER}.extraHostVolumeMounts",),
                host_paths=(
                    HostPathValue("/proc"),
                    HostPathValue("/sys"),
                    HostPathValue("/", when=f"{NODE_EXPORTER}.hostRootFsMount.enabled"),
                ),
                defaults={
                    f"{NODE_EXPORTER}.hostNetwork": True,
                    f"{NODE_EXPORTER}.hostPID": True,
                    f"{NODE_EXPORTER}.tolerations": [
                        {"effect": "NoSchedule", "operator": "Exists"}
                    ],
                },
                **_common(NODE_EXPORTER),
            ),
        ),
    ),
    "prometheus-pushgateway": Chart(
        *_pinned("prometheus-pushgateway"),
        (
            ChartPod(
                "pushgateway",
                pod_security="securityContext",
                container_security="containerSecurityContext",
                volumes=("extraVolumes",),
                **_common(),
            ),
        ),
    ),
    "vault": Chart(
        *_pinned("vault-chart"),
        (
            ChartPod(
                "server",
                pod_security="server.statefulSet.securityContext.pod",
                container_security="server.statefulSet.securityContext.container",
                host_network="server.hostNetwork",
                volumes=("server.volumes",),
                **_common("server"),
            ),
            ChartPod(
                "injector",
                enabled="injector.enabled",
                pod_security="injector.securityContext.pod",
                container_security="injector.securityContext.container",
                host_network="injector.hostNetwork",
                **_common("injector"),
            ),
            # The CSI provider is a node agent: it mounts the kubelet's provider folder.
            ChartPod(
                "csi-provider",
                enabled="csi.enabled",
                enabled_default=False,
                pod_security="csi.daemonSet.securityContext.pod",
                container_security="csi.daemonSet.securityContext.container",
                host_network="csi.hostNetwork",
                volumes=("csi.volumes",),
                host_paths=(
                    HostPathValue(
                        "/etc/kubernetes/secrets-store-csi-providers",
                        value="csi.daemonSet.providersDir",
                        read_only=False,
                    ),
                ),
                node_selector="csi.pod.nodeSelector",
                tolerations="csi.pod.tolerations",
                affinity="csi.pod.affinity",
                resources="csi.resources",
            ),
        ),
    ),
    "dcgm-exporter": Chart(
        *_pinned("dcgm-exporter"),
        (
            # Runs as root with SYS_ADMIN and the kubelet's pod-resources socket, by default.
            ChartPod(
                "exporter",
                pod_security="podSecurityContext",
                container_security="securityContext",
                host_network="hostNetwork",
                host_volume_lists=("extraHostVolumes",),
                host_paths=(
                    HostPathValue("/var/lib/kubelet/pod-resources", value="kubeletPath"),
                    HostPathValue(
                        "/var/log/dcgm-exporter",
                        value="debugDump.directory",
                        when="debugDump.enabled",
                        when_default=False,
                        read_only=False,
                    ),
                ),
                defaults={
                    "securityContext": {
                        "runAsNonRoot": False,
                        "runAsUser": 0,
                        "capabilities": {"add": ["SYS_ADMIN"]},
                    }
                },
                **_common(),
            ),
        ),
    ),
    # Istio's gateway chart: one Deployment whose proxy istiod injects (``image: auto``).
    "gateway": Chart(
        *_pinned("istio-gateway-chart"),
        (
            ChartPod(
                "gateway",
                pod_security="securityContext",
                container_security="containerSecurityContext",
                **_common(),
            ),
        ),
    ),
    "keda": Chart(
        *_pinned("keda"),
        tuple(
            ChartPod(
                pod,
                pod_security=f"podSecurityContext.{pod}",
                container_security=f"securityContext.{pod}",
                host_network=network,
                volumes=(f"volumes.{volumes}.extraVolumes",),
                node_selector="nodeSelector",
                tolerations="tolerations",
                affinity="affinity",
                resources=f"resources.{pod}",
            )
            for pod, network, volumes in (
                ("operator", "", "keda"),
                ("metricServer", "metricsServer.useHostNetwork", "metricsApiServer"),
                ("webhooks", "webhooks.useHostNetwork", "webhooks"),
            )
        ),
    ),
    # A node agent: the chart mounts the host's /var/log writable, /var/lib/docker/containers
    # and /etc/machine-id by default (daemonSetVolumes replaces the whole list).
    "fluent-bit": Chart(
        *_pinned("fluent-bit"),
        (
            ChartPod(
                "fluent-bit",
                pod_security="podSecurityContext",
                container_security="securityContext",
                host_network="hostNetwork",
                volumes=("daemonSetVolumes", "extraVolumes"),
                volume_mounts=("daemonSetVolumeMounts", "extraVolumeMounts"),
                defaults={
                    "daemonSetVolumes": [
                        {"name": "varlog", "hostPath": {"path": "/var/log"}},
                        {
                            "name": "varlibdockercontainers",
                            "hostPath": {"path": "/var/lib/docker/containers"},
                        },
                        {
                            "name": "etcmachineid",
                            "hostPath": {"path": "/etc/machine-id", "type": "File"},
                        },
                    ],
                    "daemonSetVolumeMounts": [
                        {"name": "varlog", "mountPath": "/var/log"},
                        {
                            "name": "varlibdockercontainers",
                            "mountPath": "/var/lib/docker/containers",
                            "readOnly": True,
                        },
                        {"name": "etcmachineid", "mountPath": "/etc/machine-id", "readOnly": True},
                    ],
                },
                **_common(),
            ),
        ),
    ),
    # The chart's names are crossed: webhook.securityContext is the pod's, podSecurityContext
    # the container's; both render only with their `enabled` switch (defaults: pod off,
    # container on). The post-delete leases-cleanup Job has no security values to examine.
    "policy-controller": Chart(
        *_pinned("policy-controller-chart"),
        (
            ChartPod(
                "webhook",
                pod_security="webhook.securityContext",
                container_security="webhook.podSecurityContext",
                node_selector="commonNodeSelector",
                tolerations="commonTolerations",
                resources="webhook.resources",
                volumes=("webhook.volumes",),
                volume_mounts=("webhook.volumeMounts",),
            ),
        ),
    ),
}
"""Every chart the platform ships, read from the version it pins."""


def lookup(values: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``values`` (None when any step is missing)."""
    node = values
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _value(values: Mapping[str, Any], pod: ChartPod, path: str) -> Any:
    """A release value, else the chart default the table records, else None."""
    if not path:
        return None
    found = lookup(values, path)
    return pod.defaults.get(path) if found is None else found


def _on(values: Mapping[str, Any], path: str, default: bool) -> bool:
    """A chart switch: the release value when set, else the default (``"-"``: follow global)."""
    found = lookup(values, path) if path else None
    if found is None or found == "-":
        return default
    return found is True or str(found).lower() == "true"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def chart_pod_spec(pod: ChartPod, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict]:
    """The pod spec a chart pod would get from ``values``, and the values path of each field.

    Host volumes are named after the values path that puts them there, so a rule message says
    which value to change.
    """
    spec: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for name, path in (
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
        ("securityContext", pod.pod_security),
        ("nodeSelector", pod.node_selector),
        ("tolerations", pod.tolerations),
        ("affinity", pod.affinity),
    ):
        value = _value(values, pod, path)
        if value is not None:
            spec[name], paths[name] = value, path
    container: dict[str, Any] = {"name": pod.name}
    for name, path in (("securityContext", pod.container_security), ("resources", pod.resources)):
        value = _value(values, pod, path)
        if value is not None:
            container[name], paths[f"container.{name}"] = value, path
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    renamed: dict[str, str] = {}
    for path in pod.volumes:
        for i, v in enumerate(_as_list(_value(values, pod, path))):
            if isinstance(v, dict):
                renamed[str(v.get("name"))] = f"{path}[{i}] ({v.get('name')})"
                volumes.append({**v, "name": renamed[str(v.get("name"))]})
    for path in pod.volume_mounts:
        for m in _as_list(_value(values, pod, path)):
            if isinstance(m, dict) and str(m.get("name")) in renamed:
                mounts.append(
                    {"name": renamed[str(m.get("name"))], "readOnly": m.get("readOnly") is True}
                )
    for path in pod.host_volume_lists:
        for i, v in enumerate(_as_list(_value(values, pod, path))):
            if isinstance(v, dict):
                name = f"{path}[{i}] ({v.get('name')})"
                volumes.append({"name": name, "hostPath": {"path": str(v.get("hostPath") or "")}})
                mounts.append({"name": name, "readOnly": v.get("readOnly") is True})
    for hp in pod.host_paths:
        if hp.when and not _on(values, hp.when, hp.when_default):
            continue
        host = (lookup(values, hp.value) if hp.value else None) or hp.default
        name = hp.value or hp.when or f"chart template {hp.default}"
        volumes.append({"name": name, "hostPath": {"path": str(host)}})
        mounts.append({"name": name, "readOnly": hp.read_only})
    if volumes:
        spec["volumes"] = volumes
    if mounts:
        container["volumeMounts"] = mounts
    spec["containers"] = [container]
    return spec, paths


@dataclass(frozen=True)
class HelmPod:
    """One pod a Helm release renders, as the rules see it."""

    chart: str
    """Chart name."""
    pod: ChartPod
    """The table entry."""
    spec: dict[str, Any]
    """The pod spec built from the release's values over the chart defaults."""
    paths: dict[str, str]
    """Values path of each spec field (``container.<field>`` for the container's)."""


_MIRRORS = {e.chart: e.mirror for e in inventory.INVENTORY.values() if e.kind == "chart"}
"""Chart name -> its repository in the zone's registry."""


def release_chart(r: Resource) -> tuple[str, Chart | None]:
    """The chart name of a Helm release and its table entry (None for a chart we do not know).

    A chart given as a path or URL (``oci://.../name``) is known by its last segment, and only
    when its repository matches too.
    """
    chart = str(r.inputs.get("chart") or "")
    name = chart.rstrip("/").rsplit("/", 1)[-1]
    entry = CHARTS.get(name)
    repo = str((r.inputs.get("repositoryOpts") or {}).get("repo") or "")
    # The zone's mirror holds the same chart under the inventory's repository name; whether the
    # registry is inside the zone is SOV-SUP-001's question, not this table's.
    mirrored = chart.startswith("oci://") and inventory.mirror_path(chart) == _MIRRORS.get(name)
    if entry is None or (
        repo.rstrip("/") != entry.repo and chart != f"{entry.repo}/{name}" and not mirrored
    ):
        return name, None
    return name, entry


def helm_pods(r: Resource) -> list[HelmPod]:
    """The pods a known chart's release renders (none for other resources or unknown charts)."""
    if r.type not in HELM_TYPES:
        return []
    name, chart = release_chart(r)
    if chart is None:
        return []
    values = r.inputs.get("values")
    values = values if isinstance(values, Mapping) else {}
    out = []
    for pod in chart.pods:
        if pod.enabled and not _on(values, pod.enabled, pod.enabled_default):
            continue
        spec, paths = chart_pod_spec(pod, values)
        out.append(HelmPod(name, pod, spec, paths))
    return out


@rule(
    "SOV-K8S-011",
    "helm-chart-examined",
    "high",
    "Every Helm release is of a chart (and version) whose security-relevant values the gate knows.",
    types=HELM_TYPES,
)
def chart_known(r: Resource, ctx: Context) -> list[str]:
    name, chart = release_chart(r)
    version = str(r.inputs.get("version") or "")
    if chart is None:
        return [
            f"Helm chart {name!r} from {(r.inputs.get('repositoryOpts') or {}).get('repo')!r} "
            "is not in the gate's chart table, so the pods it renders cannot be examined: add "
            "its security-relevant values paths to policies/rules/helm_charts.py (CHARTS), or "
            "declare its objects as Kubernetes resources or YAML"
        ]
    if version != chart.version:
        return [
            f"Helm chart {name} version {version or '(unpinned)'!s} is not the version the "
            f"gate's chart table was read from ({chart.version}): pin {chart.version}, or review "
            "the new version's defaults and update policies/rules/helm_charts.py"
        ]
    return []
