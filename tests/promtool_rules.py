"""A ``promtool`` unit-test harness for the monitoring component's alert rules (Prometheus 2.42).

Every alert :func:`components.monitoring.alert_rules` may declare gets a ``promtool test rules``
unit test here, generated from the same objects the component reads its thresholds from
(:class:`~components.monitoring.MonitoringArgs` and its
:class:`~policies.promotion.PromotionCriteria`), never retyped. Per alert, one test group
feeds series at 1 minute resolution:

* ``hot``: just past the threshold (1 % beyond it) from the start. It must not fire one
  evaluation before its ``for:`` has elapsed and must fire, with exactly the expected labels and
  rendered annotations, once it has, and keep firing.
* ``cool``: on the threshold itself where the comparison is strict and the value is exact (a
  gauge), or 1 % inside it (a ratio of rates, whose floating-point result may land a hair either
  side of the threshold); it never fires.
* ``blip`` (gauges): past the threshold for one evaluation less than ``for:``, then back; it
  never fires.

The 1 % margins pin every threshold from both sides: a rule whose threshold drifts from its
source by more than that fails a ``hot`` or a ``cool`` expectation. The GPU utilisation
thresholds are literals of :func:`components.monitoring.alert_rules` with no other source, so
for those two alerts the threshold is read from the rule itself: their tests prove the rule's
shape (averaged per host, strict comparison, ``for:``), not the number. A harness that ignored
promtool's verdict would pass anything, so deliberately wrong expectations must make it fail.

The SLO burn-rate alerts (:mod:`components._alerts`) get the same three checks with their
thresholds from the same builders: see :func:`burn_case_builder`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components._alerts import (
    BURN_SEVERITY,
    BurnRate,
    Slo,
    SloTargets,
    burn_alerts,
    slos,
)
from components.monitoring import MonitoringArgs
from policies.promotion import PromotionCriteria
from tests.component_mocks import ACCESS, AUDIT
from tests.tenant_cost import cost_args

RULE_TYPE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
MARGIN = 0.01
"""Relative distance of the ``hot`` and ratio ``cool`` series from a threshold."""
SEVERITY = {
    "ModelP99LatencyHigh": "page",
    "ModelErrorRateHigh": "page",
    "GpuSaturated": "warning",
    "GpuIdle": "info",
    "FeatureDrift": "warning",
    **{
        f"{prefix}{kind}": severity
        for prefix in (
            "ModelAvailability",
            "ModelLatency",
            "FeatureServerAvailability",
            "TrainingPipelineSuccess",
        )
        for kind, severity in BURN_SEVERITY.items()
    },
}
"""Who gets woken: paging alerts page, capacity hints do not (the on-call contract)."""
CUSTOM = dict(
    drift_threshold=0.35,
    p99_latency_ms=2000.0,  # renders as 2e+06 us in the rule: PromQL must accept it
    criteria=PromotionCriteria(max_error_rate=0.05, max_p99_latency_ratio=1.5),
    slo=SloTargets(
        availability=0.995,
        latency_ms=250.0,
        latency_objective=0.98,
        feature_server_availability=0.99,
        pipeline_success=0.9,
    ),
    gpu_pool_bounds=(1, 4),
    runbook_base="https://git.example.internal/sovereign-ml/-/blob/main/docs/runbooks/",
)
"""Non-default thresholds: the rules must follow the arguments, not the defaults."""

Groups = list[dict[str, Any]]


# --- where the rules come from ----------------------------------------------------------------
def monitoring_args(**overrides: Any) -> MonitoringArgs:
    """MonitoringArgs as ``infra/platform.py`` builds them; placeholders where only resources
    (not rules) depend on a value."""
    base: dict[str, Any] = dict(
        namespace="monitoring", models=["credit-risk"], data_bucket="models",
        data_bucket_arn="arn:aws:s3:::models",
        storage_key_arn="arn:aws:kms:me-central-1:123456789012:key/test",
        cluster_access=ACCESS,
        drift_image="ghcr.io/sovereign-ml/drift-monitor:0.1.0", audit=AUDIT,
    )  # fmt: skip
    return MonitoringArgs(**{**base, **overrides})


def stack_args(record: dict[str, Any]) -> MonitoringArgs:
    """The arguments the program gives the monitoring component for one stack's config."""
    cfg = record["config"]
    gpu = [(p["min_size"], p["max_size"]) for p in cfg["node_pools"] if p["gpu"]]
    return monitoring_args(
        **cost_args(cfg),
        models=[name for name, _ in cfg["served_models"]],
        drift_threshold=cfg["drift_threshold"],
        criteria=PromotionCriteria(steps=tuple(cfg["canary_steps"])),
        slo=SloTargets(
            availability=cfg["slo_availability_target"],
            latency_ms=float(cfg["slo_latency_target_ms"]),
            latency_objective=cfg["slo_latency_objective"],
            feature_server_availability=cfg["slo_feature_server_target"],
        ),
        gpu_pool_bounds=gpu[0] if gpu else (0, 0),
        runbook_base=cfg["runbook_base_url"],
    )


def recorded_groups(resources: list[dict[str, Any]]) -> Groups:
    """The rule groups of the one PrometheusRule among recorded resources."""
    (rule,) = [r for r in resources if r["type"] == RULE_TYPE]
    return rule["inputs"]["spec"]["groups"]


@dataclass(frozen=True)
class RuleSet:
    """Rules as recorded, and the arguments their thresholds come from."""

    name: str
    groups: Groups
    args: MonitoringArgs


# --- promtool ---------------------------------------------------------------------------------
def run_promtool(promtool: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """promtool's exit status and output (never raises on a non-zero status: callers assert)."""
    return subprocess.run(
        [promtool, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def write_rules(path: Path, groups: Groups) -> Path:
    """A Prometheus rules file: the PrometheusRule's ``spec`` is exactly that format."""
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def write_unit_tests(path: Path, rules_file: Path, tests: list[dict[str, Any]]) -> Path:
    """A ``promtool test rules`` file evaluating ``rules_file`` every minute."""
    doc = {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def alerts(groups: Groups) -> dict[str, dict[str, Any]]:
    """Alerting rules by name."""
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def minutes(duration: str) -> int:
    """A Prometheus duration (``90s``, ``10m``, ``2h``, ``1d``) in whole minutes."""
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    assert match, f"unsupported duration {duration!r}"
    value, unit = int(match.group(1)), match.group(2)
    total_s = value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert total_s % 60 == 0, f"{duration!r} is not whole minutes (tests evaluate every minute)"
    return total_s // 60


def rendered(annotations: dict[str, str], labels: dict[str, str]) -> dict[str, str]:
    """Annotations with ``{{ $labels.x }}`` filled in, as Prometheus renders them; any other
    template construct, or a label the alert does not carry, fails the test (update this)."""

    def fill(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in labels, f"annotation uses $labels.{name}, not on the alert {labels}"
            return labels[name]

        out = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", one, text)
        assert "{{" not in out, f"template construct not rendered by this test: {text!r}"
        return out

    return {k: fill(v) for k, v in annotations.items()}


def series(name: str, labels: dict[str, str]) -> str:
    """A PromQL series selector for ``input_series``."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def hold(*segments: tuple[float, int]) -> str:
    """``input_series`` values: each ``(value, samples)`` repeated that many minutes."""
    return " ".join(f"{value!r}x{count - 1}" for value, count in segments)


def ramp(per_minute: float, samples: int) -> str:
    """A counter growing by ``per_minute`` each minute from 0."""
    return f"0+{per_minute!r}x{samples - 1}"


# --- one unit test per alert ------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One alert's promtool test group, and the labels its ``hot``/``cool`` alerts carry."""

    alert: str
    group: dict[str, Any]
    hot: dict[str, str]
    """Labels of the alert the ``hot`` series must raise (aggregation output + severity)."""
    cool: dict[str, str]
    """Labels an alert from the ``cool`` series would carry (for the must-fail checks)."""
    onset: int
    """Minute from which the condition holds for ``hot`` (rates need two samples: 1)."""
    hold_for: int


def expected(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """One ``exp_alerts`` entry: labels and the rule's annotations rendered for them."""
    return {"exp_labels": labels, "exp_annotations": rendered(rule["annotations"], labels)}


def timeline(name: str, rule: dict[str, Any], hot: dict[str, str], onset: int) -> list[dict]:
    """Not firing one minute before ``for:`` has elapsed; firing at it and three minutes on."""
    hold_for = minutes(rule["for"])
    return [
        {"eval_time": f"{onset + hold_for - 1}m", "alertname": name, "exp_alerts": []},
        {"eval_time": f"{onset + hold_for}m", "alertname": name,
         "exp_alerts": [expected(rule, hot)]},
        {"eval_time": f"{onset + hold_for + 3}m", "alertname": name,
         "exp_alerts": [expected(rule, hot)]},
    ]  # fmt: skip


Expand = Callable[[str, dict[str, str], float], list[tuple[dict[str, str], float]]]
"""Hook turning one logical series (role, labels, steady value) into the exported series."""


def as_is(_role: str, labels: dict[str, str], value: float) -> list[tuple[dict[str, str], float]]:
    """One exported series per logical series."""
    return [(labels, value)]


def gauge_case(
    name: str,
    rule: dict[str, Any],
    metric: str,
    above: bool,
    threshold: float,
    by: tuple[str, ...],
    labels: dict[str, dict[str, str]],
    expand: Expand = as_is,
) -> Case:
    """A gauge compared with ``threshold`` (``>`` when ``above``, else ``<``).

    ``labels`` names the series of each role: ``hot``, ``cool`` and ``blip`` (module doc), and
    optionally ``past`` and ``inside`` (steadily past / inside the threshold, for series that
    must not change the outcome, such as another quantile or an older push).
    """
    hold_for = minutes(rule["for"])
    samples = hold_for + 6
    past = threshold * (1 + MARGIN) if above else threshold * (1 - MARGIN)
    inside = threshold * (1 - MARGIN) if above else threshold * (1 + MARGIN)
    # The cool series sits exactly on the threshold: the comparison is strict.
    steady = {"hot": past, "cool": threshold, "blip": past, "past": past, "inside": inside}
    input_series = []
    for role, role_labels in labels.items():
        for exported, value in expand(role, role_labels, steady[role]):
            if role == "blip":  # past for hold_for evaluations (0 .. for-1), inside at ``for``
                values = hold((value, hold_for), (inside, samples - hold_for))
            else:
                values = hold((value, samples))
            input_series.append({"series": series(metric, exported), "values": values})
    severity = {**rule.get("labels", {}), "severity": SEVERITY[name]}  # the rule's labels too
    hot = {**{k: labels["hot"][k] for k in by}, **severity}
    return Case(
        name,
        {
            "interval": "1m",
            "input_series": input_series,
            "alert_rule_test": timeline(name, rule, hot, onset=0),
        },
        hot,
        {**{k: labels["cool"][k] for k in by}, **severity},
        onset=0,
        hold_for=hold_for,
    )


def literal_threshold(rule: dict[str, Any]) -> float:
    """The number a rule compares with at its end (for thresholds with no other source)."""
    match = re.search(r"[<>]=?\s*([0-9.]+(?:[eE][+-]?\d+)?)\s*$", rule["expr"])
    assert match, f"{rule['alert']}: no trailing comparison in {rule['expr']!r}"
    return float(match.group(1))


def latency_case(rule: dict[str, Any], args: MonitoringArgs) -> Case:
    """p99 per model from Triton's summary, against ``p99_latency_ms`` (in microseconds)."""
    base = {"job": "triton", "version": "1", "quantile": "0.99"}
    return gauge_case(
        "ModelP99LatencyHigh",
        rule,
        "nv_inference_request_summary_us",
        above=True,
        threshold=args.p99_latency_ms * 1000,
        by=("model",),
        labels={
            "hot": {**base, "model": "slow", "variant": "canary"},
            "cool": {**base, "model": "edge", "variant": "stable"},
            "blip": {**base, "model": "blip", "variant": "stable"},
            # A model whose p99.9 is past the target and whose p99 is inside it: only the
            # p99 counts, so it raises no alert.
            "past": {**base, "model": "fine", "quantile": "0.999"},
            "inside": {**base, "model": "fine"},
        },
    )


def gpu_case(rule: dict[str, Any], name: str, above: bool) -> Case:
    """Utilisation averaged per host over its GPUs; threshold from the rule (see module doc)."""
    threshold = literal_threshold(rule)
    spread = min(5.0, threshold, 100.0 - threshold)

    def two_gpus(role: str, labels: dict[str, str], value: float) -> list:
        # Each host has two GPUs. On the cool host one is past the threshold and one inside it
        # by as much: their average is the threshold, which does not fire (the rule judges
        # hosts, not single GPUs). Elsewhere both GPUs carry the role's value.
        values = (threshold + spread, threshold - spread) if role == "cool" else (value, value)
        return [({**labels, "gpu": str(i)}, v) for i, v in enumerate(values)]

    return gauge_case(
        name,
        rule,
        "DCGM_FI_DEV_GPU_UTIL",
        above=above,
        threshold=threshold,
        by=("Hostname",),
        labels={
            "hot": {"Hostname": "node-hot"},
            "cool": {"Hostname": "node-cool"},
            "blip": {"Hostname": "node-blip"},
        },
        expand=two_gpus,
    )


def drift_case(rule: dict[str, Any], args: MonitoringArgs) -> Case:
    """PSI per model and feature pushed by the drift job, against ``drift_threshold``."""
    push = {"job": "drift-monitor", "instance": "pushgateway", "model": "credit-risk"}
    return gauge_case(
        "FeatureDrift",
        rule,
        "sovml_drift_psi",
        above=True,
        threshold=args.drift_threshold,
        by=("model", "feature"),
        labels={
            "hot": {**push, "feature": "income"},
            "cool": {**push, "feature": "age"},
            "blip": {**push, "feature": "tenure"},
            # The drifted feature also pushed by an older run, inside the threshold: max()
            # keeps the drifted value, so this neither adds nor hides an alert.
            "inside": {**push, "instance": "pushgateway-old", "feature": "income"},
        },
    )


def error_rate_case(rule: dict[str, Any], args: MonitoringArgs) -> Case:
    """Failed / all requests per model from Triton's counters, against ``max_error_rate``.

    Rates need two samples, so the condition holds from minute 1. Every series starts at 0 and
    grows linearly with the same sample times, so ``rate()`` scales each by the same factor and
    the ratio is the ratio of the per-minute increments.
    """
    name = "ModelErrorRateHigh"
    hold_for = minutes(rule["for"])
    samples = hold_for + 6
    per_minute = 10_000.0
    threshold = args.criteria.max_error_rate

    def model(label: str, rate: float, traffic: float = per_minute) -> list[dict[str, str]]:
        labels = {"job": "triton", "model": label, "version": "1"}
        failed = round(traffic * rate, 9)  # 99.00000000000001 -> 99.0: plain input values
        return [
            {
                "series": series("nv_inference_request_success", labels),
                "values": ramp(traffic - failed, samples),
            },
            {
                "series": series("nv_inference_request_failure", {**labels, "reason": "BACKEND"}),
                "values": ramp(failed, samples),
            },
            # Triton exports a failure counter per reason; the others stay at 0.
            {
                "series": series("nv_inference_request_failure", {**labels, "reason": "REJECTED"}),
                "values": hold((0.0, samples)),
            },
        ]

    severity = {"severity": SEVERITY[name]}
    hot = {"model": "failing", **severity}
    return Case(
        name,
        {
            "interval": "1m",
            "input_series": [
                *model("failing", threshold * (1 + MARGIN)),
                *model("healthy", threshold * (1 - MARGIN)),
                # No traffic at all: 0 / clamp_min(0, 1e-9) is 0, not NaN, and does not fire.
                *model("idle", 0.0, traffic=0.0),
            ],
            "alert_rule_test": timeline(name, rule, hot, onset=1),
        },
        hot,
        {"model": "healthy", **severity},
        onset=1,
        hold_for=hold_for,
    )


# --- SLO burn rates ----------------------------------------------------------------------------
def slo_named(args: MonitoringArgs, name: str) -> Slo:
    """The SLO of that name, as :func:`components._alerts.slos` builds it for ``args``."""
    (slo,) = [s for s in slos(args.slo) if s.name == name]
    return slo


Feed = Callable[[str, float, int], tuple[list[dict[str, Any]], dict[str, str]]]
"""Series making an SLO's error ratio ``ratio`` under one subject key, for ``samples`` minutes,
and the labels the recorded ratio (hence the alert) carries."""


def feed_model_availability(key: str, ratio: float, samples: int) -> tuple[list[dict], dict]:
    """Triton's counters for a model failing ``ratio`` of its requests (rates need 2 samples)."""
    traffic = 100_000.0
    failed = round(traffic * ratio, 9)
    labels = {"job": "triton", "model": key, "version": "1", "variant": "stable"}
    return [
        {"series": series("nv_inference_request_success", labels),
         "values": ramp(traffic - failed, samples)},
        {"series": series("nv_inference_request_failure", {**labels, "reason": "BACKEND"}),
         "values": ramp(failed, samples)},
    ], {"model": key}  # fmt: skip


def feed_feature_server(key: str, ratio: float, samples: int) -> tuple[list[dict], dict]:
    """``up`` of a feature server Service whose scrapes fail ``ratio`` of the time. ``up`` is 0
    or 1 per scrape; a fractional value stands for the mean over a window and pins the
    thresholds to the same 1 % as the counters do."""
    labels = {"job": "feast", "namespace": "feature-store", "service": key,
              "instance": "10.0.0.1:8000"}  # fmt: skip
    return [{"series": series("up", labels), "values": hold((round(1 - ratio, 12), samples))}], {
        "namespace": "feature-store",
        "service": key,
    }


def feed_pipeline_runs(key: str, ratio: float, samples: int) -> tuple[list[dict], dict]:
    """``sovml_pipeline_runs_total`` of a pipeline failing ``ratio`` of its runs; both outcome
    series exist from the start, as the run's writer keeps them (``increase`` needs 2 samples).
    The labels are the pushgateway group's, as the ServiceMonitor's ``honor_labels`` keeps them
    (``job`` and ``pipeline`` from the grouping key, ``pipelines/training/outcome.py``)."""
    runs = 1_000.0
    failed = round(runs * ratio, 9)
    labels = {"job": "training-pipeline", "pipeline": key}
    return [
        {"series": series("sovml_pipeline_runs_total", {**labels, "outcome": "succeeded"}),
         "values": ramp(runs - failed, samples)},
        {"series": series("sovml_pipeline_runs_total", {**labels, "outcome": "failed"}),
         "values": ramp(failed, samples)},
    ], {"pipeline": key}  # fmt: skip


FEEDS: dict[str, tuple[Feed, int]] = {
    "model-availability": (feed_model_availability, 1),
    "feature-server-availability": (feed_feature_server, 0),
    "training-pipeline-success": (feed_pipeline_runs, 1),
}
"""How to produce each ratio-based SLO's error ratio, and the minute its condition starts."""


def burn_expectations(
    slo: Slo, rules: list[dict[str, Any]], burns: tuple[BurnRate, ...], ratio: float, base: dict
) -> list[dict[str, Any]]:
    """The alerts a steady error ratio raises: one per window pair it burns faster than."""
    out = []
    for burn, rule in zip(burns, rules, strict=True):
        if ratio > burn.factor * slo.budget:
            labels = {**base, "slo": slo.name, **rule["labels"]}
            out.append(expected(rule, labels))
    return out


def burn_case_builder(slo_name: str, kind: str) -> Callable[[dict[str, Any], MonitoringArgs], Case]:
    """The test of one burn alert (``FastBurn``/``SlowBurn``) of one SLO.

    Ratio SLOs: per window pair, one subject steadily 1 % above ``factor x budget`` and one 1 %
    below; every rule whose factor a ratio exceeds must fire, every other stay silent, so each
    pair's threshold is pinned from both sides. The latency SLO is a time-slice SLI (0 or 1 per
    evaluation): a model over its p99 target throughout fires every pair, one on the target
    itself (strict comparison) and one whose p99.9 alone is over never fire; the fractions in
    between are checked on the recording rules (:func:`latency_recording_group`).
    """

    def build(_rule: dict[str, Any], args: MonitoringArgs) -> Case:
        slo = slo_named(args, slo_name)
        name = f"{slo.alert_prefix}{kind}"
        burns = slo.fast if kind == "FastBurn" else slo.slow
        rules = [r for r in burn_alerts(slo, args.runbook_base) if r["alert"] == name]
        hold_for = minutes(rules[0]["for"])
        samples = hold_for + 8
        input_series, firing = [], []
        cool: dict[str, str] = {}
        if slo_name in FEEDS:
            feed, onset = FEEDS[slo_name]
            for i, burn in enumerate(burns):
                for side, factor in (("above", 1 + MARGIN), ("below", 1 - MARGIN)):
                    ratio = burn.factor * slo.budget * factor
                    got, base = feed(f"{side}-{i}", ratio, samples)
                    input_series += got
                    firing += burn_expectations(slo, rules, burns, ratio, base)
                    if side == "below" and i == 0:
                        cool = {**base, "slo": slo.name, **rules[0]["labels"]}
        else:
            onset = 0
            target = args.slo.latency_ms * 1000
            quantile = {"job": "triton", "version": "1", "quantile": "0.99"}
            for model, value, q in (
                ("slow", target * (1 + MARGIN), "0.99"),
                ("edge", target, "0.99"),
                ("fine", target * (1 + MARGIN), "0.999"),
                ("fine", target * (1 - MARGIN), "0.99"),
            ):
                labels = {**quantile, "model": model, "quantile": q}
                input_series.append(
                    {"series": series("nv_inference_request_summary_us", labels),
                     "values": hold((value, samples))}
                )  # fmt: skip
            firing = burn_expectations(slo, rules, burns, 1.0, {"model": "slow"})
            cool = {"model": "edge", "slo": slo.name, **rules[0]["labels"]}
        assert firing and cool, name
        at = [onset + hold_for - 1, onset + hold_for, onset + hold_for + 3]
        checks = [{"eval_time": f"{t}m", "alertname": name, "exp_alerts": e}
                  for t, e in zip(at, ([], firing, firing), strict=True)]  # fmt: skip
        return Case(
            name,
            {"interval": "1m", "input_series": input_series, "alert_rule_test": checks},
            firing[0]["exp_labels"],
            cool,
            onset=onset,
            hold_for=hold_for,
        )

    return build


CASES: dict[str, Callable[[dict[str, Any], MonitoringArgs], Case]] = {
    "ModelP99LatencyHigh": latency_case,
    "ModelErrorRateHigh": error_rate_case,
    "GpuSaturated": lambda rule, _args: gpu_case(rule, "GpuSaturated", above=True),
    "GpuIdle": lambda rule, _args: gpu_case(rule, "GpuIdle", above=False),
    "FeatureDrift": drift_case,
    **{
        f"{prefix}{kind}": burn_case_builder(slo_name, kind)
        for slo_name, prefix in (
            ("model-availability", "ModelAvailability"),
            ("model-latency", "ModelLatency"),
            ("feature-server-availability", "FeatureServerAvailability"),
            ("training-pipeline-success", "TrainingPipelineSuccess"),
        )
        for kind in BURN_SEVERITY
    },
}
"""Every alert the component may declare, and how its unit test is built."""


def cases(rule_set: RuleSet) -> list[Case]:
    """One case per alert of the rule set (an alert without a case fails here)."""
    declared = alerts(rule_set.groups)
    missing = sorted(set(declared) - set(CASES))
    assert not missing, f"alerts without a promtool unit test: {missing}; add them to CASES"
    return [CASES[name](rule, rule_set.args) for name, rule in declared.items()]


def unit_test_files(
    tmp_path: Path, rule_set: RuleSet, groups: list[dict[str, Any]] | None = None
) -> tuple[Path, Path]:
    """The rules file and a unit-test file with the given test groups (default: every case)."""
    rules = write_rules(tmp_path / "rules.yaml", rule_set.groups)
    tests = groups if groups is not None else [c.group for c in cases(rule_set)]
    return rules, write_unit_tests(tmp_path / "rules_test.yaml", rules, tests)
