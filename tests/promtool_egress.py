"""The ``EgressRefused`` alert's promtool unit test, registered in ``tests/promtool_rules``.

Kept in its own module (``promtool_rules`` is at the 600-line limit); importing it adds the case
to :data:`tests.promtool_rules.CASES` and the alert's severity to
:data:`tests.promtool_rules.SEVERITY`, so every harness check (hot, cool, the must-fail
mutations) covers it like the other alerts.

Series, one sample a minute (module doc of ``promtool_rules``):

* ``hot``: a workload's TCP connections to ``BlackHoleCluster`` growing by one a minute from 0;
  the rule's increase is positive from the second sample (onset 1), so it fires ``for:`` later;
* ``cool``: another workload's connections to an allowed host (a ServiceEntry's name) growing
  just as fast, and another workload's BlackHole counter that stays flat: neither ever fires;
* the HTTP branch: a third workload's ``istio_requests_total`` to ``BlackHoleCluster`` starts
  growing at minute 8, after the timeline's evaluations; from then both alerts fire.
"""

from __future__ import annotations

from typing import Any

from components._alerts import EGRESS_REFUSED
from components.monitoring import MonitoringArgs
from tests.promtool_rules import (
    CASES,
    SEVERITY,
    Case,
    expected,
    hold,
    minutes,
    ramp,
    series,
    timeline,
)

TCP, HTTP = "istio_tcp_connections_opened_total", "istio_requests_total"
HTTP_START = 8
"""Minute from which the HTTP client's refused requests grow."""


def _workload(namespace: str, name: str, destination: str) -> dict[str, str]:
    return {
        "reporter": "source",
        "source_workload_namespace": namespace,
        "source_workload": name,
        "destination_service_name": destination,
    }


def egress_case(rule: dict[str, Any], _args: MonitoringArgs) -> Case:
    """Refused TCP connections fire after ``for:``; allowed or flat counters never do."""
    hold_for = minutes(rule["for"])
    samples = HTTP_START + hold_for + 8
    by = ("source_workload_namespace", "source_workload")
    hot_series = _workload("kubeflow", "train-step", "BlackHoleCluster")
    cool_series = _workload("serving", "model-puller", "kms.me-central-1.amazonaws.com")
    flat = _workload("serving", "triton", "BlackHoleCluster")
    client = _workload("monitoring", "drift", "BlackHoleCluster")
    severity = {"severity": SEVERITY[EGRESS_REFUSED]}
    hot = {**{k: hot_series[k] for k in by}, **severity}
    both_at = HTTP_START + 1 + hold_for + 1
    tests = timeline(EGRESS_REFUSED, rule, hot, onset=1)
    tests.append(
        {"eval_time": f"{both_at}m", "alertname": EGRESS_REFUSED,
         "exp_alerts": [expected(rule, {**{k: client[k] for k in by}, **severity}),
                        expected(rule, hot)]}
    )  # fmt: skip
    return Case(
        EGRESS_REFUSED,
        {
            "interval": "1m",
            "input_series": [
                {"series": series(TCP, hot_series), "values": ramp(1.0, samples)},
                {"series": series(TCP, cool_series), "values": ramp(1.0, samples)},
                {"series": series(TCP, flat), "values": hold((5.0, samples))},
                {"series": series(HTTP, client),
                 "values": f"{hold((0.0, HTTP_START))} {ramp(2.0, samples - HTTP_START)}"},
            ],
            "alert_rule_test": tests,
        },
        hot,
        {**{k: flat[k] for k in by}, **severity},
        onset=1,
        hold_for=hold_for,
    )  # fmt: skip


CASES[EGRESS_REFUSED] = egress_case
SEVERITY[EGRESS_REFUSED] = "warning"
