"""Tenant stacks: rendered from the templates, validated before writing, passing the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra import config as cfgmod
from infra import tenants as tenantmod
from infra.cli.tenant import tenant_app
from infra.config.stackfile import ROOT, read_stack_config
from infra.gate.run import run_gate

runner = CliRunner()
EMAIL = "ops@acme.example.ae"
WEBHOOK = "https://itsm.example.ae/alertmanager"
ACCOUNT = "111122223333"
ISSUER = "https://login.acme.example.ae/realms/ml"
JWKS = f"{ISSUER}/protocol/openid-connect/certs"
OIDC = ["--oidc-issuer", ISSUER, "--oidc-jwks-uri", JWKS]
"""The inference gateway's issuer: a tenant stack is prod and must name one."""
"""The AWS account of the fixture tenants (AWS's documentation account)."""
"""The paging receiver every tenant stack (prod) must name."""


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_new_smb_tenant_is_valid_and_passes_the_gate(tmp_path: Path) -> None:
    stacks, build = tmp_path / "stacks", tmp_path / "build"
    stacks.mkdir()
    result = runner.invoke(
        tenant_app,
        [
            "new",
            "acme",
            "--template",
            "smb",
            "--email",
            EMAIL,
            "--alert-webhook",
            WEBHOOK,
            *OIDC,
            "--account-id",
            ACCOUNT,
            "--stacks-dir",
            stacks,
        ],
    )
    assert result.exit_code == 0, result.output
    path = stacks / "Pulumi.acme.yaml"
    assert f"created {path}" in result.output.replace("\n", "")
    assert "sovml check acme" in result.output
    assert "pulumi stack init acme && pulumi up -s acme" in result.output

    raw, _ = read_stack_config(path)
    cfg = cfgmod.parse(raw, stack="acme", source=str(path))
    assert isinstance(cfg, cfgmod.PlatformConfig), cfg
    assert (cfg.environment, cfg.tier) == ("prod", "smb")
    assert (cfg.zone, cfg.region) == ("uae", "me-central-1")
    assert (cfg.tenant, cfg.tenants) == ("acme", ("acme",))
    assert cfg.monthly_budget_usd == 1500 and cfg.budget_alert_emails == (EMAIL,)
    assert cfg.alerting.webhook_url == WEBHOOK and cfg.alerting.paging
    pools = {p.role: p for p in cfg.node_pools}
    assert set(pools) == {"system", "workers"}, "SMB is CPU only"
    assert pools["system"].capacity_type == "ON_DEMAND" and pools["system"].min_size == 2
    assert pools["workers"].capacity_type == "SPOT" and pools["workers"].min_size == 0
    # Production posture (3 AZs); the smb tier alone may share one NAT gateway.
    assert cfg.network.az_count == 3 and cfg.network.single_nat_gateway
    assert cfg.served_models == (("credit-risk", "cpu"),)
    assert cfg.serving_scale_to_zero, "SMB models idle to zero replicas"

    report = run_gate("acme", stacks_dir=stacks, build_dir=build, checkov=False)
    assert report.ok, [(f.id, f.resource, f.message) for f in report.failures] + report.errors
    assert (build / "acme" / "resources.json").is_file()
    assert "keda.sh/v1alpha1/ScaledObject" in report.schema_skipped  # a CRD, like the Rollout's

    resources = json.loads((build / "acme" / "resources.json").read_text())["resources"]
    kinds = [(r["type"].rsplit(":", 1)[-1], r["inputs"]) for r in resources if r["custom"]]
    (scaler,) = [i for k, i in kinds if k == "ScaledObject"]
    assert scaler["spec"]["scaleTargetRef"]["name"] == "triton-credit-risk"
    assert scaler["spec"]["minReplicaCount"] == 0
    # The wake path: the floor Mon-Fri 08:00-18:00, Dubai time.
    cron = next(t["metadata"] for t in scaler["spec"]["triggers"] if t["type"] == "cron")
    assert cron == {
        "timezone": "Asia/Dubai",
        "start": "0 8 * * 1-5",
        "end": "0 18 * * 1-5",
        "desiredReplicas": "1",
    }
    hpa_targets = [
        i["spec"]["scaleTargetRef"]["name"] for k, i in kinds if k.endswith("Autoscaler")
    ]
    assert "triton-credit-risk" not in hpa_targets, "KEDA owns the model's HPA"
    # On the zone's mirror, as every tenant stack is: the chart is an oci:// reference there.
    assert any(
        k == "Release"
        and i["chart"] == f"oci://{ACCOUNT}.dkr.ecr.me-central-1.amazonaws.com/charts/keda"
        for k, i in kinds
    )
    assert any(k == "Namespace" and i["metadata"]["name"] == "keda" for k, i in kinds)


def test_enterprise_template_renders_a_gpu_stack(tmp_path: Path) -> None:
    rendered = tenantmod.plan_tenant(
        tenantmod.TenantRequest(
            "bigco",
            template="enterprise",
            emails=(EMAIL,),
            alert_webhook=WEBHOOK,
            oidc_issuer=ISSUER,
            oidc_jwks_uri=JWKS,
            account_id=ACCOUNT,
        ),
        tmp_path,
    )
    roles = {p.role: p for p in rendered.config.node_pools}
    assert roles["gpu"].capacity_type == "ON_DEMAND" and roles["gpu"].min_size >= 1
    assert rendered.config.tier == "enterprise" and not rendered.config.network.single_nat_gateway
    assert not rendered.config.serving_scale_to_zero, "enterprise serving stays warm by default"
    assert list(tmp_path.iterdir()) == [], "planning writes nothing"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "Acme"], "tenant name 'Acme': 3-30 characters"),
        (["new", "ab"], "tenant name 'ab': 3-30 characters"),
        (["new", "acme-"], "tenant name 'acme-'"),
        (["new", "kube-system"], "tenant name 'kube-system' is a reserved namespace"),
        (["new", "acme", "--region", "eu-west-1"], "region 'eu-west-1' is outside residency zone"),
        (["new", "acme", "--region", "us-east-1"], "allowed: me-central-1"),
        (["new", "acme", "--zone", "mars"], "zone 'mars': one of uae, bahrain, ksa, eu"),
        (["new", "acme", "--template", "xl"], "template 'xl': one of smb, enterprise"),
        (["new", "acme", "--owner", "a#b"], "sovereign-ml:owner"),
        # Every pattern matches the whole value: a trailing newline is refused (issue 19).
        (["new", "acme", "--owner", "team-a\n"], 'sovereign-ml:owner = "team-a\\n"'),
        (["new", "acme", "--cost-center", "cc-1\n"], "sovereign-ml:costCenter"),
        (["new", "acme\n"], 'tenant name "acme\\n": 3-30 characters'),
        (["new", "acme", "--email", "ops@acme.example\n"], "sovereign-ml:budgetAlertEmails"),
        (["new", "acme", "--region", "me-central-1\n"], "is outside residency zone"),
        (["new", "acme", "--template", "smb", "--budget", "0"], "smb tier needs a monthly budget"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    before = listing(tmp_path)
    result = runner.invoke(
        tenant_app,
        [
            *args,
            "--email",
            EMAIL,
            "--alert-webhook",
            WEBHOOK,
            *OIDC,
            "--account-id",
            ACCOUNT,
            "--stacks-dir",
            tmp_path,
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "nothing was written" in result.output
    # A clean typer.Exit(2), not an exception escaping the command.
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        (None, "must page someone: give --alert-webhook https://URL"),
        ("", "must page someone: give --alert-webhook https://URL"),
        (
            "http://itsm.example.ae/alertmanager",
            'sovereign-ml:alertWebhookUrl = "http://itsm.example.ae/alertmanager": an https:// URL',
        ),
    ],
)
def test_the_paging_webhook_is_required_and_https(
    tmp_path: Path, webhook: str | None, message: str
) -> None:
    """A tenant stack is prod: without an https paging receiver it is refused, exit 2."""
    option = [] if webhook is None else ["--alert-webhook", webhook]
    account = ["--account-id", ACCOUNT, *OIDC]
    result = runner.invoke(
        tenant_app, ["new", "acme", "--email", EMAIL, *option, *account, "--stacks-dir", tmp_path]
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "nothing was written" in result.output and "Traceback" not in result.output
    assert listing(tmp_path) == {}


def test_stack_template_documents_the_webhook_placeholder() -> None:
    for name in tenantmod.TEMPLATES:
        text = (ROOT / "stacks" / "templates" / f"{name}.yaml").read_text()
        assert "--alert-webhook URL" in text and "#   ${ALERT_WEBHOOK}: Incident webhook" in text
        assert "  sovereign-ml:alertWebhookUrl: ${ALERT_WEBHOOK}\n" in text


def test_existing_stack_is_never_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / "Pulumi.acme.yaml"
    existing.write_text("config: {}\n")
    result = runner.invoke(
        tenant_app,
        [
            "new",
            "acme",
            "--email",
            EMAIL,
            "--alert-webhook",
            WEBHOOK,
            *OIDC,
            "--account-id",
            ACCOUNT,
            "--stacks-dir",
            tmp_path,
        ],
    )
    assert result.exit_code == 2
    assert "already exists; refusing to overwrite" in " ".join(result.output.split())
    assert existing.read_text() == "config: {}\n"
    # The repository's own stacks are refused the same way.
    with pytest.raises(tenantmod.TenantError, match="already exists"):
        tenantmod.plan_tenant(
            tenantmod.TenantRequest(
                "staging",
                emails=(EMAIL,),
                alert_webhook=WEBHOOK,
                oidc_issuer=ISSUER,
                oidc_jwks_uri=JWKS,
                account_id=ACCOUNT,
            )
        )


def test_budget_needs_an_address_unless_zero(tmp_path: Path) -> None:
    with pytest.raises(tenantmod.TenantError, match="needs at least one --email"):
        tenantmod.plan_tenant(
            tenantmod.TenantRequest(
                "acme",
                alert_webhook=WEBHOOK,
                oidc_issuer=ISSUER,
                oidc_jwks_uri=JWKS,
                account_id=ACCOUNT,
            ),
            tmp_path,
        )
    free = tenantmod.plan_tenant(
        tenantmod.TenantRequest(
            "acme",
            template="enterprise",
            budget_usd=0,
            alert_webhook=WEBHOOK,
            oidc_issuer=ISSUER,
            oidc_jwks_uri=JWKS,
            account_id=ACCOUNT,
        ),
        tmp_path,
    )
    assert free.config.monthly_budget_usd == 0
    # The smb tier's budget is a rule (infra/config/tiers.py), not only the template's default.
    with pytest.raises(tenantmod.TenantError, match="smb tier needs a monthly budget"):
        tenantmod.plan_tenant(
            tenantmod.TenantRequest(
                "acme",
                budget_usd=0,
                alert_webhook=WEBHOOK,
                oidc_issuer=ISSUER,
                oidc_jwks_uri=JWKS,
                account_id=ACCOUNT,
            ),
            tmp_path,
        )


def test_region_defaults_to_the_zone_default(tmp_path: Path) -> None:
    request = tenantmod.TenantRequest(
        "acme",
        zone="eu",
        emails=(EMAIL,),
        alert_webhook=WEBHOOK,
        oidc_issuer=ISSUER,
        oidc_jwks_uri=JWKS,
        account_id=ACCOUNT,
    )
    eu = tenantmod.plan_tenant(request, tmp_path)
    assert eu.config.region == "eu-central-1"
    other = tenantmod.plan_tenant(
        tenantmod.TenantRequest(
            "acme",
            zone="eu",
            region="eu-north-1",
            emails=(EMAIL,),
            alert_webhook=WEBHOOK,
            oidc_issuer=ISSUER,
            oidc_jwks_uri=JWKS,
            account_id=ACCOUNT,
        ),
        tmp_path,
    )
    assert other.config.region == "eu-north-1"


# --------------------------------------------------------------------------------------------
# The generated template files
# --------------------------------------------------------------------------------------------


def test_template_files_are_in_sync_with_the_definitions() -> None:
    stale = tenantmod.stale_template_files()
    assert not stale, f"run `sovml tenant templates --write`: {stale}"


HAND_VALUES = {
    "TENANT": "acme",
    "ZONE": "uae",
    "REGION": "me-central-1",
    "OWNER": "acme",
    "COST_CENTER": "tenant-acme",
    "BUDGET_USD": "1500",
    "ALERT_EMAIL": EMAIL,
    "ALERT_WEBHOOK": WEBHOOK,
    "OIDC_ISSUER": ISSUER,
    "OIDC_JWKS_URI": JWKS,
    "ACCOUNT_ID": ACCOUNT,
}
"""What a person fills into a stack-file template by hand."""


@pytest.mark.parametrize("name", list(tenantmod.TEMPLATES))
def test_stack_template_filled_by_hand_equals_sovml_tenant_new(tmp_path: Path, name: str) -> None:
    text = (ROOT / "stacks" / "templates" / f"{name}.yaml").read_text()
    filled = tenantmod.substitute(text, HAND_VALUES)
    rendered = tenantmod.plan_tenant(
        tenantmod.TenantRequest(
            "acme",
            template=name,
            budget_usd=1500,
            emails=(EMAIL,),
            alert_webhook=WEBHOOK,
            oidc_issuer=ISSUER,
            oidc_jwks_uri=JWKS,
            account_id=ACCOUNT,
        ),
        tmp_path,
    )
    assert yaml.safe_load(filled)["config"] == yaml.safe_load(rendered.text)["config"]


@pytest.mark.parametrize("name", list(tenantmod.TEMPLATES))
def test_pulumi_new_project_files(name: str) -> None:
    doc = yaml.safe_load((ROOT / "stacks" / "templates" / name / "Pulumi.yaml").read_text())
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    for key in ("name", "runtime", "main", "stackConfigDir"):
        assert doc[key] == project[key], key
    assert doc["config"] == project["config"], "the same typed config as the project"
    template = doc["template"]
    # Keys the Pulumi project schema allows in `template:` (additionalProperties is false).
    assert set(template) <= {"displayName", "description", "quickstart", "config", "important",
                             "metadata"}  # fmt: skip
    assert template["displayName"] and "sovml tenant new" in template["description"]
    prompts = template["config"]
    for key in (
        "sovereign-ml:tenant",
        "sovereign-ml:residencyZone",
        "aws:region",
        "sovereign-ml:owner",
        "sovereign-ml:costCenter",
        "sovereign-ml:monthlyBudgetUsd",
        "sovereign-ml:alertWebhookUrl",
    ):
        assert set(prompts[key]) == {"description", "default"}, key
    for key, entry in prompts.items():
        # The CLI reads template defaults as strings and stores prompt answers as strings, so no
        # array-typed key may be prompted (it would fail the project's type check).
        assert isinstance(entry["default"], str) and entry["description"], key
        bare = key.removeprefix("sovereign-ml:")
        if bare in cfgmod.KEYS_BY_NAME:
            assert cfgmod.KEYS_BY_NAME[bare].type != "array", key
    assert "budgetAlertEmails[0]" in template["quickstart"]
    assert "allowedAccountIds[0]" in template["quickstart"]
    # The prompts' defaults plus the quickstart's arrays make a valid stack of this tier.
    raw = {k: v["default"] for k, v in prompts.items()}
    raw["sovereign-ml:budgetAlertEmails"] = [EMAIL]
    raw["sovereign-ml:allowedAccountIds"] = [ACCOUNT]
    raw["sovereign-ml:tenants"] = [raw["sovereign-ml:tenant"]]
    for key, value in tenantmod.TEMPLATES[name].fixed.items():
        if isinstance(value, list):
            raw[key] = value
    cfg = cfgmod.parse(raw, stack="acme", source="pulumi new")
    assert isinstance(cfg, cfgmod.PlatformConfig), cfg
    assert cfg.tier == tenantmod.TEMPLATES[name].fixed["sovereign-ml:tier"]


@pytest.mark.parametrize("account", ["012345678901", "000000000001"])
def test_an_account_id_with_leading_zeros_stays_text(tmp_path: Path, account: str) -> None:
    """YAML would read a bare 012345678901 as a number and drop the zero: the tenant's mirror
    would then point at another account's registry."""
    rendered = tenantmod.plan_tenant(
        tenantmod.TenantRequest(
            "acme",
            emails=(EMAIL,),
            alert_webhook=WEBHOOK,
            oidc_issuer=ISSUER,
            oidc_jwks_uri=JWKS,
            account_id=account,
        ),
        tmp_path,
    )
    assert rendered.config.allowed_account_ids == (account,)
    text = (ROOT / "stacks" / "templates" / "smb.yaml").read_text()
    filled = yaml.safe_load(tenantmod.substitute(text, {**HAND_VALUES, "ACCOUNT_ID": account}))
    assert filled["config"]["sovereign-ml:allowedAccountIds"] == [account]


@pytest.mark.parametrize("account", ["12345", "abcdefghijkl", "1234567890123"])
def test_a_malformed_account_id_is_refused(tmp_path: Path, account: str) -> None:
    with pytest.raises(tenantmod.TenantError) as err:
        tenantmod.plan_tenant(
            tenantmod.TenantRequest(
                "acme",
                emails=(EMAIL,),
                alert_webhook=WEBHOOK,
                oidc_issuer=ISSUER,
                oidc_jwks_uri=JWKS,
                account_id=account,
            ),
            tmp_path,
        )
    assert "allowedAccountIds" in str(err.value.problems)
    assert listing(tmp_path) == {}
