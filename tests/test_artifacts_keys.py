"""Artifact key services: the local key file, KMS (moto), the factory and the pipeline adapter."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pipelines import artifacts as art
from pipelines.artifacts.encoding import b64
from tests.artifact_helpers import (  # noqa: F401 - fixtures
    CHUNK,
    REPO_ROOT,
    fixture_encrypted_file,
    fixture_keys,
    fixture_model_repo,
    leftovers,
    tree,
)

# ------------------------------------------------------------------------------------ keys


def test_wrong_key_file_detected(tmp_path: Path, encrypted_file: tuple[Path, bytes]) -> None:
    enc, _ = encrypted_file
    other = art.LocalKeyFile.create(tmp_path / "other.json")
    with pytest.raises(art.KeyMismatchError, match=r"wrong key.*nothing was sent"):
        art.decrypt_path(enc, other)
    assert not (tmp_path / "model.bin").exists()


def test_forged_key_material_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    """Same key id, different key bytes (a restored-from-wrong-backup key file)."""
    enc, _ = encrypted_file
    forged_path = tmp_path / "forged.json"
    body = json.loads(keys.path.read_text())
    body["versions"]["1"] = b64(os.urandom(32))
    fd = os.open(forged_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(body).encode())
    os.close(fd)
    with pytest.raises(art.UnwrapRefusedError, match="did not unwrap"):
        art.decrypt_path(enc, art.LocalKeyFile(forged_path))
    assert not (tmp_path / "model.bin").exists() and leftovers(tmp_path) == []


def test_missing_key_version_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    enc, _ = encrypted_file
    assert keys.rotate() == 2
    keys.remove_version(1)
    with pytest.raises(art.KeyServiceError, match="v1 is not in the key file"):
        art.decrypt_path(enc, keys)
    assert not (tmp_path / "model.bin").exists()


def test_key_file_permissions_enforced(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    keys = art.LocalKeyFile.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys.rotate()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "rotation keeps the file private"
    for mode in (0o640, 0o604, 0o660, 0o644):
        path.chmod(mode)
        with pytest.raises(art.KeyFilePermissionError, match="chmod 600"):
            art.LocalKeyFile(path)
    path.chmod(0o600)
    art.LocalKeyFile(path)
    with pytest.raises(art.KeyServiceError, match="already exists"):
        art.LocalKeyFile.create(path)


# ------------------------------------------------------------------------------ KMS (moto)


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch):
    moto = pytest.importorskip("moto")
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        client = boto3.client("kms", region_name="eu-central-1")
        key_id = client.create_key(Description="sovml artifacts")["KeyMetadata"]["KeyId"]
        client.create_alias(AliasName="alias/sovml-test-storage", TargetKeyId=key_id)
        yield client


def test_kms_round_trip_and_rewrap(tmp_path: Path, kms, model_repo: Path) -> None:
    service = art.KmsKeys("alias/sovml-test-storage", client=kms)
    art.encrypt_path(model_repo, service, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc"
    doc = json.loads((enc / art.FOLDER_MANIFEST).read_text())
    slots = [f["data_key"] for f in doc["files"]]
    assert doc["artifact"]["wrapping_key"] == {"backend": "kms", "name": service.name}
    assert service.name.startswith("arn:aws:kms:")

    # Decrypt by ARN, as the CLI does from the manifest.
    art.decrypt_path(enc, art.KmsKeys(service.name, client=kms), out=tmp_path / "a")
    assert tree(tmp_path / "a") == tree(model_repo)

    service.rotate()
    report = art.rewrap_path(enc, service)
    assert len(report.files) == 5
    new_doc = json.loads((enc / art.FOLDER_MANIFEST).read_text())
    new_slots = [f["data_key"] for f in new_doc["files"]]
    assert all(a["wrapped"] != b["wrapped"] for a, b in zip(slots, new_slots, strict=True))
    art.decrypt_path(enc, service, out=tmp_path / "b")
    assert tree(tmp_path / "b") == tree(model_repo)


def test_kms_context_binds_key_to_file(tmp_path: Path, kms, model_repo: Path) -> None:
    service = art.KmsKeys("alias/sovml-test-storage", client=kms)
    art.encrypt_path(model_repo, service, chunk_size=CHUNK)
    manifest = tmp_path / "repo.enc" / art.FOLDER_MANIFEST
    doc = json.loads(manifest.read_text())
    # Move file 1's wrapped key onto file 0: KMS refuses (the context names another path).
    doc["files"][0]["data_key"]["wrapped"] = doc["files"][1]["data_key"]["wrapped"]
    manifest.write_text(json.dumps(doc, indent=2))
    with pytest.raises(art.UnwrapRefusedError, match="InvalidCiphertextException"):
        art.decrypt_path(tmp_path / "repo.enc", service, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()

    other = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(art.KeyMismatchError, match="wrong key"):
        art.decrypt_path(tmp_path / "repo.enc", art.KmsKeys(other, client=kms), out=tmp_path / "y")
    assert not (tmp_path / "y").exists()


# ------------------------------------------------------------------------ the one factory


def test_factory_creates_the_local_key_file_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "kek.json"
    with pytest.raises(art.KeyServiceError, match="local key file not found"):
        art.open_key_service("local", str(path))
    created: list[art.LocalKeyFile] = []
    first = art.open_key_service("local", str(path), create_local=True, on_create=created.append)
    again = art.open_key_service("local", str(path), create_local=True, on_create=created.append)
    assert isinstance(first, art.LocalKeyFile) and [k.path for k in created] == [path]
    assert again.name == first.name and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_factory_defaults_and_options(tmp_path: Path) -> None:
    fallback = art.LocalKeyFile.create(tmp_path / "fallback.json")
    named = art.LocalKeyFile.create(tmp_path / "named.json")
    assert art.open_key_service("local", "", local_key_file=str(fallback.path)).name == (
        fallback.name
    )
    chosen = art.open_key_service("local", str(named.path), local_key_file=str(fallback.path))
    assert chosen.name == named.name

    vault = art.open_key_service(
        "vault", None, vault_mount="m", vault_role="r", vault_auth_mount="a"
    )
    assert isinstance(vault, art.VaultTransitKeys) and vault.key_name == art.DEFAULT_VAULT_KEY
    assert (vault.mount_point, vault.kubernetes_role, vault.kubernetes_mount) == ("m", "r", "a")
    assert art.open_key_service("vault", "models", vault_role="").kubernetes_role is None

    kms = art.open_key_service("kms", "", region="me-central-1")
    assert isinstance(kms, art.KmsKeys)
    assert (kms.key_id, kms.region) == (art.DEFAULT_KMS_KEY, "me-central-1")

    with pytest.raises(ValueError, match=r"must be one of \('local', 'vault', 'kms'\), got 'x'"):
        art.open_key_service("x", "k")


def _located(tmp_path: Path, backend: str, name: str) -> art.Located:
    """An artifact wrapped by ``backend`` key ``name`` (not written to disk)."""
    artifact = {"kind": "folder", "wrapping_key": {"backend": backend, "name": name}}
    entry = art.FileEntry({"path": "f"}, art.KeySlot(backend, name, 1, "w"), "0" * 64, 0)
    manifest = art.Manifest(artifact, [entry])
    return art.Located(tmp_path / art.FOLDER_MANIFEST, manifest, tmp_path)


def test_artifact_factory_follows_the_manifest(tmp_path: Path, keys: art.LocalKeyFile) -> None:
    vault = art.open_artifact_key_service(_located(tmp_path, "vault", "models"))
    assert isinstance(vault, art.VaultTransitKeys) and vault.key_name == "models"
    override = art.open_artifact_key_service(_located(tmp_path, "vault", "models"), "other")
    assert override.name == "other"
    # A local manifest names the key file's id, never its path: the caller says where it is.
    local = _located(tmp_path, "local", keys.name)
    assert art.open_artifact_key_service(local, local_key_file=str(keys.path)).name == keys.name


def test_pipeline_adapter_encrypts_and_verifies(tmp_path: Path, model_repo: Path) -> None:
    from pipelines.training import encryption

    lineage = tmp_path / "lineage.json"
    lineage.write_text('{"model": "m"}\n')
    key = tmp_path / "keys" / "pipeline.json"
    result = encryption.encrypt_artifacts(
        {"model_repository": model_repo, "lineage.json": lineage},
        tmp_path / "enc",
        "local",
        str(key),
    )
    assert result["backend"] == "local" and key.is_file()
    assert {name: a["verified"] for name, a in result["artifacts"].items()} == {
        "model_repository": True,
        "lineage.json": True,
    }
    assert result["artifacts"]["model_repository"]["files"] == 5
    with pytest.raises(ValueError, match="must be one of"):
        encryption.key_service("gpg", "")


def test_encrypt_step_embeds_every_module_of_the_library() -> None:
    """The cluster's encrypt pod imports the package: a module left out fails only there."""
    from pipelines.training import packaging as training

    package = REPO_ROOT / "pipelines" / "artifacts"
    modules = {p.relative_to(REPO_ROOT).as_posix() for p in package.rglob("*.py")}
    embedded = set(training.EXTRA_EMBEDDED["encrypt"])
    # Beside the library the pod carries only the lifecycle log's writer.
    assert embedded - modules == set(training.AUDIT_LIBRARY)
    assert modules <= embedded
