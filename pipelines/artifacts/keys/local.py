"""The embedded key service: versioned key-encryption keys in a private local JSON file."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipelines.artifacts.encoding import b64, canonical, load_bounded_json, unb64
from pipelines.artifacts.envelope import DATA_KEY_SIZE, TAG_SIZE
from pipelines.artifacts.errors import (
    ArtifactError,
    KeyFilePermissionError,
    KeyServiceError,
    UnwrapRefusedError,
)
from pipelines.artifacts.fs import atomic_write_bytes, open_regular
from pipelines.artifacts.keys.base import KeyService
from pipelines.artifacts.keys.patterns import LOCAL_KEY_ID

DEFAULT_LOCAL_KEY_FILE = "~/.config/sovml/artifact-key.json"
"""Key file the local backend uses when none is named."""
MAX_KEY_FILE_BYTES = 1 << 20
"""Largest key file read (thousands of versions)."""


def _dump(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, indent=2) + "\n").encode()


class LocalKeyFile(KeyService):
    """Embedded default: versioned 32-byte key-encryption keys in a JSON file with mode 0600.

    Data keys are wrapped with AES-256-GCM under the newest version; the associated data binds
    the key-file id, the version and the encryption context. :meth:`rotate` adds a version and
    :meth:`rewrap` moves wrapped keys to it. The file is refused when group or others have any
    access, like ssh does for private keys.
    """

    backend: ClassVar[str] = "local"
    FORMAT: ClassVar[str] = "sovml-local-kek/1"
    _WRAPPED = re.compile(r"^sovml-local:v([1-9][0-9]{0,8}):([A-Za-z0-9+/=]+)$")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._load()  # fail early: missing file, bad permissions, bad content

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> LocalKeyFile:
        """Create a new key file (version 1) with mode 0600; refuses to overwrite one."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = {
            "format": cls.FORMAT,
            "key_id": f"local-{secrets.token_hex(8)}",
            "latest": 1,
            "versions": {"1": b64(secrets.token_bytes(32))},
        }
        try:
            # O_EXCL + explicit mode: the key is never, even briefly, readable by others.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyServiceError(
                "key file already exists; refusing to overwrite it", target
            ) from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(_dump(body))
            fh.flush()
            os.fsync(fh.fileno())
        return cls(target)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str]) -> tuple[LocalKeyFile, bool]:
        """Open the key file, creating it first when missing; returns ``(keys, created)``."""
        target = Path(path).expanduser()
        if target.exists():
            return cls(target), False
        return cls.create(target), True

    def _read_private(self) -> bytes:
        """The file's bytes, after checking that only its owner can read or write it."""
        try:
            # A FIFO, device or socket is refused before it is opened: never a blocking read.
            fd = open_regular(self.path)
        except FileNotFoundError:
            raise KeyServiceError("local key file not found", self.path) from None
        except ArtifactError as exc:
            raise KeyServiceError(f"local key file: {exc.reason}", self.path) from None
        with os.fdopen(fd, "rb") as fh:
            # fstat on the open descriptor: the permissions checked are those of what is read.
            st = os.fstat(fh.fileno())
            if st.st_mode & 0o077:
                raise KeyFilePermissionError(
                    f"local key file has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
                    f"accessible to group or others (run: chmod 600 {self.path})",
                    self.path,
                )
            return fh.read(MAX_KEY_FILE_BYTES + 1)

    def _load(self) -> dict[str, Any]:
        raw = self._read_private()
        try:
            body = load_bounded_json(raw, max_bytes=MAX_KEY_FILE_BYTES, max_depth=4)
            if not isinstance(body, dict):
                raise ValueError("not an object")
            if body.get("format") != self.FORMAT:
                raise ValueError("unknown format")
            key_id, latest, versions = body["key_id"], body["latest"], body["versions"]
            if not isinstance(key_id, str) or not LOCAL_KEY_ID.fullmatch(key_id):
                raise ValueError("bad key_id")
            if not isinstance(versions, dict):
                raise ValueError("bad versions")
            if type(latest) is not int or str(latest) not in versions:
                raise ValueError("latest version missing")
            for ver, key in versions.items():
                if not ver.isdigit():
                    raise ValueError(f"bad version {ver!r}")
                unb64(key, f"key version {ver}", 32)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyServiceError(f"not a valid local key file ({exc})", self.path) from None
        return body

    def _save(self, body: dict[str, Any]) -> None:
        atomic_write_bytes(self.path, _dump(body), 0o600)

    @property
    def name(self) -> str:
        """The key file's random id (``local-<hex>``), not its path, so the file can move."""
        return str(self._load()["key_id"])

    def files(self) -> list[Path]:
        """The key file."""
        return [self.path]

    def describe(self) -> str:
        """Key id and file, for messages."""
        return f"local key file {self.path} (id {self.name!r})"

    @property
    def latest_version(self) -> int:
        """Newest key version in the file."""
        return int(self._load()["latest"])

    @property
    def versions(self) -> list[int]:
        """All key versions present in the file."""
        return sorted(int(v) for v in self._load()["versions"])

    def rotate(self) -> int:
        """Add a new key version and make it the newest; returns its number."""
        body = self._load()
        new = max(int(v) for v in body["versions"]) + 1
        body["versions"][str(new)] = b64(secrets.token_bytes(32))
        body["latest"] = new
        self._save(body)
        return new

    def derive_key(self, label: bytes) -> tuple[bytes, int]:
        """HKDF-SHA256 of the newest version's key material, bound to ``label`` and the key id.

        The key-encryption key itself never leaves this object; what is derived for another
        label (or from another key file or version) is unrelated to it (RFC 5869).
        """
        body = self._load()
        version = int(body["latest"])
        info = b"sovml-local-derive/1\x00" + canonical([body["key_id"], version]) + b"\x00" + label
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
        return hkdf.derive(base64.b64decode(body["versions"][str(version)])), version

    def remove_version(self, version: int) -> None:
        """Delete an old key version (data keys still wrapped with it become undecryptable)."""
        body = self._load()
        if version == body["latest"]:
            raise KeyServiceError("refusing to remove the newest key version", self.path)
        body["versions"].pop(str(version), None)
        self._save(body)

    @staticmethod
    def _aad(key_id: str, version: int, context: Mapping[str, str] | None) -> bytes:
        return b"sovml-local-wrap/1\x00" + canonical([key_id, version, dict(context or {})])

    def _wrap(
        self, body: dict[str, Any], data_key: bytes, context: Mapping[str, str] | None
    ) -> str:
        version = int(body["latest"])
        kek = base64.b64decode(body["versions"][str(version)])
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(kek).encrypt(nonce, data_key, self._aad(body["key_id"], version, context))
        return f"sovml-local:v{version}:{b64(nonce + sealed)}"

    def wrapped_version(self, wrapped: str) -> int | None:
        """Version from the ``sovml-local:vN:`` prefix."""
        match = self._WRAPPED.match(wrapped)
        return int(match.group(1)) if match else None

    def generate_data_key(self, context: Mapping[str, str] | None = None) -> tuple[bytes, str, int]:
        """A fresh random data key wrapped with the newest key version."""
        body = self._load()
        data_key = secrets.token_bytes(DATA_KEY_SIZE)
        return data_key, self._wrap(body, data_key, context), int(body["latest"])

    def decrypt_data_key(self, wrapped: str, context: Mapping[str, str] | None = None) -> bytes:
        """Unwrap with the version named in the wrapped key."""
        body = self._load()
        match = self._WRAPPED.match(wrapped)
        if not match:
            raise KeyServiceError("wrapped data key is not in the local key format", self.path)
        version = int(match.group(1))
        kek_b64 = body["versions"].get(str(version))
        if kek_b64 is None:
            have = ", ".join(f"v{v}" for v in sorted(int(v) for v in body["versions"]))
            raise KeyServiceError(
                f"key version v{version} is not in the key file (it has {have}); "
                "the version was removed or this is a different key file",
                self.path,
            )
        try:
            blob = unb64(match.group(2), "wrapped data key")
            if len(blob) != 12 + DATA_KEY_SIZE + TAG_SIZE:
                raise ValueError("wrapped data key has the wrong length")
            return AESGCM(base64.b64decode(kek_b64)).decrypt(
                blob[:12], blob[12:], self._aad(body["key_id"], version, context)
            )
        except (InvalidTag, ValueError):
            raise UnwrapRefusedError(
                f"data key did not unwrap with key version v{version}: wrong key file, or the "
                "wrapped key or the artifact it is bound to was modified",
                self.path,
            ) from None

    def rewrap(self, wrapped: str, context: Mapping[str, str] | None = None) -> tuple[str, int]:
        """Unwrap with the old version, wrap with the newest."""
        data_key = self.decrypt_data_key(wrapped, context)
        body = self._load()
        return self._wrap(body, data_key, context), int(body["latest"])
