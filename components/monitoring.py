"""Monitoring: Prometheus scraping serving and features, alert rules, drift jobs, retraining."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child, irsa_role, policy
from components._k8s import container, metadata, pod_spec
from policies.promotion import DEFAULT, PromotionCriteria

PROMETHEUS_CHART = (
    "kube-prometheus-stack",
    "65.1.1",
    "https://prometheus-community.github.io/helm-charts",
)
PUSHGATEWAY_CHART = (
    "prometheus-pushgateway",
    "2.15.0",
    "https://prometheus-community.github.io/helm-charts",
)
DCGM_CHART = ("dcgm-exporter", "3.6.1", "https://nvidia.github.io/dcgm-exporter/helm-charts")
PUSHGATEWAY_URL = "http://prometheus-pushgateway.monitoring.svc:9091"
PROMETHEUS_URL = "http://prometheus-kube-prometheus-prometheus.monitoring.svc:9090"
"""The query endpoint of the ``prometheus`` release: kube-prometheus-stack names the Service
``<fullname>-prometheus``, fullname being ``<release>-<chart>`` cut to 26 characters
(``prometheus-kube-prometheus``). The canary analysis and KEDA query it."""
KFP_URL = "http://ml-pipeline.kubeflow.svc:8888"


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
    oidc_provider_arn: pulumi.Input[str]
    """IRSA OIDC provider."""
    oidc_issuer_url: pulumi.Input[str]
    """Its issuer URL."""
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


def alert_rules(args: MonitoringArgs) -> list[dict]:
    """The PrometheusRule groups: latency, errors, GPU utilisation, drift."""
    err = (
        "sum by (model) (rate(nv_inference_request_failure[5m])) / clamp_min("
        "sum by (model) (rate(nv_inference_request_success[5m])) + "
        "sum by (model) (rate(nv_inference_request_failure[5m])), 1e-9)"
    )
    return [
        {
            "name": "sovereign-ml.serving",
            "rules": [
                {
                    "alert": "ModelP99LatencyHigh",
                    "expr": (
                        'max by (model) (nv_inference_request_summary_us{quantile="0.99"}) '
                        f"> {args.p99_latency_ms * 1000:g}"
                    ),
                    "for": "10m",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "{{ $labels.model }} p99 latency above target"},
                },
                {
                    "alert": "ModelErrorRateHigh",
                    "expr": f"{err} > {args.criteria.max_error_rate}",
                    "for": "5m",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "{{ $labels.model }} is failing inferences"},
                },
            ],
        },
        {
            "name": "sovereign-ml.gpu",
            "rules": [
                {
                    "alert": "GpuSaturated",
                    "expr": "avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL) > 95",
                    "for": "30m",
                    "labels": {"severity": "warning"},
                    "annotations": {
                        "summary": "GPU on {{ $labels.Hostname }} saturated: scale out"
                    },
                },
                {
                    "alert": "GpuIdle",
                    "expr": "avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL) < 10",
                    "for": "2h",
                    "labels": {"severity": "info"},
                    "annotations": {"summary": "GPU on {{ $labels.Hostname }} idle: rightsize"},
                },
            ],
        },
        {
            "name": "sovereign-ml.drift",
            "rules": [
                {
                    "alert": "FeatureDrift",
                    "expr": f"max by (model, feature) (sovml_drift_psi) > {args.drift_threshold:g}",
                    "for": "15m",
                    "labels": {"severity": "warning"},
                    "annotations": {
                        "summary": "{{ $labels.model }}: {{ $labels.feature }} drifted; the "
                        "drift job has requested a retraining run"
                    },
                }
            ],
        },
    ]


class Monitoring(pulumi.ComponentResource):
    """Prometheus (pinned kube-prometheus-stack), scrapes, alert rules, drift jobs and retraining.

    ServiceMonitors scrape Triton's metrics port in ``serving`` (copying the pod label
    ``sovereign-ml/variant`` onto the series, which the rollout analysis selects on) and the
    Feast feature server in ``feature-store``. PrometheusRules alert on p99 latency, error rate
    (the threshold progressive delivery uses), GPU utilisation (DCGM exporter) and drift. A
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
        if len(set(args.models)) != len(args.models):
            raise ValueError(f"MonitoringArgs.models: duplicates in {list(args.models)}")
        super().__init__(f"{TYPE_PREFIX}:monitoring:Monitoring", name, None, opts)
        ns = args.namespace
        hardened = {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "fsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containerSecurityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        chart, version, repo = PROMETHEUS_CHART
        stack = k8s.helm.v3.Release(
            f"{name}-prometheus",
            name="prometheus",
            chart=chart,
            version=version,
            namespace=ns,
            repository_opts={"repo": repo},
            values={
                "grafana": {"enabled": False},
                "prometheus": {
                    "prometheusSpec": {
                        "retention": args.retention,
                        "serviceMonitorSelectorNilUsesHelmValues": False,
                        "ruleSelectorNilUsesHelmValues": False,
                        "storageSpec": {
                            "volumeClaimTemplate": {
                                "spec": {
                                    "storageClassName": "gp3-encrypted",
                                    "accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "50Gi"}},
                                }
                            }
                        },
                        "securityContext": hardened["securityContext"],
                    }
                },
                "alertmanager": {
                    "alertmanagerSpec": {"securityContext": hardened["securityContext"]}
                },
                "prometheusOperator": hardened,
            },
            opts=child(self),
        )
        chart, version, repo = PUSHGATEWAY_CHART
        k8s.helm.v3.Release(
            f"{name}-pushgateway",
            name="prometheus-pushgateway",
            chart=chart,
            version=version,
            namespace=ns,
            repository_opts={"repo": repo},
            values={"serviceMonitor": {"enabled": True}, **hardened},
            opts=child(self, depends_on=[stack]),
        )
        if args.gpu_enabled:
            chart, version, repo = DCGM_CHART
            k8s.helm.v3.Release(
                f"{name}-dcgm-exporter",
                name="dcgm-exporter",
                chart=chart,
                version=version,
                namespace="kube-system",
                repository_opts={"repo": repo},
                values={
                    "nodeSelector": {"sovereign-ml/pool": "gpu"},
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "serviceMonitor": {"enabled": True},
                },
                opts=child(self, depends_on=[stack]),
            )
        monitors = [
            ("triton", "serving", {"app.kubernetes.io/part-of": "sovereign-ml"}, "metrics"),
            ("feature-server", "feature-store", {"app.kubernetes.io/name": "feast"}, "metrics"),
        ]
        for mon, target_ns, selector, port in monitors:
            k8s.apiextensions.CustomResource(
                f"{name}-{mon}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=metadata(mon, ns),
                spec={
                    "namespaceSelector": {"matchNames": [target_ns]},
                    "selector": {"matchLabels": selector},
                    "endpoints": [
                        {
                            "port": port,
                            "interval": "15s",
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
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=metadata("sovereign-ml", ns),
            spec={"groups": alert_rules(args)},
            opts=child(self, depends_on=[stack]),
        )
        self._drift_jobs(name, args)
        self.register_outputs({})

    def _drift_jobs(self, name: str, args: MonitoringArgs) -> None:
        ns = args.namespace
        bucket = pulumi.Output.from_input(args.data_bucket_arn)
        role = irsa_role(
            f"{name}-drift-irsa",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            namespace=ns,
            service_account="drift-monitor",
            inline_policy=policy(
                [
                    {
                        "Sid": "ReadProfilesAndInferenceLogs",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:ListBucket"],
                        "Resource": [args.data_bucket_arn, bucket.apply(lambda a: f"{a}/*")],
                    },
                    {
                        "Sid": "DecryptSseKms",
                        "Effect": "Allow",
                        "Action": "kms:Decrypt",
                        "Resource": args.storage_key_arn,
                    },
                ]
            ),
            opts=child(self),
        )
        k8s.core.v1.ServiceAccount(
            f"{name}-drift-sa",
            metadata={
                **metadata("drift-monitor", ns),
                "annotations": {"eks.amazonaws.com/role-arn": role.arn},
            },
            opts=child(self),
        )
        drift_labels = {"app.kubernetes.io/name": "drift-monitor"}
        for model in args.models:
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
                volume_mounts=[{"name": "tmp", "mountPath": "/tmp"}],
            )
            job["env"] = [{"name": "DATA_BUCKET", "value": args.data_bucket}]
            k8s.batch.v1.CronJob(
                f"{name}-drift-{model}",
                metadata=metadata(f"drift-{model}", ns),
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
                                "metadata": {
                                    "labels": {**drift_labels, "sovereign-ml/model": model}
                                },
                                "spec": pod_spec(
                                    [job],
                                    service_account="drift-monitor",
                                    volumes=[{"name": "tmp", "emptyDir": {}}],
                                    node_selector={"sovereign-ml/pool": "workers"},
                                    restart_policy="Never",
                                ),
                            },
                        }
                    },
                },
                opts=child(self),
            )
        # The one path from monitoring into Kubeflow: drift jobs submitting retraining runs.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-drift-to-kfp",
            metadata=metadata("allow-drift-to-kfp", ns),
            spec={
                "podSelector": {"matchLabels": drift_labels},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 8888}],
                    }
                ],
            },
            opts=child(self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-kfp-from-drift",
            metadata=metadata("allow-retraining-from-drift", "kubeflow"),
            spec={
                "podSelector": {"matchLabels": {"app": "ml-pipeline"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": ns}
                                },
                                "podSelector": {"matchLabels": drift_labels},
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 8888}],
                    }
                ],
            },
            opts=child(self),
        )
