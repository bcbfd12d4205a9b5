"""The Triton init container's pull-and-decrypt, against S3 under moto and the local key file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pipelines import artifacts as art
from pipelines.serving.puller import key_service_for, main, pull
from tests.artifact_helpers import FolderS3


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


def _located(tmp_path: Path, backend: str, name: str) -> art.Located:
    """An artifact wrapped by ``backend`` key ``name`` (in memory only)."""
    artifact = {"kind": "folder", "wrapping_key": {"backend": backend, "name": name}}
    entry = art.FileEntry({"path": "f"}, art.KeySlot(backend, name, 1, "w"), "0" * 64, 0)
    return art.Located(tmp_path / "m.json", art.Manifest(artifact, [entry]), tmp_path)


def test_key_service_follows_the_manifest_and_the_pod_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = art.LocalKeyFile.create(tmp_path / "mounted.key")
    art.encrypt_path(repo, keys)
    located = art.locate(repo.parent / "model_repository.enc")
    monkeypatch.setenv("SOVML_LOCAL_KEY", str(keys.path))
    assert key_service_for(located).name == keys.name

    monkeypatch.setenv("VAULT_K8S_ROLE", "triton")
    service = key_service_for(_located(tmp_path, "vault", "models-acme"))
    assert isinstance(service, art.VaultTransitKeys)
    assert (service.key_name, service.kubernetes_role) == ("models-acme", "triton")

    # A pinned key name wins: a manifest naming another key is then refused before any call.
    monkeypatch.setenv("SOVML_ARTIFACT_KEY_NAME", "models-pinned")
    assert key_service_for(_located(tmp_path, "vault", "models-acme")).name == "models-pinned"
    assert key_service_for(located).name == keys.name  # local: the mounted file is the pin


def test_restarted_puller_replaces_its_earlier_output_and_refuses_tampering(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = art.LocalKeyFile.create(tmp_path / "mounted.key")
    monkeypatch.setenv("SOVML_LOCAL_KEY", str(keys.path))
    bucket = tmp_path / "bucket"
    art.encrypt_path(repo, keys, out=bucket / "model_repository.enc")
    dest = tmp_path / "models"
    args = [
        "pull",
        "--bucket",
        "b",
        "--prefix",
        "m/",
        "--dest",
        str(dest),
        "--decrypt-if-encrypted",
    ]
    monkeypatch.setattr("boto3.client", lambda *a, **k: FolderS3(bucket))
    assert main(args) == 0
    assert main(args) == 0  # an init container restarts with its volume: same result
    restored = dest / "model_repository"
    assert (restored / "1" / "model.pt").read_bytes() == (repo / "1" / "model.pt").read_bytes()

    manifest = bucket / "model_repository.enc" / art.FOLDER_MANIFEST
    doc = json.loads(manifest.read_text())
    doc["artifact"]["wrapping_key"]["name"] = "../keys/models/rotate"
    manifest.write_text(json.dumps(doc))
    shutil.rmtree(dest)
    assert main(args) == 2  # bad input, never 1
    assert not (dest / "model_repository").exists()


def test_the_puller_image_copies_every_module_the_puller_imports() -> None:
    """The Dockerfile's COPY lines cover the puller's import closure inside the repository."""
    import ast

    root = Path(__file__).resolve().parents[1]
    dockerfile = (root / "pipelines/images/model-puller/Dockerfile").read_text()
    copied = [
        src
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
    ]

    def covered(rel: str) -> bool:
        return any(rel == c or (c.endswith("/") and rel.startswith(c)) for c in copied)

    todo, seen = ["pipelines/serving/puller.py"], set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        assert covered(rel), f"{rel} is imported by the puller but not copied into its image"
        for node in ast.walk(ast.parse((root / rel).read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                base = root.joinpath(*name.split("."))
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.is_file():
                        todo.append(candidate.relative_to(root).as_posix())
