"""Stack files that cannot say anything wrong: every defect of issue 19 refused, cleanly, the same
way by ``config validate``, ``synth`` and ``check``, naming the file, the key and the fix.

Pass and fail fixtures are whole stack files run through the ``sovml`` app in-process (typer's
CliRunner): a refused file exits 2 with no traceback; a file that cannot be read as a stack file
at all (binary, oversized, an alias bomb, ...) is refused in well under a second with bounded
memory. The tier rules, namespaces, duplicate keys, whole-value patterns and plain-text
credentials each have their own fixtures.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli.app import app
from infra.config.stackfile import StackFileError, load_stack
from infra.config.yamlfile import MAX_BYTES
from infra.tenants import TEMPLATES, TenantRequest, create_tenant

runner = CliRunner()
ENV = {"COLUMNS": "1000"}
"""Wide enough that no table cell wraps: one problem per line."""

WEBHOOK = "https://itsm.example.ae/alertmanager"
ISSUER = "https://login.example.ae/realms/ml"
"""The inference gateway's token issuer: a prod stack serving models must name one."""
ACCOUNT = "111122223333"
"""The AWS account of the fixture tenants (AWS's documentation account)."""
"""The paging receiver of the fixtures: a prod stack must name one (infra/config/alerting.py)."""

BASE = f"""\
config:
  aws:region: me-central-1
  sovereign-ml:owner: ml-platform
  sovereign-ml:costCenter: cc-4100-ml
  sovereign-ml:alertWebhookUrl: {WEBHOOK}
  sovereign-ml:gatewayOidcIssuer: {ISSUER}
  sovereign-ml:gatewayOidcJwksUri: {ISSUER}/certs
"""
"""A valid production stack: its paging receiver; every other key takes its default."""

SMB = BASE + """\
  sovereign-ml:tier: smb
  sovereign-ml:gpuPoolEnabled: false
  sovereign-ml:servedModels: [credit-risk:cpu]
  sovereign-ml:singleNatGateway: true
  sovereign-ml:monthlyBudgetUsd: 1500
  sovereign-ml:budgetAlertEmails: [ops@acme.example]
  sovereign-ml:tenant: acme
  sovereign-ml:tenants: [acme]
"""
"""A valid smb stack: what the tier's rules require."""

# Credentials in the shapes the patterns know (AWS's documentation keys, made-up tokens).
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJlLXBhcnQ"
VAULT_TOKEN = "hvs.CAESIB4xq2Tq0eJz8v9wLmNoPQRsTuVwXyZ0123"
PASSWORD = "Tr0ub4dor-horse-9"
ROUTING_KEY = "R0ut1ngK3yF0rPagerDuty0123456789"
"""A made-up PagerDuty routing key (32 characters)."""
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\\n"
)
"""A PEM block's start as a YAML double-quoted string writes it (``\\n`` escapes)."""


def with_lines(*lines: str, base: str = BASE) -> str:
    """``base`` with config lines appended (each indented under ``config:``)."""
    return base + "".join(f"  {line}\n" for line in lines)


def invoke(*args: str) -> Any:
    """The ``sovml`` app in-process, wide output."""
    return runner.invoke(app, list(args), env=ENV)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    """``folder/Pulumi.<name>.yaml`` with ``content``."""
    path = folder / f"Pulumi.{name}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def refused_cleanly(result: Any) -> str:
    """The output of a command that must have refused its input: exit 2, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.stderr


# --------------------------------------------------------------------------------------------
# Fail fixtures: the config is read, and every problem is listed (exit 2)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A stack file with problems: the key each problem names and a piece of its fix."""

    id: str
    text: str
    key: str
    fix: str


BAD: tuple[Bad, ...] = (
    # Tier rules (infra/config/tiers.py).
    Bad(
        "smb-gpu-pool",
        SMB.replace("gpuPoolEnabled: false", "gpuPoolEnabled: true")
        + "  sovereign-ml:gpuPoolInstanceTypes: [p5.48xlarge]\n"
        + "  sovereign-ml:gpuPoolMinSize: 2\n  sovereign-ml:gpuPoolDesiredSize: 2\n"
        + "  sovereign-ml:gpuPoolMaxSize: 8\n",
        "sovereign-ml:gpuPoolEnabled",
        "false for the smb tier (CPU only; use tier enterprise for GPUs)",
    ),
    Bad(
        "smb-gpu-by-default",  # gpuPoolEnabled defaults to true: an smb stack must say false
        SMB.replace("  sovereign-ml:gpuPoolEnabled: false\n", ""),
        "sovereign-ml:gpuPoolEnabled",
        "false for the smb tier",
    ),
    Bad(
        "smb-gpu-model",
        SMB.replace("credit-risk:cpu", "credit-risk:gpu"),
        "sovereign-ml:servedModels",
        "'name:cpu' for the smb tier",
    ),
    Bad(
        "smb-no-budget",
        SMB.replace("monthlyBudgetUsd: 1500", "monthlyBudgetUsd: 0"),
        "sovereign-ml:monthlyBudgetUsd",
        "above 0 for the smb tier",
    ),
    Bad(
        "smb-foreign-tenant",
        SMB.replace("tenants: [acme]", "tenants: [other]"),
        "sovereign-ml:tenant",
        "the smb stack's own tenant, one of tenants",
    ),
    # Namespaces and keys (infra/config/namespaces.py).
    Bad(
        "ns-underscore",
        with_lines("sovereign_ml:dataClassification: public"),
        "sovereign_ml:dataClassification",
        "unknown namespace 'sovereign_ml'",
    ),
    Bad(
        "ns-underscore-hint",
        with_lines("sovereign_ml:dataClassification: public"),
        "sovereign_ml:dataClassification",
        "did you mean sovereign-ml:dataClassification?",
    ),
    Bad(
        "ns-case",
        with_lines("Sovereign-ML:tier: smb"),
        "Sovereign-ML:tier",
        "did you mean sovereign-ml:tier?",
    ),
    Bad(
        "ns-no-dash",
        with_lines("sovereignml:owner: someone"),
        "sovereignml:owner",
        "did you mean sovereign-ml:owner?",
    ),
    Bad(
        "aws-typo", with_lines("aws:regoin: me-central-1"), "aws:regoin", "did you mean aws:region?"
    ),
    Bad("ns-unknown", with_lines("gcp:project: x"), "gcp:project", "unknown namespace 'gcp'"),
    Bad(
        "aws-redirect",
        with_lines("aws:allowedAccountIds: ['123456789012']"),
        "aws:allowedAccountIds",
        "use sovereign-ml:allowedAccountIds instead",
    ),
    Bad(
        "our-unknown-key",
        with_lines("sovereign-ml:gpuPoolMinSise: 1"),
        "sovereign-ml:gpuPoolMinSise",
        "did you mean sovereign-ml:gpuPoolMinSize?",
    ),
    # Duplicate keys, in every mapping (infra/config/yamlfile.py).
    Bad(
        "dup-downgrade",
        with_lines(
            "sovereign-ml:dataClassification: restricted", "sovereign-ml:dataClassification: public"
        ),
        "sovereign-ml:dataClassification",
        "line 9: a duplicate of the key on line 8 (YAML keeps only the last one); keep one",
    ),
    Bad(
        "dup-config",
        BASE + "config:\n  aws:region: me-central-1\n",
        "config",
        "line 8: a duplicate of the key on line 1",
    ),
    Bad(
        "dup-nested",
        with_lines("aws:profile: {a: 1, a: 2}"),
        "aws:profile.a",
        "a duplicate of the key on line 8",
    ),
    Bad(
        "dup-spellings",
        with_lines("owner: someone-else"),
        "sovereign-ml:owner",
        "sovereign-ml:owner and owner are the same key",
    ),
    Bad("merge-key", with_lines("<<: {sovereign-ml:vpcCidr: 10.9.0.0/16}"), "<<", "a merge key"),
    Bad("non-text-key", with_lines("1: one"), "1", "a key that is not text; quote it"),
    # Whole-value patterns (fullmatch): a trailing newline fails.
    Bad(
        "owner-newline",
        BASE.replace("ml-platform", '"team-a\\n"'),
        "sovereign-ml:owner",
        "1-128 characters",
    ),
    Bad(
        "cost-center-newline",
        BASE.replace("cc-4100-ml", '"cc-1\\n"'),
        "sovereign-ml:costCenter",
        "1-128 characters",
    ),
    Bad(
        "tenant-newline",
        with_lines('sovereign-ml:tenants: ["acme\\n"]'),
        "sovereign-ml:tenants",
        "3-30 characters",
    ),
    # Plain-text credentials.
    *(
        Bad(
            f"plain-{key.replace(':', '-')}",
            with_lines(f"{key}: {value}"),
            key,
            f"`pulumi config set --secret {key}`",
        )
        for key, value in (
            ("aws:secretKey", SECRET_KEY),
            ("aws:accessKey", ACCESS_KEY),
            ("aws:token", "FwoGZXIvYXdzEBYaDNotARealSessionToken"),
            ("vault:token", VAULT_TOKEN),
            ("kubernetes:kubeconfig", '"apiVersion: v1"'),
            ("sovereign-ml:dbPassword", PASSWORD),
        )
    ),
    Bad(
        "credential-value-owner",
        BASE.replace("cc-4100-ml", ACCESS_KEY),
        "sovereign-ml:costCenter",
        "looks like an AWS access key id",
    ),
    Bad(
        "credential-value-jwt",
        BASE.replace("ml-platform", JWT),
        "sovereign-ml:owner",
        "looks like a JSON Web Token",
    ),
    Bad(
        "credential-url",
        with_lines(f"sovereign-ml:vaultAddress: https://admin:{PASSWORD}@vault.example:8200"),
        "sovereign-ml:vaultAddress",
        "looks like a URL with a password",
    ),
    Bad(
        "credential-pem",
        with_lines(f'aws:profile: "{PEM}"'),
        "aws:profile",
        "looks like a PEM private key",
    ),
    Bad(
        "credential-unknown-key",
        with_lines(f"sovereign-ml:notes: {VAULT_TOKEN}"),
        "sovereign-ml:notes",
        "looks like a Vault token",
    ),
    # Empty values and secure values.
    Bad(
        "empty-zone",
        with_lines("sovereign-ml:residencyZone:"),
        "sovereign-ml:residencyZone",
        'the key is empty (YAML null): give one, or delete the line to take the default ("uae")',
    ),
    Bad(
        "secure-malformed",
        with_lines("aws:secretKey: {secure: v1:abc, extra: 1}"),
        "aws:secretKey",
        "a secure value is `secure: <ciphertext>` alone",
    ),
    Bad(
        "secure-on-our-key",
        with_lines("sovereign-ml:vaultAddress: {secure: v1:c2VjcmV0}"),
        "sovereign-ml:vaultAddress",
        "holds no secret",
    ),
    # Alert receivers and SLOs (infra/config/alerting.py, infra/config/slo.py).
    Bad(
        "prod-without-receiver",
        BASE.replace(f"  sovereign-ml:alertWebhookUrl: {WEBHOOK}\n", ""),
        "sovereign-ml:alertPagerdutyRoutingKey",
        "a paging receiver in prod: set alertPagerdutyRoutingKey or alertOpsgenieApiKey "
        "(`pulumi config set --secret`) or alertWebhookUrl",
    ),
    Bad(
        "webhook-http",
        BASE.replace(WEBHOOK, WEBHOOK.replace("https://", "http://")),
        "sovereign-ml:alertWebhookUrl",
        "an https:// URL (plain http only to a loopback host, in dev)",
    ),
    Bad(
        "routing-key-plain",
        with_lines(f"sovereign-ml:alertPagerdutyRoutingKey: {ROUTING_KEY}"),
        "sovereign-ml:alertPagerdutyRoutingKey",
        "`pulumi config set --secret sovereign-ml:alertPagerdutyRoutingKey`",
    ),
    Bad(
        "slo-below-range",
        with_lines('sovereign-ml:sloAvailabilityTarget: "0.9"'),
        "sovereign-ml:sloAvailabilityTarget",
        "a number from 0.94 to below 1 as text, e.g. 0.999",
    ),
    Bad(
        "slo-one",
        with_lines('sovereign-ml:sloLatencyObjective: "1.0"'),
        "sovereign-ml:sloLatencyObjective",
        "a number from 0.94 to below 1 as text",
    ),
    Bad(
        "slo-latency-zero",
        with_lines("sovereign-ml:sloLatencyTargetMs: 0"),
        "sovereign-ml:sloLatencyTargetMs",
        "an integer from 1 to 60000",
    ),
    # The document's top level.
    Bad(
        "top-typo",
        BASE + "secretprovider: passphrase\n",
        "secretprovider",
        "did you mean secretsprovider?",
    ),
    Bad(
        "top-esc",
        BASE + "environment:\n  - prod-secrets\n",
        "environment",
        "Pulumi ESC environments would give the program values the gate never saw",
    ),
)


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_stack_file_is_refused_naming_file_key_and_fix(tmp_path: Path, case: Bad) -> None:
    path = write(tmp_path, "bad", case.text)
    stderr = refused_cleanly(invoke("config", "validate", "bad", "--stacks-dir", str(tmp_path)))
    assert f"{path}: " in stderr, stderr
    rows = [line for line in stderr.splitlines() if f"│ {case.key} " in line]
    assert rows, f"no problem row for {case.key}:\n{stderr}"
    assert any(case.fix in row for row in rows), rows


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_validate_synth_and_check_agree_on_every_bad_file(tmp_path: Path, case: Bad) -> None:
    """One validation path: the same problems, from the same file, whichever command reads it."""
    write(tmp_path, "bad", case.text)
    where = ("--stacks-dir", str(tmp_path))
    outputs = [
        refused_cleanly(invoke(*command, "bad", *where))
        for command in (("config", "validate"), ("synth",), ("check", "--no-checkov"))
    ]
    tables = [sorted(line for line in out.splitlines() if line.startswith("│")) for out in outputs]
    assert tables[0] and tables[0] == tables[1] == tables[2]


# --------------------------------------------------------------------------------------------
# Files that are not stack files at all: one line, exit 2, fast, bounded memory
# --------------------------------------------------------------------------------------------


def alias_bomb(parent: str) -> str:
    """The "billion laughs": 9 levels of 9 aliases each (387 million strings when expanded)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return BASE + f"  {parent}:\n" + "".join(f"    {line}\n" for line in lines)


UNREADABLE: dict[str, tuple[str | bytes, str]] = {
    "binary": (b"config:\n  aws:region: me-central-1\0\n", "binary content (a NUL byte)"),
    "latin-1": (BASE.encode() + "  sovereign-ml:owner: Ren\xe9\n".encode("latin-1"), "not UTF-8"),
    "oversized": (BASE + "#" * MAX_BYTES + "\n", "more than the 256 KiB a stack file may have"),
    "243k-keys": (
        "config:\n" + "".join(f"  sovereign-ml:k{i}: v\n" for i in range(243_351)),
        "more than the 256 KiB",
    ),
    "many-keys": (
        "config:\n" + "".join(f"  k{i}: v\n" for i in range(2_000)),
        "2,000 config keys, more than the 500",
    ),
    "alias-bomb-aws": (alias_bomb("aws:profile"), "aliases expand to more than 20,000 nodes"),
    "alias-bomb-ours": (alias_bomb("sovereign-ml:tenants"), "aliases expand to more than"),
    "deep": (BASE + "  aws:profile: " + "[" * 60_000 + "]" * 60_000 + "\n", "nested deeper"),
    "many-nodes": (BASE + "  aws:profile: [" + ",".join(["1"] * 30_000) + "]\n", "YAML nodes"),
    "many-aliases": (
        BASE + "  aws:profile: [&x 1, " + ", ".join(["*x"] * 150) + "]\n",
        "more than 100 YAML aliases",
    ),
    "two-documents": (BASE + "---\n" + BASE, "more than one YAML document"),
    "not-a-mapping": ("- config\n", "expected a mapping with a 'config:' mapping"),
    "config-a-list": ("config:\n  - aws:region\n", "'config:' must be a mapping"),
    "syntax": (BASE + "  aws:profile: [unclosed\n", "not valid YAML at line"),
    "bad-date": (BASE + "  aws:profile: 2001-13-45\n", "a value YAML cannot read"),
    "huge-int": (BASE + "  aws:profile: " + "9" * 5_000 + "\n", "a value YAML cannot read"),
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_file_is_refused_fast_in_one_line(tmp_path: Path, name: str) -> None:
    content, message = UNREADABLE[name]
    path = write(tmp_path, "x", content)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(StackFileError) as caught:
        load_stack("x", tmp_path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert message in str(caught.value) and str(caught.value).startswith(f"{path}: ")
    assert not caught.value.problems
    assert seconds < 1.0, f"{name}: {seconds:.2f}s"
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MiB"
    started = time.perf_counter()
    stderr = refused_cleanly(invoke("config", "validate", "x", "--stacks-dir", str(tmp_path)))
    assert time.perf_counter() - started < 1.0
    assert stderr.startswith(f"error: {path}: ") and message in stderr
    assert len(stderr) < 400, "one line"


def test_yaml_errors_never_quote_the_file(tmp_path: Path) -> None:
    """PyYAML quotes the offending line; a secret on it must not reach the terminal."""
    cases = {
        "syntax": f"config:\n  aws:secretKey: {SECRET_KEY}: {ACCESS_KEY}\n",
        "alias": f"config:\n  aws:profile: *{ACCESS_KEY}\n",
        "tag": f"config:\n  aws:profile: !{ACCESS_KEY} x\n",
    }
    for name, text in cases.items():
        write(tmp_path, name, text)
        stderr = refused_cleanly(invoke("config", "validate", name, "--stacks-dir", str(tmp_path)))
        assert "not valid YAML" in stderr or "cannot read" in stderr, stderr
        assert ACCESS_KEY not in stderr and SECRET_KEY not in stderr, stderr


def test_stack_names_are_names(tmp_path: Path) -> None:
    for bad in ("../stacks/Pulumi.dev", "a/b", ".hidden", "dev\n", "x" * 101):
        for command in (("config", "validate"), ("synth",), ("check", "--no-checkov")):
            stderr = refused_cleanly(invoke(*command, bad, "--stacks-dir", str(tmp_path)))
            assert "stack name" in stderr and "letters, digits" in stderr


# --------------------------------------------------------------------------------------------
# Pass fixtures: what a stack file may say
# --------------------------------------------------------------------------------------------

GOOD: dict[str, str | bytes] = {
    "base": BASE,
    "smb": SMB,
    "secure-credentials": with_lines(
        *(
            f"{key}: {{secure: v1:AAABAKmF4Jg3Ve4bT+0xZ8lA==}}"
            for key in ("aws:accessKey", "aws:secretKey", "aws:token", "vault:token")
        ),
        "kubernetes:kubeconfig:\n    secure: v1:AAABAGn8kT0=",
    ),
    "provider-settings": with_lines("aws:profile: ml-platform-prod", "kubernetes:context: prod"),
    "pulumi-secrets-keys": BASE + "encryptionsalt: v1:2Vd1y+HF6SM=:v1:o8bT3zqR+ZUA:IoeVbQ==\n"
    "secretsprovider: passphrase\n",
    "bom": b"\xef\xbb\xbf" + BASE.encode(),
    "anchors": with_lines("sovereign-ml:tenants: [&t risk-analytics]", "sovereign-ml:tenant: *t"),
    "unicode-owner": with_lines("sovereign-ml:owner: فريق-المنصة").replace(
        "  sovereign-ml:owner: ml-platform\n", ""
    ),
    "comment-mentions-password": "# the password lives in Vault, never here\n" + BASE,
    "digest-image": with_lines(
        "sovereign-ml:modelPullerImage: ghcr.io/sovereign-ml/model-puller:0.1.0@sha256:"
        + "0123456789abcdef" * 4
    ),
    "quoted-numbers": with_lines('sovereign-ml:azCount: "3"', "sovereign-ml:canarySteps: [5, 100]"),
    "pagerduty-secure": BASE.replace(
        f"sovereign-ml:alertWebhookUrl: {WEBHOOK}",
        "sovereign-ml:alertPagerdutyRoutingKey: {secure: v1:AAABAKmF4Jg3Ve4bT+0xZ8lA==}",
    ),
    "opsgenie-secure": BASE.replace(
        f"sovereign-ml:alertWebhookUrl: {WEBHOOK}",
        "sovereign-ml:alertOpsgenieApiKey:\n    secure: v1:AAABAGn8kT0=",
    ),
    "slo-targets": with_lines(
        'sovereign-ml:sloAvailabilityTarget: "0.995"',
        'sovereign-ml:sloLatencyObjective: "0.94"',
        'sovereign-ml:sloFeatureServerTarget: "0.999999"',
        "sovereign-ml:sloLatencyTargetMs: 250",
        "sovereign-ml:runbookBaseUrl: https://git.example.ae/ml/sovereign-ml/-/blob/main/docs/runbooks",
    ),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_good_stack_file_is_accepted(tmp_path: Path, name: str) -> None:
    write(tmp_path, "good", GOOD[name])
    result = invoke("config", "validate", "good", "--stacks-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert ": valid (" in result.stdout


def test_secure_values_are_redacted_and_kept_as_secret_keys(tmp_path: Path) -> None:
    write(tmp_path, "good", GOOD["secure-credentials"])
    _cfg, raw, secret_keys = load_stack("good", tmp_path)
    assert secret_keys == {
        "aws:accessKey",
        "aws:secretKey",
        "aws:token",
        "vault:token",
        "kubernetes:kubeconfig",
    }
    assert all(raw[k] == "[secret]" for k in secret_keys)


def test_rendered_tenant_templates_pass_the_same_path(tmp_path: Path) -> None:
    for tier in TEMPLATES:
        request = TenantRequest(
            f"t-{tier}",
            template=tier,
            emails=("ops@acme.example",),
            alert_webhook=WEBHOOK,
            account_id=ACCOUNT,
            oidc_issuer=ISSUER,
            oidc_jwks_uri=f"{ISSUER}/certs",
        )
        created = create_tenant(request, tmp_path)
        result = invoke("config", "validate", f"t-{tier}", "--stacks-dir", str(tmp_path))
        assert result.exit_code == 0, result.output
        assert created.config.tier == tier


def test_a_plain_routing_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """The credential's text never reaches the terminal: only the key and the fix."""
    write(tmp_path, "bad", with_lines(f"sovereign-ml:alertPagerdutyRoutingKey: {ROUTING_KEY}"))
    stderr = refused_cleanly(invoke("config", "validate", "bad", "--stacks-dir", str(tmp_path)))
    assert "--secret sovereign-ml:alertPagerdutyRoutingKey" in stderr, stderr
    assert ROUTING_KEY not in stderr


def test_a_secure_routing_key_is_only_present_in_the_config(tmp_path: Path) -> None:
    """A ``secure:`` receiver key pages in prod; the config holds only that it is set."""
    write(tmp_path, "good", GOOD["pagerduty-secure"])
    cfg, raw, secret_keys = load_stack("good", tmp_path)
    assert secret_keys == {"sovereign-ml:alertPagerdutyRoutingKey"}
    assert raw["sovereign-ml:alertPagerdutyRoutingKey"] == "[secret]"
    assert cfg.alerting.pagerduty and not cfg.alerting.webhook_url and cfg.alerting.paging


def test_a_device_or_fifo_behind_a_stack_name_is_never_read(tmp_path: Path) -> None:
    """``Pulumi.z.yaml -> /dev/zero`` would be an endless read: refused before any byte."""
    import os

    (tmp_path / "Pulumi.zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "Pulumi.fifo.yaml")
    for stack in ("zero", "fifo"):
        for command in (("config", "validate"), ("synth",), ("check", "--no-checkov")):
            stderr = refused_cleanly(invoke(*command, stack, "--stacks-dir", str(tmp_path)))
            assert "not a regular file" in stderr
