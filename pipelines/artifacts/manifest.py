"""The manifest: its types, how it is built, parsed strictly, written and found on disk.

A manifest lists an artifact's files; each entry holds the file's immutable header (whose
SHA-256 every chunk authenticates), the key slot with the wrapped data key, and the plaintext's
SHA-256 and size. :func:`parse_manifest` is the one reader: it rejects any deviation from the
format, so a single edited byte cannot slip through as an "equivalent" manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.artifacts.encoding import b64, header_digest, unb64
from pipelines.artifacts.envelope import (
    ALGORITHM,
    BACKENDS,
    CIPHERTEXT_SUFFIX,
    FOLDER_MANIFEST,
    FORMAT,
    MANIFEST_SUFFIX,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MIN_CHUNK_SIZE,
    NONCE_PREFIX_SIZE,
    NONCE_SCHEME,
    chunk_count,
)
from pipelines.artifacts.errors import ArtifactError, ManifestError
from pipelines.artifacts.fs import atomic_write_bytes
from pipelines.artifacts.keys.base import KeyVersion

_ARTIFACT_FIELDS = {"id", "name", "kind", "created", "files_sha256"}
_ENTRY_FIELDS = {"header", "key", "plaintext_sha256", "plaintext_size"}
_HEADER_FIELDS = {
    "format",
    "algorithm",
    "chunk_size",
    "nonce_scheme",
    "nonce_prefix",
    "path",
    "mode",
    "artifact",
}
_SLOT_FIELDS = {"backend", "name", "version", "wrapped"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_MODE = re.compile(r"^[0-7]{4}$")


@dataclass
class KeySlot:
    """Where a file's data key lives: backend, key, version and the wrapped key itself."""

    backend: str
    """Key service that wrapped the data key (one of ``BACKENDS``)."""
    name: str
    """Identity of the key-encryption key (:attr:`KeyService.name`)."""
    version: KeyVersion
    """Key version the data key is wrapped with."""
    wrapped: str
    """The wrapped data key, in the key service's own text format."""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "backend": self.backend,
            "name": self.name,
            "version": self.version,
            "wrapped": self.wrapped,
        }


def key_context(header: dict[str, Any], digest: bytes) -> dict[str, str]:
    """Encryption context binding a wrapped data key to one file of one artifact.

    KMS (and Vault transit keys created with ``derived=true``) refuse to unwrap under a different
    context, so a wrapped key copied into another manifest entry is useless there.
    """
    return {
        "sovml:artifact": header["artifact"]["id"],
        "sovml:path": header["path"],
        "sovml:header-sha256": digest.hex(),
    }


@dataclass
class FileEntry:
    """One encrypted file: immutable header (authenticated), key slot, plaintext digest and size."""

    header: dict[str, Any]
    """Format, algorithm, chunk size, nonce prefix, path, mode and the artifact identity."""
    key: KeySlot
    """The file's wrapped data key."""
    plaintext_sha256: str
    """Hex SHA-256 of the plaintext, checked after the last chunk."""
    plaintext_size: int
    """Plaintext bytes."""

    @property
    def path(self) -> str:
        """Relative path of the plaintext inside the artifact."""
        return str(self.header["path"])

    @property
    def chunk_size(self) -> int:
        """Plaintext bytes per chunk."""
        return int(self.header["chunk_size"])

    @property
    def digest(self) -> bytes:
        """SHA-256 of the canonical header: the associated data of every chunk."""
        return header_digest(self.header)

    @property
    def context(self) -> dict[str, str]:
        """The encryption context its data key is wrapped under (:func:`key_context`)."""
        return key_context(self.header, self.digest)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "header": self.header,
            "key": self.key.to_json(),
            "plaintext_sha256": self.plaintext_sha256,
            "plaintext_size": self.plaintext_size,
        }


@dataclass
class Manifest:
    """An artifact: its identity (shared by every file header) and the encrypted files."""

    artifact: dict[str, Any]
    """Random id, name, kind (``file``/``folder``), creation time and the file-list digest."""
    files: list[FileEntry]
    """One entry per encrypted file, sorted by path."""

    @property
    def kind(self) -> str:
        """``file`` or ``folder``."""
        return str(self.artifact["kind"])

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes of all files."""
        return sum(f.plaintext_size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "format": FORMAT,
            "artifact": self.artifact,
            "files": [f.to_json() for f in self.files],
        }

    def dumps(self) -> bytes:
        """Serialized manifest (stable key order, one trailing newline)."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    def write(self, path: Path, mode: int) -> None:
        """Write atomically to ``path`` with ``mode``."""
        atomic_write_bytes(path, self.dumps(), mode)


def files_digest(paths: list[str]) -> str:
    """Hex SHA-256 of the sorted file list of an artifact."""
    # Binds the set of files: dropping, adding or renaming one breaks every header.
    return hashlib.sha256(
        "".join(f"{p}\n" for p in sorted(paths)).encode("utf-8", "surrogateescape")
    ).hexdigest()


def new_artifact(name: str, kind: str, paths: list[str]) -> dict[str, Any]:
    """A fresh artifact identity (random id, now) for the files ``paths``."""
    return {
        "id": secrets.token_hex(16),
        "name": name,
        "kind": kind,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files_sha256": files_digest(paths),
    }


def new_header(
    artifact: dict[str, Any], path: str, mode: int, chunk_size: int, nonce_prefix: bytes
) -> dict[str, Any]:
    """The header of one file about to be encrypted (``mode``: its permission bits)."""
    return {
        "format": FORMAT,
        "algorithm": ALGORITHM,
        "chunk_size": chunk_size,
        "nonce_scheme": NONCE_SCHEME,
        "nonce_prefix": b64(nonce_prefix),
        "path": path,
        "mode": f"{mode:04o}",
        "artifact": artifact,
    }


def check_rel_path(path: object) -> str:
    """A manifest path must stay inside the artifact: relative, no ``..``, no empty parts."""
    if not isinstance(path, str) or not path or "\x00" in path or path.startswith("/"):
        raise ValueError(f"unsafe path {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"unsafe path {path!r}")
    return path


def _exact_keys(obj: object, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not an object")
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise ValueError(f"{what} has unexpected fields {extra} / lacks {missing}")
    return obj


def _is_int(value: object) -> bool:
    return type(value) is int


def _validate_artifact(obj: object) -> dict[str, Any]:
    art = _exact_keys(obj, _ARTIFACT_FIELDS, "artifact")
    if not isinstance(art["id"], str) or not _HEX32.match(art["id"]):
        raise ValueError("artifact id is malformed")
    if art["kind"] not in ("file", "folder"):
        raise ValueError("artifact kind must be 'file' or 'folder'")
    if not isinstance(art["name"], str) or not isinstance(art["created"], str):
        raise ValueError("artifact name/created must be strings")
    if not isinstance(art["files_sha256"], str) or not _HEX64.match(art["files_sha256"]):
        raise ValueError("artifact files_sha256 is malformed")
    return art


def _validate_header(obj: object, artifact: dict[str, Any]) -> dict[str, Any]:
    header = _exact_keys(obj, _HEADER_FIELDS, "file header")
    if header["format"] != FORMAT:
        raise ValueError(f"unsupported header format {header['format']!r}")
    if header["algorithm"] != ALGORITHM or header["nonce_scheme"] != NONCE_SCHEME:
        raise ValueError("unsupported algorithm or nonce scheme")
    chunk = header["chunk_size"]
    if not _is_int(chunk) or not MIN_CHUNK_SIZE <= chunk <= MAX_CHUNK_SIZE:
        raise ValueError("chunk_size is out of range")
    unb64(header["nonce_prefix"], "nonce_prefix", NONCE_PREFIX_SIZE)
    check_rel_path(header["path"])
    if not isinstance(header["mode"], str) or not _MODE.match(header["mode"]):
        raise ValueError("mode must be four octal digits")
    if header["artifact"] != artifact:
        raise ValueError(f"header of {header['path']!r} belongs to a different artifact")
    return header


def _validate_slot(obj: object) -> KeySlot:
    slot = _exact_keys(obj, _SLOT_FIELDS, "key slot")
    if slot["backend"] not in BACKENDS:
        raise ValueError(f"unknown backend {slot['backend']!r}")
    if not isinstance(slot["name"], str) or not isinstance(slot["wrapped"], str):
        raise ValueError("key name/wrapped must be strings")
    if not (_is_int(slot["version"]) or isinstance(slot["version"], str)):
        raise ValueError("key version must be an integer or a string")
    return KeySlot(**slot)


def _validate_entry(obj: object, artifact: dict[str, Any]) -> FileEntry:
    entry = _exact_keys(obj, _ENTRY_FIELDS, "file entry")
    header = _validate_header(entry["header"], artifact)
    slot = _validate_slot(entry["key"])
    sha, size = entry["plaintext_sha256"], entry["plaintext_size"]
    if not isinstance(sha, str) or not _HEX64.match(sha):
        raise ValueError("plaintext_sha256 is malformed")
    if not _is_int(size) or size < 0:
        raise ValueError("plaintext_size is malformed")
    if chunk_count(size, header["chunk_size"]) > MAX_CHUNKS:
        raise ValueError("plaintext_size needs more chunks than the nonce counter allows")
    return FileEntry(header, slot, sha, size)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate field in JSON object")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _validate_files(obj: object, artifact: dict[str, Any]) -> list[FileEntry]:
    if not isinstance(obj, list) or not obj:
        raise ValueError("manifest lists no files")
    files = [_validate_entry(e, artifact) for e in obj]
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise ValueError("manifest lists a path twice")
    if artifact["kind"] == "file" and len(files) != 1:
        raise ValueError("a file manifest must list exactly one file")
    if files_digest(paths) != artifact["files_sha256"]:
        raise ValueError("the file list does not match artifact.files_sha256")
    return files


def parse_manifest(raw: bytes, path: str | os.PathLike[str] | None = None) -> Manifest:
    """Parse and strictly validate a manifest; raises :class:`ManifestError` on any deviation.

    Unknown or missing fields, wrong types, duplicate keys, non-canonical base64 and unsafe paths
    are all rejected, so a single edited byte cannot slip through as an "equivalent" manifest.
    """
    try:
        doc = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
        doc = _exact_keys(doc, {"format", "artifact", "files"}, "manifest")
        if doc["format"] != FORMAT:
            raise ValueError(f"unsupported manifest format {doc['format']!r}")
        artifact = _validate_artifact(doc["artifact"])
        files = _validate_files(doc["files"], artifact)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is invalid or was modified: {exc}", path) from None
    return Manifest(artifact, files)


@dataclass
class Located:
    """Where an encrypted artifact's pieces are on disk."""

    manifest_path: Path
    """The manifest file."""
    manifest: Manifest
    """The parsed, validated manifest."""
    root: Path
    """Folder artifacts: the ``.enc`` folder; file artifacts: the ``.enc`` file itself."""

    def ciphertext_path(self, entry: FileEntry) -> Path:
        """The ``.enc`` file of an entry."""
        if self.manifest.kind == "file":
            return self.root
        return self.root.joinpath(*entry.path.split("/")).with_name(
            entry.path.split("/")[-1] + CIPHERTEXT_SUFFIX
        )

    def key(self) -> tuple[str, str]:
        """Backend and key name the artifact was encrypted with (one per artifact)."""
        slots = {(e.key.backend, e.key.name) for e in self.manifest.files}
        if len(slots) != 1:
            raise ArtifactError(
                f"files use different keys {sorted(slots)}; not supported", self.manifest_path
            )
        return slots.pop()


def _manifest_path_of(p: Path) -> tuple[Path, str, Path]:
    """``(manifest path, kind, root)`` an artifact path points at, before reading anything."""
    if p.is_dir():
        manifest_path = p / FOLDER_MANIFEST
        if not manifest_path.is_file():
            raise ManifestError(f"folder has no {FOLDER_MANIFEST}; not an encrypted artifact", p)
        return manifest_path, "folder", p
    if p.name.endswith(MANIFEST_SUFFIX):
        return p, "file", p.with_name(p.name[: -len(MANIFEST_SUFFIX)])
    if p.name.endswith(CIPHERTEXT_SUFFIX):
        return p.with_name(p.name + MANIFEST_SUFFIX), "file", p
    if p.with_name(p.name + CIPHERTEXT_SUFFIX + MANIFEST_SUFFIX).is_file():
        root = p.with_name(p.name + CIPHERTEXT_SUFFIX)
        return root.with_name(root.name + MANIFEST_SUFFIX), "file", root
    raise ManifestError("not an encrypted artifact (no .enc file, folder or manifest)", p)


def locate(path: str | os.PathLike[str]) -> Located:
    """Find and parse the manifest of an encrypted artifact.

    Accepts the ``.enc`` folder, the ``.enc`` file, its ``.manifest.json`` or the original
    plaintext path (when ``<path>.enc.manifest.json`` exists next to it).
    """
    manifest_path, kind, root = _manifest_path_of(Path(path))
    try:
        raw = manifest_path.read_bytes()
    except FileNotFoundError:
        raise ManifestError("manifest not found", manifest_path) from None
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc.strerror}", manifest_path) from None
    manifest = parse_manifest(raw, manifest_path)
    if manifest.kind != kind:
        raise ManifestError(
            f"a {manifest.kind} manifest found where a {kind} one belongs", manifest_path
        )
    return Located(manifest_path, manifest, root)
