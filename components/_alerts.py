"""The PrometheusRule groups of the monitoring component: threshold alerts and SLO burn rates.

Pure builders (no resources): :class:`components.monitoring.Monitoring` puts their output in one
``PrometheusRule`` and ``tests/promtool_rules.py`` reads its thresholds from the same functions.

Service-level objectives follow the Google SRE Workbook, chapter 5 "Alerting on SLOs": for each
SLO an error ratio is recorded over 5m, 30m, 1h, 2h, 6h, 1d and 3d
(``slo:sli_error:ratio_rate<window>{slo="<name>"}``), and two alerts judge the error-budget burn
rate, each with a long and a short window that must both exceed ``factor x (1 - objective)``:
``<Slo>FastBurn`` pages (14.4x over 1h and 5m, 6x over 6h and 30m), ``<Slo>SlowBurn`` opens a
ticket (severity ``warning``: 3x over 1d and 2h, 1x over 3d and 6h). Each window pair is its own
rule, labelled ``burn_window``, so each fires exactly at its own burn rate.

The SLIs, from what the platform actually exports:

* ``model-availability`` (per model): failed / all inference requests, from Triton's
  ``nv_inference_request_failure`` and ``nv_inference_request_success`` counters.
* ``model-latency`` (per model): a *time-slice* SLI. Triton 2.51 exports latency only as summary
  quantiles (``nv_inference_request_summary_us``) and cumulative durations, no histogram, so
  there is no count of requests faster than the target. A rule evaluation is bad when the
  model's p99 exceeds the target; the error ratio over a window is the fraction of bad
  evaluations (``slo:sli_latency_bad:p99``), and the objective is the share of good ones.
* ``feature-server-availability`` (per Service): Feast's feature server (``--metrics``) exports
  process CPU and memory gauges only, no request counters, so the SLI is its scrape success:
  1 - the mean of ``up`` of its ServiceMonitor's targets. No latency SLO is possible from it.

* ``training-pipeline-success`` (per pipeline): failed / all runs, from the counter
  ``sovml_pipeline_runs_total{pipeline, outcome}`` a run writes when it ends (the local run
  writes it as a textfile, :mod:`pipelines.training.outcome`; on the cluster the pipeline's exit
  task reads the pushgateway group ``job="training-pipeline", pipeline`` back, adds the run and
  pushes it, so the series survive across runs and a pushgateway restart is a counter reset).
  Runs are a few a day, so the 5m-1h windows of the serving SLOs would hold zero or one run and
  page on every single failure: its ratios are recorded over 1d, 3d and 7d and its
  burn rates (:data:`PIPELINE_FAST_BURN`, :data:`PIPELINE_SLOW_BURN`) are judged over those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.promotion import BURN_FACTOR

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
"""The windows every SLO's error ratio is recorded over."""


@dataclass(frozen=True)
class BurnRate:
    """One multi-window burn-rate condition: both windows above ``factor`` x the budget."""

    factor: float
    long: str
    short: str


FAST_BURN = (BurnRate(BURN_FACTOR, "1h", "5m"), BurnRate(6.0, "6h", "30m"))
"""Page: 2 % of a 30-day budget spent in an hour, or 5 % in six hours."""
SLOW_BURN = (BurnRate(3.0, "1d", "2h"), BurnRate(1.0, "3d", "6h"))
"""Ticket: 10 % of the budget spent in a day, or the budget spent at exactly its rate."""
BURN_SEVERITY = {"FastBurn": "page", "SlowBurn": "warning"}
"""The on-call contract: a fast burn pages, a slow one is a ticket (``warning``)."""
PIPELINE_WINDOWS = ("1d", "3d", "7d")
"""The windows of the pipeline SLO: enough runs in each for a ratio to mean something."""
PIPELINE_FAST_BURN = (BurnRate(6.0, "3d", "1d"),)
"""Page: 6x the budget (30 % of runs with the default 0.95) over three days and the last day,
i.e. at least one of every ~3 runs failing for days, not a single bad run."""
PIPELINE_SLOW_BURN = (BurnRate(2.0, "7d", "1d"),)
"""Ticket: twice the budget over a week and the last day (the budget spent in half its period)."""
GPU_SATURATED_PERCENT = 95
"""Mean GPU utilisation of a node above which, for 30 minutes, ``GpuSaturated`` fires."""
GPU_SCALE_PERCENT = 80
"""Mean GPU utilisation of a model's replicas above which KEDA adds a replica
(:func:`components.serving.gpu_util_query`): below :data:`GPU_SATURATED_PERCENT`, so serving
scales out well before a node's GPUs have been saturated for the alert's 30 minutes."""
AUDIT_LABEL = ("audit", "automated-action")
"""The label of an alert whose firing sets off an automated action: Alertmanager also sends it
(``continue: true``) to the recorder (:mod:`pipelines.audit.recorder`), which appends one
``automated.action`` entry per firing to the lifecycle log from its ``automated_action``
annotation. Alertmanager routes on labels only, so the annotation alone cannot select it."""
DEFAULT_RUNBOOK_BASE = "docs/runbooks"
"""Where runbooks live: this repository's ``docs/runbooks`` (a path relative to its root)."""


@dataclass(frozen=True)
class Slo:
    """One service-level objective: its SLI as a PromQL template and its target."""

    name: str
    """Value of the ``slo`` label of its recording rules, e.g. ``model-availability``."""
    alert_prefix: str
    """Alert names are ``<prefix>FastBurn`` and ``<prefix>SlowBurn``."""
    objective: float
    """Share of good events (or good evaluations) the SLO promises, e.g. 0.999."""
    error_ratio: str
    """PromQL of the error ratio with ``{w}`` where the window goes (replaced, not formatted)."""
    subject: str
    """Annotation text naming what the alert is about, with ``$labels`` templates."""
    windows: tuple[str, ...] = WINDOWS
    """The windows its error ratio is recorded over."""
    fast: tuple[BurnRate, ...] = FAST_BURN
    """The window pairs of its ``FastBurn`` alert."""
    slow: tuple[BurnRate, ...] = SLOW_BURN
    """The window pairs of its ``SlowBurn`` alert."""
    hold: str = "2m"
    """``for:`` of its burn alerts."""
    automated_action: str = ""
    """What the platform does by itself when it burns (an ``automated_action`` annotation)."""
    recorded: bool = False
    """Whether its fast burn is an automated action the lifecycle log records
    (:data:`AUDIT_LABEL`); False where the annotation says nothing is done."""

    @property
    def budget(self) -> float:
        """The error budget, ``1 - objective`` (rounded: 1 - 0.999 is not 0.001 in binary)."""
        return round(1 - self.objective, 12)

    def threshold(self, burn: BurnRate) -> str:
        """PromQL of the error ratio a burn rate stands for, readable in the rule."""
        return f"({burn.factor:g} * {self.budget:g})"


@dataclass(frozen=True)
class SloTargets:
    """The SLO targets of a stack (``slo*`` config keys)."""

    availability: float = 0.999
    """Share of a model's inference requests that succeed."""
    latency_ms: float = 100.0
    """p99 latency a model must stay within."""
    latency_objective: float = 0.99
    """Share of evaluations in which a model's p99 is within ``latency_ms``."""
    feature_server_availability: float = 0.999
    """Share of successful scrapes of the feature server."""
    pipeline_success: float = 0.95
    """Share of training pipeline runs that succeed."""


def _rate(metric: str) -> str:
    return f"sum by (model) (rate({metric}[{{w}}]))"


LATENCY_BAD = "slo:sli_latency_bad:p99"
"""Recorded 1 when a model's p99 is above the latency target, else 0 (the time slices)."""


def slos(targets: SloTargets) -> tuple[Slo, ...]:
    """The platform's SLOs for these targets."""
    failed, succeeded = _rate("nv_inference_request_failure"), _rate("nv_inference_request_success")
    return (
        Slo(
            "model-availability",
            "ModelAvailability",
            targets.availability,
            f"{failed} / clamp_min({succeeded} + {failed}, 1e-9)",
            "{{ $labels.model }} availability",
            automated_action="A rollout in progress is aborted and rolled back by its "
            "analysis when the canary alone burns this SLO 14.4x over 5m (AnalysisTemplate "
            "metric slo-fast-burn); a model with no rollout is not changed.",
            recorded=True,
        ),
        Slo(
            "model-latency",
            "ModelLatency",
            targets.latency_objective,
            f"avg_over_time({LATENCY_BAD}[{{w}}])",
            "{{ $labels.model }} p99 latency",
        ),
        Slo(
            "feature-server-availability",
            "FeatureServerAvailability",
            targets.feature_server_availability,
            '1 - avg by (namespace, service) (avg_over_time(up{job="feast",'
            'namespace="feature-store"}[{w}]))',
            "feature server {{ $labels.service }} availability",
        ),
        Slo(
            "training-pipeline-success",
            "TrainingPipelineSuccess",
            targets.pipeline_success,
            'sum by (pipeline) (increase(sovml_pipeline_runs_total{outcome="failed"}[{w}])) / '
            "clamp_min(sum by (pipeline) (increase(sovml_pipeline_runs_total[{w}])), 1e-9)",
            "training pipeline {{ $labels.pipeline }} success rate",
            windows=PIPELINE_WINDOWS,
            fast=PIPELINE_FAST_BURN,
            slow=PIPELINE_SLOW_BURN,
            hold="15m",
            automated_action="None: a failed run changes nothing served (the gate and the "
            "registry keep the last good model); the drift job submits the next run when drift "
            "asks for one.",
        ),
    )


def runbook_url(base: str, alert_name: str) -> str:
    """The runbook page of an alert under ``base``."""
    return f"{base.rstrip('/')}/{alert_name}.md"


def alert(
    name: str,
    expr: str,
    hold: str,
    severity: str,
    summary: str,
    *,
    description: str,
    runbook_base: str,
    labels: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alerting rule: firing after ``hold`` (its ``for:``), with a severity, a summary, a
    description and its runbook link (plus ``extra`` annotations, e.g. an automated action)."""
    return {
        "alert": name,
        "expr": expr,
        "for": hold,
        "labels": {"severity": severity, **(labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(runbook_base, name),
            **(extra or {}),
        },
    }


def recording_rules(slo: Slo, latency_target_ms: float) -> list[dict[str, Any]]:
    """The SLO's error ratio over every window of :data:`WINDOWS`."""
    first = []
    if slo.name == "model-latency":
        first.append(
            {
                "record": LATENCY_BAD,
                "expr": 'max by (model) (nv_inference_request_summary_us{quantile="0.99"}) '
                f"> bool {latency_target_ms * 1000:g}",
            }
        )
    return first + [
        {
            "record": f"slo:sli_error:ratio_rate{w}",
            "expr": slo.error_ratio.replace("{w}", w),
            "labels": {"slo": slo.name},
        }
        for w in slo.windows
    ]


def slo_ratio(slo: Slo, window: str) -> str:
    """The recorded error ratio of an SLO over one window, as a PromQL selector."""
    return f'slo:sli_error:ratio_rate{window}{{slo="{slo.name}"}}'


def burn_alerts(slo: Slo, runbook_base: str) -> list[dict[str, Any]]:
    """The fast- and slow-burn alerts of one SLO, one rule per window pair."""
    rules = []
    for kind, burns in (("FastBurn", slo.fast), ("SlowBurn", slo.slow)):
        for burn in burns:
            over = slo.threshold(burn)
            rules.append(
                alert(
                    f"{slo.alert_prefix}{kind}",
                    f"{slo_ratio(slo, burn.long)} > {over}\nand\n"
                    f"{slo_ratio(slo, burn.short)} > {over}",
                    slo.hold,
                    BURN_SEVERITY[kind],
                    f"{slo.subject}: error budget burning {burn.factor:g}x over {burn.long}",
                    description=(
                        f"The error ratio of SLO {slo.name} (objective {slo.objective:g}) is above "
                        f"{burn.factor:g} x its budget over both {burn.long} and {burn.short}: at "
                        f"this rate a 30-day budget lasts {30 / burn.factor:.3g} days."
                    ),
                    runbook_base=runbook_base,
                    labels={
                        "burn_window": burn.long,
                        **(dict([AUDIT_LABEL]) if slo.recorded and kind == "FastBurn" else {}),
                    },
                    extra=(
                        {"automated_action": slo.automated_action} if slo.automated_action else None
                    ),
                )
            )
    return rules


def slo_groups(targets: SloTargets, runbook_base: str) -> list[dict[str, Any]]:
    """One rule group per SLO: its recording rules, then its burn-rate alerts (a group
    evaluates in order, so the alerts see this evaluation's ratios)."""
    return [
        {
            "name": f"sovereign-ml.slo.{slo.name}",
            "rules": recording_rules(slo, targets.latency_ms) + burn_alerts(slo, runbook_base),
        }
        for slo in slos(targets)
    ]


def threshold_groups(
    *,
    p99_latency_ms: float,
    max_error_rate: float,
    drift_threshold: float,
    gpu_pool_bounds: tuple[int, int],
    runbook_base: str,
) -> list[dict[str, Any]]:
    """The threshold alerts: latency, errors, GPU utilisation, drift."""
    err = (
        "sum by (model) (rate(nv_inference_request_failure[5m])) / clamp_min("
        "sum by (model) (rate(nv_inference_request_success[5m])) + "
        "sum by (model) (rate(nv_inference_request_failure[5m])), 1e-9)"
    )
    gpu_util = "avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)"
    on_host = "GPU on {{ $labels.Hostname }}"
    low, high = gpu_pool_bounds
    return [
        {
            "name": "sovereign-ml.serving",
            "rules": [
                alert(
                    "ModelP99LatencyHigh",
                    'max by (model) (nv_inference_request_summary_us{quantile="0.99"}) '
                    f"> {p99_latency_ms * 1000:g}",
                    "10m",
                    "page",
                    "{{ $labels.model }} p99 latency above target",
                    description=f"Triton's p99 for {{{{ $labels.model }}}} has been above "
                    f"{p99_latency_ms:g} ms for 10 minutes.",
                    runbook_base=runbook_base,
                ),
                alert(
                    "ModelErrorRateHigh",
                    f"{err} > {max_error_rate}",
                    "5m",
                    "page",
                    "{{ $labels.model }} is failing inferences",
                    description=f"More than {max_error_rate:g} of the inference requests of "
                    "{{ $labels.model }} have failed over 5 minutes, for 5 minutes (the "
                    "threshold the canary analysis also uses).",
                    runbook_base=runbook_base,
                ),
            ],
        },
        {
            "name": "sovereign-ml.gpu",
            "rules": [
                alert(
                    "GpuSaturated",
                    f"{gpu_util} > {GPU_SATURATED_PERCENT}",
                    "30m",
                    "warning",
                    f"{on_host} saturated: scale out",
                    description="Mean GPU utilisation of {{ $labels.Hostname }} above "
                    f"{GPU_SATURATED_PERCENT} % for 30 minutes.",
                    runbook_base=runbook_base,
                    labels=dict([AUDIT_LABEL]),
                    extra={
                        "automated_action": "KEDA adds replicas to each GPU-served model whose "
                        f"GPUs average above {GPU_SCALE_PERCENT} % (the ScaledObject's DCGM "
                        "trigger), up to the model's max replicas and never more than the gpu "
                        f"pool's max size ({high}); the cluster autoscaler adds GPU nodes for the "
                        f"pending pods within the gpu pool's bounds ({low}-{high} nodes). Beyond "
                        f"{high} nodes nothing scales: raise gpuPoolMaxSize."
                    },
                ),
                alert(
                    "GpuIdle",
                    f"{gpu_util} < 10",
                    "2h",
                    "info",
                    f"{on_host} idle: rightsize",
                    description="Mean GPU utilisation of {{ $labels.Hostname }} below 10 % for "
                    "2 hours.",
                    runbook_base=runbook_base,
                ),
            ],
        },
        {
            "name": "sovereign-ml.drift",
            "rules": [
                alert(
                    "FeatureDrift",
                    f"max by (model, feature) (sovml_drift_psi) > {drift_threshold:g}",
                    "15m",
                    "warning",
                    "{{ $labels.model }}: {{ $labels.feature }} drifted; the "
                    "drift job has requested a retraining run",
                    description=f"PSI of {{{{ $labels.feature }}}} above {drift_threshold:g} in "
                    "the last drift run of {{ $labels.model }}.",
                    runbook_base=runbook_base,
                    labels=dict([AUDIT_LABEL]),
                    extra={
                        "automated_action": "The drift job (CronJob drift-{{ $labels.model }}) "
                        "submitted a run of the training pipeline to Kubeflow Pipelines when "
                        "it pushed this score, and recorded it in the lifecycle log: `sovml "
                        "audit show --event retraining.submitted --subject {{ $labels.model }}`."
                    },
                )
            ],
        },
    ]


EGRESS_REFUSED = "EgressRefused"
"""The alert on connections the mesh refused to leave the cluster."""
BLACKHOLE = 'destination_service_name="BlackHoleCluster"'
"""The label the sidecars' standard metrics give traffic that REGISTRY_ONLY sends nowhere."""


def egress_refused_expr(window: str = "5m") -> str:
    """Per source workload: connections (TCP) or requests (HTTP) sent to ``BlackHoleCluster``
    over ``window``, where there were any."""
    by = "source_workload_namespace, source_workload"
    return " or ".join(
        f"sum by ({by}) (increase({metric}{{{BLACKHOLE}}}[{window}])) > 0"
        for metric in ("istio_tcp_connections_opened_total", "istio_requests_total")
    )


def egress_groups(runbook_base: str) -> list[dict[str, Any]]:
    """The egress alert: a workload tried to reach a host outside the zone's allow-list (the
    mesh refused it; components/mesh_egress.py)."""
    return [
        {
            "name": "sovereign-ml.egress",
            "rules": [
                alert(
                    EGRESS_REFUSED,
                    egress_refused_expr(),
                    "1m",
                    "warning",
                    "{{ $labels.source_workload_namespace }}/{{ $labels.source_workload }} "
                    "tried to leave the zone",
                    description="The mesh refused connections or requests from "
                    "{{ $labels.source_workload }} in {{ $labels.source_workload_namespace }} to "
                    "a host outside the egress allow-list (BlackHoleCluster) within the last 5 "
                    "minutes.",
                    runbook_base=runbook_base,
                )
            ],
        }
    ]
