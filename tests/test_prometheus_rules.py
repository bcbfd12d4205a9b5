"""The alert rules the program declares, judged by the real ``promtool`` (Prometheus 2.42).

The rules under test are the ``PrometheusRule`` each stack's synth record carries (what the
cluster's Prometheus would load) and the one the monitoring component records for non-default
arguments (:data:`tests.promtool_rules.CUSTOM`). Every rules file passes ``promtool check
rules``; every alert has a ``promtool test rules`` unit test built by :mod:`tests.promtool_rules`
(whose docstring says how each alert is pinned from both sides of its threshold), and
deliberately wrong expectations and off-threshold rules must make promtool fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

import tests.promtool_egress  # noqa: F401  (registers the EgressRefused case)
from components._alerts import WINDOWS, slo_ratio
from components.monitoring import Monitoring, MonitoringArgs, alert_rules
from infra.config.stackfile import ROOT, list_stacks
from infra.synth.runner import run_recorded
from tests.promtool_rules import (
    CUSTOM,
    FEEDS,
    SEVERITY,
    Case,
    RuleSet,
    alerts,
    cases,
    expected,
    hold,
    minutes,
    monitoring_args,
    recorded_groups,
    run_promtool,
    series,
    slo_named,
    stack_args,
    unit_test_files,
    write_rules,
    write_unit_tests,
)
from tests.system import require_binary

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="module")
def rule_sets(stack_records: dict[str, dict[str, Any]]) -> dict[str, RuleSet]:
    """Every stack's recorded rules, and the component's for :data:`CUSTOM` arguments."""
    sets = {
        stack: RuleSet(stack, recorded_groups(record["resources"]), stack_args(record))
        for stack, record in stack_records.items()
    }
    custom = monitoring_args(gpu_enabled=False, **CUSTOM)
    recording = run_recorded(lambda: Monitoring("mon", custom), stack="unit", region="me-central-1")
    sets["custom"] = RuleSet("custom", recorded_groups(recording.resources), custom)
    return sets


RULE_SET_NAMES = [*list_stacks(), "custom"]


# --- tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RULE_SET_NAMES)
def test_recorded_rules_are_the_components_for_these_arguments(
    name: str, rule_sets: dict[str, RuleSet]
) -> None:
    """The record holds exactly :func:`alert_rules` of the arguments the thresholds come from,
    so the unit tests below judge what the cluster would load, with the right numbers."""
    rule_set = rule_sets[name]
    assert rule_set.groups == alert_rules(rule_set.args), name
    assert set(alerts(rule_set.groups)) == set(SEVERITY), "update SEVERITY and CASES"


@pytest.mark.parametrize("name", RULE_SET_NAMES)
def test_promtool_check_rules_passes(
    name: str, rule_sets: dict[str, RuleSet], promtool: str, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path / f"{name}.rules.yaml", rule_sets[name].groups)
    proc = run_promtool(promtool, "check", "rules", rules, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = sum(len(g["rules"]) for g in rule_sets[name].groups)
    assert f"SUCCESS: {count} rules found" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", RULE_SET_NAMES)
def test_every_alert_fires_after_for_and_only_past_its_threshold(
    name: str, rule_sets: dict[str, RuleSet], promtool: str, tmp_path: Path
) -> None:
    _rules, tests = unit_test_files(tmp_path, rule_sets[name])
    proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout, proc.stdout


# --- SLO recording rules ---------------------------------------------------------------------
def latency_recording_group(args: MonitoringArgs, bad_minutes: int = 30, at: int = 40) -> dict:
    """The latency SLI's recorded ratios: a model over its p99 target for the first
    ``bad_minutes`` evaluations, then within it; at minute ``at`` each window's ratio is the
    share of bad evaluations in it (Prometheus 2 ranges include both ends: ``w/1m + 1``
    samples, fewer while the series is younger than the window)."""
    slo = slo_named(args, "model-latency")
    target = args.slo.latency_ms * 1000
    labels = {"job": "triton", "version": "1", "quantile": "0.99", "model": "credit-risk"}
    values = hold((target * 2, bad_minutes), (target / 2, at + 1 - bad_minutes))
    tests = []
    for window in WINDOWS:
        first = max(0, at - minutes(window))
        bad = max(0, bad_minutes - first)
        ratio = bad / (at - first + 1)
        tests.append(
            {"expr": f"round({slo_ratio(slo, window)} * 1e6)", "eval_time": f"{at}m",
             "exp_samples": [{"labels": f'{{model="credit-risk",slo="{slo.name}"}}',
                              "value": round(ratio * 1e6)}]}
        )  # fmt: skip
    return {
        "interval": "1m",
        "input_series": [{"series": series("nv_inference_request_summary_us", labels),
                          "values": values}],
        "promql_expr_test": tests,
    }  # fmt: skip


def ratio_recording_group(args: MonitoringArgs, slo_name: str, ratio: float = 0.25) -> dict:
    """A ratio SLO's recorded error ratios: a steady ``ratio`` reads the same in every window."""
    slo = slo_named(args, slo_name)
    feed, onset = FEEDS[slo_name]
    got, base = feed("steady", ratio, 20)
    labels = ",".join(f'{k}="{v}"' for k, v in sorted({**base, "slo": slo.name}.items()))
    return {
        "interval": "1m",
        "input_series": got,
        "promql_expr_test": [
            {"expr": f"round({slo_ratio(slo, w)} * 1e6)", "eval_time": f"{onset + 10}m",
             "exp_samples": [{"labels": f"{{{labels}}}", "value": round(ratio * 1e6)}]}
            for w in WINDOWS
        ],
    }  # fmt: skip


@pytest.mark.parametrize("name", ["prod-uae", "custom"])
def test_slo_recording_rules_evaluate_to_the_error_ratios(
    name: str, rule_sets: dict[str, RuleSet], promtool: str, tmp_path: Path
) -> None:
    """Every SLO's ratio in every window, evaluated by promtool: steady ratios read the same
    everywhere; the latency time slices read the share of bad evaluations in each window."""
    rule_set = rule_sets[name]
    groups = [
        ratio_recording_group(rule_set.args, "model-availability"),
        ratio_recording_group(rule_set.args, "feature-server-availability"),
        latency_recording_group(rule_set.args),
    ]
    _rules, tests = unit_test_files(tmp_path, rule_set, groups)
    proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The harness is not vacuous: a wrong share for one window fails.
    groups[2]["promql_expr_test"][2]["exp_samples"][0]["value"] += 1
    _rules, tests = unit_test_files(tmp_path, rule_set, groups)
    proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout


def pipeline_pushes_group(args: MonitoringArgs) -> dict[str, Any]:
    """The training pipeline's counter as the cluster's exit task pushes it (read back, add one,
    ``PUT``), through a pushgateway restart: four runs in the last day, two failed.

    Minute by minute: 10 earlier successes until a success at 200 (11) and a failure at 400;
    the pushgateway restarts at 600 and its groups are gone (no samples) until the next run
    at 800 reads nothing back and pushes succeeded 1, failed 0; a failure at 1000. Over the
    day ending at 1499, ``increase()`` counts the drop 11 -> 1 as a reset plus one run, so the
    recorded 1d error ratio is exactly 2/4.
    """
    slo = slo_named(args, "training-pipeline-success")
    labels = {"job": "training-pipeline", "pipeline": "credit-risk-training"}
    # "vxN" is N+1 samples of v; "_xN" is N missing samples (promtool's notation).
    succeeded = "10x199 11x399 _x200 1x699"
    failed = "0x399 1x199 _x200 0x199 1x499"
    return {
        "interval": "1m",
        "input_series": [
            {"series": series("sovml_pipeline_runs_total", {**labels, "outcome": "succeeded"}),
             "values": succeeded},
            {"series": series("sovml_pipeline_runs_total", {**labels, "outcome": "failed"}),
             "values": failed},
        ],
        "promql_expr_test": [
            {"expr": f"round({slo_ratio(slo, '1d')} * 1e6)", "eval_time": "1499m",
             "exp_samples": [{"labels": f'{{pipeline="credit-risk-training",slo="{slo.name}"}}',
                              "value": 500_000}]},
        ],
    }  # fmt: skip


def test_pushed_pipeline_counter_survives_a_pushgateway_restart(
    rule_sets: dict[str, RuleSet], promtool: str, tmp_path: Path
) -> None:
    """The pushed counter keeps ``increase()`` exact across runs and a pushgateway restart."""
    full = rule_sets["prod-uae"]
    group = pipeline_pushes_group(full.args)
    # Only the rule group recording this SLO's ratios: promtool evaluates every rule it is given
    # at each of the 1,500 simulated minutes (15 s with all of prod-uae's groups).
    slo = slo_named(full.args, "training-pipeline-success").name
    own = [g for g in full.groups if any(r.get("labels", {}).get("slo") == slo for r in g["rules"])]
    assert len(own) == 1, [g["name"] for g in own]
    rule_set = RuleSet(full.name, own, full.args)
    _rules, tests = unit_test_files(tmp_path, rule_set, [group])
    proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Not vacuous: any other ratio fails.
    group["promql_expr_test"][0]["exp_samples"][0]["value"] = 333_333
    _rules, tests = unit_test_files(tmp_path, rule_set, [group])
    proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout


def _wrong_cool_fires(case: Case) -> dict[str, Any]:
    """Claim the series inside the threshold fires too."""
    group = _copy(case.group)
    at = group["alert_rule_test"][1]
    rule = {"annotations": {}}  # annotations do not matter: the labels alone are wrong
    at["exp_alerts"] = [*at["exp_alerts"], expected(rule, case.cool)]
    return group


def _wrong_fires_early(case: Case) -> dict[str, Any]:
    """Claim the alert fires one evaluation before ``for:`` has elapsed."""
    group = _copy(case.group)
    group["alert_rule_test"][0]["exp_alerts"] = group["alert_rule_test"][1]["exp_alerts"]
    return group


def _wrong_severity(case: Case) -> dict[str, Any]:
    """Claim another severity than the rule's."""
    group = _copy(case.group)
    for entry in group["alert_rule_test"][1]["exp_alerts"]:
        entry["exp_labels"] = {**entry["exp_labels"], "severity": "none"}
    return group


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


@pytest.mark.parametrize(
    "mutate", [_wrong_cool_fires, _wrong_fires_early, _wrong_severity], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("alert", sorted(SEVERITY))
def test_a_wrong_expectation_makes_promtool_fail(
    alert: str,
    mutate: Callable[[Case], dict[str, Any]],
    rule_sets: dict[str, RuleSet],
    promtool: str,
    tmp_path: Path,
) -> None:
    """Each alert's negative cases are real: promtool notices a claim that contradicts them,
    and the harness reads its exit status."""
    rule_set = rule_sets["prod-uae"]
    (case,) = [c for c in cases(rule_set) if c.alert == alert]
    _rules, tests = unit_test_files(tmp_path, rule_set, [mutate(case)])
    proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
    assert proc.returncode != 0, f"promtool accepted a wrong expectation:\n{proc.stdout}"
    assert "FAILED" in proc.stdout + proc.stderr and alert in proc.stdout + proc.stderr


def shifted(args: MonitoringArgs, threshold: str, factor: float) -> MonitoringArgs:
    """``args`` with one threshold multiplied by ``factor``."""
    if threshold.startswith("slo."):  # an objective: scale its error budget
        key = threshold.removeprefix("slo.")
        objective = 1 - (1 - getattr(args.slo, key)) * factor
        return replace(args, slo=replace(args.slo, **{key: objective}))
    if threshold == "max_error_rate":
        rate = args.criteria.max_error_rate * factor
        return replace(args, criteria=replace(args.criteria, max_error_rate=rate))
    return replace(args, **{threshold: getattr(args, threshold) * factor})


@pytest.mark.parametrize("factor", [1.02, 0.98])
@pytest.mark.parametrize(
    "threshold",
    [
        "p99_latency_ms",
        "max_error_rate",
        "drift_threshold",
        "slo.availability",
        "slo.feature_server_availability",
    ],
)
def test_a_rule_off_its_source_threshold_fails_the_unit_tests(
    threshold: str, factor: float, promtool: str, tmp_path: Path
) -> None:
    """Rules rendered with a threshold 2 % off the one the tests take from the arguments fail
    them, from either side: the thresholds are pinned, not merely plausible."""
    args = monitoring_args()
    tests = RuleSet("tests", alert_rules(args), args)
    drifted = RuleSet("drifted", alert_rules(shifted(args, threshold, factor)), args)
    assert drifted.groups != tests.groups, f"{threshold} does not reach the rules"
    # The cases of the alerts whose rule moved (every case where only recording rules did): the
    # others test rules the threshold never reaches, and promtool's time goes to evaluating them.
    before = alerts(tests.groups)
    moved = {a for a, rule in alerts(drifted.groups).items() if rule != before[a]}
    groups = [c.group for c in cases(tests) if c.alert in moved] or [c.group for c in cases(tests)]
    rules = write_rules(tmp_path / "rules.yaml", drifted.groups)
    unit = write_unit_tests(tmp_path / "rules_test.yaml", rules, groups)
    proc = run_promtool(promtool, "test", "rules", unit, cwd=tmp_path)
    assert proc.returncode != 0, f"{threshold} x {factor} went unnoticed:\n{proc.stdout}"
    assert "FAILED" in proc.stderr, proc.stdout + proc.stderr


def test_a_broken_rule_fails_promtool_check(promtool: str, tmp_path: Path) -> None:
    groups = alert_rules(monitoring_args())
    groups[0]["rules"][1]["expr"] = groups[0]["rules"][1]["expr"].replace("clamp_min(", "(", 1)
    rules = write_rules(tmp_path / "broken.rules.yaml", groups)
    proc = run_promtool(promtool, "check", "rules", rules, cwd=tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "FAILED" in proc.stdout + proc.stderr


def _is_rules_document(doc: Any) -> bool:
    """A Prometheus rules file, or a PrometheusRule custom resource."""
    if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
        return True
    groups = doc.get("groups") if isinstance(doc, dict) else None
    return isinstance(groups, list) and all(isinstance(g, dict) and "rules" in g for g in groups)


def repository_rules_files(root: Path = ROOT) -> list[Path]:
    """Rules files under ``root`` (YAML outside virtualenvs, VCS and build output)."""
    skip = {".git", "build", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}
    found = []
    for folder, dirs, files in os.walk(root):
        # Pruned in place so os.walk never descends into a virtualenv (tens of thousands of
        # files) or build output.
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith(".venv"))
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = Path(folder) / name
            try:
                docs = list(yaml.safe_load_all(path.read_text()))
            except (yaml.YAMLError, UnicodeDecodeError):
                continue
            if any(_is_rules_document(d) for d in docs):
                found.append(path)
    return found


def test_rules_file_discovery_finds_rules_and_only_rules(tmp_path: Path) -> None:
    """The search below would pass vacuously if it found nothing it should."""
    groups = alert_rules(monitoring_args())
    write_rules(tmp_path / "plain.rules.yml", groups)
    manifest = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": "x"}, "spec": {"groups": groups}}  # fmt: skip
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "rule.yaml").write_text(yaml.safe_dump_all([{"kind": "x"}, manifest]))
    (tmp_path / "values.yaml").write_text(yaml.safe_dump({"groups": ["not", "rules"]}))
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    write_rules(tmp_path / ".venv" / "lib" / "vendored.yaml", groups)
    found = [p.relative_to(tmp_path).as_posix() for p in repository_rules_files(tmp_path)]
    assert found == ["plain.rules.yml", "deploy/rule.yaml"]


def test_rules_files_in_the_repository_pass_promtool(promtool: str, tmp_path: Path) -> None:
    """Any rules file the repository carries (none today: the rules live in the component)
    passes ``promtool check rules``; a PrometheusRule manifest is checked through its spec."""
    for path in repository_rules_files():
        docs = [d for d in yaml.safe_load_all(path.read_text()) if _is_rules_document(d)]
        for i, doc in enumerate(docs):
            groups = doc["spec"]["groups"] if doc.get("kind") == "PrometheusRule" else doc["groups"]
            rules = write_rules(tmp_path / f"{path.stem}-{i}.yaml", groups)
            proc = run_promtool(promtool, "check", "rules", rules, cwd=tmp_path)
            assert proc.returncode == 0, f"{path.relative_to(ROOT)}:\n{proc.stdout}{proc.stderr}"
