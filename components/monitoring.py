"""Monitoring: Prometheus scraping serving and features, alert rules, drift jobs, retraining."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components._alertmanager_config import CONFIG_SECRET as ALERTMANAGER_CONFIG_SECRET
from components._alerts import (
    DEFAULT_RUNBOOK_BASE,
    FAST_BURN,
    PIPELINE_FAST_BURN,
    SloTargets,
    egress_groups,
    slo_groups,
    threshold_groups,
)
from components._aws import TYPE_PREFIX, child
from components._cost_rules import UnitPrices, cost_groups
from components._irsa import ClusterAccess, bucket_policy, irsa_service_account
from components._k8s import (
    GPU_NODE_SELECTOR,
    GPU_TOLERATION,
    allow_path,
    chart_container_security,
    claim_spec,
    container,
    helm_release,
    metadata,
    pod_spec,
    pool_selector,
    runtime_default,
)
from components.audit_trail import LifecycleSink, audit_config_map, lifecycle_writer_statements
from components.feature_store import SERVER_LABELS as FEATURE_SERVER_LABELS
from policies import inventory
from policies.gateway_metrics import GATEWAY_NAMESPACE, GATEWAY_WORKLOAD
from policies.lifecycle import CONFIG_MAP as AUDIT_CONFIG_MAP
from policies.promotion import DEFAULT, PromotionCriteria

PROMETHEUS_CHART = inventory.chart("kube-prometheus-stack")
PUSHGATEWAY_CHART = inventory.chart("prometheus-pushgateway")
DCGM_CHART = inventory.chart("dcgm-exporter")
PUSHGATEWAY_URL = "http://prometheus-pushgateway.monitoring.svc:9091"
PROMETHEUS_URL = "http://prometheus-kube-prometheus-prometheus.monitoring.svc:9090"
"""The query endpoint of the ``prometheus`` release: kube-prometheus-stack names the Service
``<fullname>-prometheus``, fullname being ``<release>-<chart>`` cut to 26 characters
(``prometheus-kube-prometheus``). The canary analysis and KEDA query it."""
ROLLOUTS_CONTROLLER = {
    "app.kubernetes.io/name": "argo-rollouts",
    "app.kubernetes.io/component": "rollouts-controller",
}
"""Pod labels of the Argo Rollouts controller (chart ``argo-rollouts``, in ``serving``): its
``metrics`` port (8090) exports ``rollout_info`` and ``rollout_info_replicas_*``, which the
serving dashboard's canary weight panel reads."""
DCGM_POD_LABELS = ("namespace", "pod", "container")
"""Labels the DCGM exporter puts on a GPU's series naming the pod holding it (the chart always
sets ``DCGM_EXPORTER_KUBERNETES``). Its ServiceMonitor defaults to ``honorLabels: false``, under
which Prometheus overwrites them with the exporter's own target labels (and keeps the GPU's as
``exported_*``); the release sets ``honorLabels: true`` so per-model GPU queries read them."""
KFP_PORT = 8888
KFP_URL = f"http://ml-pipeline.kubeflow.svc:{KFP_PORT}"
GRAFANA_ADMIN_SECRET = "grafana-admin"
"""Secret holding Grafana's admin user and password (``admin.existingSecret``)."""
DASHBOARD_LABEL = ("grafana_dashboard", "1")
"""The label (and value) Grafana's sidecar loads dashboard ConfigMaps by."""
DRIFT_LABELS = {"app.kubernetes.io/name": "drift-monitor"}
"""Pod labels of the drift jobs: the retraining NetworkPolicies select them."""


@dataclass
class MonitoringArgs:
    """Inputs of :class:`Monitoring`."""

    namespace: str
    """Namespace of Prometheus, the pushgateway and the drift jobs."""
    models: Sequence[str]
    """Served models: each gets a drift CronJob."""
    data_bucket: pulumi.Input[str]
    """Bucket with reference profiles (``<model>/reference_profile.npz``) and inference logs
    (``inference-logs/<model>/``)."""
    data_bucket_arn: pulumi.Input[str]
    """Its ARN, for the drift jobs' read-only role."""
    storage_key_arn: pulumi.Input[str]
    """KMS key of the bucket."""
    cluster_access: ClusterAccess
    """IRSA access to the cluster (its OIDC provider)."""
    drift_image: str
    """Pinned image running ``python -m pipelines.monitoring.drift_job`` (the project's kernels)."""
    drift_threshold: float = 0.2
    """PSI above which a feature counts as drifted and retraining is requested."""
    drift_schedule: str = "0 * * * *"
    """Cron schedule of the drift jobs."""
    p99_latency_ms: float = 100.0
    """p99 latency alert threshold per model."""
    gpu_enabled: bool = True
    """Deploy the DCGM exporter for GPU utilisation."""
    retention: str = "15d"
    """Prometheus retention."""
    criteria: PromotionCriteria = field(default_factory=lambda: DEFAULT)
    """Error-rate threshold shared with progressive delivery."""
    slo: SloTargets = field(default_factory=SloTargets)
    """Targets of the serving and feature-server SLOs (burn-rate alerts)."""
    gpu_pool_bounds: tuple[int, int] = (0, 0)
    """Min and max size of the GPU pool, named in GpuSaturated's automated action."""
    runbook_base: str = DEFAULT_RUNBOOK_BASE
    """Base of every alert's ``runbook_url`` (``<base>/<AlertName>.md``)."""
    audit: LifecycleSink = field(kw_only=True)
    """Where the drift jobs append their decisions (the lifecycle log): the drift role may
    append to this namespace's chain only, and the jobs take the ``sovml-audit`` ConfigMap."""
    tenants: Sequence[str] = ()
    """Tenant namespaces whose pods' requests the cost rules price."""
    unit_prices: UnitPrices | None = None
    """USD per requested vCPU-, GiB- and GPU-hour (:mod:`infra.cost.unit_prices`); None: no
    cost rules."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


def alert_rules(args: MonitoringArgs) -> list[dict]:
    """The PrometheusRule groups: thresholds (latency, errors, GPU, drift), the SLOs, the cost
    per tenant (:mod:`components._cost_rules`), then the refused egress (the mesh is on for
    every stack)."""
    return (
        threshold_groups(
            p99_latency_ms=args.p99_latency_ms,
            max_error_rate=args.criteria.max_error_rate,
            drift_threshold=args.drift_threshold,
            gpu_pool_bounds=args.gpu_pool_bounds,
            runbook_base=args.runbook_base,
        )
        + slo_groups(args.slo, args.runbook_base)
        + cost_groups(args.tenants, args.unit_prices)
        + egress_groups(args.runbook_base)
    )


def chart_hardening() -> dict[str, Any]:
    """Pod and container security values the prometheus-community charts take."""
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "fsGroup": 65534,
            "seccompProfile": runtime_default(),
        },
        "containerSecurityContext": chart_container_security(),
    }


def grafana_values() -> dict[str, Any]:
    """kube-prometheus-stack's Grafana: restricted pods, no anonymous access, no admin password
    in the values, dashboards only from labelled ConfigMaps (:mod:`components.dashboards`)."""
    label, value = DASHBOARD_LABEL
    restricted = chart_container_security(seccompProfile=runtime_default())
    return {
        "enabled": True,
        "admin": {
            "existingSecret": GRAFANA_ADMIN_SECRET,
            "userKey": "admin-user",
            "passwordKey": "admin-password",
        },
        "grafana.ini": {
            "auth.anonymous": {"enabled": False},
            "users": {"allow_sign_up": False},
            # Nothing leaves the zone: no update checks, no usage reporting.
            "analytics": {"reporting_enabled": False, "check_for_updates": False},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 472,
            "runAsGroup": 472,
            "fsGroup": 472,
            "seccompProfile": runtime_default(),
        },
        "containerSecurityContext": restricted,
        # The root filesystem is read-only: Grafana writes its data to the chart's emptyDir
        # (/var/lib/grafana, no persistence) and temporary files here.
        "extraEmptyDirMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "sidecar": {
            "securityContext": restricted,
            "dashboards": {"enabled": True, "label": label, "labelValue": value},
            "datasources": {"enabled": True},
        },
        # The chart's test pod runs a root image; nothing runs `helm test` here.
        "testFramework": {"enabled": False},
    }


class Monitoring(pulumi.ComponentResource):
    """Prometheus and Grafana (pinned kube-prometheus-stack), scrapes, alert rules, drift jobs
    and retraining.

    ServiceMonitors scrape Triton's metrics port in ``serving`` (copying the pod label
    ``sovereign-ml/variant`` onto the series, which the rollout analysis selects on) and the
    Feast feature server in ``feature-store``. PrometheusRules alert on p99 latency, error rate
    (the threshold progressive delivery uses), GPU utilisation (DCGM exporter) and drift, and
    record SLO error ratios with multi-window burn-rate alerts (:mod:`components._alerts`). A
    CronJob per served model runs the project's exact drift kernels over the logged inference
    inputs against the training reference profile, pushes per-feature scores to the pushgateway
    and, when a feature crosses the threshold, submits a retraining run to Kubeflow Pipelines
    (a NetworkPolicy pair opens exactly that path).
    """

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not 0 < args.drift_threshold < 10:
            raise ValueError(
                f"MonitoringArgs.drift_threshold: {args.drift_threshold}; allowed (0, 10)"
            )
        if ":" not in args.drift_image.rsplit("/", 1)[-1] or args.drift_image.endswith(":latest"):
            raise ValueError(
                f"MonitoringArgs.drift_image: {args.drift_image}; allowed a pinned tag"
            )
        for key in ("availability", "latency_objective", "feature_server_availability"):
            # Below 1 - 1/14.4 the fast burn would need an error ratio above 1 to page.
            if not 1 - 1 / FAST_BURN[0].factor < getattr(args.slo, key) < 1:
                raise ValueError(
                    f"MonitoringArgs.slo.{key}: {getattr(args.slo, key)}; allowed (0.9306, 1)"
                )
        if not 1 - 1 / PIPELINE_FAST_BURN[0].factor < args.slo.pipeline_success < 1:
            raise ValueError(
                f"MonitoringArgs.slo.pipeline_success: {args.slo.pipeline_success}; allowed "
                "(0.8334, 1)"
            )
        if len(set(args.models)) != len(args.models):
            raise ValueError(f"MonitoringArgs.models: duplicates in {list(args.models)}")
        super().__init__(f"{TYPE_PREFIX}:monitoring:Monitoring", name, None, opts)

        stack = self._prometheus(name, args)
        self._exporters(name, args, stack)
        self._service_monitors(name, args, stack)
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=metadata("sovereign-ml", args.namespace),
            spec={"groups": alert_rules(args)},
            opts=child(self, depends_on=[stack]),
        )
        self._drift_jobs(name, args)
        self.register_outputs({})

    def _prometheus(self, name: str, args: MonitoringArgs) -> k8s.helm.v3.Release:
        """kube-prometheus-stack with Grafana, on an encrypted volume, hardened."""
        hardened = chart_hardening()
        storage = claim_spec("50Gi")
        admin = self._grafana_admin(name, args)
        return helm_release(
            f"{name}-prometheus",
            args.sources.chart("kube-prometheus-stack"),
            release="prometheus",
            namespace=args.namespace,
            # Every image the chart and its grafana and kube-state-metrics subcharts render,
            # from the inventory: a chart default would be pulled from a public registry.
            values=args.sources.chart_images(
                "kube-prometheus-stack",
                {
                    "grafana": grafana_values(),
                    # The chart's node exporter runs with the host's network and PID namespaces and
                    # /, /proc and /sys from the host, tolerating every taint: Pod Security
                    # 'restricted' on this namespace would refuse its pods (SOV-K8S-007 says why).
                    "nodeExporter": {"enabled": False},
                    "prometheus": {
                        "prometheusSpec": {
                            "retention": args.retention,
                            "serviceMonitorSelectorNilUsesHelmValues": False,
                            # The Argo Rollouts controller is scraped through a PodMonitor.
                            "podMonitorSelectorNilUsesHelmValues": False,
                            "ruleSelectorNilUsesHelmValues": False,
                            "storageSpec": {"volumeClaimTemplate": {"spec": storage}},
                            "securityContext": hardened["securityContext"],
                        }
                    },
                    "alertmanager": {
                        "alertmanagerSpec": {
                            "securityContext": hardened["securityContext"],
                            # Routes and receivers: components.alerting writes this Secret.
                            "configSecret": ALERTMANAGER_CONFIG_SECRET,
                        }
                    },
                    "prometheusOperator": hardened,
                },
            ),
            opts=child(self, depends_on=[admin]),
        )

    def _grafana_admin(self, name: str, args: MonitoringArgs) -> k8s.core.v1.Secret:
        """Grafana's admin credentials: a generated password, a secret in the state."""
        password = random.RandomPassword(
            f"{name}-grafana-admin-password", length=32, special=False, opts=child(self)
        )
        return k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=metadata(GRAFANA_ADMIN_SECRET, args.namespace),
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=child(self),
        )

    def _exporters(self, name: str, args: MonitoringArgs, stack: k8s.helm.v3.Release) -> None:
        """The pushgateway the drift jobs push to and, with GPUs, the DCGM exporter."""
        helm_release(
            f"{name}-pushgateway",
            args.sources.chart("prometheus-pushgateway"),
            namespace=args.namespace,
            values=args.sources.chart_images(
                "prometheus-pushgateway", {"serviceMonitor": {"enabled": True}, **chart_hardening()}
            ),
            opts=child(self, depends_on=[stack]),
        )
        if args.gpu_enabled:
            helm_release(
                f"{name}-dcgm-exporter",
                args.sources.chart("dcgm-exporter"),
                namespace="kube-system",
                values=args.sources.chart_images(
                    "dcgm-exporter",
                    {
                        "nodeSelector": dict(GPU_NODE_SELECTOR),
                        "tolerations": [dict(GPU_TOLERATION)],
                        "serviceMonitor": {"enabled": True, "honorLabels": True},
                    },
                ),
                opts=child(self, depends_on=[stack]),
            )

    def _service_monitors(
        self, name: str, args: MonitoringArgs, stack: k8s.helm.v3.Release
    ) -> None:
        """Scrapes of Triton (with the rollout variant as a label), the feature server, the Argo
        Rollouts controller, and the Envoys of the model pods and the inference gateway."""
        monitors = [
            ("triton", "serving", {"app.kubernetes.io/part-of": "sovereign-ml"}, "metrics"),
            ("feature-server", "feature-store", FEATURE_SERVER_LABELS, "metrics"),
        ]
        for mon, target_ns, selector, port in monitors:
            k8s.apiextensions.CustomResource(
                f"{name}-{mon}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=metadata(mon, args.namespace),
                spec={
                    "namespaceSelector": {"matchNames": [target_ns]},
                    "selector": {"matchLabels": dict(selector)},
                    "endpoints": [
                        {
                            "port": port,
                            # The canary's latency guard counts requests in Triton's summary
                            # window from these (PromotionCriteria.window_offset_s).
                            "interval": f"{args.criteria.scrape_interval_s}s",
                            "scrapeTimeout": f"{args.criteria.scrape_timeout_s}s",
                            "relabelings": [
                                {
                                    "sourceLabels": [
                                        "__meta_kubernetes_pod_label_sovereign_ml_variant"
                                    ],
                                    "targetLabel": "variant",
                                }
                            ],
                        }
                    ],
                },
                opts=child(self, depends_on=[stack]),
            )

        k8s.apiextensions.CustomResource(
            f"{name}-argo-rollouts-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=metadata("argo-rollouts", args.namespace),
            spec={
                "namespaceSelector": {"matchNames": ["serving"]},
                "selector": {"matchLabels": dict(ROLLOUTS_CONTROLLER)},
                # The series name their rollout's namespace; keep it over the controller's.
                "podMetricsEndpoints": [
                    {"port": "metrics", "interval": "30s", "honorLabels": True}
                ],
            },
            opts=child(self, depends_on=[stack]),
        )

        # Istio's request metrics, from each Envoy's own stats port (the injected sidecar's and
        # the gateway's ``http-envoy-prom``): the canary's error guards read them
        # (policies/gateway_metrics.py), the model pods' series with their rollout variant.
        envoys = [
            ("triton-mesh", "serving", {"matchExpressions": [
                {"key": "sovereign-ml/model", "operator": "Exists"}]}),
            ("inference-gateway", GATEWAY_NAMESPACE, {"matchLabels": {"istio": GATEWAY_WORKLOAD}}),
        ]  # fmt: skip
        for mon, target_ns, selector in envoys:
            k8s.apiextensions.CustomResource(
                f"{name}-{mon}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata=metadata(mon, args.namespace),
                spec={
                    "namespaceSelector": {"matchNames": [target_ns]},
                    "selector": selector,
                    "podMetricsEndpoints": [
                        {
                            "port": "http-envoy-prom",
                            "path": "/stats/prometheus",
                            "interval": f"{args.criteria.scrape_interval_s}s",
                            "relabelings": [
                                {
                                    "sourceLabels": [
                                        "__meta_kubernetes_pod_label_sovereign_ml_variant"
                                    ],
                                    "targetLabel": "variant",
                                }
                            ],
                        }
                    ],
                },
                opts=child(self, depends_on=[stack]),
            )

    def _drift_jobs(self, name: str, args: MonitoringArgs) -> None:
        """An IRSA account reading the data bucket and appending to this namespace's lifecycle
        chain, the ``sovml-audit`` ConfigMap, a CronJob per model, and the one path into
        Kubeflow."""
        irsa_service_account(
            self,
            f"{name}-drift",
            access=args.cluster_access,
            namespace=args.namespace,
            service_account="drift-monitor",
            inline_policy=bucket_policy(
                args.data_bucket_arn,
                args.storage_key_arn,
                ("ReadProfilesAndInferenceLogs", "DecryptSseKms"),
                extra=lifecycle_writer_statements(args.audit, args.namespace),
            ),
        )
        audit_config_map(f"{name}-audit", args.audit, args.namespace, child(self))
        for model in args.models:
            self._drift_job(name, args, model)
        self._retraining_path(name, args)

    def _drift_job(self, name: str, args: MonitoringArgs, model: str) -> None:
        job = container(
            "drift",
            args.drift_image,
            cpu="1",
            memory="4Gi",
            cpu_limit="2",
            command=["python", "-m", "pipelines.monitoring.drift_job"],
            args=[
                "--model",
                model,
                "--reference",
                f"s3://$(DATA_BUCKET)/{model}/reference_profile.npz",
                "--window",
                f"s3://$(DATA_BUCKET)/inference-logs/{model}/",
                "--threshold",
                f"{args.drift_threshold:g}",
                "--pushgateway",
                PUSHGATEWAY_URL,
                "--kfp-endpoint",
                KFP_URL,
                "--retrain-pipeline",
                "training",
            ],
            env={"DATA_BUCKET": args.data_bucket},
            volume_mounts=[{"name": "tmp", "mountPath": "/tmp"}],
        )
        # Not optional: without its audit settings the job would log its decision to a file
        # that dies with the pod; the kubelet refuses to start it instead.
        job["envFrom"] = [{"configMapRef": {"name": AUDIT_CONFIG_MAP, "optional": False}}]
        k8s.batch.v1.CronJob(
            f"{name}-drift-{model}",
            metadata=metadata(f"drift-{model}", args.namespace),
            spec={
                "schedule": args.drift_schedule,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,
                        "activeDeadlineSeconds": 1800,
                        "template": {
                            "metadata": {"labels": {**DRIFT_LABELS, "sovereign-ml/model": model}},
                            "spec": pod_spec(
                                [job],
                                service_account="drift-monitor",
                                volumes=[{"name": "tmp", "emptyDir": {}}],
                                node_selector=pool_selector("workers"),
                                restart_policy="Never",
                            ),
                        },
                    }
                },
            },
            opts=child(self),
        )

    def _retraining_path(self, name: str, args: MonitoringArgs) -> None:
        """The one path from monitoring into Kubeflow: drift jobs submitting retraining runs."""
        allow_path(
            self,
            egress=(f"{name}-drift-to-kfp", "allow-drift-to-kfp"),
            ingress=(f"{name}-kfp-from-drift", "allow-retraining-from-drift"),
            source=(args.namespace, DRIFT_LABELS),
            target=("kubeflow", {"app": "ml-pipeline"}),
            port=KFP_PORT,
            to_any_pod=True,
        )
