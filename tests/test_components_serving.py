"""Triton serving under the recording mocks: canary Rollouts, HPA or KEDA scale to zero."""

from __future__ import annotations

from typing import Any

import pytest

from tests.component_mocks import ACCESS, KEY, of_type, record


def _serving(**kw: Any) -> Any:
    from components.serving import ServedModel, Serving, ServingArgs

    args = dict(
        namespace="serving", models=[ServedModel("m", "cpu", min_replicas=1)],
        models_bucket="b", models_bucket_arn="arn:aws:s3:::b", storage_key_arn=KEY,
        cluster_access=ACCESS,
        puller_image="ghcr.io/sovereign-ml/model-puller:0.1.0",
    )  # fmt: skip
    return Serving("serving", ServingArgs(**{**args, **kw}))


def test_cpu_profile_stays_off_gpus_and_pulls_through_irsa() -> None:
    res = record(_serving)
    (rollout,) = of_type(res, "kubernetes:argoproj.io/v1alpha1:Rollout")
    pod = rollout["inputs"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert pod["nodeSelector"] == {"sovereign-ml/pool": "workers"}
    assert "tolerations" not in pod
    (puller,) = pod["initContainers"]
    assert puller["image"] == "ghcr.io/sovereign-ml/model-puller:0.1.0"
    assert puller["env"] == [
        {"name": "AWS_REGION", "value": "me-central-1"},  # the default provider's region
        {"name": "MODELS_BUCKET", "value": "b"},
    ]
    (sa,) = of_type(res, "kubernetes:core/v1:ServiceAccount")
    assert "eks.amazonaws.com/role-arn" in sa["inputs"]["metadata"]["annotations"]
    inline = next(r for r in of_type(res, "aws:iam/rolePolicy:RolePolicy"))
    assert (
        "s3:GetObject" in inline["inputs"]["policy"]
        and "s3:PutObject" not in inline["inputs"]["policy"]
    )


def test_serving_refuses_unpinned_puller_and_bad_profile() -> None:
    from components.serving import ServedModel

    with pytest.raises(ValueError, match="puller_image"):
        _serving(puller_image="ghcr.io/x/puller:latest")
    with pytest.raises(ValueError, match="profile"):
        _serving(models=[ServedModel("m", "tpu")])


SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def test_scale_to_zero_hands_the_rollout_to_a_keda_scaled_object() -> None:
    from components.serving import ServedModel, request_rate_query

    res = record(
        lambda: _serving(
            models=[
                ServedModel("m", "cpu", min_replicas=1, max_replicas=4, scale_to_zero=True),
                ServedModel("warm", "cpu", min_replicas=1, max_replicas=3),
            ]
        )
    )
    (so,) = of_type(res, SCALED_OBJECT)
    spec = so["inputs"]["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "triton-m",
    }, so["urn"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 4), so["urn"]
    assert spec["cooldownPeriod"] == 15 * 60, so["urn"]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["name"] == "triton-m"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus", so["urn"]
    meta = trigger["metadata"]
    assert meta["query"] == request_rate_query("m"), so["urn"]
    assert meta["serverAddress"] == (
        "http://prometheus-kube-prometheus-prometheus.monitoring.svc:9090"
    )
    assert (meta["activationThreshold"], meta["ignoreNullValues"]) == ("0", "true")
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata is strings"
    assert so["inputs"]["metadata"]["annotations"] == {
        "scaledobject.keda.sh/transfer-hpa-ownership": "true"
    }
    rollout = next(
        r
        for r in of_type(res, "kubernetes:argoproj.io/v1alpha1:Rollout")
        if r["inputs"]["metadata"]["name"] == "triton-m"
    )
    assert rollout["urn"] in so["dependencies"], so["urn"]
    # KEDA owns the HPA of the scale-to-zero model; the other model keeps its own HPA.
    targets = [h["inputs"]["spec"]["scaleTargetRef"]["name"] for h in of_type(res, HPA)]
    assert targets == ["triton-warm"]
    budgets = {p["inputs"]["metadata"]["name"]: p["inputs"]["spec"] for p in of_type(res, PDB)}
    assert budgets["triton-m"]["maxUnavailable"] == 1 and "minAvailable" not in budgets["triton-m"]
    assert budgets["triton-warm"]["minAvailable"] == 1


def test_warm_hours_add_a_cron_trigger_at_the_floor() -> None:
    from components.serving import ServedModel

    model = ServedModel(
        "m",
        "cpu",
        min_replicas=2,
        scale_to_zero=True,
        warm_start_cron="0 8 * * 1-5",
        warm_end_cron="0 18 * * 1-5",
        timezone="Asia/Dubai",
    )
    (so,) = of_type(record(lambda: _serving(models=[model])), SCALED_OBJECT)
    cron, rate = so["inputs"]["spec"]["triggers"]
    assert cron == {
        "type": "cron",
        "metadata": {
            "timezone": "Asia/Dubai",
            "start": "0 8 * * 1-5",
            "end": "0 18 * * 1-5",
            "desiredReplicas": "2",
        },
    }
    assert rate["type"] == "prometheus"


def test_without_scale_to_zero_the_hpa_stays() -> None:
    res = record(_serving)
    assert not of_type(res, SCALED_OBJECT)
    (hpa,) = of_type(res, HPA)
    spec = hpa["inputs"]["spec"]
    assert spec["scaleTargetRef"]["kind"] == "Rollout" and spec["minReplicas"] == 1, hpa["urn"]
    (pdb,) = of_type(res, PDB)
    assert pdb["inputs"]["spec"]["minAvailable"] == 1, pdb["urn"]


def test_scale_to_zero_keeps_a_higher_floor_once_woken() -> None:
    from components.serving import ServedModel

    res = record(
        lambda: _serving(
            models=[ServedModel("m", "gpu", min_replicas=2, scale_to_zero=True, idle_minutes=30)],
            gpu_pool_max_size=8,
        )
    )
    (so,) = of_type(res, SCALED_OBJECT)
    spec = so["inputs"]["spec"]
    assert (spec["idleReplicaCount"], spec["minReplicaCount"]) == (0, 2), so["urn"]
    assert spec["cooldownPeriod"] == 1800, so["urn"]


def test_request_rate_reads_triton_and_the_error_guard_reads_the_mesh() -> None:
    """KEDA scales on the work the pods did (Triton's counters); the canary's error guard counts
    what clients saw (the mesh's ``istio_requests_total``, gateway refusals excluded)."""
    from components.serving import request_rate_query
    from policies.gateway_metrics import sprt_selector
    from policies.promotion import DEFAULT, error_llr_query

    query = request_rate_query("credit-risk", "5m")
    assert query == (
        'sum(rate(nv_inference_request_success{model="credit-risk"}[5m])) + '
        '(sum(rate(nv_inference_request_failure{model="credit-risk"}[5m])) or vector(0))'
    )
    guard = error_llr_query(DEFAULT, sprt_selector("credit-risk", "canary", "serving"))
    assert "nv_inference" not in guard
    assert guard.count("istio_requests_total{") == 2
    assert 'response_code=~"[45]..",response_code!~"401|403|413|429"' in guard
    assert 'response_code=~"[123].."' in guard
    assert 'reporter="destination",source_workload="inference-gateway"' in guard


ANALYSIS = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"


def test_analysis_maps_pass_fail_undecided_onto_argo() -> None:
    """Each guard is one metric: FAIL aborts at once (failureLimit 0), PASS ends the metric
    (consecutiveSuccessLimit 1), UNDECIDED looks again up to count looks, then Inconclusive
    (the Rollout pauses: held). Queries and conditions are the criteria module's."""
    from dataclasses import replace

    from policies.promotion import DEFAULT, analysis_checks

    criteria = replace(DEFAULT, looks_per_step=7, analysis_interval_s=30)
    res = record(lambda: _serving(criteria=criteria))
    (template,) = of_type(res, ANALYSIS)
    metrics = template["inputs"]["spec"]["metrics"]
    checks = analysis_checks(criteria, "m")
    assert [m["name"] for m in metrics] == [c.name for c in checks]
    guards = ["accuracy-sprt", "latency-p99", "error-rate-sprt", "slo-fast-burn"]
    assert [m["name"] for m in metrics] == guards
    for metric, check in zip(metrics, checks, strict=True):
        assert metric["provider"]["prometheus"]["query"] == check.query, template["urn"]
        assert metric["successCondition"] == check.success_condition
        assert metric["failureCondition"] == check.failure_condition
        # The statistical guards end at their first PASS; the SLO guard needs a whole burn
        # window of passes (capped at the step's looks, so a step can still be promoted).
        needed = 1 if check.name != "slo-fast-burn" else min(7, 300 // 30 + 1)
        assert (metric["failureLimit"], metric["consecutiveSuccessLimit"]) == (0, needed)
        assert metric["count"] == metric["inconclusiveLimit"] == 7
        assert metric["interval"] == "30s"
    latency = metrics[1]
    assert (latency["successCondition"], latency["failureCondition"]) == (
        "result[0] == 1",
        "result[0] == -1",
    )
    (rollout,) = of_type(res, "kubernetes:argoproj.io/v1alpha1:Rollout")
    steps = rollout["inputs"]["spec"]["strategy"]["canary"]["steps"]
    analysed = [s["setWeight"] for s in steps if "setWeight" in s]
    assert analysed == list(criteria.analysed_steps)


def test_triton_exports_the_summary_levels_the_latency_guard_reads() -> None:
    from policies.promotion import triton_metrics_args

    res = record(_serving)
    (rollout,) = of_type(res, "kubernetes:argoproj.io/v1alpha1:Rollout")
    args = rollout["inputs"]["spec"]["template"]["spec"]["containers"][0]["args"]
    for flag in triton_metrics_args():
        assert flag in args, rollout["urn"]


def test_serving_refuses_a_bad_idle_window() -> None:
    from components.serving import ServedModel

    with pytest.raises(ValueError, match=r"models\[m\]: idle_minutes 0"):
        _serving(
            models=[ServedModel("m", "cpu", min_replicas=1, scale_to_zero=True, idle_minutes=0)]
        )
