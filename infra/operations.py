"""Day-two operations of one stack: metrics and alert rules, dashboards, workload logs, the
automated-action recorder and Alertmanager's routing, composed after the services they watch.

Split from :mod:`infra.platform` (which calls :func:`operations`) to keep both short; it takes
what it needs from the platform as arguments, so it imports nothing from it at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components._alertmanager_config import SECRET_KEYS
from components._cost_rules import UnitPrices
from components.alerting import Alerting, AlertingArgs
from components.audit_recorder import AuditRecorder, AuditRecorderArgs
from components.audit_trail import LifecycleSink
from components.dashboards import Dashboards, DashboardsArgs
from components.monitoring import Monitoring, MonitoringArgs, SloTargets
from components.workload_logs import WorkloadLogs, WorkloadLogsArgs
from infra.config import PlatformConfig
from infra.cost.unit_prices import stack_unit_prices
from infra.images.sources import sources_for, workload_image
from policies.lifecycle import RECORDER_CHAIN, chain_prefix
from policies.promotion import PromotionCriteria

if TYPE_CHECKING:
    from infra.foundation import AwsBase, KubernetesCluster


def operations(
    cfg: PlatformConfig,
    base: AwsBase,
    eks: KubernetesCluster,
    opts: pulumi.ResourceOptions,
    lifecycle: LifecycleSink,
    criteria: PromotionCriteria,
    *,
    gpus: bool,
) -> None:
    """Monitoring, dashboards, workload logs, the recorder and alerting, in that order."""
    # One derivation of the unit prices feeds both the cost rules and the panel stating them.
    prices = stack_unit_prices(cfg.region, cfg.node_pools, pulumi.log.warn)
    monitoring(cfg, base, eks, opts, lifecycle, criteria, gpus, prices)
    Dashboards("dashboards", DashboardsArgs("monitoring", cfg.drift_threshold, prices), opts=opts)
    workload_logs(cfg, base, eks, opts)
    recorder = AuditRecorder(
        "audit-recorder",
        AuditRecorderArgs(
            namespace="monitoring",
            image=workload_image(cfg, cfg.drift_image, "drift-monitor"),
            audit_bucket=lifecycle.bucket,
            audit_key_arn=lifecycle.key_arn,
            # Its own chain: the recorder's role cannot append to a namespace's.
            audit_prefix=chain_prefix(RECORDER_CHAIN),
            cluster_access=eks.cluster.access,
        ),
        opts=opts,
    )
    alerting(cfg, opts, recorder)


def monitoring(
    cfg: PlatformConfig,
    base: AwsBase,
    eks: KubernetesCluster,
    opts: pulumi.ResourceOptions,
    lifecycle: LifecycleSink,
    criteria: PromotionCriteria,
    gpus: bool,
    prices: UnitPrices | None,
) -> Monitoring:
    """Prometheus, alert rules (the tenants' cost among them, priced at ``prices``), and a drift
    job per served model (its decisions appended to the lifecycle log)."""
    models = base.storage.buckets["models"]
    return Monitoring(
        "monitoring",
        MonitoringArgs(
            namespace="monitoring",
            models=[name for name, _ in cfg.served_models],
            data_bucket=models.bucket,
            data_bucket_arn=models.arn,
            storage_key_arn=base.keys.keys["storage"].arn,
            cluster_access=eks.cluster.access,
            drift_image=workload_image(cfg, cfg.drift_image, "drift-monitor"),
            drift_threshold=cfg.drift_threshold,
            gpu_enabled=gpus,
            criteria=criteria,
            slo=SloTargets(
                availability=cfg.slo_availability_target,
                latency_ms=float(cfg.slo_latency_target_ms),
                latency_objective=cfg.slo_latency_objective,
                feature_server_availability=cfg.slo_feature_server_target,
                pipeline_success=cfg.slo_pipeline_success_target,
            ),
            gpu_pool_bounds=next(
                ((p.min_size, p.max_size) for p in cfg.node_pools if p.gpu), (0, 0)
            ),
            runbook_base=cfg.runbook_base_url,
            audit=lifecycle,
            tenants=cfg.tenants,
            unit_prices=prices,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )


def workload_logs(
    cfg: PlatformConfig, base: AwsBase, eks: KubernetesCluster, opts: pulumi.ResourceOptions
) -> WorkloadLogs:
    """Fluent Bit shipping every container's log to encrypted log groups in the stack's region."""
    return WorkloadLogs(
        "logs",
        WorkloadLogsArgs(
            name_prefix=cfg.name_prefix,
            region=cfg.region,
            logs_key_arn=base.keys.keys["logs"].arn,
            retention_days=cfg.log_retention_days,
            cluster_access=eks.cluster.access,
            tenants=list(cfg.tenants),
            masked_fields=list(cfg.log_masked_fields),
            protect=cfg.production,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )


def alerting(
    cfg: PlatformConfig, opts: pulumi.ResourceOptions, recorder: AuditRecorder
) -> Alerting:
    """Alertmanager's routes and receivers; credentials read as Pulumi secrets, never plain;
    automated actions also to the recorder."""
    project = pulumi.Config()
    needed = {
        "alertPagerdutyRoutingKey": cfg.alerting.pagerduty,
        "alertOpsgenieApiKey": cfg.alerting.opsgenie,
        "alertServicenowPassword": bool(cfg.alerting.servicenow_user),
        "alertEmailPassword": bool(cfg.alerting.email_username),
    }
    assert set(needed) == set(SECRET_KEYS)
    secrets = {key: project.require_secret(key) for key, used in needed.items() if used}
    return Alerting(
        "alerting",
        AlertingArgs(
            namespace="monitoring",
            receivers=cfg.alerting,
            secrets=secrets,
            recorder_url=recorder.url,
            recorder_token=recorder.token,
        ),
        opts=opts,
    )
