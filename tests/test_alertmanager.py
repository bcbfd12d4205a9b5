"""Alert routing judged by the real Alertmanager 0.25 (``amtool`` and the server).

* ``amtool check-config`` accepts the configuration built for every stack, and one with every
  receiver integration; it refuses a broken one (so the check can fail).
* ``amtool config routes test``: every alert of every stack's recorded PrometheusRule, with its
  own severity and with each tenant of the stack, reaches the expected receivers.
* Inhibition: alerts posted to a running Alertmanager's API v2 are inhibited exactly as the
  rules say (cluster down silences serving alerts; a page silences its own warning).
* End to end: the real Prometheus fires a rule, the real Alertmanager routes it, a local webhook
  records the payload with the alert's labels and runbook_url.
* Config validation: receiver URLs must be https; prod must page someone; credentials plain in
  a stack file are refused.
"""

from __future__ import annotations

import copy
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from components._alertmanager_config import (
    NULL,
    PAGE,
    RECORDER,
    SECRET_KEYS,
    SEVERITY_RECEIVER,
    TICKET,
    Receivers,
    alertmanager_config,
    tenant_receiver,
)
from components._alerts import AUDIT_LABEL
from components.alerting import render
from infra.config.parsing import parse
from infra.config.stackfile import list_stacks, load_stack
from tests.alertmanager_server import (
    RESEND_EVERY_SECOND,
    WebhookRecorder,
    alert_to,
    running_alertmanager,
)
from tests.prometheus import start_prometheus, stop_prometheus
from tests.system import require_binary

RULE_TYPE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
FAKE = {k: f"fake-{k}" for k in SECRET_KEYS}
EVERYTHING = Receivers(
    pagerduty=True,
    opsgenie=True,
    servicenow_url="https://example.service-now.com/api/alertmanager",
    servicenow_user="sovml",
    webhook_url="https://itsm.example.ae/hook",
    email_to=("oncall@example.ae",),
    email_from="alertmanager@example.ae",
    email_smarthost="smtp.example.ae:587",
    email_username="sovml",
)


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binary("amtool")


def check_config(amtool: str, config: dict[str, Any], path: Path) -> subprocess.CompletedProcess:
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("stack", list_stacks())
def test_amtool_accepts_every_stacks_config(amtool: str, stack: str, tmp_path: Path) -> None:
    cfg, _, _ = load_stack(stack)
    result = check_config(amtool, alertmanager_config(cfg.alerting, FAKE), tmp_path / "am.yml")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_amtool_accepts_every_integration(amtool: str, tmp_path: Path) -> None:
    spec = replace(EVERYTHING, tenant_webhooks=(("risk-analytics", "https://t.example.ae/h"),))
    result = check_config(amtool, alertmanager_config(spec, FAKE), tmp_path / "am.yml")
    assert result.returncode == 0 and "4 receivers" in result.stdout, result.stdout


def test_amtool_refuses_a_route_to_a_missing_receiver(amtool: str, tmp_path: Path) -> None:
    config = alertmanager_config(Receivers(), FAKE)
    config["route"]["routes"][0]["receiver"] = "nobody"
    result = check_config(amtool, config, tmp_path / "am.yml")
    assert result.returncode != 0 and "nobody" in result.stdout + result.stderr


def routed(amtool: str, config_file: Path, labels: dict[str, str]) -> list[str]:
    """The receivers ``amtool config routes test`` names for ``labels``."""
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config_file}"]
        + [f"{k}={v}" for k, v in labels.items()],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(",")


def declared_alerts(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every alerting rule of every PrometheusRule in a synth record."""
    return [
        rule
        for resource in record["resources"]
        if resource["type"] == RULE_TYPE
        for group in resource["inputs"]["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@pytest.mark.slow
def test_every_declared_alert_reaches_its_receiver(
    amtool: str, stack_records: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    checked = 0
    recorded: set[str] = set()
    for stack, record in stack_records.items():
        cfg, _, _ = load_stack(stack)
        tenants = list(cfg.tenants)
        # The first tenant has its own receiver; the others rely on the platform's.
        spec = replace(
            cfg.alerting, tenant_webhooks=tuple((t, "https://t.example.ae/h") for t in tenants[:1])
        )
        config_file = tmp_path / f"{stack}.yml"
        config_file.write_text(render(spec, FAKE, "http://r.monitoring.svc:8080/alerts", "t"))
        alerts = declared_alerts(record)
        assert alerts, f"{stack}: no alert in the record"
        for rule in alerts:
            severity = rule["labels"]["severity"]
            base = {"alertname": rule["alert"], **rule["labels"]}
            # An automated action is recorded first and still reaches its usual receiver.
            audit = [RECORDER] if rule["labels"].get(AUDIT_LABEL[0]) == AUDIT_LABEL[1] else []
            recorded.update({rule["alert"]} if audit else set())
            expected = SEVERITY_RECEIVER.get(severity, TICKET)
            assert routed(amtool, config_file, base) == [*audit, expected], (stack, rule["alert"])
            for i, tenant in enumerate(tenants):
                for label in ("tenant", "namespace"):
                    got = routed(amtool, config_file, {**base, label: tenant})
                    want = [*audit, *([tenant_receiver(tenant)] if i == 0 else []), expected]
                    assert got == want, (stack, rule["alert"], label, tenant)
            checked += 1
    assert checked >= len(stack_records)
    # The three automated actions of issue 27: canary abort, retraining, GPU scaling.
    assert recorded == {"ModelAvailabilityFastBurn", "FeatureDrift", "GpuSaturated"}


def test_the_recorder_gets_only_labelled_alerts_with_its_token(amtool: str, tmp_path: Path) -> None:
    config = alertmanager_config(Receivers(), {}, "http://r.monitoring.svc:8080/alerts", "s3cret")
    result = check_config(amtool, config, tmp_path / "am.yml")
    assert result.returncode == 0 and "4 receivers" in result.stdout, result.stdout
    (hook,) = next(r for r in config["receivers"] if r["name"] == RECORDER)["webhook_configs"]
    assert hook["http_config"] == {"authorization": {"type": "Bearer", "credentials": "s3cret"}}
    assert hook["send_resolved"] is False
    name, value = AUDIT_LABEL
    labelled = {"alertname": "X", "severity": "warning", name: value}
    assert routed(amtool, tmp_path / "am.yml", labelled) == [RECORDER, TICKET]
    assert routed(amtool, tmp_path / "am.yml", {**labelled, name: "other"}) == [TICKET]
    assert routed(amtool, tmp_path / "am.yml", {"alertname": "X", "severity": "page"}) == [PAGE]
    assert not any(r["name"] == RECORDER for r in alertmanager_config(Receivers(), {})["receivers"])


def test_unknown_severity_goes_to_tickets(amtool: str, tmp_path: Path) -> None:
    config_file = tmp_path / "am.yml"
    config_file.write_text(render(Receivers(), {}))
    assert routed(amtool, config_file, {"alertname": "X", "severity": "critical"}) == [TICKET]
    assert routed(amtool, config_file, {"alertname": "X", "severity": "info"}) == [NULL]
    assert routed(amtool, config_file, {"alertname": "X", "severity": "page"}) == [PAGE]


def fast(config: dict[str, Any]) -> dict[str, Any]:
    """The same config with group waits of a second, for tests that wait on notifications."""
    config = copy.deepcopy(config)
    config["route"].update(group_wait="1s", group_interval="1s")
    for route in config["route"]["routes"]:
        route.pop("group_wait", None)
    return config


def alert(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}, "annotations": {"runbook_url": "x"}}


def test_inhibition_on_a_running_alertmanager() -> None:
    posted = [
        alert("KubeAPIDown", severity="page"),
        alert("ModelErrorRateHigh", severity="page", model="credit-risk"),
        alert("GpuSaturated", severity="warning"),  # no model: not a serving child
        alert("FeatureDrift", severity="page", model="fraud"),
        alert("FeatureDrift", severity="warning", model="fraud", tenant="a"),
        alert("FeatureDrift", severity="warning", model="other"),
    ]
    with running_alertmanager(fast(alertmanager_config(Receivers(), {}))) as am:
        am.post_alerts(posted)
        inhibited: dict[tuple[str, str, str], bool] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = am.alerts()
            inhibited = {
                (a["labels"]["alertname"], a["labels"].get("model", ""), a["labels"]["severity"]): (
                    bool(a["status"]["inhibitedBy"])
                )
                for a in got
            }
            if len(got) == len(posted) and inhibited[("ModelErrorRateHigh", "credit-risk", "page")]:
                break
            time.sleep(0.5)
    assert inhibited == {
        ("KubeAPIDown", "", "page"): False,
        ("ModelErrorRateHigh", "credit-risk", "page"): True,  # cluster down
        ("GpuSaturated", "", "warning"): False,
        ("FeatureDrift", "fraud", "page"): True,  # cluster down too (a serving child)
        ("FeatureDrift", "fraud", "warning"): True,
        ("FeatureDrift", "other", "warning"): True,
    }, am.log_tail()


def test_a_page_inhibits_its_own_warning_only() -> None:
    posted = [
        alert("FeatureDrift", severity="page", model="fraud"),
        alert("FeatureDrift", severity="warning", model="fraud"),
        alert("FeatureDrift", severity="warning", model="other"),
    ]
    with running_alertmanager(fast(alertmanager_config(Receivers(), {}))) as am:
        am.post_alerts(posted)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = {
                (a["labels"]["model"], a["labels"]["severity"]): bool(a["status"]["inhibitedBy"])
                for a in am.alerts()
            }
            if got.get(("fraud", "warning")):
                break
            time.sleep(0.5)
    assert got == {
        ("fraud", "page"): False,
        ("fraud", "warning"): True,
        ("other", "warning"): False,
    }


RUNBOOK_URL = "https://runbooks.example.ae/E2EServingDown"


def test_prometheus_fires_alertmanager_routes_webhook_records(tmp_path: Path) -> None:
    """Fires at once. Prometheus drops what it sends before the reloaded config has found the
    Alertmanager (a 5 s discovery tick) and resends a firing alert only every minute by default:
    ``--rules.alert.resend-delay=1s`` makes the first send after discovery come a second later,
    instead of firing 12 s after start to wait discovery out."""
    rules = tmp_path / "rules.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "e2e",
                        "rules": [
                            {
                                "alert": "E2EServingDown",
                                "expr": "vector(1)",
                                "labels": {"severity": "page", "model": "credit-risk"},
                                "annotations": {"runbook_url": RUNBOOK_URL, "summary": "e2e"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    with WebhookRecorder() as hook:
        config = fast(alertmanager_config(Receivers(webhook_url=hook.url), {}))
        with running_alertmanager(config) as am:
            prom = start_prometheus([], rule_files=[rules], extra_args=[RESEND_EVERY_SECOND])
            try:
                alert_to(prom, am)
                prom.wait_until(
                    lambda: bool(hook.payloads), f"a webhook payload\n{am.log_tail()}", timeout_s=60
                )
            finally:
                stop_prometheus(prom)
    payload = hook.payloads[0]
    assert payload["receiver"] == PAGE and payload["status"] == "firing"
    (fired,) = payload["alerts"]
    assert fired["labels"]["alertname"] == "E2EServingDown"
    assert fired["labels"]["severity"] == "page" and fired["labels"]["model"] == "credit-risk"
    assert fired["annotations"]["runbook_url"] == RUNBOOK_URL


# --- config validation -------------------------------------------------------------------------

BASE = {
    "aws:region": "me-central-1",
    "environment": "dev",
    "owner": "t",
    "costCenter": "c",
    "tenants": ["risk-analytics"],
}


def problems(raw: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> list[str]:
    result = parse(
        {**BASE, **raw}, stack="t", source="stacks/Pulumi.t.yaml", secret_keys=secret_keys
    )
    return [] if not isinstance(result, list) else [str(p) for p in result]


@pytest.mark.parametrize(
    ("environment", "url", "ok"),
    [
        ("dev", "https://h.example/x", True),
        ("dev", "http://127.0.0.1:9/x", True),
        ("dev", "http://localhost:9/x", True),
        ("dev", "http://h.example/x", False),
        ("staging", "http://127.0.0.1:9/x", False),
        ("dev", "ftp://h.example/x", False),
    ],
)
def test_receiver_urls_must_be_https(environment: str, url: str, ok: bool) -> None:
    found = problems({"environment": environment, "alertWebhookUrl": url})
    assert (found == []) == ok, found
    if not ok:
        assert any("alertWebhookUrl" in p and "https://" in p for p in found), found


def test_tenant_webhook_must_name_a_tenant_and_be_https() -> None:
    found = problems({"alertTenantWebhooks": ["nobody=https://h.example/x"]})
    assert any("alertTenantWebhooks" in p and "naming one of tenants" in p for p in found)
    found = problems({"alertTenantWebhooks": ["risk-analytics=http://h.example/x"]})
    assert any("alertTenantWebhooks" in p and "https://" in p for p in found)


def test_prod_must_name_a_paging_receiver() -> None:
    prod = {"environment": "prod", "tenants": [], "azCount": 3}
    found = problems(prod)
    assert any(
        "stacks/Pulumi.t.yaml" in p and "alertPagerdutyRoutingKey" in p and "paging receiver" in p
        for p in found
    ), found
    found = problems({**prod, "alertOpsgenieApiKey": "[secret]"}, ("alertOpsgenieApiKey",))
    assert not any("paging receiver" in p for p in found), found


def test_a_plain_credential_is_refused_and_a_secret_one_accepted() -> None:
    found = problems({"alertPagerdutyRoutingKey": "R0UT1NGKEY"})
    assert any(
        "alertPagerdutyRoutingKey" in p and "pulumi config set --secret" in p for p in found
    ), found
    assert all("R0UT1NGKEY" not in p for p in found)
    assert problems({"alertPagerdutyRoutingKey": "[secret]"}, ("alertPagerdutyRoutingKey",)) == []
