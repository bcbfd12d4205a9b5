"""The manifest: its types, how it is built, parsed strictly, written and found on disk.

A manifest names the artifact (id, name, kind, the digest of its file list and the wrapping key:
backend and key name) and lists its files; each entry holds the file's immutable header (which
embeds the artifact, so every chunk authenticates all of it), the wrapped data key with its
version, and the plaintext's SHA-256 and size. :func:`parse_manifest` is the one reader: bounded
(size, depth, numbers) and strict (exact fields, types, patterns), so neither a hostile document
nor a single edited byte slips through as an "equivalent" manifest. See
:mod:`pipelines.artifacts.envelope` for what is bound to the ciphertext and how.
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

from pipelines.artifacts import fs
from pipelines.artifacts.encoding import (
    b64,
    canonical,
    entry_digest,
    header_digest,
    load_bounded_json,
    shown,
    unb64,
)
from pipelines.artifacts.envelope import (
    ALGORITHM,
    BACKENDS,
    CIPHERTEXT_SUFFIX,
    FOLDER_MANIFEST,
    FORMAT,
    MANIFEST_SUFFIX,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MAX_FILES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    MAX_PATH_BYTES,
    MIN_CHUNK_SIZE,
    NONCE_PREFIX_SIZE,
    NONCE_SCHEME,
    OLD_FORMATS,
    chunk_count,
)
from pipelines.artifacts.errors import ArtifactError, ManifestError
from pipelines.artifacts.keys.base import KeyVersion
from pipelines.artifacts.keys.patterns import check_data_key_slot, check_key_name

_ARTIFACT_FIELDS = {"id", "name", "kind", "created", "files_sha256", "wrapping_key"}
_WRAPPING_FIELDS = {"backend", "name"}
_ENTRY_FIELDS = {"header", "data_key", "plaintext_sha256", "plaintext_size"}
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
_SLOT_FIELDS = {"version", "wrapped"}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_MODE = re.compile(r"[0-7]{4}")
_CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SIZE = 2**62
"""Largest plaintext size a manifest may state."""


@dataclass
class KeySlot:
    """Where a file's data key lives: backend, key, version and the wrapped key itself."""

    backend: str
    """Key service that wrapped the data key (one of ``BACKENDS``; the artifact's)."""
    name: str
    """Identity of the key-encryption key (:attr:`KeyService.name`; the artifact's)."""
    version: KeyVersion
    """Key version the data key is wrapped with."""
    wrapped: str
    """The wrapped data key, in the key service's own text format."""

    def to_json(self) -> dict[str, Any]:
        """JSON form of the per-file part (backend and name live in the artifact)."""
        return {"version": self.version, "wrapped": self.wrapped}


def key_context(header: dict[str, Any], digest: bytes) -> dict[str, str]:
    """Encryption context binding a wrapped data key to one file of one artifact.

    KMS, the local key file and Vault transit keys created with ``derived=true`` refuse to unwrap
    under a different context, so a wrapped key copied into another manifest entry, or one whose
    header was edited, is useless there.
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
    def lead_digest(self) -> bytes:
        """The entry digest the ciphertext file starts with (header, plaintext digest, size)."""
        return entry_digest(self.header, self.plaintext_sha256, self.plaintext_size)

    @property
    def context(self) -> dict[str, str]:
        """The encryption context its data key is wrapped under (:func:`key_context`)."""
        return key_context(self.header, self.digest)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "header": self.header,
            "data_key": self.key.to_json(),
            "plaintext_sha256": self.plaintext_sha256,
            "plaintext_size": self.plaintext_size,
        }


@dataclass
class Manifest:
    """An artifact: its identity (shared by every file header) and the encrypted files."""

    artifact: dict[str, Any]
    """Random id, name, kind, creation time, file-list digest and wrapping key."""
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

    @property
    def wrapping_key(self) -> tuple[str, str]:
        """``(backend, key name)`` every data key of the artifact is wrapped with."""
        key = self.artifact["wrapping_key"]
        return str(key["backend"]), str(key["name"])

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
        fs.atomic_write_bytes(path, self.dumps(), mode)


# ------------------------------------------------------------------------------ building


def files_digest(paths: list[str]) -> str:
    """Hex SHA-256 of the sorted file list of an artifact (canonical JSON: no separator games)."""
    # Binds the set of files: dropping, adding or renaming one breaks every header.
    return hashlib.sha256(canonical(sorted(paths))).hexdigest()


def new_artifact(name: str, kind: str, paths: list[str], backend: str, key: str) -> dict[str, Any]:
    """A fresh artifact identity (random id, now) for the files ``paths`` under one key."""
    return {
        "id": secrets.token_hex(16),
        "name": name,
        "kind": kind,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files_sha256": files_digest(paths),
        "wrapping_key": {"backend": backend, "name": key},
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


# ---------------------------------------------------------------------------- path rules


def check_name(name: object, what: str = "name") -> str:
    """One file-name component: no ``/``, not ``.``/``..``, no control characters, bounded."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"unsafe {what} {shown(name)}")
    return check_rel_path(name, what)


def check_rel_path(path: object, what: str = "path") -> str:
    """A manifest path must stay inside the artifact: relative, no ``..``, no empty parts.

    Control characters are refused too (they would forge lines in messages), and so is anything
    that cannot be a file name here (unpaired surrogates) or is longer than ``MAX_PATH_BYTES``.
    """
    if not isinstance(path, str) or not path or path.startswith("/") or _CONTROL.search(path):
        raise ValueError(f"unsafe {what} {shown(path)}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"unsafe {what} {shown(path)}")
    try:
        size = len(path.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        raise ValueError(f"unsafe {what} {shown(path)}") from None
    if size > MAX_PATH_BYTES or any(
        len(p.encode("utf-8", "surrogateescape")) > 255 for p in path.split("/")
    ):
        raise ValueError(f"{what} {shown(path)} is too long")
    return path


def check_file_list(paths: list[str], kind: str) -> None:
    """Paths that can all be written side by side, as plaintext and as ciphertext.

    No path may be the folder of another (``a`` and ``a/b``), and no ciphertext file may collide
    with a folder (``a`` -> ``a.enc`` next to ``a.enc/b``) or with the folder manifest.
    """
    if not paths:
        raise ValueError("manifest lists no files")
    if len(paths) > MAX_FILES:
        raise ValueError(f"{len(paths)} files; at most {MAX_FILES} per artifact")
    if len(set(paths)) != len(paths):
        raise ValueError("a path is listed twice")
    if kind == "file":
        if len(paths) != 1 or "/" in paths[0]:
            raise ValueError("a file artifact holds exactly one file name")
        return
    folders = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    clash = sorted(folders & (set(paths) | {p + CIPHERTEXT_SUFFIX for p in paths}))
    if clash or FOLDER_MANIFEST in folders:
        raise ValueError(f"{shown(clash[0] if clash else FOLDER_MANIFEST)} is a file and a folder")


# ------------------------------------------------------------------------------- parsing


def _exact_keys(obj: object, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not an object")
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise ValueError(f"{what} has unexpected fields {shown(extra)} / lacks {missing}")
    return obj


def _is_int(value: object) -> bool:
    return type(value) is int


def _validate_artifact(obj: object) -> dict[str, Any]:
    art = _exact_keys(obj, _ARTIFACT_FIELDS, "artifact")
    if not isinstance(art["id"], str) or not _HEX32.fullmatch(art["id"]):
        raise ValueError("artifact id is malformed")
    if art["kind"] not in ("file", "folder"):
        raise ValueError("artifact kind must be 'file' or 'folder'")
    check_name(art["name"], "artifact name")
    if not isinstance(art["created"], str) or not _CREATED.fullmatch(art["created"]):
        raise ValueError("artifact created is not a UTC timestamp")
    if not isinstance(art["files_sha256"], str) or not _HEX64.fullmatch(art["files_sha256"]):
        raise ValueError("artifact files_sha256 is malformed")
    key = _exact_keys(art["wrapping_key"], _WRAPPING_FIELDS, "wrapping_key")
    if key["backend"] not in BACKENDS:
        raise ValueError(f"unknown backend {shown(key['backend'])}")
    check_key_name(key["backend"], key["name"])
    return art


def _validate_header(obj: object, artifact: dict[str, Any]) -> dict[str, Any]:
    header = _exact_keys(obj, _HEADER_FIELDS, "file header")
    if header["format"] != FORMAT:
        raise ValueError(f"unsupported header format {shown(header['format'])}")
    if header["algorithm"] != ALGORITHM or header["nonce_scheme"] != NONCE_SCHEME:
        raise ValueError("unsupported algorithm or nonce scheme")
    chunk = header["chunk_size"]
    if not _is_int(chunk) or not MIN_CHUNK_SIZE <= chunk <= MAX_CHUNK_SIZE:
        raise ValueError("chunk_size is out of range")
    unb64(header["nonce_prefix"], "nonce_prefix", NONCE_PREFIX_SIZE)
    check_rel_path(header["path"])
    if not isinstance(header["mode"], str) or not _MODE.fullmatch(header["mode"]):
        raise ValueError("mode must be four octal digits")
    if header["artifact"] != artifact:
        raise ValueError(f"header of {shown(header['path'])} belongs to a different artifact")
    return header


def _validate_entry(obj: object, artifact: dict[str, Any]) -> FileEntry:
    entry = _exact_keys(obj, _ENTRY_FIELDS, "file entry")
    header = _validate_header(entry["header"], artifact)
    slot = _exact_keys(entry["data_key"], _SLOT_FIELDS, "data_key")
    backend, name = artifact["wrapping_key"]["backend"], artifact["wrapping_key"]["name"]
    check_data_key_slot(backend, slot["version"], slot["wrapped"])
    sha, size = entry["plaintext_sha256"], entry["plaintext_size"]
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        raise ValueError("plaintext_sha256 is malformed")
    if not _is_int(size) or not 0 <= size <= MAX_SIZE:
        raise ValueError("plaintext_size is malformed")
    if chunk_count(size, header["chunk_size"]) > MAX_CHUNKS:
        raise ValueError("plaintext_size needs more chunks than the nonce counter allows")
    return FileEntry(header, KeySlot(backend, name, slot["version"], slot["wrapped"]), sha, size)


def _validate_files(obj: object, artifact: dict[str, Any]) -> list[FileEntry]:
    if not isinstance(obj, list):
        raise ValueError("files is not a list")
    if len(obj) > MAX_FILES:
        raise ValueError(f"{len(obj)} files; at most {MAX_FILES} per artifact")
    files = [_validate_entry(e, artifact) for e in obj]
    paths = [f.path for f in files]
    check_file_list(paths, artifact["kind"])
    if paths != sorted(paths):
        raise ValueError("files are not sorted by path")
    if files_digest(paths) != artifact["files_sha256"]:
        raise ValueError("the file list does not match artifact.files_sha256")
    return files


def parse_manifest(raw: bytes, path: str | os.PathLike[str] | None = None) -> Manifest:
    """Parse and strictly validate a manifest; raises :class:`ManifestError` on any deviation.

    Bounded first (``MAX_MANIFEST_BYTES``, ``MAX_MANIFEST_DEPTH``, integer digits), then exact:
    unknown or missing fields, wrong types, duplicate keys, non-canonical base64, key names or
    wrapped keys outside their patterns and unsafe paths are all rejected.
    """
    try:
        doc = load_bounded_json(raw, max_bytes=MAX_MANIFEST_BYTES, max_depth=MAX_MANIFEST_DEPTH)
        if isinstance(doc, dict) and doc.get("format") in OLD_FORMATS:
            raise ValueError(
                f"format {doc['format']} is not accepted: its key name is not authenticated; "
                "decrypt it with the sovml version that wrote it and encrypt it again"
            )
        doc = _exact_keys(doc, {"format", "artifact", "files"}, "manifest")
        if doc["format"] != FORMAT:
            raise ValueError(f"unsupported manifest format {shown(doc['format'])}")
        artifact = _validate_artifact(doc["artifact"])
        files = _validate_files(doc["files"], artifact)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"manifest is invalid or was modified: {exc}", path) from None
    return Manifest(artifact, files)


def is_manifest(path: Path) -> bool:
    """True when ``path`` is a regular file holding a manifest of this tool (any format)."""
    try:
        raw = fs.read_regular(path, MAX_MANIFEST_BYTES)
        doc = load_bounded_json(raw, max_bytes=MAX_MANIFEST_BYTES, max_depth=MAX_MANIFEST_DEPTH)
    except (ArtifactError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") in (FORMAT, *OLD_FORMATS)


# ------------------------------------------------------------------------------ on disk


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
        parts = entry.path.split("/")
        return self.root.joinpath(*parts[:-1], parts[-1] + CIPHERTEXT_SUFFIX)

    def key(self) -> tuple[str, str]:
        """Backend and key name the artifact was encrypted with (one per artifact)."""
        return self.manifest.wrapping_key


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
    plaintext path (when ``<path>.enc.manifest.json`` exists next to it). The manifest must be a
    regular file (a FIFO or device is refused, never opened for a blocking read).
    """
    manifest_path, kind, root = _manifest_path_of(Path(path))
    try:
        raw = fs.read_regular(manifest_path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise ManifestError("manifest not found", manifest_path) from None
    except ArtifactError as exc:
        raise ManifestError(f"cannot read manifest: {exc.reason}", manifest_path) from None
    manifest = parse_manifest(raw, manifest_path)
    if manifest.kind != kind:
        raise ManifestError(
            f"a {manifest.kind} manifest found where a {kind} one belongs", manifest_path
        )
    return Located(manifest_path, manifest, root)
