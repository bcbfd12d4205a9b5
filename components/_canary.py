"""The canary's traffic and its analysis: Argo Rollouts on the mesh, guards from the criteria.

Split from :mod:`components.serving`, which places the pods; this module says how traffic moves
between the two variants (the Rollout's ``trafficRouting.istio``, exact weights on the model's
VirtualService, which :mod:`components.inference_gateway` declares) and what each step is judged
on (the ``AnalysisTemplate`` rendered from :mod:`policies.promotion`).
"""

from __future__ import annotations

from typing import Any

from components.monitoring import DCGM_POD_LABELS
from policies.gateway_metrics import AB_HEADER, AB_ROUTE, PRIMARY_ROUTE, triton_app
from policies.promotion import PromotionCriteria, analysis_checks

RATE_WINDOW = "2m"
"""Window of the request rate KEDA scales on: eight 15 s scrapes, so one miss does not idle."""


def request_rate_query(model: str, window: str = RATE_WINDOW) -> str:
    """PromQL: requests per second reaching a model, all variants, from Triton's own counters
    (successes plus failures); ``or vector(0)`` keeps the sum defined before Triton has
    exported a failure. Scaling reads Triton (work the pods did), not the gateway."""
    sel = f'model="{model}"'
    ok = f"sum(rate(nv_inference_request_success{{{sel}}}[{window}]))"
    fail = f"sum(rate(nv_inference_request_failure{{{sel}}}[{window}]))"
    return f"{ok} + ({fail} or vector(0))"


def gpu_util_query(model: str, namespace: str) -> str:
    """PromQL: the summed GPU utilisation (percent) of a model's Triton pods, from DCGM.

    The DCGM exporter maps each GPU to the pod and container holding it (the kubelet's
    pod-resources API) and labels its series ``namespace``, ``pod`` and ``container``; the
    ServiceMonitor keeps those labels (:data:`components.monitoring.DCGM_POD_LABELS`). A Rollout
    names its pods ``<rollout>-<template hash>-<suffix>``: exactly two segments after
    ``triton-<model>-``, so model ``a`` never matches the pods of model ``a-b``. The sum over
    the replicas against a per-replica threshold is what KEDA's ``AverageValue`` expects.
    """
    ns_label, pod_label, container_label = DCGM_POD_LABELS
    pod = f"triton-{model}-[a-z0-9]+-[a-z0-9]+"
    sel = f'{ns_label}="{namespace}",{pod_label}=~"{pod}",{container_label}="triton"'
    return f"sum(DCGM_FI_DEV_GPU_UTIL{{{sel}}})"


def analysis_template(app: str) -> str:
    """Name of the AnalysisTemplate of a model's Rollout."""
    return f"{app}-promotion"


def analysis_spec(
    c: PromotionCriteria, model: str, namespace: str, prometheus_url: str
) -> dict[str, Any]:
    """The AnalysisTemplate gating each canary step, rendered from the promotion criteria.

    One metric per guard (:func:`policies.promotion.analysis_checks`), each query returning
    the guard's statistic and two conditions mapping it onto Argo's outcomes: a FAIL is a
    failed measurement and ``failureLimit: 0`` aborts (rolls back) at the first one; a PASS
    is a successful one and ``consecutiveSuccessLimit: 1`` (Argo Rollouts >= 1.8, chart
    2.39) ends the metric there, so a passed guard is not measured again at that step;
    UNDECIDED is inconclusive and ``inconclusiveLimit: count`` lets it look again, up to
    ``count`` looks (``looks_per_step``), after which a metric with neither limit reached
    is Inconclusive and the Rollout pauses: held, for a person to decide. The step
    proceeds once every metric has succeeded. The fourth metric, ``slo-fast-burn``, is the
    serving SLO's fast burn on the candidate alone: a burn aborts like any FAIL, and it
    succeeds only after a whole 5-minute window of the step's own traffic (its
    ``consecutiveSuccessLimit``), so each analysed step lasts at least that long. The error
    guards read the mesh's request counters (:mod:`policies.gateway_metrics`).
    """
    return {
        "metrics": [
            {
                "name": check.name,
                "interval": f"{c.analysis_interval_s}s",
                "count": c.looks_per_step,
                "successCondition": check.success_condition,
                "failureCondition": check.failure_condition,
                "failureLimit": 0,
                "consecutiveSuccessLimit": check.successes_needed,
                "inconclusiveLimit": c.looks_per_step,
                "provider": {"prometheus": {"address": prometheus_url, "query": check.query}},
            }
            for check in analysis_checks(c, model, namespace)
        ]
    }


def canary_strategy(model: str, c: PromotionCriteria) -> dict[str, Any]:
    """The Rollout's canary on the mesh: exact weights and a header route for A/B experiments.

    Argo Rollouts sets the weights of the ``primary`` route of the model's VirtualService (on
    the inference gateway) to ``c.steps`` (the last, 100 %, is promotion), each step then
    analysed. From the first step a request carrying ``x-sovml-canary: <model>`` reaches the
    candidate whatever the weight (``setHeaderRoute``, a managed route the controller adds
    above ``primary`` and removes when the rollout ends or aborts), so an experiment's clients
    can be pinned to it. The header is chosen by the client, never an authorization: the
    gateway's policies judge the request before any route.
    """
    app = triton_app(model)
    header = {
        "setHeaderRoute": {
            "name": AB_ROUTE,
            "match": [{"headerName": AB_HEADER, "headerValue": {"exact": model}}],
        }
    }
    steps: list[dict] = [header]
    for weight in c.steps[:-1]:
        steps += [
            {"setWeight": weight},
            {"analysis": {"templates": [{"templateName": analysis_template(app)}]}},
        ]
    return {
        "stableService": f"{app}-stable",
        "canaryService": f"{app}-canary",
        "stableMetadata": {"labels": {"sovereign-ml/variant": "stable"}},
        "canaryMetadata": {"labels": {"sovereign-ml/variant": "canary"}},
        "trafficRouting": {
            "managedRoutes": [{"name": AB_ROUTE}],
            "istio": {"virtualService": {"name": app, "routes": [PRIMARY_ROUTE]}},
        },
        "steps": steps,
    }
