"""The Triton init container's pull-and-decrypt, against S3 under moto and the local key file."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pipelines import artifacts as art
from pipelines.serving.puller import key_service_for, pull


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "model_repository"
    (root / "1").mkdir(parents=True)
    (root / "config.pbtxt").write_text('name: "m"\n')
    (root / "1" / "model.pt").write_bytes(bytes(range(256)) * 4000)
    return root


def test_pull_decrypts_an_encrypted_repository(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "keys" / "local.key"
    keys, _ = art.LocalKeyFile.open_or_create(key_file)
    monkeypatch.setenv("SOVML_LOCAL_KEY", str(key_file))
    art.encrypt_path(repo, keys)
    enc = repo.parent / "model_repository.enc"
    with mock_aws():
        s3 = boto3.client("s3", region_name="me-central-1")
        s3.create_bucket(
            Bucket="models", CreateBucketConfiguration={"LocationConstraint": "me-central-1"}
        )
        for f in enc.rglob("*"):
            if f.is_file():
                s3.upload_file(str(f), "models", f"m/{f.relative_to(repo.parent)}")
        dest = tmp_path / "pulled"
        pull("models", "m/", dest, decrypt=True, client=s3)
    restored = dest / "model_repository"
    assert (restored / "1" / "model.pt").read_bytes() == (repo / "1" / "model.pt").read_bytes()
    assert (restored / "config.pbtxt").read_text() == 'name: "m"\n'


def test_pull_refuses_paths_that_escape(tmp_path: Path) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="me-central-1")
        s3.create_bucket(
            Bucket="models", CreateBucketConfiguration={"LocationConstraint": "me-central-1"}
        )
        s3.put_object(Bucket="models", Key="m/../evil", Body=b"x")
        s3.put_object(Bucket="models", Key="m/ok.txt", Body=b"x")
        got = pull("models", "m/", tmp_path / "d", decrypt=False, client=s3)
    assert [p.name for p in got] == ["ok.txt"]


def test_key_service_follows_the_manifest_and_the_pod_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = art.LocalKeyFile.create(tmp_path / "mounted.key")
    art.encrypt_path(repo, keys)
    located = art.locate(repo.parent / "model_repository.enc")
    monkeypatch.setenv("SOVML_LOCAL_KEY", str(keys.path))
    assert key_service_for(located).name == keys.name

    doc = json.loads(located.manifest_path.read_text())
    for entry in doc["files"]:
        entry["key"].update(backend="vault", name="models-acme", wrapped="vault:v1:x")
    located.manifest_path.write_text(json.dumps(doc))
    monkeypatch.setenv("VAULT_K8S_ROLE", "triton")
    service = key_service_for(art.locate(located.root))
    assert isinstance(service, art.VaultTransitKeys)
    assert (service.key_name, service.kubernetes_role) == ("models-acme", "triton")
