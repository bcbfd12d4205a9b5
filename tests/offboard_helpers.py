"""Tenant stacks, their KMS keys in moto and the CLI call shared by the offboarding tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from infra import tenants as tenantmod
from infra.cli.app import app
from infra.config.stackfile import STACKS

REGION = "me-central-1"
PURPOSES = (
    "cluster",
    "image-signing",
    "logs",
    "pseudonymization",
    "registry",
    "storage",
    "vault",
    "volumes",
)
"""The KMS keys of every tenant stack (components/encryption.py, as infra/platform.py asks for
them, and the zone mirror's: components/registry_mirror.py), by name."""
ENV = {"COLUMNS": "200"}
runner = CliRunner()


def aliases(tenant: str) -> list[str]:
    """The KMS aliases a tenant stack's keys get, written out (not derived from the plan), in
    the plan's order (by name)."""
    return [f"alias/sovml-{tenant}-{p}" for p in PURPOSES]


def tenant_stacks(root: Path, tenants: tuple[str, ...]) -> Path:
    """A stacks folder with a tenant stack per name (``sovml tenant new``) and the dev platform."""
    stacks = root / "stacks"
    stacks.mkdir(parents=True)
    for name in tenants:
        tenantmod.create_tenant(
            tenantmod.TenantRequest(
                name=name,
                emails=(f"ops@{name}.example",),
                alert_webhook=f"https://itsm.{name}.example/alertmanager",
                oidc_issuer="https://login.example.ae/realms/ml",
                oidc_jwks_uri="https://login.example.ae/realms/ml/certs",
                account_id="111122223333",
            ),
            stacks,
        )
    shutil.copy(STACKS / "Pulumi.dev.yaml", stacks / "Pulumi.dev.yaml")
    return stacks


def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials for moto; nothing of the developer's AWS setup."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def mocked_kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A KMS client inside ``moto.mock_aws`` (for a generator fixture to yield from)."""
    moto = pytest.importorskip("moto")
    import boto3

    aws_env(monkeypatch)
    with moto.mock_aws():
        yield boto3.client("kms", region_name=REGION)


def deploy_keys(kms: Any, names: list[str]) -> dict[str, str]:
    """A key behind each alias in ``names`` (what `pulumi up` would create); alias -> key id."""
    ids = {}
    for alias in names:
        key_id = kms.create_key(Description=alias)["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        ids[alias] = key_id
    return ids


def key_states(kms: Any, names: list[str]) -> dict[str, str]:
    """Alias -> the KMS key state now."""
    return {a: kms.describe_key(KeyId=a)["KeyMetadata"]["KeyState"] for a in names}


def offboard_cli(
    tenant: str,
    stacks: Path,
    build: Path,
    *extra: str,
    env: Mapping[str, str | None] | None = None,
    stdin: str | None = None,
) -> Result:
    """``sovml tenant offboard TENANT --stacks-dir S --build-dir B EXTRA...``."""
    args = ["tenant", "offboard", tenant, "--stacks-dir", str(stacks), "--build-dir", str(build)]
    return runner.invoke(app, [*args, *extra], env={**ENV, **(env or {})}, input=stdin)
