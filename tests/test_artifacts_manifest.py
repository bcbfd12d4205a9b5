"""Hostile manifests: bounded parsing, strict key names, and a hypothesis search that feeds
random and mutated manifests to ``decrypt`` and never sees a traceback, a key-service call the
manifest could steer, or a write outside the destination."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipelines import artifacts as art
from pipelines.artifacts.encoding import entry_digest, json_depth_at_most, load_bounded_json
from pipelines.artifacts.keys import patterns
from tests.artifact_helpers import (  # noqa: F401 - fixtures
    CHUNK,
    DEEP,
    HOSTILE_NAMES,
    CountingKeys,
    fixture_encrypted_file,
    fixture_keys,
    hostile_manifest,
    run_cli,
    snapshot,
    without_wrapped,
    write_random,
)

# ----------------------------------------------------------------------- bounded parsing


@pytest.mark.parametrize(
    "raw,error",
    [
        (b"[" * DEEP + b"]" * DEEP, "nested deeper than 8"),
        (b'{"format": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}", "nested deeper than 8"),
        (b"[" * DEEP, "nested deeper than 8"),
        (b'{"format": 1' + b"0" * 100_000 + b"}", "digits is out of range"),
        (b'{"format": 1e999}', "non-integer number"),
        (b'{"format": NaN}', "NaN is not allowed"),
        (b'{"a": 1, "a": 2}', "duplicate field"),
        (b"\xff\xfe", "not UTF-8"),
        (b" " * (art.MAX_MANIFEST_BYTES + 1), "larger than"),
    ],
)
def test_hostile_manifests_are_refused_quickly(
    tmp_path: Path,
    keys: art.LocalKeyFile,
    encrypted_file: tuple[Path, bytes],
    raw: bytes,
    error: str,
) -> None:
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    manifest.write_bytes(raw)
    counting = CountingKeys(keys)
    started = time.monotonic()
    with pytest.raises(art.ManifestError, match=error):
        art.decrypt_path(enc, counting)
    assert time.monotonic() - started < 5 and counting.calls == []
    code, out = run_cli("decrypt", str(enc), "--key", str(keys.path))
    assert code == 2 and out.startswith("error: ") and error.split()[0] in out, out


def test_depth_check_ignores_brackets_in_strings_and_counts_levels() -> None:
    assert json_depth_at_most('{"a": "[[[[[[[[[[[[", "b": [1, {"c": []}]}', 4)
    assert not json_depth_at_most('{"a": "]]]]", "b": [1, {"c": []}]}', 3)
    assert not json_depth_at_most("[}", 8) and not json_depth_at_most("]", 8)
    assert load_bounded_json(b'{"x": [1, "\\u005d"]}', max_bytes=100, max_depth=2) == {
        "x": [1, "]"]
    }


def test_a_manifest_of_the_earlier_format_is_refused_with_the_reason(
    encrypted_file: tuple[Path, bytes], keys: art.LocalKeyFile
) -> None:
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    doc["format"] = "sovml-envelope/1"
    manifest.write_text(json.dumps(doc))
    with pytest.raises(art.ManifestError, match="key name is not authenticated"):
        art.decrypt_path(enc, keys)


# ------------------------------------------------------------------------------ key names


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_vault_key_names_are_refused_everywhere(name: str) -> None:
    with pytest.raises(ValueError, match="allowed"):
        patterns.check_key_name("vault", name)
    with pytest.raises(art.KeyNameError):
        art.VaultTransitKeys(name, url="http://127.0.0.1:9", token="t")
    if name:  # an empty --key means the backend's default key
        with pytest.raises(art.KeyNameError):
            art.open_key_service("vault", name)


@pytest.mark.parametrize(
    "backend,name",
    [
        ("vault", "sovml-artifacts"),
        ("vault", "artifacts-acme.v2_x"),
        ("kms", "arn:aws:kms:me-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("kms", "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-" + "0" * 32),
        ("local", "local-0123456789abcdef"),
    ],
)
def test_key_names_of_every_backend(backend: str, name: str) -> None:
    assert patterns.check_key_name(backend, name) == name


def test_kms_references_and_mounts() -> None:
    for ref in (
        "alias/sovml-dev-storage",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:me-central-1:123456789012:alias/sovml",
    ):
        assert art.KmsKeys(ref, client=object()).key_id == ref
    for ref in ("alias/../x", "arn:aws:kms:me-central-1:1:key/x", "key/../../", "alias/a b"):
        with pytest.raises(art.KeyNameError):
            art.KmsKeys(ref, client=object())
    arn = "arn:aws:kms:me-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert art.KmsKeys(arn, client=object()).name == arn  # a key ARN needs no DescribeKey
    for mount in ("transit/../sys", "../transit", "transit/", "a//b", "tr ansit"):
        with pytest.raises(art.KeyNameError, match="transit mount"):
            art.VaultTransitKeys("k", mount_point=mount)
    assert art.VaultTransitKeys("k", mount_point="tenants/acme/transit").mount_point


# -------------------------------------------------------------- the two layers, precisely


def test_consistent_manifest_and_lead_edit_is_refused_by_the_key_service(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    """Rewrite the header *and* the ciphertext's lead (unkeyed): the preflight passes, and the
    unwrap fails at the key service because the header digest is in its context."""
    enc, _ = encrypted_file
    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    entry = doc["files"][0]
    entry["header"]["mode"] = "0777"
    manifest.write_text(json.dumps(doc))
    data = enc.read_bytes()
    lead = entry_digest(entry["header"], entry["plaintext_sha256"], entry["plaintext_size"])
    enc.write_bytes(data[:8] + lead + data[40:])
    counting = CountingKeys(keys)
    with pytest.raises(art.UnwrapRefusedError, match="did not unwrap"):
        art.decrypt_path(enc, counting)
    assert [c for c, _ in counting.calls] == ["decrypt"]
    assert not (tmp_path / "model.bin").exists()


# ---------------------------------------------------------------------------- hypothesis


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small folder artifact and its pristine manifest, shared by the examples."""
    root = tmp_path_factory.mktemp("hostile")
    src = root / "repo"
    write_random(src / "m" / "1" / "model.bin", 2 * CHUNK + 5)
    write_random(src / "m" / "config.pbtxt", 40)
    write_random(src / "tokenizer.json", 0)
    keys = art.LocalKeyFile.create(root / "kek.json")
    art.encrypt_path(src, keys, out=root / "work" / "repo.enc", chunk_size=CHUNK)
    manifest = root / "work" / "repo.enc" / art.FOLDER_MANIFEST
    return {
        "root": root / "work",
        "enc": root / "work" / "repo.enc",
        "manifest": manifest,
        "pristine": manifest.read_bytes(),
        "doc": json.loads(manifest.read_bytes()),
        "keys": keys,
    }


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_manifests_never_traceback_call_the_key_service_or_write_outside(
    artifact: dict[str, Any], data: st.DataObject
) -> None:
    raw = data.draw(hostile_manifest(artifact["doc"], artifact["pristine"]))
    root, manifest = artifact["root"], artifact["manifest"]
    counting = CountingKeys(artifact["keys"])
    out = root / "out"
    manifest.write_bytes(raw)
    before = snapshot(root)
    try:
        art.decrypt_path(artifact["enc"], counting, out=out)
        succeeded = True
    except art.ArtifactError as exc:
        succeeded = False
        event(f"refused: {type(exc).__name__}")
    finally:
        manifest.write_bytes(artifact["pristine"])
    after = snapshot(root)
    edited = f"repo.enc/{art.FOLDER_MANIFEST}"  # the example's own input, restored above
    after.pop(edited)
    before.pop(edited)
    if succeeded:
        # Only an equivalent document (another spelling of the same manifest) decrypts.
        assert json.loads(raw) == artifact["doc"]
        assert {k for k in after if k != "out" and not k.startswith("out/")} == set(before)
        shutil.rmtree(out)
        after = snapshot(root)
        after.pop(edited)
    assert after == before, "nothing outside the destination changed, no temp folder left"
    if counting.calls:
        event("reached the key service")
        # The only thing the preflight cannot judge is the wrapped key text itself.
        assert without_wrapped(json.loads(raw)) == without_wrapped(artifact["doc"])
        assert {c for c, _ in counting.calls} == {"decrypt"}
