"""Grafana dashboards as code, built with Grafana's foundation SDK (pure: no resources).

:class:`components.dashboards.Dashboards` puts each dashboard's JSON in a ConfigMap that
Grafana's sidecar provisions; ``tests/test_dashboards.py`` evaluates every panel's query on a
real Prometheus. Queries use fixed windows (``[5m]``), not Grafana's ``$__rate_interval``, and no
template variables, so each string is exactly what Prometheus evaluates.

What the platform exports decides what is drawn:

* Serving, per model and rollout variant (the ServiceMonitor copies the pod label
  ``sovereign-ml/variant`` onto Triton's series): request rate and error ratio from
  ``nv_inference_request_success`` / ``nv_inference_request_failure``, p50/p99 from the summary
  ``nv_inference_request_summary_us``, batch size as ``nv_inference_count`` over
  ``nv_inference_exec_count``. No Argo Rollouts metric carries the canary weight (its controller
  exports ``rollout_info{phase}`` and ``rollout_info_replicas_{desired,updated,available}``); the
  rollouts here route by replica count (no traffic router), so the canary's share of replicas,
  updated / desired, is the weight the controller set, rounded to whole replicas. Beside it the
  *observed* traffic share per variant.
* Feature store: Feast 0.67's server (``--metrics``) exports the histogram
  ``feast_feature_server_request_latency_seconds{endpoint}``: p50/p99 per endpoint; availability
  is its scrape success, as in its SLO.
* Drift: ``sovml_drift_psi{model, feature}`` pushed by the drift jobs.
* GPU: the DCGM exporter's ``DCGM_FI_DEV_*`` gauges.
* Cost per tenant (platform overview): the recorded ``sovml:tenant_cost_usd_per_hour`` and
  ``sovml:tenant_cost_usd_per_month`` of :mod:`components._cost_rules`, kube-state-metrics'
  requests of each tenant namespace's running pods priced at the stack's unit prices (which the
  panel's description states). Requests, not usage.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from components._cost_rules import HOURLY, MONTHLY, UnitPrices

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="prometheus")
"""The Prometheus data source kube-prometheus-stack's Grafana provisions (uid ``prometheus``)."""
TAG = "sovereign-ml"
WINDOW = "5m"
"""Rate window of every panel: at least four scrapes at the slowest interval the stacks use."""

_BY = "model, variant"
_OK = "nv_inference_request_success"
_FAILED = "nv_inference_request_failure"


def _rate(metric: str, by: str = _BY) -> str:
    return f"sum by ({by}) (rate({metric}[{WINDOW}]))"


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def _series(title: str, expr: str, legend: str, unit: str, description: str = "") -> Any:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .with_target(_query(expr, legend))
        .span(12)
        .height(8)
    )
    return panel.description(description) if description else panel


def _stat(title: str, expr: str, legend: str, unit: str) -> Any:
    return (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .with_target(_query(expr, legend))
        .span(6)
        .height(4)
    )


def _dashboard(uid: str, title: str, panels: list[Any]) -> model.Dashboard:
    board = db.Dashboard(title).uid(uid).tags([TAG]).time("now-6h", "now").refresh("1m")
    board = board.readonly().timezone("utc")
    for panel in panels:
        board = board.with_panel(panel)
    return board.build()


def request_rate() -> str:
    """Requests per second per model and variant (successes plus failures)."""
    return f"{_rate(_OK)} + {_rate(_FAILED)}"


def cost_panels(prices: UnitPrices | None) -> list[Any]:
    """Cost per tenant: USD per hour over time and the monthly projection now."""
    how = (
        f"Requests (not usage) of each tenant namespace's running pods at {prices.describe()}."
        if prices
        else "No unit prices for this stack (no price table or shape for its pools): no series."
    )
    return [
        _series(
            "Cost per tenant (USD/h)",
            f"sum by (namespace) ({HOURLY})",
            "{{namespace}}",
            "currencyUSD",
            how + " Approximate list prices: see infra/cost/prices.",
        ),
        _stat(
            "Projected monthly cost per tenant",
            f"sum by (namespace) ({MONTHLY})",
            "{{namespace}}",
            "currencyUSD",
        ),
    ]


def platform_overview(prices: UnitPrices | None = None) -> model.Dashboard:
    """Scrape health, total traffic, SLO error ratios, firing alerts and cost per tenant."""
    return _dashboard(
        "sovml-platform",
        "Platform overview",
        [
            _stat("Targets up", "sum by (job) (up)", "{{job}}", "none"),
            _stat(
                "Firing alerts",
                'count by (severity) (ALERTS{alertstate="firing"})',
                "{{severity}}",
                "none",
            ),
            _series(
                "Inference requests/s by model",
                f"{_rate(_OK, 'model')} + {_rate(_FAILED, 'model')}",
                "{{model}}",
                "reqps",
            ),
            _series(
                "SLO error ratio (1h)",
                "max by (slo) (slo:sli_error:ratio_rate1h)",
                "{{slo}}",
                "percentunit",
                "Recorded by the SLO rules (components/_alerts.py); compare with 1 - objective.",
            ),
            *cost_panels(prices),
        ],
    )


def gpu_utilisation() -> model.Dashboard:
    """DCGM exporter gauges per node and GPU."""
    by = "Hostname, gpu"
    legend = "{{Hostname}} gpu {{gpu}}"
    return _dashboard(
        "sovml-gpu",
        "GPU utilisation",
        [
            _series("GPU utilisation", f"avg by ({by}) (DCGM_FI_DEV_GPU_UTIL)", legend, "percent"),
            _series(
                "Framebuffer used", f"max by ({by}) (DCGM_FI_DEV_FB_USED)", legend, "decmbytes"
            ),
            _series("Power", f"max by ({by}) (DCGM_FI_DEV_POWER_USAGE)", legend, "watt"),
            _series("Temperature", f"max by ({by}) (DCGM_FI_DEV_GPU_TEMP)", legend, "celsius"),
        ],
    )


def _quantile_ms(q: str) -> str:
    summary = f'nv_inference_request_summary_us{{quantile="{q}"}}'
    return f"max by ({_BY}) ({summary}) / 1000"


def serving() -> model.Dashboard:
    """Per model and variant: rate, errors, p50/p99, batch size, observed traffic share."""
    legend = "{{model}} {{variant}}"
    total = f"({request_rate()})"
    return _dashboard(
        "sovml-serving",
        "Serving per model and variant",
        [
            _series("Request rate", request_rate(), legend, "reqps"),
            _series(
                "Error ratio",
                f"{_rate(_FAILED)} / clamp_min({total}, 1e-9)",
                legend,
                "percentunit",
            ),
            _series("p50 latency", _quantile_ms("0.5"), legend, "ms"),
            _series("p99 latency", _quantile_ms("0.99"), legend, "ms"),
            _series(
                "Batch size",
                f"{_rate('nv_inference_count')} / clamp_min({_rate('nv_inference_exec_count')},"
                " 1e-9)",
                legend,
                "none",
                "Inferences per model execution (Triton's dynamic batching).",
            ),
            _series(
                "Canary weight (updated / desired replicas)",
                "max by (namespace, name) (rollout_info_replicas_updated) / "
                "clamp_min(max by (namespace, name) (rollout_info_replicas_desired), 1)",
                "{{name}}",
                "percentunit",
                "Argo Rollouts' controller metrics: the share of the rollout's replicas on the "
                "canary revision, which is the set weight here (no traffic router; weights "
                "are rounded to whole replicas). 1 when no rollout is in progress.",
            ),
            _series(
                "Traffic share (observed canary weight)",
                f"{total} / ignoring (variant) group_left "
                f"clamp_min(sum by (model) {total}, 1e-9)",
                legend,
                "percentunit",
                "Share of requests each variant served (the set weight is the panel above).",
            ),
        ],
    )


FEAST_SELECTOR = 'job="feast", namespace="feature-store"'
"""The feature server's series, as its ServiceMonitor labels them."""


def feast_latency_ms(q: str) -> str:
    """Quantile ``q`` of Feast's request latency per endpoint, in milliseconds."""
    buckets = f"feast_feature_server_request_latency_seconds_bucket{{{FEAST_SELECTOR}}}"
    return f"histogram_quantile({q}, sum by (le, endpoint) (rate({buckets}[{WINDOW}]))) * 1000"


def feature_store() -> model.Dashboard:
    """Feast server availability, request latency, CPU and memory."""
    feast = FEAST_SELECTOR
    return _dashboard(
        "sovml-feature-store",
        "Feature store",
        [
            _series(
                "Feature server availability",
                f"avg by (namespace, service) (up{{{feast}}})",
                "{{service}}",
                "percentunit",
                "Scrape success, the SLI of the feature-server SLO.",
            ),
            _series(
                "Feature server SLO error ratio (1h)",
                'max by (namespace, service) (slo:sli_error:ratio_rate1h{slo="feature-server-'
                'availability"})',
                "{{service}}",
                "percentunit",
            ),
            _series(
                "Request latency p50",
                feast_latency_ms("0.5"),
                "{{endpoint}}",
                "ms",
                "Feast's own histogram of each feature-server request, per endpoint.",
            ),
            _series("Request latency p99", feast_latency_ms("0.99"), "{{endpoint}}", "ms"),
            _series(
                "CPU",
                f"sum by (instance) (rate(process_cpu_seconds_total{{{feast}}}[{WINDOW}]))",
                "{{instance}}",
                "none",
            ),
            _series(
                "Resident memory",
                f"sum by (instance) (process_resident_memory_bytes{{{feast}}})",
                "{{instance}}",
                "bytes",
            ),
        ],
    )


def drift(threshold: float) -> model.Dashboard:
    """PSI per model and feature, and how many features cross ``threshold``."""
    return _dashboard(
        "sovml-drift",
        "Drift scores per feature",
        [
            _series(
                "PSI per feature",
                "max by (model, feature) (sovml_drift_psi)",
                "{{model}} {{feature}}",
                "none",
                f"Retraining is requested above {threshold:g}.",
            ),
            _stat(
                "Features over the threshold",
                f"count by (model) (sovml_drift_psi > {threshold:g})",
                "{{model}}",
                "none",
            ),
        ],
    )


def dashboards(
    drift_threshold: float, prices: UnitPrices | None = None
) -> dict[str, model.Dashboard]:
    """Every dashboard by uid (``prices`` are stated on the cost panels)."""
    built = [platform_overview(prices), gpu_utilisation(), serving(), feature_store()]
    built.append(drift(drift_threshold))
    return {str(d.uid): d for d in built}


def to_json(dashboard: model.Dashboard) -> str:
    """The dashboard as Grafana's JSON model (stable key order, so goldens do not churn)."""
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def panel_queries(document: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``(panel title, [expr, ...])`` of every panel of a dashboard's JSON model."""
    return [
        (str(p.get("title")), [str(t.get("expr", "")) for t in p.get("targets") or []])
        for p in document.get("panels") or []
    ]
