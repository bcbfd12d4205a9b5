"""Offboarding shreds a tenant on the real OpenBao server (issue 24), KMS in moto.

Two tenant stacks, alpha and bravo, each with its own transit key (``artifacts-<tenant>``, the
name the Vault layout gives it), each encrypt an artifact through the project's artifact API
with the vault backend. ``sovml tenant offboard alpha --yes`` then makes alpha's artifact
undecryptable while bravo's still decrypts; the certificate lists alpha's keys; a second run
reports them already pending or gone.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.synth.fresh import fresh_record
from infra.tenants import offboard as ob
from pipelines import artifacts as art
from pipelines.audit.verify import verify as verify_log
from tests.offboard_helpers import (
    PURPOSES,
    aliases,
    deploy_keys,
    key_states,
    mocked_kms,
    offboard_cli,
    tenant_stacks,
)
from tests.openbao import OpenBaoServer, openbao_server  # noqa: F401

TENANTS = ("alpha", "bravo", "carol")


@pytest.fixture(autouse=True)
def _clean_vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VAULT_*/BAO_* from the developer's shell, and no real ~/.vault-token."""
    for name in ("ADDR", "TOKEN", "NAMESPACE", "CACERT", "CAPATH", "SKIP_VERIFY"):
        monkeypatch.delenv(f"VAULT_{name}", raising=False)
        monkeypatch.delenv(f"BAO_{name}", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def bao(openbao_server: OpenBaoServer) -> OpenBaoServer:  # noqa: F811
    """The module's OpenBao with transit enabled and one key per tenant, as the layout names
    them (written out here, not derived from the code under test)."""
    client = openbao_server.client()
    client.sys.enable_secrets_engine("transit", path="transit")
    for tenant in TENANTS:
        client.secrets.transit.create_key(name=f"artifacts-{tenant}")
    return openbao_server


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(stacks folder, build folder) with every tenant's record synthesized once."""
    stacks = tenant_stacks(tmp_path_factory.mktemp("offboard-vault"), TENANTS)
    build = stacks.parent / "build"
    for tenant in TENANTS:
        fresh_record(tenant, stacks, build)
    return stacks, build


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from mocked_kms(monkeypatch)


def _service(bao: OpenBaoServer, tenant: str) -> art.VaultTransitKeys:
    return art.VaultTransitKeys(f"artifacts-{tenant}", url=bao.address, token=bao.token)


def _encrypted(bao: OpenBaoServer, tenant: str, folder: Path) -> tuple[Path, bytes]:
    """A tenant's model file, encrypted with its transit key; (the .enc path, the plaintext)."""
    plain = secrets.token_bytes(5000)
    source = folder / tenant / "model.onnx"
    source.parent.mkdir(parents=True)
    source.write_bytes(plain)
    art.encrypt_path(source, _service(bao, tenant))
    source.unlink()
    return source.with_name("model.onnx.enc"), plain


def test_offboarding_shreds_one_tenant_and_leaves_the_other(
    bao: OpenBaoServer,
    stacks: tuple[Path, Path],
    kms: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack_dir, build = stacks
    log = tmp_path / "audit" / "lifecycle.jsonl"
    monkeypatch.setenv("SOVML_AUDIT_LOG", str(log))
    deploy_keys(kms, aliases("alpha") + aliases("bravo"))
    alpha_enc, _ = _encrypted(bao, "alpha", tmp_path)
    bravo_enc, bravo_plain = _encrypted(bao, "bravo", tmp_path)

    result = offboard_cli("alpha", stack_dir, build, "--yes", env=bao.env)
    assert result.exit_code == 0, result.output
    assert "tenant alpha (stack alpha): shredded" in result.output

    # Alpha's artifact is gone for good: its transit key no longer exists.
    with pytest.raises(art.KeyServiceError) as gone:
        art.decrypt_path(alpha_enc, _service(bao, "alpha"), out=tmp_path / "alpha-out")
    assert type(gone.value) is art.KeyServiceError  # not UnwrapRefusedError: the key is gone
    assert "transit decrypt of the data key failed: encryption key not found" in str(gone.value)
    assert not (tmp_path / "alpha-out").exists()
    # Bravo's still decrypts, byte for byte.
    art.decrypt_path(bravo_enc, _service(bao, "bravo"), out=tmp_path / "bravo-out")
    assert (tmp_path / "bravo-out").read_bytes() == bravo_plain
    assert set(key_states(kms, aliases("alpha")).values()) == {"PendingDeletion"}
    assert set(key_states(kms, aliases("bravo")).values()) == {"Enabled"}

    # The certificate lists exactly alpha's keys, and who did it.
    (path,) = sorted((build / "offboarding").glob("alpha-*.json"))
    assert f"(sha256 {json.loads(path.read_text())['sha256']})" in result.output
    assert ob.verify_certificate(path)
    body = json.loads(path.read_text())["certificate"]
    assert [(k["service"], k["name"], k["outcome"]) for k in body["keys"]] == [
        *(("kms", a, "scheduled") for a in aliases("alpha")),
        ("vault", "artifacts-alpha", "deleted"),
    ]
    vault_key = body["keys"][-1]
    assert (vault_key["state_before"], vault_key["state_after"]) == ("present", "absent")
    assert "latest version 1" in vault_key["detail"]
    accessor = bao.client().auth.token.lookup_self()["data"]["accessor"]
    assert body["who"]["vault"] == f"token (accessor {accessor}, policies root)"
    assert body["who"]["kms"] == "arn:aws:sts::123456789012:user/moto"
    assert bao.token not in path.read_text()
    # The lifecycle log names the tenant and points at the certificate by path and digest.
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert (entry["event"], entry["subject"]) == ("tenant.offboarded", "alpha")
    assert entry["outputs"]["certificate"]["path"] == str(path.resolve())
    assert entry["details"]["certificate_sha256"] == json.loads(path.read_text())["sha256"]
    assert (entry["details"]["outcome"], entry["details"]["keys_scheduled"]) == (
        "shredded",
        len(PURPOSES),
    )
    assert verify_log(log).intact

    # Again: idempotent, every key reported as already pending or absent, exit 0.
    again = offboard_cli("alpha", stack_dir, build, "--yes", env=bao.env)
    assert again.exit_code == 0, again.output
    second = max((build / "offboarding").glob("alpha-*.json"), key=lambda p: p.stat().st_mtime)
    assert second != path
    outcomes = [k["outcome"] for k in json.loads(second.read_text())["certificate"]["keys"]]
    assert outcomes == ["already-pending"] * len(PURPOSES) + ["absent"]
    art.decrypt_path(bravo_enc, _service(bao, "bravo"), out=tmp_path / "bravo-again")


def test_a_token_that_may_not_delete_leaves_a_partial_shred_named(
    bao: OpenBaoServer, stacks: tuple[Path, Path], kms: Any, tmp_path: Path
) -> None:
    stack_dir, build = stacks
    deploy_keys(kms, aliases("carol"))
    client = bao.client()
    client.sys.create_or_update_policy(
        name="read-transit", policy='path "transit/keys/*" { capabilities = ["read"] }\n'
    )
    token = client.auth.token.create(policies=["read-transit"], ttl="10m")["auth"]["client_token"]
    carol_enc, carol_plain = _encrypted(bao, "carol", tmp_path)

    env = {"VAULT_ADDR": bao.address, "VAULT_TOKEN": token}
    result = offboard_cli("carol", stack_dir, build, "--yes", env=env)
    assert result.exit_code == 1, result.output
    assert "tenant carol (stack carol): partial" in result.output
    assert "refused: vault artifacts-carol: permission denied; latest version 1\n" in (
        result.output
    )
    assert "error:" not in result.output
    # KMS keys were still scheduled; the Vault key survives, and the certificate says so.
    assert set(key_states(kms, aliases("carol")).values()) == {"PendingDeletion"}
    art.decrypt_path(carol_enc, _service(bao, "carol"), out=tmp_path / "carol-out")
    assert (tmp_path / "carol-out").read_bytes() == carol_plain
    (path,) = (build / "offboarding").glob("carol-*.json")
    body = json.loads(path.read_text())["certificate"]
    assert (body["outcome"], body["refused"]) == ("partial", ["artifacts-carol"])


def test_a_rejected_vault_token_exits_3_and_changes_nothing(
    bao: OpenBaoServer, stacks: tuple[Path, Path], kms: Any
) -> None:
    stack_dir, build = stacks
    deploy_keys(kms, aliases("bravo"))
    env = {"VAULT_ADDR": bao.address, "VAULT_TOKEN": "not-a-token"}
    result = offboard_cli("bravo", stack_dir, build, "--yes", env=env)
    assert result.exit_code == 3, result.output
    assert "token lookup: Forbidden: permission denied" in result.output
    assert set(key_states(kms, aliases("bravo")).values()) == {"Enabled"}
    assert "artifacts-bravo" in bao.client().secrets.transit.list_keys()["data"]["keys"]


def test_dry_run_leaves_the_transit_key_working(
    bao: OpenBaoServer, stacks: tuple[Path, Path], tmp_path: Path
) -> None:
    stack_dir, build = stacks
    enc, plain = _encrypted(bao, "bravo", tmp_path)
    result = offboard_cli("bravo", stack_dir, build, "--dry-run", env=bao.env)
    assert result.exit_code == 0, result.output
    art.decrypt_path(enc, _service(bao, "bravo"), out=tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == plain


def test_the_library_call_returns_the_written_certificate(
    bao: OpenBaoServer,
    stacks: tuple[Path, Path],
    kms: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``offboard()`` is the one call the audit log will wrap: it returns what it wrote."""
    stack_dir, _build = stacks
    deploy_keys(kms, aliases("carol"))
    for name, value in bao.env.items():
        monkeypatch.setenv(name, value)
    cert = ob.offboard("carol", ob.default_shredders, stacks_dir=stack_dir, build_dir=tmp_path)
    assert cert.complete and cert.path is not None and cert.path.parent == tmp_path / "offboarding"
    assert json.loads(cert.path.read_text()) == cert.document()
    vault_key = cert.body["keys"][-1]
    assert (vault_key["name"], vault_key["outcome"]) == ("artifacts-carol", "deleted")
    assert "artifacts-carol" not in bao.client().secrets.transit.list_keys()["data"]["keys"]
    entry = json.loads(Path(os.environ["SOVML_AUDIT_LOG"]).read_text().splitlines()[-1])
    assert (entry["event"], entry["subject"]) == ("tenant.offboarded", "carol")
    assert entry["details"]["keys_deleted"] == 1
