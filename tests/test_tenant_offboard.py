"""``sovml tenant offboard``: the plan from the record, KMS in moto, the certificate, the CLI.

The real OpenBao server and the artifacts it encrypts are in ``test_tenant_offboard_vault.py``.
"""

from __future__ import annotations

import dataclasses
import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.cli import tenant as tenant_cli
from infra.synth.fresh import fresh_record
from infra.tenants import offboard as ob
from infra.tenants.shredders import KmsShredder, ServiceUnavailableError, kms_shredder
from tests.offboard_helpers import (
    REGION,
    aliases,
    deploy_keys,
    key_states,
    mocked_kms,
    offboard_cli,
    tenant_stacks,
)
from tests.system import free_port

TENANTS = ("alpha", "bravo")


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tenant stacks alpha and bravo, and the dev platform stack."""
    return tenant_stacks(tmp_path_factory.mktemp("offboard"), TENANTS)


@pytest.fixture(scope="module")
def build(stacks: Path) -> Path:
    """A build folder where both tenants' records are synthesized once for the module."""
    folder = stacks.parent / "build"
    for tenant in TENANTS:
        fresh_record(tenant, stacks, folder)
    return folder


@pytest.fixture(scope="module")
def plan(stacks: Path, build: Path) -> ob.OffboardPlan:
    return ob.plan_offboarding("alpha", stacks, build)


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from mocked_kms(monkeypatch)


def _kms_only(plan: ob.OffboardPlan) -> ob.OffboardPlan:
    return dataclasses.replace(plan, keys=tuple(k for k in plan.keys if k.service == "kms"))


# ------------------------------------------------------------------------------------ plan


def test_the_plan_holds_exactly_the_tenants_keys_and_the_stacks_window(
    plan: ob.OffboardPlan,
) -> None:
    assert (plan.tenant, plan.stack, plan.region, plan.zone) == ("alpha", "alpha", REGION, "uae")
    assert plan.deletion_window_days == 30  # the prod template's kmsDeletionWindowDays
    assert [(k.service, k.name) for k in plan.keys] == [
        *(("kms", a) for a in aliases("alpha")),
        ("vault", "artifacts-alpha"),
    ]
    assert all(k.problem is None for k in plan.keys)
    assert plan.transit_mount == "transit" and len(plan.record_fingerprint) == 64


def test_the_window_and_region_come_from_the_record(stacks: Path, build: Path) -> None:
    record = json.loads((build / "alpha" / "resources.json").read_text())
    record["config"]["kms_deletion_window_days"] = 7
    assert ob.plan_from_record("alpha", record, None).deletion_window_days == 7
    record["config"]["kms_deletion_window_days"] = 6
    with pytest.raises(ob.OffboardInputError, match="kms_deletion_window_days 6: KMS accepts 7-30"):
        ob.plan_from_record("alpha", record, None)


def test_a_record_of_another_tenant_is_refused(build: Path) -> None:
    record = json.loads((build / "bravo" / "resources.json").read_text())
    with pytest.raises(ob.OffboardInputError, match="belongs to tenant 'bravo', not 'alpha'"):
        ob.plan_from_record("alpha", record, None)


def test_a_kms_key_without_an_alias_is_planned_as_unlocatable(build: Path) -> None:
    record = json.loads((build / "alpha" / "resources.json").read_text())
    record["resources"] = [
        r for r in record["resources"] if r["name"] != "keys-logs-alias"
    ]  # the key stays
    plan = ob.plan_from_record("alpha", record, None)
    odd = [k for k in plan.keys if k.problem]
    assert [(k.name, k.purpose) for k in odd] == [("(keys-logs)", "logs")]
    assert "no alias in the synth record" in str(odd[0].problem)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nobody", "unknown tenant 'nobody'; known tenants: alpha, bravo"),
        ("dev", "'dev' is a shared platform stack (no sovereign-ml:tenant), not a tenant"),
        ("sandbox", "'sandbox' is a tenant namespace of the shared platform stack dev"),
        ("Alpha", "cannot offboard 'Alpha'"),
        ("../alpha", "cannot offboard '../alpha'"),
    ],
)
def test_resolution_refuses_what_is_not_a_tenant_stack(
    stacks: Path, name: str, message: str
) -> None:
    with pytest.raises(ob.OffboardInputError) as caught:
        ob.resolve_tenant(name, stacks)
    assert message in str(caught.value)


# ---------------------------------------------------------------------------- KMS (moto)


def test_kms_keys_found_by_alias_get_pending_deletion_with_the_window(
    plan: ob.OffboardPlan, kms: Any
) -> None:
    ids = deploy_keys(kms, aliases("alpha") + aliases("bravo"))
    cert = ob.shred_plan(_kms_only(plan), {"kms": kms_shredder(REGION)})
    assert cert.complete and cert.body["outcome"] == "shredded"
    assert key_states(kms, aliases("alpha")) == dict.fromkeys(aliases("alpha"), "PendingDeletion")
    assert set(key_states(kms, aliases("bravo")).values()) == {"Enabled"}
    expected = datetime.now(UTC) + timedelta(days=30)
    for key in cert.body["keys"]:
        assert key["key_id"] == ids[key["name"]] and key["arn"].endswith(ids[key["name"]])
        assert (key["state_before"], key["state_after"], key["outcome"]) == (
            "Enabled",
            "PendingDeletion",
            "scheduled",
        )
        when = datetime.fromisoformat(key["scheduled_deletion"].replace("Z", "+00:00"))
        assert abs(when - expected) < timedelta(minutes=5), key
    assert cert.body["who"]["kms"] == "arn:aws:sts::123456789012:user/moto"


def test_kms_again_is_idempotent_and_a_missing_alias_is_reported(
    plan: ob.OffboardPlan, kms: Any
) -> None:
    gone = "alias/sovml-alpha-logs"
    present = [a for a in aliases("alpha") if a != gone]
    deploy_keys(kms, present)
    first = ob.shred_plan(_kms_only(plan), {"kms": kms_shredder(REGION)})
    by_name = {k["name"]: k for k in first.body["keys"]}
    assert {n: k["outcome"] for n, k in by_name.items()} == {
        **dict.fromkeys(present, "scheduled"),
        gone: "absent",
    }
    missing = by_name[gone]
    assert missing["state_before"] == "absent" and missing["key_id"] is None
    assert "alias not found" in missing["detail"] and gone in missing["detail"]
    assert first.complete  # already gone is reported, not an error
    again = ob.shred_plan(_kms_only(plan), {"kms": kms_shredder(REGION)})
    again_by_name = {k["name"]: k for k in again.body["keys"]}
    assert {n: k["outcome"] for n, k in again_by_name.items()} == {
        **dict.fromkeys(present, "already-pending"),
        gone: "absent",
    }
    for name in present:  # the date of the first run stands
        assert again_by_name[name]["scheduled_deletion"] == by_name[name]["scheduled_deletion"]
    assert again.complete


class _DenyingKms:
    """The moto client, except that scheduling the deletion of one key is denied."""

    def __init__(self, inner: Any, denied: str) -> None:
        self.inner, self.denied = inner, denied

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def schedule_key_deletion(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        if kwargs["KeyId"] == self.denied:
            error = {"Code": "AccessDeniedException", "Message": "not allowed to kms:Schedule"}
            raise ClientError({"Error": error}, "ScheduleKeyDeletion")
        return self.inner.schedule_key_deletion(**kwargs)


def test_a_refused_key_is_named_and_the_others_are_still_shredded(
    plan: ob.OffboardPlan, kms: Any
) -> None:
    import boto3

    ids = deploy_keys(kms, aliases("alpha"))
    denied = ids["alias/sovml-alpha-storage"]
    shredder = KmsShredder(
        _DenyingKms(kms, denied), boto3.client("sts", region_name=REGION), REGION
    )
    cert = ob.shred_plan(_kms_only(plan), {"kms": shredder})
    assert not cert.complete and cert.body["outcome"] == "partial"
    assert cert.body["refused"] == ["alias/sovml-alpha-storage"]
    assert cert.refused[0]["detail"] == "AccessDeniedException: not allowed to kms:Schedule"
    states = key_states(kms, aliases("alpha"))
    assert states.pop("alias/sovml-alpha-storage") == "Enabled"
    assert set(states.values()) == {"PendingDeletion"}


def test_missing_aws_credentials_change_nothing(
    plan: ob.OffboardPlan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ServiceUnavailableError, match="NoCredentialsError"):
        ob.shred_plan(_kms_only(plan), {"kms": kms_shredder(REGION)})


def test_credentials_cached_by_boto3s_default_session_are_not_used(
    plan: ob.OffboardPlan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An earlier caller in the process left boto3's default session holding credentials: the
    shredder resolves its own, from the environment as it is now (none)."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEARLIERCALLER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "earlier")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None and boto3.DEFAULT_SESSION.get_credentials()
    test_missing_aws_credentials_change_nothing(plan, monkeypatch, tmp_path)


# ----------------------------------------------------------------------------- certificate


def test_the_certificate_is_private_and_its_digest_detects_an_edit(
    plan: ob.OffboardPlan, kms: Any, tmp_path: Path
) -> None:
    deploy_keys(kms, aliases("alpha"))
    cert = ob.write_certificate(ob.shred_plan(_kms_only(plan), {"kms": kms_shredder(REGION)}),
                                tmp_path)  # fmt: skip
    assert cert.path is not None and cert.path.parent == tmp_path / "offboarding"
    assert cert.path.name.startswith("alpha-") and cert.path.name.endswith("Z.json")
    assert stat.S_IMODE(cert.path.stat().st_mode) == 0o600
    document = json.loads(cert.path.read_text())
    assert document["sha256"] == cert.sha256 and ob.verify_certificate(cert.path)
    body = document["certificate"]
    assert (body["kind"], body["tenant"], body["stack"], body["outcome"]) == (
        "sovml-tenant-offboarding-certificate", "alpha", "alpha", "shredded")  # fmt: skip
    assert set(body["who"]) == {"user", "host", "kms"} and body["started_at"].endswith("Z")
    body["keys"][0]["outcome"] = "absent"  # someone "improves" the record afterwards
    cert.path.write_text(json.dumps(document))
    assert not ob.verify_certificate(cert.path)
    second = ob.write_certificate(ob.Certificate(cert.body), tmp_path)  # same second: no overwrite
    assert second.path != cert.path and second.path is not None and second.path.exists()


# ------------------------------------------------------------------------------------- CLI


def test_cli_unknown_tenant_lists_the_known_ones(stacks: Path, build: Path) -> None:
    result = offboard_cli("nobody", stacks, build, "--yes")
    assert result.exit_code == 2, result.output
    assert "error: unknown tenant 'nobody'; known tenants: alpha, bravo" in result.output


def test_cli_refuses_a_platform_stack(stacks: Path, build: Path) -> None:
    result = offboard_cli("dev", stacks, build, "--yes")
    assert result.exit_code == 2, result.output
    assert "'dev' is a shared platform stack (no sovereign-ml:tenant), not a tenant" in (
        result.output
    )


def test_cli_dry_run_prints_the_plan_and_changes_nothing(
    stacks: Path, build: Path, kms: Any
) -> None:
    deploy_keys(kms, aliases("alpha"))
    result = offboard_cli("alpha", stacks, build, "--dry-run", env={"VAULT_ADDR": None})
    assert result.exit_code == 0, result.output
    # Six KMS keys (the HMAC pseudonymization key among them: shredding it makes the tenant's
    # tokens unlinkable) and the Vault transit key.
    assert "tenant alpha (stack alpha, me-central-1): 9 keys to shred" in result.output
    assert "alias/sovml-alpha-storage" in result.output and "artifacts-alpha" in result.output
    assert "alias/sovml-alpha-pseudonymization" in result.output
    assert "schedule deletion, 30-day window" in result.output
    assert "dry run: nothing was changed, no service was called" in result.output
    assert set(key_states(kms, aliases("alpha")).values()) == {"Enabled"}
    ciphertext = kms.encrypt(KeyId="alias/sovml-alpha-storage", Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"x"
    assert not (build / "offboarding").exists()


def test_cli_without_yes_and_without_a_terminal_is_refused(
    stacks: Path, build: Path, kms: Any
) -> None:
    deploy_keys(kms, aliases("alpha"))
    result = offboard_cli("alpha", stacks, build)
    assert result.exit_code == 2, result.output
    assert "needs confirmation: stdin is not a terminal; pass --yes" in result.output
    assert set(key_states(kms, aliases("alpha")).values()) == {"Enabled"}


def test_cli_confirmation_must_be_the_tenant_name(
    stacks: Path, build: Path, kms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_keys(kms, aliases("alpha"))
    monkeypatch.setattr(tenant_cli, "_interactive", lambda: True)
    wrong = offboard_cli("alpha", stacks, build, stdin="bravo\n")
    assert wrong.exit_code == 2, wrong.output
    assert "not confirmed ('bravo' is not 'alpha'); nothing changed" in wrong.output
    assert set(key_states(kms, aliases("alpha")).values()) == {"Enabled"}
    # Confirmed, it goes on to the services (here: no Vault configured, so 3 and no change).
    right = offboard_cli("alpha", stacks, build, stdin="alpha\n", env={"VAULT_ADDR": None})
    assert right.exit_code == 3, right.output
    assert "error: VAULT_ADDR is not set" in right.output
    assert set(key_states(kms, aliases("alpha")).values()) == {"Enabled"}


def test_cli_unreachable_vault_exits_3_before_any_key_changes(
    stacks: Path, build: Path, kms: Any
) -> None:
    deploy_keys(kms, aliases("alpha"))
    address = f"http://127.0.0.1:{free_port()}"
    result = offboard_cli("alpha", stacks, build, "--yes",
                          env={"VAULT_ADDR": address, "VAULT_TOKEN": "s.x"})  # fmt: skip
    assert result.exit_code == 3, result.output
    assert f"error: Vault at {address}: token lookup: ConnectionError" in result.output
    assert result.output.rstrip().endswith("nothing was changed")
    assert set(key_states(kms, aliases("alpha")).values()) == {"Enabled"}
    assert not (build / "offboarding").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "eu-central-1"], "--region 'eu-central-1' is outside the stack's residency"),
        (["--build-dir", "FILE"], "is not a folder"),
    ],
)
def test_cli_bad_options_exit_2(
    stacks: Path, build: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    (tmp_path / "FILE").write_text("")
    extra = [str(tmp_path / e) if e == "FILE" else e for e in extra]
    result = offboard_cli("alpha", stacks, build, "--yes", *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
