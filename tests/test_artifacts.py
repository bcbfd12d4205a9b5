"""Artifact envelope encryption: local key file, KMS (moto), CLI, tamper detection, memory."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra.cli.artifact import artifact_app
from pipelines import artifacts as art

CHUNK = 4096
REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ helpers


def _cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.add_typer(artifact_app, name="artifact")

    @app.callback()
    def _root() -> None:
        """Test harness for the artifact commands."""

    return app


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Invoke ``artifact ...``; returns the exit code and stdout+stderr."""
    result = CliRunner().invoke(_cli(), ["artifact", *args], env=env)
    output = result.output + (result.stderr if result.stderr not in result.output else "")
    assert "Traceback" not in output, output
    return result.exit_code, output


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def leftovers(folder: Path) -> list[str]:
    """Temporary files/folders a failed operation might have left behind."""
    return sorted(p.name for p in folder.iterdir() if "sovml-tmp" in p.name)


@pytest.fixture
def keys(tmp_path: Path) -> art.LocalKeyFile:
    return art.LocalKeyFile.create(tmp_path / "keys" / "kek.json")


@pytest.fixture
def model_repo(tmp_path: Path) -> Path:
    """A small Triton-style model repository with awkward sizes for a 4 KiB chunk."""
    root = tmp_path / "repo"
    write_random(root / "resnet" / "1" / "model.plan", 5 * CHUNK + 123)
    write_random(root / "resnet" / "1" / "exact.bin", 2 * CHUNK)
    (root / "resnet" / "config.pbtxt").write_text('name: "resnet"\nplatform: "tensorrt_plan"\n')
    (root / "resnet" / "empty.txt").write_bytes(b"")
    script = root / "ensemble" / "1" / "model.py"
    script.parent.mkdir(parents=True)
    script.write_text("print('hello')\n")
    script.chmod(0o755)
    return root


@pytest.fixture
def encrypted_file(tmp_path: Path, keys: art.LocalKeyFile) -> tuple[Path, bytes]:
    data = write_random(tmp_path / "model.bin", 3 * CHUNK + 17)
    art.encrypt_path(tmp_path / "model.bin", keys, chunk_size=CHUNK)
    (tmp_path / "model.bin").unlink()
    return tmp_path / "model.bin.enc", data


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_file_round_trip(tmp_path: Path, keys: art.LocalKeyFile, size: int) -> None:
    data = write_random(tmp_path / "w.bin", size)
    report = art.encrypt_path(tmp_path / "w.bin", keys, chunk_size=CHUNK)
    assert report.destination == tmp_path / "w.bin.enc"
    assert (tmp_path / "w.bin.enc.manifest.json").is_file()
    enc_size = (tmp_path / "w.bin.enc").stat().st_size
    assert enc_size == 40 + size + 16 * max(1, -(-size // CHUNK))
    out = art.decrypt_path(tmp_path / "w.bin.enc", keys, out=tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data
    assert out.bytes == size


def test_folder_round_trip(tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path) -> None:
    report = art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc"
    assert report.destination == enc and len(report.files) == 5
    assert (enc / art.FOLDER_MANIFEST).is_file()
    assert (enc / "resnet" / "1" / "model.plan.enc").is_file()
    # No plaintext copy inside the encrypted folder.
    plan = (model_repo / "resnet" / "1" / "model.plan").read_bytes()
    assert plan[:64] not in (enc / "resnet" / "1" / "model.plan.enc").read_bytes()

    art.decrypt_path(enc, keys, out=tmp_path / "restored")
    assert tree(tmp_path / "restored") == tree(model_repo)
    mode = stat.S_IMODE((tmp_path / "restored" / "ensemble" / "1" / "model.py").stat().st_mode)
    assert mode & 0o100, "the executable bit of a model script survives the round trip"


def test_manifest_records_everything(tmp_path: Path, keys: art.LocalKeyFile) -> None:
    data = write_random(tmp_path / "m.onnx", 10_000)
    art.encrypt_path(tmp_path / "m.onnx", keys, chunk_size=CHUNK)
    doc = json.loads((tmp_path / "m.onnx.enc.manifest.json").read_text())
    [entry] = doc["files"]
    header, slot = entry["header"], entry["key"]
    assert header["algorithm"] == "AES-256-GCM"
    assert header["chunk_size"] == CHUNK
    assert header["nonce_scheme"] == art.NONCE_SCHEME
    assert slot == {
        "backend": "local",
        "name": keys.name,
        "version": 1,
        "wrapped": slot["wrapped"],
    }
    assert slot["wrapped"].startswith("sovml-local:v1:")
    assert entry["plaintext_sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["plaintext_size"] == 10_000
    assert doc["artifact"]["kind"] == "file" and header["artifact"] == doc["artifact"]


# ------------------------------------------------------------------------- tamper detection


@pytest.mark.parametrize(
    "where",
    ["magic", "header-digest", "first-chunk", "middle-chunk", "last-tag"],
)
def test_flipped_ciphertext_byte_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes], where: str
) -> None:
    enc, _ = encrypted_file
    size = enc.stat().st_size
    offset = {
        "magic": 0,
        "header-digest": 10,
        "first-chunk": 40 + 5,
        "middle-chunk": 40 + CHUNK + 16 + 100,
        "last-tag": size - 1,
    }[where]
    flip(enc, offset)
    with pytest.raises(art.IntegrityError) as err:
        art.decrypt_path(enc, keys)
    assert str(enc) in str(err.value)
    assert not (tmp_path / "model.bin").exists()
    assert leftovers(tmp_path) == []


def test_every_manifest_byte_flip_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    original = manifest.read_bytes()
    parsed = json.loads(original)
    checked = 0
    for offset in range(len(original)):
        mutated = bytearray(original)
        mutated[offset] ^= 0x01
        try:
            if json.loads(mutated) == parsed:
                continue  # same document (cannot happen with XOR 1, kept for safety)
        except ValueError:
            pass
        manifest.write_bytes(bytes(mutated))
        with pytest.raises(art.ArtifactError):
            art.decrypt_path(enc, keys)
        checked += 1
    assert checked > 1000
    assert not (tmp_path / "model.bin").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "field,value",
    [
        (("header", "chunk_size"), 8192),
        (("header", "nonce_prefix"), "AAAAAAAAAAA="),
        (("header", "path"), "other.bin"),
        (("header", "mode"), "0777"),
        (("plaintext_sha256",), "0" * 64),
        (("plaintext_size",), 3 * CHUNK + 16),
        (("key", "version"), 2),
        (("key", "name"), "local-0000000000000000"),
        (("header", "path"), "../../escape"),
    ],
)
def test_semantic_manifest_tampering_detected(
    tmp_path: Path,
    keys: art.LocalKeyFile,
    encrypted_file: tuple[Path, bytes],
    field: tuple[str, ...],
    value: object,
) -> None:
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    target = doc["files"][0]
    for part in field[:-1]:
        target = target[part]
    target[field[-1]] = value
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.ArtifactError):
        art.decrypt_path(enc, keys)
    assert not (tmp_path / "model.bin").exists() and leftovers(tmp_path) == []
    assert not (tmp_path.parent / "escape").exists()


def test_truncated_and_extended_files_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    enc, _ = encrypted_file
    original = enc.read_bytes()
    record = CHUNK + 16
    for cut in (len(original) - 1, 40 + 3 * record, 40 + record, 40, 0):
        enc.write_bytes(original[:cut])
        with pytest.raises(art.IntegrityError, match="truncated"):
            art.decrypt_path(enc, keys)
    enc.write_bytes(original + b"\0" * 10)
    with pytest.raises(art.IntegrityError, match="trailing"):
        art.decrypt_path(enc, keys)
    assert not (tmp_path / "model.bin").exists() and leftovers(tmp_path) == []


def test_truncation_with_matching_manifest_size_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    """An attacker drops the last chunk and edits plaintext_size: the final flag catches it."""
    enc, _ = encrypted_file
    record = CHUNK + 16
    enc.write_bytes(enc.read_bytes()[: 40 + 3 * record])
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    doc["files"][0]["plaintext_size"] = 3 * CHUNK
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.IntegrityError, match="ends after chunk 2"):
        art.decrypt_path(enc, keys)
    assert not (tmp_path / "model.bin").exists() and leftovers(tmp_path) == []


def test_reordered_chunks_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    enc, _ = encrypted_file
    data = enc.read_bytes()
    record = CHUNK + 16
    first, second = data[40 : 40 + record], data[40 + record : 40 + 2 * record]
    enc.write_bytes(data[:40] + second + first + data[40 + 2 * record :])
    with pytest.raises(art.IntegrityError, match="chunk 0 failed authentication"):
        art.decrypt_path(enc, keys)


def test_swapped_files_in_folder_detected(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    write_random(model_repo / "resnet" / "2" / "model.plan", 5 * CHUNK + 123)  # same size
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc" / "resnet"
    a, b = (enc / "1" / "model.plan.enc").read_bytes(), (enc / "2" / "model.plan.enc").read_bytes()
    (enc / "1" / "model.plan.enc").write_bytes(b)
    (enc / "2" / "model.plan.enc").write_bytes(a)
    with pytest.raises(art.IntegrityError, match="does not belong to this manifest entry"):
        art.decrypt_path(tmp_path / "repo.enc", keys, out=tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_dropped_file_from_folder_manifest_detected(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK, out=tmp_path / "enc")
    manifest = tmp_path / "enc" / art.FOLDER_MANIFEST
    doc = json.loads(manifest.read_text())
    doc["files"] = doc["files"][1:]
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.ManifestError, match="file list"):
        art.decrypt_path(tmp_path / "enc", keys, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ keys


def test_wrong_key_file_detected(tmp_path: Path, encrypted_file: tuple[Path, bytes]) -> None:
    enc, _ = encrypted_file
    other = art.LocalKeyFile.create(tmp_path / "other.json")
    with pytest.raises(art.KeyServiceError, match="wrong key"):
        art.decrypt_path(enc, other)
    assert not (tmp_path / "model.bin").exists()


def test_forged_key_material_detected(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    """Same key id, different key bytes (a restored-from-wrong-backup key file)."""
    enc, _ = encrypted_file
    forged_path = tmp_path / "forged.json"
    body = json.loads(keys.path.read_text())
    body["versions"]["1"] = art._b64(os.urandom(32))
    fd = os.open(forged_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(body).encode())
    os.close(fd)
    with pytest.raises(art.KeyServiceError, match="did not unwrap"):
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


def test_no_partial_plaintext_when_last_chunk_fails(tmp_path: Path, keys: art.LocalKeyFile) -> None:
    """Many chunks verify and are written before the last one fails: all of it must go."""
    write_random(tmp_path / "big.bin", 64 * CHUNK + 3)
    art.encrypt_path(tmp_path / "big.bin", keys, chunk_size=CHUNK)
    enc = tmp_path / "big.bin.enc"
    flip(enc, enc.stat().st_size - 5)  # inside the 3-byte final chunk (or its tag)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(art.IntegrityError, match="chunk 64"):
        art.decrypt_path(enc, keys, out=out_dir / "big.bin")
    assert list(out_dir.iterdir()) == []


def test_no_partial_folder_when_a_later_file_fails(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    victim = tmp_path / "repo.enc" / "resnet" / "empty.txt.enc"  # sorted last but one
    flip(victim, 45)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(art.IntegrityError, match=r"empty\.txt\.enc"):
        art.decrypt_path(tmp_path / "repo.enc", keys, out=out_dir / "repo")
    assert list(out_dir.iterdir()) == []


def test_rotate_then_rewrap_moves_to_new_version(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc"
    before = {k: v for k, v in tree(enc).items() if k.endswith(".enc")}
    assert keys.rotate() == 2
    report = art.rewrap_path(enc, keys)
    assert {(f.previous_version, f.key_version) for f in report.files} == {(1, 2)}
    doc = json.loads((enc / art.FOLDER_MANIFEST).read_text())
    assert {f["key"]["version"] for f in doc["files"]} == {2}
    assert all(f["key"]["wrapped"].startswith("sovml-local:v2:") for f in doc["files"])
    assert {k: v for k, v in tree(enc).items() if k.endswith(".enc")} == before, "data untouched"
    keys.remove_version(1)  # the old version is no longer needed
    art.decrypt_path(enc, keys, out=tmp_path / "restored")
    assert tree(tmp_path / "restored") == tree(model_repo)


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


def test_path_traversal_in_manifest_rejected(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    manifest = tmp_path / "repo.enc" / art.FOLDER_MANIFEST
    doc = json.loads(manifest.read_text())
    doc["files"][0]["header"]["path"] = "../../../etc/cron.d/x"
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.ManifestError, match="unsafe path"):
        art.decrypt_path(tmp_path / "repo.enc", keys)


def test_existing_destinations_need_force(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    with pytest.raises(art.ArtifactError, match="destination exists"):
        art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK, overwrite=True)
    stale = tmp_path / "restored"
    (stale / "old").mkdir(parents=True)
    (stale / "old" / "file.txt").write_text("stale")
    with pytest.raises(art.ArtifactError, match="destination exists"):
        art.decrypt_path(tmp_path / "repo.enc", keys, out=stale)
    art.decrypt_path(tmp_path / "repo.enc", keys, out=stale, overwrite=True)
    assert tree(stale) == tree(model_repo)
    assert not [p for p in tmp_path.iterdir() if "sovml-old" in p.name or "sovml-tmp" in p.name]
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(art.ArtifactError, match="destination is a folder"):
        art.encrypt_path(tmp_path / "plain.txt", keys, out=stale, overwrite=True)
    assert tree(stale) == tree(model_repo)


# -------------------------------------------------------------------------------- hypothesis


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, art.LocalKeyFile]:
    root = tmp_path_factory.mktemp("hyp")
    return root, art.LocalKeyFile.create(root / "kek.json")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunk=st.sampled_from([16, 100, 1024]),
    chunks=st.integers(min_value=0, max_value=4),
    delta=st.integers(min_value=-2, max_value=2),
    tamper=st.integers(min_value=0, max_value=10**9),
)
def test_round_trip_around_chunk_boundaries(
    shared: tuple[Path, art.LocalKeyFile], chunk: int, chunks: int, delta: int, tamper: int
) -> None:
    root, keys = shared
    size = max(0, chunks * chunk + delta)
    work = Path(tempfile.mkdtemp(dir=root))
    data = write_random(work / "f.bin", size)
    art.encrypt_path(work / "f.bin", keys, chunk_size=chunk)
    art.decrypt_path(work / "f.bin.enc", keys, out=work / "back.bin")
    assert (work / "back.bin").read_bytes() == data
    # Any single flipped ciphertext byte is caught, wherever it lands.
    enc = work / "f.bin.enc"
    flip(enc, tamper % enc.stat().st_size, 1 << (tamper % 8))
    with pytest.raises(art.IntegrityError):
        art.decrypt_path(enc, keys, out=work / "again.bin")
    assert not (work / "again.bin").exists()


# ------------------------------------------------------------------------------------- CLI


def test_cli_local_round_trip_rotate_rewrap(tmp_path: Path, model_repo: Path) -> None:
    key = str(tmp_path / "cli-kek.json")
    code, out = run_cli("encrypt", str(model_repo), "--key", key, "--chunk-size", "4KiB")
    assert code == 0, out
    assert "encrypted 5 file(s)" in out and "created local key file" in out
    code, out = run_cli(
        "decrypt", str(tmp_path / "repo.enc"), "--key", key, "-o", str(tmp_path / "a")
    )
    assert code == 0, out
    assert tree(tmp_path / "a") == tree(model_repo)
    code, out = run_cli("rotate-key", "--key", key)
    assert code == 0 and "newest version 2" in out, out
    code, out = run_cli("rewrap", str(tmp_path / "repo.enc"), "--key", key, "--json")
    assert code == 0, out
    assert {(f["previous_version"], f["key_version"]) for f in json.loads(out)["files"]} == {(1, 2)}
    code, out = run_cli(
        "decrypt", str(tmp_path / "repo.enc"), "--key", key, "-o", str(tmp_path / "b")
    )
    assert code == 0, out
    assert tree(tmp_path / "b") == tree(model_repo)


def test_cli_failures_are_one_line_messages(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    enc, _ = encrypted_file
    key = str(keys.path)
    flip(enc, 60)
    code, out = run_cli("decrypt", str(enc), "--key", key)
    assert code == 1 and "error:" in out and "failed authentication" in out
    assert not (tmp_path / "model.bin").exists()

    code, out = run_cli("decrypt", str(tmp_path / "nothing.enc"), "--key", key)
    assert code == 1 and "manifest not found" in out

    keys.path.chmod(0o644)
    code, out = run_cli("decrypt", str(enc), "--key", key)
    assert code == 1 and "chmod 600" in out

    code, out = run_cli("decrypt", str(enc), "--backend", "kms")
    assert code == 1 and "encrypted with the local backend" in out

    code, out = run_cli("encrypt", str(tmp_path / "missing"), "--key", key)
    assert code == 1 and "error:" in out

    for command in ("encrypt", "decrypt", "rewrap", "rotate-key"):
        code, out = run_cli(command, "--help")
        assert code == 0 and "--backend" in out and "--key" in out


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
    slots = [f["key"] for f in doc["files"]]
    assert {s["backend"] for s in slots} == {"kms"}
    assert {s["name"] for s in slots} == {service.name} and service.name.startswith("arn:aws:kms:")

    # Decrypt by ARN, as the CLI does from the manifest.
    art.decrypt_path(enc, art.KmsKeys(service.name, client=kms), out=tmp_path / "a")
    assert tree(tmp_path / "a") == tree(model_repo)

    service.rotate()
    report = art.rewrap_path(enc, service)
    assert len(report.files) == 5
    new_slots = [f["key"] for f in json.loads((enc / art.FOLDER_MANIFEST).read_text())["files"]]
    assert all(a["wrapped"] != b["wrapped"] for a, b in zip(slots, new_slots, strict=True))
    art.decrypt_path(enc, service, out=tmp_path / "b")
    assert tree(tmp_path / "b") == tree(model_repo)


def test_kms_context_binds_key_to_file(tmp_path: Path, kms, model_repo: Path) -> None:
    service = art.KmsKeys("alias/sovml-test-storage", client=kms)
    art.encrypt_path(model_repo, service, chunk_size=CHUNK)
    manifest = tmp_path / "repo.enc" / art.FOLDER_MANIFEST
    doc = json.loads(manifest.read_text())
    # Move file 1's wrapped key onto file 0: KMS refuses (the context names another path).
    doc["files"][0]["key"]["wrapped"] = doc["files"][1]["key"]["wrapped"]
    manifest.write_text(json.dumps(doc, indent=2))
    with pytest.raises(art.KeyServiceError, match="InvalidCiphertextException"):
        art.decrypt_path(tmp_path / "repo.enc", service, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()

    other = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(art.KeyServiceError, match="wrong key"):
        art.decrypt_path(tmp_path / "repo.enc", art.KmsKeys(other, client=kms), out=tmp_path / "y")
    assert not (tmp_path / "y").exists()


# ------------------------------------------------------------------------------ memory use


MEMORY_PROBE = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from pipelines import artifacts as art

    keys, src, work = art.LocalKeyFile(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    warm = work / "warm.bin"
    warm.write_bytes(b"x" * (3 << 20))
    art.encrypt_path(warm, keys)
    art.decrypt_path(work / "warm.bin.enc", keys, out=work / "warm.out")
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = rss()
    art.encrypt_path(src, keys, out=work / "big.enc")
    after_encrypt = rss()
    art.decrypt_path(work / "big.enc", keys, out=work / "big.out")
    print(json.dumps({"base": base, "encrypt": after_encrypt, "decrypt": rss()}))
    """)


@pytest.mark.slow
def test_streaming_memory_stays_flat(tmp_path: Path, keys: art.LocalKeyFile) -> None:
    size = 64 << 20
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:  # sparse: instant to create, still 64 MiB to read and encrypt
        fh.truncate(size)

    # In-process: Python-level allocations during encryption stay near two 1 MiB chunk buffers.
    tracemalloc.start()
    try:
        art.encrypt_path(big, keys, out=tmp_path / "traced.enc")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"traced peak {peak / 2**20:.1f} MiB for a 64 MiB file"
    (tmp_path / "traced.enc").unlink()
    (tmp_path / "traced.enc.manifest.json").unlink()

    # Separate process: the resident-set high-water mark barely moves (ru_maxrss is monotonic,
    # so a fresh process is needed for a meaningful baseline).
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(keys.path), str(big), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    grew = max(rss["encrypt"], rss["decrypt"]) - rss["base"]
    assert grew < 16 << 20, f"peak RSS grew {grew / 2**20:.1f} MiB for a 64 MiB file: {rss}"
    assert (tmp_path / "big.out").stat().st_size == size
