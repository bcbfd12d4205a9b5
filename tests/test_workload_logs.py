"""Workload logs: the Fluent Bit component under mocks, its config text, and the gate on it."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from components.workload_logs import (
    DEFAULT_MASKED_FIELDS,
    WorkloadLogs,
    WorkloadLogsArgs,
    fluent_bit_config,
)
from infra.config.parsing import parse
from policies.rules import Context, Resource, evaluate
from policies.rules.logs import output_settings
from tests.component_mocks import ACCESS, KEY, children_named_after, of_type, record

HELM = "kubernetes:helm.sh/v3:Release"


def _logs(**kw: Any) -> WorkloadLogs:
    args: dict[str, Any] = {
        "name_prefix": "sovml-t",
        "region": "me-central-1",
        "logs_key_arn": KEY,
        "retention_days": 365,
        "cluster_access": ACCESS,
        "tenants": ["acme"],
        "protect": True,
    }
    return WorkloadLogs("logs", WorkloadLogsArgs(**{**args, **kw}))


def _sections(text: str) -> list[dict[str, list[str]]]:
    """Each ``[SECTION]`` of a classic-mode text as {key: [values]} (keys lower-cased)."""
    out: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        if line.strip().startswith("["):
            out.append({"@": [line.strip()]})
        elif line.strip():
            key, value = line.split(None, 1)
            out[-1].setdefault(key.lower(), []).append(value.strip())
    return out


def test_log_groups_are_encrypted_retained_and_protected() -> None:
    res = record(_logs)
    groups = of_type(res, "aws:cloudwatch/logGroup:LogGroup")
    assert sorted(g["inputs"]["name"] for g in groups) == [
        "/aws/eks/sovml-t/workloads/platform",
        "/aws/eks/sovml-t/workloads/tenants",
    ]
    for g in groups:
        assert g["inputs"]["kmsKeyId"] == KEY, g["urn"]
        assert g["inputs"]["retentionInDays"] == 365, g["urn"]
        assert g["protect"] is True, g["urn"]
    children_named_after(res, "sovereign-ml:workload_logs:WorkloadLogs", "logs")


def test_irsa_policy_writes_only_its_own_groups() -> None:
    res = record(_logs)
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    (stmt,) = json.loads(inline["inputs"]["policy"])["Statement"]
    assert stmt["Action"] == [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
    ]
    assert all("*" not in a for a in stmt["Action"])
    for arn in stmt["Resource"]:
        assert arn.startswith("arn:aws:logs:me-central-1:123456789012:log-group:/aws/eks/sovml-t/")
        assert arn.removesuffix(":*").count("*") == 0, arn
    (role,) = of_type(res, "aws:iam/role:Role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]["Condition"]
    (sub,) = [v for k, v in trust["StringEquals"].items() if k.endswith(":sub")]
    assert sub == "system:serviceaccount:kube-system:fluent-bit"


def test_release_ships_in_region_and_masks_every_configured_field() -> None:
    res = record(lambda: _logs(masked_fields=["password", "api_key"]))
    (release,) = of_type(res, HELM)
    inputs = release["inputs"]
    assert (inputs["chart"], inputs["version"], inputs["namespace"]) == (
        "fluent-bit",
        "0.40.0",
        "kube-system",
    )
    values = inputs["values"]
    assert values["daemonSetVolumeMounts"] == [
        {"name": "varlog", "mountPath": "/var/log", "readOnly": True}
    ]
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::123456789012:role/logs-irsa"
    )
    outputs = _sections(values["config"]["outputs"])
    assert [o["region"] for o in outputs] == [["me-central-1"], ["me-central-1"]]
    assert all("endpoint" not in o and "host" not in o for o in outputs)
    (modifier,) = [
        f for f in _sections(values["config"]["filters"]) if f["name"] == ["record_modifier"]
    ]
    assert modifier["remove_key"] == ["password", "api_key"]


@pytest.mark.parametrize("field", DEFAULT_MASKED_FIELDS)
def test_config_text_removes_each_default_field_after_the_kubernetes_merge(field: str) -> None:
    config = fluent_bit_config("me-central-1", "p", DEFAULT_MASKED_FIELDS, ["acme", "beta"])
    filters = _sections(config["filters"])
    names = [f["name"][0] for f in filters]
    # The merge must come first: only merged JSON fields are top-level keys Remove_key reaches.
    assert names == ["kubernetes", "record_modifier", "rewrite_tag"]
    assert filters[0]["merge_log"] == ["On"]
    assert field in filters[1]["remove_key"]
    assert filters[2]["rule"] == ["$kubernetes['namespace_name'] ^(acme|beta)$ tenants.$TAG false"]
    (tail,) = _sections(config["inputs"])
    assert tail["path"] == ["/var/log/containers/*.log"]
    assert tail["multiline.parser"] == ["cri"]


def test_no_tenants_no_rewrite_and_the_gate_reads_the_outputs() -> None:
    config = fluent_bit_config("me-central-1", "p", ["token"])
    assert "rewrite_tag" not in config["filters"]
    settings = list(output_settings(config["outputs"]))
    assert (1, "region", "me-central-1") in settings
    assert (2, "log_group_name", "/aws/eks/p/workloads/tenants") in settings


def test_component_refuses_a_field_name_with_spaces() -> None:
    with pytest.raises(ValueError, match=r"WorkloadLogsArgs.masked_fields: \['api key'\]"):
        _logs(masked_fields=["api key"])


def _violations(values: dict[str, Any], ns: str = "kube-system") -> list[str]:
    release = Resource(
        HELM,
        "logs-fluent-bit",
        {
            "name": "fluent-bit",
            "chart": "fluent-bit",
            "version": "0.40.0",
            "namespace": ns,
            "repositoryOpts": {"repo": "https://fluent.github.io/helm-charts"},
            "values": values,
        },
    )
    return [f"{v.rule_id} {v.message}" for v in evaluate([release], Context(zone="uae"))]


def test_the_components_own_release_passes_the_gate() -> None:
    res = record(_logs)
    (release,) = of_type(res, HELM)
    assert _violations(release["inputs"]["values"]) == []


def test_gate_refuses_an_out_of_zone_region_naming_path_value_and_fix() -> None:
    config = fluent_bit_config("eu-west-1", "p", ["token"])
    msgs = [m for m in _violations({"config": config}) if m.startswith("SOV-RES-005")]
    assert len(msgs) == 2, msgs  # the platform and the tenants output
    assert (
        "Helm release fluent-bit: values config.outputs [OUTPUT #1] region = 'eu-west-1'" in msgs[0]
    )
    assert "outside residency zone 'uae' (me-central-1): set it to me-central-1" in msgs[0]


def test_gate_refuses_a_custom_endpoint_outside_the_zone() -> None:
    outputs = fluent_bit_config("me-central-1", "p", [])["outputs"].replace(
        "auto_create_group Off\n",
        "auto_create_group Off\n    endpoint logs.us-east-1.amazonaws.com\n",
        1,
    )
    msgs = [m for m in _violations({"config": {"outputs": outputs}}) if m.startswith("SOV-RES-005")]
    assert len(msgs) == 1
    assert "[OUTPUT #1] endpoint = 'logs.us-east-1.amazonaws.com' is not an AWS endpoint" in msgs[0]


def test_config_key_defaults_and_refuses_bad_field_names() -> None:
    base = {
        "aws:region": "me-central-1",
        "owner": "ml-platform",
        "costCenter": "cc-1",
        "alertWebhookUrl": "https://itsm.example.ae/alertmanager",
    }
    cfg = parse(base, stack="test", source="Pulumi.test.yaml")
    assert not isinstance(cfg, list), cfg
    assert cfg.log_masked_fields == DEFAULT_MASKED_FIELDS
    problems = parse({**base, "logMaskedFields": ["ok", "bad field"]}, stack="dev", source="s")
    assert isinstance(problems, list)
    assert any("logMaskedFields" in str(p) and "bad field" in str(p) for p in problems)


@pytest.mark.skipif(shutil.which("fluent-bit") is None, reason="no fluent-bit binary here")
def test_fluent_bit_dry_run(tmp_path: Any) -> None:  # pragma: no cover - needs the binary
    import subprocess

    config = fluent_bit_config("me-central-1", "p", DEFAULT_MASKED_FIELDS, ["acme"])
    conf = tmp_path / "fluent-bit.conf"
    conf.write_text(config["inputs"] + "\n" + config["filters"] + "\n" + config["outputs"])
    done = subprocess.run(["fluent-bit", "-c", str(conf), "--dry-run"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
