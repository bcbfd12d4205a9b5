"""Artifact envelope encryption: round trips, manifest contents, rewrap, destinations, memory."""

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import artifacts as art
from tests.artifact_helpers import (  # noqa: F401 - fixtures
    CHUNK,
    REPO_ROOT,
    fixture_keys,
    fixture_model_repo,
    flip,
    tree,
    write_random,
)

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
    header, slot = entry["header"], entry["data_key"]
    assert doc["format"] == header["format"] == art.FORMAT == "sovml-envelope/2"
    assert header["algorithm"] == "AES-256-GCM"
    assert header["chunk_size"] == CHUNK
    assert header["nonce_scheme"] == art.NONCE_SCHEME
    # The key that wraps the data keys is part of the artifact, hence of every header.
    assert doc["artifact"]["wrapping_key"] == {"backend": "local", "name": keys.name}
    assert slot == {"version": 1, "wrapped": slot["wrapped"]}
    assert slot["wrapped"].startswith("sovml-local:v1:")
    assert entry["plaintext_sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["plaintext_size"] == 10_000
    assert doc["artifact"]["kind"] == "file" and header["artifact"] == doc["artifact"]
    # The ciphertext starts with the digest of the whole entry but the data key.
    lead = (tmp_path / "m.onnx.enc").read_bytes()[:40]
    located = art.locate(tmp_path / "m.onnx.enc")
    assert lead == b"SOVMLE02" + located.manifest.files[0].lead_digest


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
    assert {f["data_key"]["version"] for f in doc["files"]} == {2}
    assert all(f["data_key"]["wrapped"].startswith("sovml-local:v2:") for f in doc["files"])
    assert {k: v for k, v in tree(enc).items() if k.endswith(".enc")} == before, "data untouched"
    keys.remove_version(1)  # the old version is no longer needed
    art.decrypt_path(enc, keys, out=tmp_path / "restored")
    assert tree(tmp_path / "restored") == tree(model_repo)


def test_existing_destinations_need_force(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    with pytest.raises(art.ArtifactError, match="destination exists"):
        art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK, overwrite=True)
    earlier = tmp_path / "restored"  # an earlier, partial output of this artifact
    (earlier / "resnet").mkdir(parents=True)
    (earlier / "resnet" / "config.pbtxt").write_text("earlier")
    with pytest.raises(art.ArtifactError, match="destination exists"):
        art.decrypt_path(tmp_path / "repo.enc", keys, out=earlier)
    art.decrypt_path(tmp_path / "repo.enc", keys, out=earlier, overwrite=True)
    assert tree(earlier) == tree(model_repo)
    assert not [p for p in tmp_path.iterdir() if ".sovml-" in p.name]
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(art.UnsafeDestinationError, match="destination is a folder"):
        art.encrypt_path(tmp_path / "plain.txt", keys, out=earlier, overwrite=True)
    assert tree(earlier) == tree(model_repo)


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
