"""Artifact envelope encryption: tampering, truncation and reordering are detected, and a failed
decrypt leaves no plaintext behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import artifacts as art
from pipelines.artifacts.encoding import entry_digest
from tests.artifact_helpers import (  # noqa: F401 - fixtures
    CHUNK,
    CountingKeys,
    fixture_encrypted_file,
    fixture_keys,
    fixture_model_repo,
    flip,
    leftovers,
    write_random,
)

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
    """Every flipped bit is refused, and only a flip inside the wrapped data key (which only the
    key service can judge) ever reaches the key service."""
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    original = manifest.read_bytes()
    parsed = json.loads(original)
    wrapped = parsed["files"][0]["data_key"]["wrapped"].encode()
    start = original.index(wrapped)
    inside_wrapped = range(start + len(b"sovml-local:v1:"), start + len(wrapped))
    counting = CountingKeys(keys)
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
        counting.calls.clear()
        with pytest.raises(art.ArtifactError):
            art.decrypt_path(enc, counting)
        if counting.calls:
            assert offset in inside_wrapped, (offset, bytes(mutated[offset - 20 : offset + 20]))
        checked += 1
    assert checked > 1000
    assert not (tmp_path / "model.bin").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "field,value,error",
    [
        (("header", "chunk_size"), 8192, "trailing data"),
        (("header", "nonce_prefix"), "AAAAAAAAAAA=", "does not belong"),
        (("header", "path"), "other.bin", "file list"),
        (("header", "mode"), "0777", "does not belong"),
        (("plaintext_sha256",), "0" * 64, "does not belong"),
        (("plaintext_size",), 3 * CHUNK + 16, "trailing data"),
        (("data_key", "version"), 2, "differs from the version the wrapped key shows"),
        (("header", "artifact", "name"), "other", "different artifact"),
        (("header", "path"), "../../escape", "unsafe path"),
    ],
)
def test_semantic_manifest_tampering_detected(
    tmp_path: Path,
    keys: art.LocalKeyFile,
    encrypted_file: tuple[Path, bytes],
    field: tuple[str, ...],
    value: object,
    error: str,
) -> None:
    """Each field edited alone is refused before the key service is called."""
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    target = doc["files"][0]
    for part in field[:-1]:
        target = target[part]
    target[field[-1]] = value
    manifest.write_text(json.dumps(doc))
    counting = CountingKeys(keys)
    with pytest.raises(art.IntegrityError, match=error):
        art.decrypt_path(enc, counting)
    assert counting.calls == []
    assert not (tmp_path / "model.bin").exists() and leftovers(tmp_path) == []
    assert not (tmp_path.parent / "escape").exists()


def test_key_name_edited_everywhere_is_refused_unsent(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    """The artifact (in the manifest and every header) names another key: refused unsent."""
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    for art_doc in (doc["artifact"], doc["files"][0]["header"]["artifact"]):
        art_doc["wrapping_key"]["name"] = "local-0000000000000000"
    manifest.write_text(json.dumps(doc))
    counting = CountingKeys(keys)
    with pytest.raises(art.ArtifactError, match=r"does not belong|wrong key"):
        art.decrypt_path(enc, counting)
    assert counting.calls == []


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
    """An attacker drops the last chunk, edits plaintext_size and rewrites the (unkeyed) lead to
    match: the lead check passes, and the final flag in the chunks' associated data catches it."""
    enc, _ = encrypted_file
    record = CHUNK + 16
    data = enc.read_bytes()[: 40 + 3 * record]
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    doc["files"][0]["plaintext_size"] = 3 * CHUNK
    manifest.write_text(json.dumps(doc))
    entry = doc["files"][0]
    lead = entry_digest(entry["header"], entry["plaintext_sha256"], 3 * CHUNK)
    enc.write_bytes(data[:8] + lead + data[40:])
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
