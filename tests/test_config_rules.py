"""The stack-file rules as functions: tier rules on engine text, whole-value patterns, what counts
as a credential (and what must not), and the bare ``pulumi up`` path validating the stack file.

``tests/test_stack_files.py`` runs the same rules through the ``sovml`` commands on whole files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from infra import config as cfgmod
from infra.config import namespaces, redaction
from infra.config.yamlfile import MAX_BYTES
from infra.tenants import TEMPLATES, name_problems
from tests.test_stack_files import (
    ACCESS_KEY,
    ISSUER,
    JWT,
    PASSWORD,
    PEM,
    SECRET_KEY,
    VAULT_TOKEN,
    WEBHOOK,
    with_lines,
    write,
)

# --------------------------------------------------------------------------------------------
# The rules as functions
# --------------------------------------------------------------------------------------------

SMB_RAW = {
    "aws:region": "me-central-1",
    "owner": "o",
    "costCenter": "c",
    "tier": "smb",
    "gpuPoolEnabled": False,
    "servedModels": ["credit-risk:cpu"],
    "monthlyBudgetUsd": 100,
    "budgetAlertEmails": ["a@b.example"],
    "tenant": "acme",
    "tenants": ["acme"],
    "alertWebhookUrl": WEBHOOK,
    "gatewayOidcIssuer": ISSUER,
    "gatewayOidcJwksUri": f"{ISSUER}/certs",
}


def test_smb_rules_hold_for_engine_strings_too() -> None:
    """``pulumi up`` hands every value as text: the tier rules read it the same way."""
    native = cfgmod.parse(SMB_RAW, stack="s", source="s")
    assert isinstance(native, cfgmod.PlatformConfig), native
    as_text = {
        **SMB_RAW,
        "gpuPoolEnabled": "true",
        "servedModels": '["credit-risk:gpu"]',
        "monthlyBudgetUsd": "0",
        "tenants": '["other"]',
    }
    found = cfgmod.parse(as_text, stack="s", source="s")
    assert isinstance(found, list)
    assert {p.key.removeprefix("sovereign-ml:") for p in found} >= {
        "gpuPoolEnabled",
        "servedModels",
        "monthlyBudgetUsd",
        "tenant",
    }


def test_enterprise_has_no_tier_rules_beyond_production() -> None:
    raw = {
        "aws:region": "me-central-1",
        "owner": "o",
        "costCenter": "c",
        "tier": "enterprise",
        "alertWebhookUrl": WEBHOOK,
        "gatewayOidcIssuer": ISSUER,
        "gatewayOidcJwksUri": f"{ISSUER}/certs",
    }
    assert isinstance(cfgmod.parse(raw, stack="e", source="e"), cfgmod.PlatformConfig)


VALID_VALUES: dict[str, Any] = {
    "owner": "ml-platform",
    "costCenter": "cc-1",
    "environment": "prod",
    "residencyZone": "uae",
    "tier": "enterprise",
    "dataClassification": "internal",
    "vpcCidr": "10.40.0.0/16",
    "kubernetesVersion": "1.33",
    "tenant": "acme",
    "modelPullerImage": "ghcr.io/sovereign-ml/model-puller:0.1.0",
    "driftMonitorImage": "ghcr.io/sovereign-ml/drift-monitor:0.1.0",
    "driftThreshold": "0.2",
    "vaultAddress": "https://vault.example:8200",
    "servingWarmHours": "Mon-Fri 08:00-18:00",
    "azCount": "3",
    "systemPoolCapacityType": "ON_DEMAND",
    "alertWebhookUrl": WEBHOOK,
    "gatewayOidcIssuer": ISSUER,
    "gatewayOidcJwksUri": f"{ISSUER}/certs",
    "alertServicenowUrl": "https://acme.service-now.example/api/alertmanager",
    "alertEmailFrom": "alerts@acme.example",
    "sloAvailabilityTarget": "0.999",
    "runbookBaseUrl": "https://git.example.ae/ml/docs/runbooks",
}
"""A valid value per key; the same value ending in a newline must be refused."""
VALID_ITEMS: dict[str, str] = {
    "tenants": "acme",
    "servedModels": "credit-risk:gpu",
    "budgetAlertEmails": "ops@acme.example",
    "allowedAccountIds": "123456789012",
    "inZoneExternalResources": "arn:aws:s3:::logs-in-zone",
    "ingressAllowedCidrs": "203.0.113.0/24",
    "workersPoolInstanceTypes": "m7i.xlarge",
    "workersPoolLabels": "team=ml",
    "gpuPoolTaints": "nvidia.com/gpu=true:NoSchedule",
    "alertTenantWebhooks": "acme=https://alerts.acme.example/hook",
}
"""A valid list item per list key; the same item ending in a newline must be refused."""


@pytest.mark.parametrize("key", [*VALID_VALUES, *VALID_ITEMS])
@pytest.mark.parametrize("tail", ["\n", " ", "\r\n"])
def test_every_pattern_matches_the_whole_value(key: str, tail: str) -> None:
    base = {
        "aws:region": "me-central-1",
        "owner": "o",
        "costCenter": "c",
        "tenants": ["acme"],
        "alertWebhookUrl": WEBHOOK,
        "gatewayOidcIssuer": ISSUER,
        "gatewayOidcJwksUri": f"{ISSUER}/certs",
    }
    if key in VALID_VALUES:
        good, bad = {key: VALID_VALUES[key]}, {key: VALID_VALUES[key] + tail}
    else:
        good, bad = {key: [VALID_ITEMS[key]]}, {key: [VALID_ITEMS[key] + tail]}
    if key == "budgetAlertEmails":
        good["monthlyBudgetUsd"] = bad["monthlyBudgetUsd"] = 100
    assert isinstance(cfgmod.parse({**base, **good}, stack="p", source="p"), cfgmod.PlatformConfig)
    found = cfgmod.parse({**base, **bad}, stack="p", source="p")
    assert isinstance(found, list) and f"sovereign-ml:{key}" in {p.key for p in found}, found


def test_tenant_names_are_whole_matches() -> None:
    assert name_problems("acme") == []
    assert name_problems("acme\n") and "acme" in name_problems("acme\n")[0]
    assert name_problems(f"{'a' * 40}")


# --------------------------------------------------------------------------------------------
# Credentials: what counts as one, and what must not
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (ACCESS_KEY, "an AWS access key id"),
        ("ASIAY34FZKBOKMUTVV7A", "an AWS access key id"),
        (SECRET_KEY, "an AWS secret access key"),
        (f"key={SECRET_KEY}", "an AWS secret access key"),
        (PEM.replace("\\n", "\n"), "a PEM private key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "a PEM private key"),
        (JWT, "a JSON Web Token"),
        (VAULT_TOKEN, "a Vault token"),
        ("s.Xb3kQ9rT2mNpL8vW4yZ6aB1c", "a Vault token"),
        ("ghp_" + "aB3" * 12, "a GitHub token"),
        ("https://user:pa55@vault.example:8200", "a URL with a password"),
        ("redis://:pa55word@cache:6379", "a URL with a password"),
        ("Server=db;Password=hunter2;", "a password in a connection string"),
        (["ok", {"nested": ACCESS_KEY}], "an AWS access key id"),
    ],
)
def test_credential_patterns(value: Any, kind: str) -> None:
    assert redaction.credential_kind(value) == kind
    assert redaction.shown(value).startswith("<redacted, ")


def test_our_stack_files_templates_and_defaults_hold_no_credential_lookalike() -> None:
    from infra.config.stackfile import ROOT, read_stack_config

    values: list[Any] = [k.default for k in cfgmod.KEYS]
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        raw, _ = read_stack_config(path)
        values += list(raw.values())
    for template in TEMPLATES.values():
        values += list(template.fixed.values())
    values += [
        "ghcr.io/sovereign-ml/model-puller:0.1.0@sha256:" + "0123456789abcdef" * 4,
        "a" * 40,  # a hex digest: lower case only
        "0123456789abcdef0123456789abcdef01234567",
        "arn:aws:iam::123456789012:role/ml-platform-deployer",
        "https://127.0.0.1:8200",
        "ops@acme.example.ae",
        "Mon-Fri 08:00-18:00",
    ]
    assert [v for v in values if redaction.credential_kind(v)] == []
    # A key named like a credential is one: declared secret, so a plain value is refused.
    assert [k.name for k in cfgmod.KEYS if redaction.is_secret_name(k.name) and not k.secret] == []


def test_credential_patterns_cost_linear_time() -> None:
    """Adversarial values at the size bound: each inspected in well under a second."""
    for text in (
        "A" * MAX_BYTES,
        "eyJ" * 80_000,
        "x:" * 120_000,
        "http://" * 35_000,
        "a:b@" * 60_000,
    ):
        started = time.perf_counter()
        redaction.credential_kind(text)
        redaction.scrub(text)
        assert time.perf_counter() - started < 1.0, text[:10]


def test_scrub_keeps_the_message_readable() -> None:
    text = f"cannot reach https://bob:{PASSWORD}@vault.example:8200 with {ACCESS_KEY}"
    scrubbed = redaction.scrub(text)
    assert PASSWORD not in scrubbed and ACCESS_KEY not in scrubbed
    assert (
        scrubbed.startswith("cannot reach https://<redacted, ")
        and "@vault.example:8200" in scrubbed
    )


def test_every_foreign_credential_key_is_secret_named_or_listed() -> None:
    for key, foreign in namespaces.FOREIGN_KEYS.items():
        assert foreign.secret == redaction.is_secret_name(key), key


def test_a_bare_pulumi_up_validates_the_stack_file_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pulumi up`` runs the program bare: the stack file is refused before the engine's view."""
    import pulumi

    from infra.config import stackfile

    path = write(tmp_path, "up", with_lines(f"aws:secretKey: {SECRET_KEY}", "aws:regoin: x"))
    monkeypatch.setattr(pulumi, "get_stack", lambda: "up")
    monkeypatch.setattr(stackfile, "stack_file", lambda stack, stacks_dir=None: path)
    with pytest.raises(pulumi.RunError) as caught:
        stackfile.from_engine()
    message = str(caught.value)
    assert "aws:secretKey" in message and "pulumi config set --secret aws:secretKey" in message
    assert "did you mean aws:region?" in message and SECRET_KEY not in message
