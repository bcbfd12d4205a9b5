"""Stack config validation: pure functions, no Pulumi."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import config as cfgmod
from infra.config.stackfile import ROOT, list_stacks, read_stack_config
from policies.zones import ZONES, region_in_zone, zone_of_region

SOURCE = "stacks/Pulumi.test.yaml"
WEBHOOK = "https://itsm.example.ae/alertmanager"
ISSUER = "https://login.example.ae/realms/ml"
"""The inference gateway's token issuer: a prod stack serving models must name one."""
"""The paging receiver of the fixtures: a prod stack must name one (infra/config/alerting.py)."""
BASE: dict[str, Any] = {
    "aws:region": "me-central-1",
    "owner": "ml-platform",
    "costCenter": "cc-1",
    "alertWebhookUrl": WEBHOOK,
    "gatewayOidcIssuer": ISSUER,
    "gatewayOidcJwksUri": f"{ISSUER}/certs",
}


SMB: dict[str, Any] = {
    "tier": "smb",
    "gpuPoolEnabled": False,
    "servedModels": ["credit-risk:cpu"],
    "monthlyBudgetUsd": 500,
    "budgetAlertEmails": ["ops@acme.example"],
    "tenant": "acme",
    "tenants": ["acme"],
}
"""What the smb tier's rules require (infra/config/tiers.py), on top of ``BASE``."""


def parse(**overrides: Any) -> cfgmod.PlatformConfig | list[cfgmod.ConfigProblem]:
    return cfgmod.parse({**BASE, **overrides}, stack="test", source=SOURCE)


def problems(**overrides: Any) -> dict[str, cfgmod.ConfigProblem]:
    result = parse(**overrides)
    assert isinstance(result, list), "expected problems, got a valid config"
    return {p.key: p for p in result}


def test_minimal_stack_gets_production_defaults() -> None:
    cfg = parse()
    assert isinstance(cfg, cfgmod.PlatformConfig)
    assert cfg.production and cfg.zone == "uae" and cfg.region == "me-central-1"
    assert cfg.network.availability_zones == ("me-central-1a", "me-central-1b", "me-central-1c")
    assert [p.role for p in cfg.node_pools] == ["system", "workers", "gpu"]
    gpu = cfg.node_pools[2]
    assert gpu.gpu and gpu.taints == (cfgmod.Taint("nvidia.com/gpu", "true", "NoSchedule"),)
    assert gpu.taints[0].eks_effect == "NO_SCHEDULE"
    assert not cfg.cluster.endpoint_public_access


def test_the_three_problems_of_the_issue_are_all_reported_by_key() -> None:
    found = problems(**{"aws:region": "us-east-1", "gpuPoolTaints": [], "gpuPoolMinSize": -1})
    assert set(found) == {
        "aws:region",
        "sovereign-ml:gpuPoolTaints",
        "sovereign-ml:gpuPoolMinSize",
    }
    assert str(found["aws:region"]) == (
        f"{SOURCE}: aws:region = \"us-east-1\": a region inside residency zone 'uae': "
        "me-central-1"
    )
    assert found["sovereign-ml:gpuPoolMinSize"].allowed == "an integer from 0 to 1000"
    assert "nvidia.com/gpu=true:NoSchedule" in found["sovereign-ml:gpuPoolTaints"].allowed


def test_region_of_another_zone_names_that_zone() -> None:
    found = problems(**{"aws:region": "eu-west-1"})
    assert "(it belongs to zone eu)" in found["aws:region"].allowed


@pytest.mark.parametrize(
    ("overrides", "key", "allowed_part"),
    [
        ({"environment": "qa"}, "sovereign-ml:environment", "one of dev, staging, prod"),
        ({"residencyZone": "mars"}, "sovereign-ml:residencyZone", "one of uae"),
        ({"tier": "gold"}, "sovereign-ml:tier", "enterprise, smb"),
        ({"owner": None}, "sovereign-ml:owner", "required"),
        ({"dataClassification": "secret"}, "sovereign-ml:dataClassification", "restricted"),
        ({"vpcCidr": "8.8.0.0/16"}, "sovereign-ml:vpcCidr", "private IPv4"),
        ({"vpcCidr": "10.0.0.0/24"}, "sovereign-ml:vpcCidr", "/16 to /20"),
        ({"azCount": 2}, "sovereign-ml:azCount", "3 in prod"),
        ({"azCount": 7}, "sovereign-ml:azCount", "from 2 to 3"),
        ({"singleNatGateway": True}, "sovereign-ml:singleNatGateway", "false in prod"),
        ({"logRetentionDays": 100}, "sovereign-ml:logRetentionDays", "CloudWatch retention"),
        ({"logRetentionDays": 90}, "sovereign-ml:logRetentionDays", ">= 365 in prod"),
        ({"kubernetesVersion": "1.20"}, "sovereign-ml:kubernetesVersion", "1.33"),
        ({"endpointPublicAccess": True}, "sovereign-ml:endpointPublicAccess", "outside dev"),
        ({"systemPoolCapacityType": "SPOT"}, "sovereign-ml:systemPoolCapacityType", "ON_DEMAND"),
        ({"systemPoolMinSize": 1}, "sovereign-ml:systemPoolMinSize", ">= 2"),
        ({"gpuPoolInstanceTypes": ["m7i.large"]}, "sovereign-ml:gpuPoolInstanceTypes", "GPU"),
        (
            {"workersPoolInstanceTypes": ["g5.xlarge"]},
            "sovereign-ml:workersPoolInstanceTypes",
            "CPU",
        ),
        ({"workersPoolDesiredSize": 20}, "sovereign-ml:workersPoolDesiredSize", "between"),
        ({"gpuPoolLabels": ["no-equals"]}, "sovereign-ml:gpuPoolLabels", "key=value"),
        ({"gpuPoolTaints": ["a=b:Sometimes"]}, "sovereign-ml:gpuPoolTaints", "Effect"),
        ({"tenants": ["Bad_Name"]}, "sovereign-ml:tenants", "lower-case"),
        ({"tenants": ["kubeflow"]}, "sovereign-ml:tenants", "reserved"),
        ({"tenants": ["acme", "acme"]}, "sovereign-ml:tenants", "unique"),
        ({"kmsDeletionWindowDays": 7}, "sovereign-ml:kmsDeletionWindowDays", "30 in prod"),
        ({"nodePools": []}, "sovereign-ml:nodePools", "unknown key"),
        ({"servedModels": ["m:tpu"]}, "sovereign-ml:servedModels", "gpu or cpu"),
        ({"gpuPoolEnabled": False}, "sovereign-ml:servedModels", "needs gpuPoolEnabled"),
        ({"canarySteps": [50, 25, 100]}, "sovereign-ml:canarySteps", "increasing"),
        ({"canarySteps": [5, 50]}, "sovereign-ml:canarySteps", "ending at 100"),
        ({"servingIdleMinutes": 2}, "sovereign-ml:servingIdleMinutes", "from 5 to 1440"),
        ({"servingIdleMinutes": "soon"}, "sovereign-ml:servingIdleMinutes", "an integer"),
        ({"servingScaleToZero": "yes"}, "sovereign-ml:servingScaleToZero", "true or false"),
        ({"servingWarmHours": "weekdays"}, "sovereign-ml:servingWarmHours", "HH:MM-HH:MM"),
        ({"servingWarmHours": "Mon-Fri 18:00-08:00"}, "sovereign-ml:servingWarmHours", "start"),
        ({"servingWarmHours": "Fri-Mon 08:00-18:00"}, "sovereign-ml:servingWarmHours", "Sun..Sat"),
        (
            {"servingScaleToZero": True, "servedModels": []},
            "sovereign-ml:servingScaleToZero",
            "servedModels is empty",
        ),
        ({"tenants": ["keda"]}, "sovereign-ml:tenants", "reserved"),
        ({"modelPullerImage": "repo/puller"}, "sovereign-ml:modelPullerImage", "pinned tag"),
        ({"modelPullerImage": "repo/p:latest"}, "sovereign-ml:modelPullerImage", "not latest"),
        (
            {"gpuPoolMinSise": 1},
            "sovereign-ml:gpuPoolMinSise",
            "did you mean sovereign-ml:gpuPoolMinSize",
        ),
    ],
)
def test_each_rule_names_key_and_allowed(overrides: dict, key: str, allowed_part: str) -> None:
    result = parse(**overrides)
    assert isinstance(result, list), "expected problems, got a valid config"
    mine = [p for p in result if p.key == key]
    assert mine, f"{key} not reported; got {sorted(p.key for p in result)}"
    assert any(allowed_part in p.allowed for p in mine), [p.allowed for p in mine]
    assert all(p.source == SOURCE for p in mine)


def test_dev_may_open_the_endpoint_to_listed_cidrs_only() -> None:
    dev = {"environment": "dev", "endpointPublicAccess": True}
    assert "sovereign-ml:publicAccessCidrs" in problems(**dev)
    assert "sovereign-ml:publicAccessCidrs" in problems(**dev, publicAccessCidrs=["0.0.0.0/0"])
    cfg = parse(**dev, publicAccessCidrs=["203.0.113.0/24"])
    assert isinstance(cfg, cfgmod.PlatformConfig)
    assert cfg.cluster.public_access_cidrs == ("203.0.113.0/24",)


def test_engine_strings_parse_like_native_values() -> None:
    # The Pulumi engine hands every value to the program as a string, arrays as JSON.
    native = parse(azCount=3, tenants=["acme"], singleNatGateway=False)
    strings = parse(azCount="3", tenants='["acme"]', singleNatGateway="false")
    assert native == strings


def test_production_posture_is_the_default() -> None:
    defaults = {k.name: k.default for k in cfgmod.KEYS if k.default is not cfgmod.REQUIRED}
    assert defaults["environment"] == "prod"
    assert defaults["endpointPublicAccess"] is False
    assert defaults["singleNatGateway"] is False
    assert defaults["servingScaleToZero"] is False, "scale to zero is opted into, never forced"


def test_scale_to_zero_is_off_unless_asked_and_allowed_in_every_tier() -> None:
    cfg = parse()
    assert isinstance(cfg, cfgmod.PlatformConfig)
    assert (cfg.serving_scale_to_zero, cfg.serving_idle_minutes) == (False, 15)
    for tier in ({"tier": "enterprise"}, SMB):
        on = parse(**tier, servingScaleToZero=True, servingIdleMinutes=30)
        assert isinstance(on, cfgmod.PlatformConfig), on
        assert (on.serving_scale_to_zero, on.serving_idle_minutes) == (True, 30)
    # As the engine hands them over: strings.
    assert parse(servingScaleToZero="true", servingIdleMinutes="30") == parse(
        servingScaleToZero=True, servingIdleMinutes=30
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon-Fri 08:00-18:00", ("0 8 * * 1-5", "0 18 * * 1-5")),
        ("Sun-Thu 07:30-19:05", ("30 7 * * 0-4", "5 19 * * 0-4")),
        ("Sat 10:00-12:00", ("0 10 * * 6", "0 12 * * 6")),
        ("Mon-Fri 8:00-18:00", None),
        ("Mon-Fri 08:00-08:00", None),
        ("Fri-Mon 08:00-18:00", None),
        ("Mon-Fri 08:00-24:00", None),
    ],
)
def test_warm_hours_become_cron_expressions(text: str, expected: tuple[str, str] | None) -> None:
    assert cfgmod.warm_hours_cron(text) == expected


def test_idle_window_problem_names_stack_key_value_and_range() -> None:
    found = problems(servingIdleMinutes=2)
    assert str(found["sovereign-ml:servingIdleMinutes"]) == (
        f"{SOURCE}: sovereign-ml:servingIdleMinutes = 2: an integer from 5 to 1440"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([k.name for k in cfgmod.KEYS] + ["aws:region", "junk"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(10**15), 10**15),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=30),
            st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=4),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
        ),
    )
)
def test_random_values_never_raise(raw: dict[str, Any]) -> None:
    result = cfgmod.parse({**BASE, **raw}, stack="fuzz", source=SOURCE)
    assert isinstance(result, (cfgmod.PlatformConfig, list))
    if isinstance(result, list):
        assert result and all(p.source == SOURCE and p.key for p in result)


def test_pulumi_yaml_declares_every_key_with_type_and_description() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == cfgmod.PROJECT
    assert project["main"] == "infra/" and project["stackConfigDir"] == "stacks"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert (
        project["config"] == cfgmod.project_config_schema()
    ), "Pulumi.yaml is stale: run `sovml config schema --write`"
    for name, decl in project["config"].items():
        assert decl["type"] in ("string", "integer", "boolean", "array"), name
        assert decl["description"], name
        if decl["type"] == "array":
            assert decl["items"]["type"] in ("string", "integer")


@pytest.mark.parametrize("stack", list_stacks())
def test_every_stack_file_is_valid(stack: str) -> None:
    raw, _ = read_stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    result = cfgmod.parse(raw, stack=stack, source=stack)
    assert isinstance(result, cfgmod.PlatformConfig), [str(p) for p in result]


def test_residency_zones_are_consistent() -> None:
    for zone in ZONES.values():
        assert zone.regions, zone.name
        for region in zone.regions:
            assert len(region.availability_zones) >= 2
            assert zone_of_region(region.name) is zone
            assert region_in_zone(region.name, zone.name)
    assert not region_in_zone("us-east-1", "uae")
    assert not region_in_zone("me-central-1", "nowhere")


def test_fixture_stack_is_rejected(tmp_path: Path) -> None:
    raw, _ = read_stack_config(Path(__file__).parent / "fixtures/stacks/Pulumi.bad-residency.yaml")
    result = cfgmod.parse(raw, stack="bad-residency", source="bad")
    assert isinstance(result, list) and len(result) == 3


def test_single_nat_is_allowed_in_prod_for_the_smb_tier_only() -> None:
    smb = parse(**SMB, singleNatGateway=True)
    assert isinstance(smb, cfgmod.PlatformConfig) and smb.network.single_nat_gateway
    assert "sovereign-ml:singleNatGateway" in problems(singleNatGateway=True)


# --------------------------------------------------------------------------------------------
# Alert receivers and SLO targets (infra/config/alerting.py, infra/config/slo.py)
# --------------------------------------------------------------------------------------------

PAGER = "sovereign-ml:alertPagerdutyRoutingKey"


def test_prod_without_a_paging_receiver_is_refused_naming_file_and_key() -> None:
    found = problems(alertWebhookUrl="")
    assert set(found) == {PAGER}
    assert str(found[PAGER]) == (
        f"{SOURCE}: {PAGER} = (missing): a paging receiver in prod: set alertPagerdutyRoutingKey "
        "or alertOpsgenieApiKey (`pulumi config set --secret`) or alertWebhookUrl"
    )


def test_dev_and_staging_need_no_paging_receiver() -> None:
    for environment in ("dev", "staging"):
        cfg = parse(environment=environment, alertWebhookUrl="")
        assert isinstance(cfg, cfgmod.PlatformConfig), cfg
        assert not cfg.alerting.paging


@pytest.mark.parametrize(
    "url",
    [
        "http://itsm.example.ae/alertmanager",
        "http://127.0.0.1:9000/hook",  # loopback http is for dev only
        "https://user:pw@itsm.example.ae/hook",
        "ftp://itsm.example.ae/hook",
    ],
)
def test_a_receiver_url_must_be_https(url: str) -> None:
    found = problems(alertWebhookUrl=url)
    assert "sovereign-ml:alertWebhookUrl" in found, found
    assert "an https:// URL" in found["sovereign-ml:alertWebhookUrl"].allowed
    assert found["sovereign-ml:alertWebhookUrl"].source == SOURCE


def test_dev_may_use_plain_http_to_a_loopback_receiver() -> None:
    cfg = parse(environment="dev", alertWebhookUrl="http://127.0.0.1:9000/hook")
    assert isinstance(cfg, cfgmod.PlatformConfig), cfg
    assert cfg.alerting.webhook_url == "http://127.0.0.1:9000/hook"


def test_a_plain_routing_key_is_refused_with_the_secret_hint() -> None:
    found = problems(alertWebhookUrl="", alertPagerdutyRoutingKey="R0ut1ngK3yF0rPagerDuty01234567")
    assert set(found) == {PAGER}, found
    assert f"`pulumi config set --secret {PAGER}`" in found[PAGER].allowed
    assert "R0ut1ngK3y" not in str(found[PAGER]), "a credential is never echoed"


@pytest.mark.parametrize("key", ["alertPagerdutyRoutingKey", "alertOpsgenieApiKey"])
def test_a_secure_routing_key_pages_and_only_its_presence_is_kept(key: str) -> None:
    raw = {**BASE, "alertWebhookUrl": "", key: "[secret]"}
    cfg = cfgmod.parse(raw, stack="test", source=SOURCE, secret_keys=[key])
    assert isinstance(cfg, cfgmod.PlatformConfig), cfg
    assert cfg.alerting.paging and not cfg.alerting.webhook_url
    assert (cfg.alerting.pagerduty, cfg.alerting.opsgenie) == (
        key == "alertPagerdutyRoutingKey",
        key == "alertOpsgenieApiKey",
    )


def test_a_webhook_receiver_is_kept_in_the_config() -> None:
    cfg = parse()
    assert isinstance(cfg, cfgmod.PlatformConfig), cfg
    assert cfg.alerting.webhook_url == WEBHOOK and cfg.alerting.paging


@pytest.mark.parametrize(
    ("key", "value", "allowed_part"),
    [
        ("sloAvailabilityTarget", "0.9", "a number from 0.94 to below 1"),
        ("sloAvailabilityTarget", "1", "a number from 0.94 to below 1"),
        ("sloAvailabilityTarget", "99.9", "a number from 0.94 to below 1"),
        ("sloLatencyObjective", "0.93999", "a number from 0.94 to below 1"),
        ("sloFeatureServerTarget", "0.9999999", "a number from 0.94 to below 1"),
        ("sloPipelineSuccessTarget", "0.8", "a number from 0.84 to below 1"),
        ("sloPipelineSuccessTarget", "0.95 ", "a number from 0.84 to below 1"),
        ("sloLatencyTargetMs", 0, "an integer from 1 to 60000"),
        ("sloLatencyTargetMs", 60_001, "an integer from 1 to 60000"),
        ("runbookBaseUrl", "http://wiki.example.ae/runbooks", "an https:// URL"),
    ],
)
def test_slo_targets_out_of_range_are_refused(key: str, value: Any, allowed_part: str) -> None:
    found = problems(**{key: value})
    assert set(found) == {f"sovereign-ml:{key}"}, found
    assert allowed_part in found[f"sovereign-ml:{key}"].allowed


def test_valid_slo_targets_are_read_as_numbers() -> None:
    cfg = parse(
        sloAvailabilityTarget="0.94",
        sloLatencyObjective="0.995",
        sloFeatureServerTarget="0.999999",
        sloPipelineSuccessTarget="0.9",  # below 0.94: the pipeline's page burns at 6x, not 14.4x
        sloLatencyTargetMs="250",  # as the engine hands it over
        runbookBaseUrl="https://git.example.ae/ml/docs/runbooks",
    )
    assert isinstance(cfg, cfgmod.PlatformConfig), cfg
    assert (cfg.slo_availability_target, cfg.slo_latency_objective) == (0.94, 0.995)
    assert (cfg.slo_feature_server_target, cfg.slo_latency_target_ms) == (0.999999, 250)
    assert cfg.slo_pipeline_success_target == 0.9
    assert cfg.runbook_base_url == "https://git.example.ae/ml/docs/runbooks"
    defaults = parse()
    assert isinstance(defaults, cfgmod.PlatformConfig)
    assert (defaults.slo_availability_target, defaults.slo_latency_target_ms) == (0.999, 100)
    assert defaults.runbook_base_url == "docs/runbooks"


def test_credentials_are_not_declared_secret_in_pulumi_yaml() -> None:
    """Pulumi requires a ``secret: true`` key's value, default included, to be encrypted: every
    stack without PagerDuty would fail. Plain values are refused by our validation instead."""
    schema = cfgmod.project_config_schema()
    credentials = [k.name for k in cfgmod.KEYS if k.secret]
    assert credentials and all("secret" not in schema[name] for name in credentials)
    assert all("pulumi config set --secret" in schema[name]["description"] for name in credentials)
