"""Envelope encryption of model artifacts (single files and whole model-repository folders).

Every file gets its own random AES-256-GCM data key. The data key is wrapped by a key service
(:class:`VaultTransitKeys`, :class:`KmsKeys` or the embedded :class:`LocalKeyFile`) and only the
wrapped form is stored, in a JSON manifest next to the ciphertext:

* a file ``X`` becomes ``X.enc`` plus ``X.enc.manifest.json``;
* a folder ``D`` becomes a folder ``D.enc`` holding ``<relative path>.enc`` for every file plus
  one ``sovml-manifest.json`` that lists them all.

Ciphertext files start with ``MAGIC`` and the SHA-256 of the entry's *header* (the immutable part
of its manifest entry), followed by fixed-size chunks. Chunk ``i`` is sealed with the nonce
``prefix(8 random bytes) || i (4 bytes, big endian)`` and associated data
``header_sha256 || i (8 bytes) || final flag (1 byte)``, so a modified byte, dropped or reordered
chunks, a truncated tail or an edited header all fail authentication. The plaintext SHA-256 and
size are checked at the end; the wrapped key is protected by the key service itself (it will not
unwrap a modified blob) and is bound to the artifact through an encryption context.

Memory stays constant (a few chunk-sized buffers) whatever the file size. Decryption writes into a
temporary file (or folder) in the destination folder and renames it into place only after every
chunk and the final digest verified, so a failure never leaves partial plaintext behind.
:func:`rewrap_path` re-wraps only the data keys (to the newest key version) without touching the
ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import struct
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = "sovml-envelope/1"
"""Format identifier written into every manifest and header."""
ALGORITHM = "AES-256-GCM"
NONCE_SCHEME = "prefix64-random+counter32-be"
"""12-byte GCM nonce: 8 random bytes per file, then the chunk index as a 4-byte big-endian int."""
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 64 << 20
MAGIC = b"SOVMLE01"
TAG_SIZE = 16
DATA_KEY_SIZE = 32
NONCE_PREFIX_SIZE = 8
MAX_CHUNKS = 1 << 32  # the counter is 4 bytes; beyond it nonces would repeat
CIPHERTEXT_SUFFIX = ".enc"
MANIFEST_SUFFIX = ".manifest.json"
FOLDER_MANIFEST = "sovml-manifest.json"
BACKENDS = ("local", "vault", "kms")

DEFAULT_LOCAL_KEY_FILE = "~/.config/sovml/artifact-key.json"
DEFAULT_VAULT_KEY = "sovml-artifacts"
DEFAULT_VAULT_MOUNT = "transit"
DEFAULT_KMS_KEY = "alias/sovml-dev-storage"
K8S_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

KeyVersion = int | str
"""Key version recorded in a manifest: an int for Vault/local keys, KMS key-material id (str)."""
Progress = Callable[[int], None]
"""Called with the number of plaintext bytes just processed."""


# --------------------------------------------------------------------------------------------
# Errors


class ArtifactError(Exception):
    """Any failure to encrypt, decrypt or rewrap an artifact; the message says what and where."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class IntegrityError(ArtifactError):
    """Ciphertext or manifest failed verification: tampered, truncated, reordered or corrupt."""


class ManifestError(IntegrityError):
    """A manifest is missing, unreadable, or not a well-formed manifest of this format."""


class KeyServiceError(ArtifactError):
    """The key service refused or failed: wrong key, missing key version, no access, unreachable."""


class KeyFilePermissionError(KeyServiceError):
    """A local key file is readable or writable by group/others and is therefore not used."""


# --------------------------------------------------------------------------------------------
# Small helpers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str, size: int | None = None) -> bytes:
    """Strict base64: rejects stray characters and non-canonical padding bits.

    The lenient decoder would accept a flipped byte in a manifest (ignored characters, unused low
    bits), so a tampered value could decode to the original bytes and go unnoticed.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
    if _b64(raw) != text:
        raise ValueError(f"{what} is not canonical base64")
    if size is not None and len(raw) != size:
        raise ValueError(f"{what} has {len(raw)} bytes, expected {size}")
    return raw


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _header_digest(header: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(_canonical(header)).digest()


def _umask() -> int:
    # Linux exposes the umask without the set-and-restore race of os.umask().
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable; not every platform/filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_full(fh: IO[bytes], view: memoryview) -> int:
    """Fill ``view`` from ``fh``; returns the bytes read (short only at end of file)."""
    total = 0
    while total < len(view):
        n = fh.readinto(view[total:])  # type: ignore[attr-defined]
        if not n:
            break
        total += n
    return total


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _chunk_aad(header_digest: bytes, index: int, final: bool) -> bytes:
    return header_digest + struct.pack(">QB", index, 1 if final else 0)


def _chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-size // chunk_size))


def _ciphertext_size(size: int, chunk_size: int) -> int:
    return len(MAGIC) + 32 + size + TAG_SIZE * _chunk_count(size, chunk_size)


def _check_rel_path(path: object) -> str:
    """A manifest path must stay inside the artifact: relative, no ``..``, no empty parts."""
    if not isinstance(path, str) or not path or "\x00" in path or path.startswith("/"):
        raise ValueError(f"unsafe path {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"unsafe path {path!r}")
    return path


def _context_for(header: Mapping[str, Any], header_digest: bytes) -> dict[str, str]:
    """Encryption context binding a wrapped data key to one file of one artifact.

    KMS (and Vault transit keys created with ``derived=true``) refuse to unwrap under a different
    context, so a wrapped key copied into another manifest entry is useless there.
    """
    return {
        "sovml:artifact": header["artifact"]["id"],
        "sovml:path": header["path"],
        "sovml:header-sha256": header_digest.hex(),
    }


def _parse_bool(value: str) -> bool:
    # Same spellings as Go's strconv.ParseBool, which Vault's CLI uses for VAULT_SKIP_VERIFY.
    lowered = value.strip()
    if lowered in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if lowered in ("", "0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


# --------------------------------------------------------------------------------------------
# Key services


class KeyService(ABC):
    """Generates, unwraps and re-wraps AES-256 data keys; one implementation per backend."""

    backend: ClassVar[str]
    """Backend identifier stored in manifests (``local``, ``vault``, ``kms``)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Identity of the key-encryption key, as recorded in (and checked against) manifests."""

    @abstractmethod
    def generate_data_key(
        self, context: Mapping[str, str] | None = None
    ) -> tuple[bytes, str, KeyVersion]:
        """A fresh 32-byte data key: ``(plaintext_key, wrapped_key, key_version)``."""

    @abstractmethod
    def decrypt_data_key(self, wrapped: str, context: Mapping[str, str] | None = None) -> bytes:
        """Unwrap a data key; raises :class:`KeyServiceError` when the key service refuses."""

    @abstractmethod
    def rewrap(
        self, wrapped: str, context: Mapping[str, str] | None = None
    ) -> tuple[str, KeyVersion]:
        """Re-wrap under the newest key version: ``(new_wrapped, new_version)``."""

    def wrapped_version(self, wrapped: str) -> KeyVersion | None:
        """Key version encoded in a wrapped key, or ``None`` when the format does not show it."""
        return None

    def rotate(self) -> KeyVersion | None:
        """Add a new key version; returns it, or ``None`` when the service rotates later."""
        raise KeyServiceError(f"{self.describe()} cannot be rotated from here")

    def describe(self) -> str:
        """One-line description for messages."""
        return f"{self.backend} key {self.name!r}"


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
            "versions": {"1": _b64(secrets.token_bytes(32))},
        }
        try:
            # O_EXCL + explicit mode: the key is never, even briefly, readable by others.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyServiceError(
                "key file already exists; refusing to overwrite it", target
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh, indent=2)
            fh.write("\n")
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

    def _load(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise KeyServiceError("local key file not found", self.path) from None
        except OSError as exc:
            raise KeyServiceError(
                f"cannot open local key file: {exc.strerror}", self.path
            ) from None
        with os.fdopen(fd, "rb") as fh:
            # fstat on the open descriptor: the permissions checked are those of what is read.
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise KeyServiceError("local key file is not a regular file", self.path)
            if st.st_mode & 0o077:
                raise KeyFilePermissionError(
                    f"local key file has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
                    f"accessible to group or others (run: chmod 600 {self.path})",
                    self.path,
                )
            raw = fh.read(1 << 20)
        try:
            body = json.loads(raw)
            if body.get("format") != self.FORMAT:
                raise ValueError("unknown format")
            key_id, latest, versions = body["key_id"], body["latest"], body["versions"]
            if not isinstance(key_id, str) or not isinstance(versions, dict):
                raise ValueError("bad key_id/versions")
            if type(latest) is not int or str(latest) not in versions:
                raise ValueError("latest version missing")
            for ver, key in versions.items():
                if not ver.isdigit():
                    raise ValueError(f"bad version {ver!r}")
                _unb64(key, f"key version {ver}", 32)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyServiceError(f"not a valid local key file ({exc})", self.path) from None
        return body

    @property
    def name(self) -> str:
        """The key file's random id (``local-<hex>``), not its path, so the file can move."""
        return str(self._load()["key_id"])

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
        body["versions"][str(new)] = _b64(secrets.token_bytes(32))
        body["latest"] = new
        _atomic_write_bytes(self.path, (json.dumps(body, indent=2) + "\n").encode(), 0o600)
        return new

    def remove_version(self, version: int) -> None:
        """Delete an old key version (data keys still wrapped with it become undecryptable)."""
        body = self._load()
        if version == body["latest"]:
            raise KeyServiceError("refusing to remove the newest key version", self.path)
        body["versions"].pop(str(version), None)
        _atomic_write_bytes(self.path, (json.dumps(body, indent=2) + "\n").encode(), 0o600)

    @staticmethod
    def _aad(key_id: str, version: int, context: Mapping[str, str] | None) -> bytes:
        return b"sovml-local-wrap/1\x00" + _canonical([key_id, version, dict(context or {})])

    def _wrap(
        self, body: dict[str, Any], data_key: bytes, context: Mapping[str, str] | None
    ) -> str:
        version = int(body["latest"])
        kek = base64.b64decode(body["versions"][str(version)])
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(kek).encrypt(nonce, data_key, self._aad(body["key_id"], version, context))
        return f"sovml-local:v{version}:{_b64(nonce + sealed)}"

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
            blob = _unb64(match.group(2), "wrapped data key")
            if len(blob) != 12 + DATA_KEY_SIZE + TAG_SIZE:
                raise ValueError("wrapped data key has the wrong length")
            return AESGCM(base64.b64decode(kek_b64)).decrypt(
                blob[:12], blob[12:], self._aad(body["key_id"], version, context)
            )
        except (InvalidTag, ValueError):
            raise KeyServiceError(
                f"data key did not unwrap with key version v{version}: wrong key file, or the "
                "wrapped key or the artifact it is bound to was modified",
                self.path,
            ) from None

    def rewrap(self, wrapped: str, context: Mapping[str, str] | None = None) -> tuple[str, int]:
        """Unwrap with the old version, wrap with the newest."""
        data_key = self.decrypt_data_key(wrapped, context)
        body = self._load()
        return self._wrap(body, data_key, context), int(body["latest"])


class VaultTransitKeys(KeyService):
    """Vault (or OpenBao) transit engine through ``hvac``: ``datakey/plaintext``, decrypt, rewrap.

    Connection settings default to the environment Vault's own CLI reads: ``VAULT_ADDR``,
    ``VAULT_TOKEN`` (else ``~/.vault-token``), ``VAULT_NAMESPACE``, ``VAULT_CACERT`` /
    ``VAULT_CAPATH``, ``VAULT_CLIENT_CERT`` / ``VAULT_CLIENT_KEY`` and ``VAULT_SKIP_VERIFY``; the
    OpenBao spellings (``BAO_ADDR``...) are used when the Vault ones are unset. TLS verification
    is on unless explicitly skipped. With ``kubernetes_role`` the client logs in through the
    Kubernetes auth method with the pod's service-account JWT. Key versions come from the
    ``vault:vN:`` prefix of the transit ciphertext.
    """

    backend: ClassVar[str] = "vault"
    _PREFIX = re.compile(r"^vault:v([0-9]+):")

    def __init__(
        self,
        key_name: str = DEFAULT_VAULT_KEY,
        *,
        mount_point: str = DEFAULT_VAULT_MOUNT,
        url: str | None = None,
        token: str | None = None,
        namespace: str | None = None,
        verify: bool | str | None = None,
        kubernetes_role: str | None = None,
        kubernetes_mount: str = "kubernetes",
        jwt_path: str | os.PathLike[str] = K8S_JWT_PATH,
        timeout: float = 30.0,
        client: Any | None = None,
    ) -> None:
        self.key_name = key_name
        self.mount_point = mount_point
        self.url = url or _env("ADDR") or "https://127.0.0.1:8200"
        self.namespace = namespace or _env("NAMESPACE")
        self.verify = self._verify_from_env() if verify is None else verify
        self.kubernetes_role = kubernetes_role
        self.kubernetes_mount = kubernetes_mount
        self.jwt_path = Path(jwt_path)
        self.timeout = timeout
        self._token = token
        self._client = client

    @staticmethod
    def _verify_from_env() -> bool | str:
        skip = _env("SKIP_VERIFY")
        if skip:
            try:
                if _parse_bool(skip):
                    return False
            except ValueError:
                raise KeyServiceError(f"VAULT_SKIP_VERIFY={skip!r} is not a boolean") from None
        return _env("CACERT") or _env("CAPATH") or True

    @property
    def name(self) -> str:
        """The transit key name."""
        return self.key_name

    def describe(self) -> str:
        """Key, mount and server, for messages."""
        return f"vault transit key {self.key_name!r} (mount {self.mount_point!r} at {self.url})"

    @property
    def client(self) -> Any:
        """Authenticated ``hvac.Client``, created on first use."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        import hvac  # imported here so the other backends never need it

        cert = None
        if _env("CLIENT_CERT") and _env("CLIENT_KEY"):
            cert = (_env("CLIENT_CERT"), _env("CLIENT_KEY"))
        client = hvac.Client(
            url=self.url,
            namespace=self.namespace,
            verify=self.verify,
            cert=cert,
            timeout=self.timeout,
        )
        if self._token:
            client.token = self._token
        elif self.kubernetes_role:
            try:
                jwt = self.jwt_path.read_text().strip()
            except OSError as exc:
                raise KeyServiceError(
                    f"Kubernetes auth (role {self.kubernetes_role!r}) needs the service-account "
                    f"token at {self.jwt_path}: {exc.strerror}; not running in a pod?"
                ) from None
            self._guard(
                f"Kubernetes login (role {self.kubernetes_role!r}, mount "
                f"{self.kubernetes_mount!r})",
                lambda: client.auth.kubernetes.login(
                    role=self.kubernetes_role, jwt=jwt, mount_point=self.kubernetes_mount
                ),
                forbidden=" (the service account is not bound to this role, or the server's "
                "TokenReview of the JWT failed)",
            )
        else:
            token = _env("TOKEN")
            if not token:
                with contextlib.suppress(OSError):
                    token = (Path.home() / ".vault-token").read_text().strip()
            if not token:
                raise KeyServiceError(
                    "no Vault token: set VAULT_TOKEN (or log in so ~/.vault-token exists), or use "
                    "Kubernetes auth with a role"
                )
            client.token = token
        return client

    def _guard(
        self,
        what: str,
        call: Callable[[], Any],
        forbidden: str = " (token lacks a policy for this path, or expired)",
    ) -> Any:
        """Run a Vault call, turning hvac/requests exceptions into :class:`KeyServiceError`."""
        import hvac.exceptions
        import requests.exceptions

        try:
            return call()
        except hvac.exceptions.VaultError as exc:
            text = str(exc).split(", on ")[0] or type(exc).__name__
            hint = ""
            if "disallowed by policy" in text or "invalid key version" in text:
                hint = (
                    " (the key version it was wrapped with was retired or trimmed; rewrap "
                    "artifacts before raising min_decryption_version)"
                )
            elif isinstance(exc, hvac.exceptions.Forbidden):
                hint = forbidden
            raise KeyServiceError(f"{what} failed: {text}{hint} [{self.describe()}]") from None
        except requests.exceptions.SSLError as exc:
            raise KeyServiceError(
                f"{what}: TLS verification of {self.url} failed ({exc.__class__.__name__}); set "
                "VAULT_CACERT to the CA bundle that signed the server certificate"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise KeyServiceError(
                f"{what}: cannot reach Vault at {self.url} ({exc.__class__.__name__})"
            ) from None

    @staticmethod
    def _context(context: Mapping[str, str] | None) -> str | None:
        # Only keys created with derived=true use it; others ignore it (see module docs).
        return _b64(_canonical(dict(context))) if context else None

    def wrapped_version(self, wrapped: str) -> int | None:
        """Version from the ``vault:vN:`` ciphertext prefix."""
        match = self._PREFIX.match(wrapped)
        return int(match.group(1)) if match else None

    def _version_of(self, ciphertext: str, what: str) -> int:
        version = self.wrapped_version(ciphertext)
        if version is None:
            raise KeyServiceError(f"{what}: unexpected ciphertext format from {self.describe()}")
        return version

    def generate_data_key(self, context: Mapping[str, str] | None = None) -> tuple[bytes, str, int]:
        """``transit/datakey/plaintext/<key>``: Vault returns the key and its wrapped form."""
        resp = self._guard(
            "transit generate_data_key",
            lambda: self.client.secrets.transit.generate_data_key(
                name=self.key_name,
                key_type="plaintext",
                context=self._context(context),
                mount_point=self.mount_point,
            ),
        )
        data = resp["data"]
        plaintext = base64.b64decode(data["plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyServiceError(f"Vault returned a {len(plaintext)}-byte data key, expected 32")
        return plaintext, data["ciphertext"], self._version_of(data["ciphertext"], "datakey")

    def decrypt_data_key(self, wrapped: str, context: Mapping[str, str] | None = None) -> bytes:
        """``transit/decrypt/<key>``."""
        resp = self._guard(
            "transit decrypt of the data key",
            lambda: self.client.secrets.transit.decrypt_data(
                name=self.key_name,
                ciphertext=wrapped,
                context=self._context(context),
                mount_point=self.mount_point,
            ),
        )
        plaintext = base64.b64decode(resp["data"]["plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyServiceError(f"unwrapped data key has {len(plaintext)} bytes, expected 32")
        return plaintext

    def rewrap(self, wrapped: str, context: Mapping[str, str] | None = None) -> tuple[str, int]:
        """``transit/rewrap/<key>``: Vault re-wraps server-side; the data key never leaves it."""
        resp = self._guard(
            "transit rewrap",
            lambda: self.client.secrets.transit.rewrap_data(
                name=self.key_name,
                ciphertext=wrapped,
                context=self._context(context),
                mount_point=self.mount_point,
            ),
        )
        new = resp["data"]["ciphertext"]
        return new, self._version_of(new, "rewrap")

    def rotate(self) -> int:
        """Rotate the transit key; returns the new latest version."""
        self._guard(
            "transit rotate",
            lambda: self.client.secrets.transit.rotate_key(
                name=self.key_name, mount_point=self.mount_point
            ),
        )
        info = self._guard(
            "transit read_key",
            lambda: self.client.secrets.transit.read_key(
                name=self.key_name, mount_point=self.mount_point
            ),
        )
        return int(info["data"]["latest_version"])


def _env(suffix: str) -> str | None:
    """``VAULT_<suffix>``, else OpenBao's ``BAO_<suffix>``."""
    return os.environ.get(f"VAULT_{suffix}") or os.environ.get(f"BAO_{suffix}") or None


class KmsKeys(KeyService):
    """AWS KMS through boto3: ``GenerateDataKey`` (AES_256), ``Decrypt``, ``ReEncrypt``.

    The encryption context names the artifact id, the file's relative path and its header digest,
    so KMS refuses to unwrap a data key for any other file (and CloudTrail shows which artifact a
    call was for). KMS rotates key material transparently; the recorded version is the
    ``KeyMaterialId`` AWS reports, or ``"kms-managed"`` where it reports none.
    """

    backend: ClassVar[str] = "kms"
    UNVERSIONED: ClassVar[str] = "kms-managed"

    def __init__(
        self,
        key_id: str = DEFAULT_KMS_KEY,
        *,
        client: Any | None = None,
        region: str | None = None,
    ) -> None:
        self.key_id = key_id
        self.region = region
        self._client = client
        self._arn: str | None = None

    @property
    def client(self) -> Any:
        """The boto3 KMS client, created on first use."""
        if self._client is None:
            import boto3

            self._client = boto3.client("kms", region_name=self.region)
        return self._client

    def _guard(self, what: str, call: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code, message = err.get("Code", "ClientError"), err.get("Message", "")
            hint = {
                "InvalidCiphertextException": " (wrong key, or the wrapped key or the artifact "
                "path/header it is bound to was modified)",
                "IncorrectKeyException": " (the data key was wrapped by a different KMS key)",
                "AccessDeniedException": " (IAM/key policy does not allow this call)",
                "KMSInvalidStateException": " (key disabled or pending deletion)",
                "DisabledException": " (key disabled)",
                "NotFoundException": " (no such key or alias in this account/region)",
            }.get(code, "")
            raise KeyServiceError(
                f"KMS {what} with key {self.key_id!r} failed: {code}: {message}{hint}"
            ) from None
        except BotoCoreError as exc:
            raise KeyServiceError(f"KMS {what} with key {self.key_id!r} failed: {exc}") from None

    @property
    def name(self) -> str:
        """The key ARN (aliases resolved), so a manifest keeps working if an alias moves."""
        if self._arn is None:
            meta = self._guard("DescribeKey", lambda: self.client.describe_key(KeyId=self.key_id))
            self._arn = str(meta["KeyMetadata"]["Arn"])
        return self._arn

    def generate_data_key(self, context: Mapping[str, str] | None = None) -> tuple[bytes, str, str]:
        """``GenerateDataKey`` with KeySpec AES_256 under the encryption context."""
        resp = self._guard(
            "GenerateDataKey",
            lambda: self.client.generate_data_key(
                KeyId=self.name, KeySpec="AES_256", EncryptionContext=dict(context or {})
            ),
        )
        version = resp.get("KeyMaterialId") or self.UNVERSIONED
        return resp["Plaintext"], _b64(resp["CiphertextBlob"]), version

    def decrypt_data_key(self, wrapped: str, context: Mapping[str, str] | None = None) -> bytes:
        """``Decrypt`` pinned to this key (KMS would otherwise use whichever key the blob names)."""
        try:
            blob = _unb64(wrapped, "wrapped data key")
        except ValueError as exc:
            raise KeyServiceError(str(exc)) from None
        resp = self._guard(
            "Decrypt",
            lambda: self.client.decrypt(
                CiphertextBlob=blob, KeyId=self.name, EncryptionContext=dict(context or {})
            ),
        )
        return bytes(resp["Plaintext"])

    def rewrap(self, wrapped: str, context: Mapping[str, str] | None = None) -> tuple[str, str]:
        """``ReEncrypt`` to the key's current material; the data key never leaves KMS."""
        try:
            blob = _unb64(wrapped, "wrapped data key")
        except ValueError as exc:
            raise KeyServiceError(str(exc)) from None
        resp = self._guard(
            "ReEncrypt",
            lambda: self.client.re_encrypt(
                CiphertextBlob=blob,
                SourceKeyId=self.name,
                SourceEncryptionContext=dict(context or {}),
                DestinationKeyId=self.name,
                DestinationEncryptionContext=dict(context or {}),
            ),
        )
        version = resp.get("DestinationKeyMaterialId") or self.UNVERSIONED
        return _b64(resp["CiphertextBlob"]), version

    def rotate(self) -> None:
        """``RotateKeyOnDemand``: KMS adds key material asynchronously; old material still works."""
        self._guard("RotateKeyOnDemand", lambda: self.client.rotate_key_on_demand(KeyId=self.name))


# --------------------------------------------------------------------------------------------
# Manifests


@dataclass
class KeySlot:
    """Where a file's data key lives: backend, key, version and the wrapped key itself."""

    backend: str
    name: str
    version: KeyVersion
    wrapped: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "backend": self.backend,
            "name": self.name,
            "version": self.version,
            "wrapped": self.wrapped,
        }


@dataclass
class FileEntry:
    """One encrypted file: immutable header (authenticated), key slot, plaintext digest and size."""

    header: dict[str, Any]
    key: KeySlot
    plaintext_sha256: str
    plaintext_size: int

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
        return _header_digest(self.header)

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
    files: list[FileEntry]

    @property
    def kind(self) -> str:
        """``file`` or ``folder``."""
        return str(self.artifact["kind"])

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


def _files_digest(paths: list[str]) -> str:
    # Binds the set of files: dropping, adding or renaming one breaks every header.
    return hashlib.sha256(
        "".join(f"{p}\n" for p in sorted(paths)).encode("utf-8", "surrogateescape")
    ).hexdigest()


def _exact_keys(obj: object, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not an object")
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise ValueError(f"{what} has unexpected fields {extra} / lacks {missing}")
    return obj


def _is_int(value: object) -> bool:
    return type(value) is int


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_MODE = re.compile(r"^[0-7]{4}$")


def _validate_artifact(obj: object) -> dict[str, Any]:
    art = _exact_keys(obj, {"id", "name", "kind", "created", "files_sha256"}, "artifact")
    if not isinstance(art["id"], str) or not _HEX32.match(art["id"]):
        raise ValueError("artifact id is malformed")
    if art["kind"] not in ("file", "folder"):
        raise ValueError("artifact kind must be 'file' or 'folder'")
    if not isinstance(art["name"], str) or not isinstance(art["created"], str):
        raise ValueError("artifact name/created must be strings")
    if not isinstance(art["files_sha256"], str) or not _HEX64.match(art["files_sha256"]):
        raise ValueError("artifact files_sha256 is malformed")
    return art


def _validate_entry(obj: object, artifact: dict[str, Any]) -> FileEntry:
    entry = _exact_keys(obj, {"header", "key", "plaintext_sha256", "plaintext_size"}, "file entry")
    header = _exact_keys(
        entry["header"],
        {
            "format",
            "algorithm",
            "chunk_size",
            "nonce_scheme",
            "nonce_prefix",
            "path",
            "mode",
            "artifact",
        },
        "file header",
    )
    if header["format"] != FORMAT:
        raise ValueError(f"unsupported header format {header['format']!r}")
    if header["algorithm"] != ALGORITHM or header["nonce_scheme"] != NONCE_SCHEME:
        raise ValueError("unsupported algorithm or nonce scheme")
    chunk = header["chunk_size"]
    if not _is_int(chunk) or not MIN_CHUNK_SIZE <= chunk <= MAX_CHUNK_SIZE:
        raise ValueError("chunk_size is out of range")
    _unb64(header["nonce_prefix"], "nonce_prefix", NONCE_PREFIX_SIZE)
    _check_rel_path(header["path"])
    if not isinstance(header["mode"], str) or not _MODE.match(header["mode"]):
        raise ValueError("mode must be four octal digits")
    if header["artifact"] != artifact:
        raise ValueError(f"header of {header['path']!r} belongs to a different artifact")
    slot = _exact_keys(entry["key"], {"backend", "name", "version", "wrapped"}, "key slot")
    if slot["backend"] not in BACKENDS:
        raise ValueError(f"unknown backend {slot['backend']!r}")
    if not isinstance(slot["name"], str) or not isinstance(slot["wrapped"], str):
        raise ValueError("key name/wrapped must be strings")
    if not (_is_int(slot["version"]) or isinstance(slot["version"], str)):
        raise ValueError("key version must be an integer or a string")
    sha, size = entry["plaintext_sha256"], entry["plaintext_size"]
    if not isinstance(sha, str) or not _HEX64.match(sha):
        raise ValueError("plaintext_sha256 is malformed")
    if not _is_int(size) or size < 0:
        raise ValueError("plaintext_size is malformed")
    if _chunk_count(size, chunk) > MAX_CHUNKS:
        raise ValueError("plaintext_size needs more chunks than the nonce counter allows")
    return FileEntry(header, KeySlot(**slot), sha, size)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate field in JSON object")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


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
        if not isinstance(doc["files"], list) or not doc["files"]:
            raise ValueError("manifest lists no files")
        files = [_validate_entry(e, artifact) for e in doc["files"]]
        paths = [f.path for f in files]
        if len(set(paths)) != len(paths):
            raise ValueError("manifest lists a path twice")
        if artifact["kind"] == "file" and len(files) != 1:
            raise ValueError("a file manifest must list exactly one file")
        if _files_digest(paths) != artifact["files_sha256"]:
            raise ValueError("the file list does not match artifact.files_sha256")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is invalid or was modified: {exc}", path) from None
    return Manifest(artifact, files)


@dataclass
class Located:
    """Where an encrypted artifact's pieces are on disk."""

    manifest_path: Path
    manifest: Manifest
    root: Path
    """Folder artifacts: the ``.enc`` folder; file artifacts: the ``.enc`` file itself."""

    def ciphertext_path(self, entry: FileEntry) -> Path:
        """The ``.enc`` file of an entry."""
        if self.manifest.kind == "file":
            return self.root
        return self.root.joinpath(*entry.path.split("/")).with_name(
            entry.path.split("/")[-1] + CIPHERTEXT_SUFFIX
        )


def locate(path: str | os.PathLike[str]) -> Located:
    """Find and parse the manifest of an encrypted artifact.

    Accepts the ``.enc`` folder, the ``.enc`` file, its ``.manifest.json`` or the original
    plaintext path (when ``<path>.enc.manifest.json`` exists next to it).
    """
    p = Path(path)
    if p.is_dir():
        manifest_path, kind = p / FOLDER_MANIFEST, "folder"
        if not manifest_path.is_file():
            raise ManifestError(f"folder has no {FOLDER_MANIFEST}; not an encrypted artifact", p)
        root = p
    elif p.name.endswith(MANIFEST_SUFFIX):
        manifest_path, kind = p, "file"
        root = p.with_name(p.name[: -len(MANIFEST_SUFFIX)])
    elif p.name.endswith(CIPHERTEXT_SUFFIX):
        manifest_path, kind, root = p.with_name(p.name + MANIFEST_SUFFIX), "file", p
    elif p.with_name(p.name + CIPHERTEXT_SUFFIX + MANIFEST_SUFFIX).is_file():
        root = p.with_name(p.name + CIPHERTEXT_SUFFIX)
        manifest_path, kind = root.with_name(root.name + MANIFEST_SUFFIX), "file"
    else:
        raise ManifestError("not an encrypted artifact (no .enc file, folder or manifest)", p)
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


# --------------------------------------------------------------------------------------------
# Streaming encryption / decryption of one file


class _Sha256Behind:
    """SHA-256 that runs one buffer behind on a helper thread.

    hashlib releases the GIL for large buffers while AES-GCM (cryptography) does not, so hashing
    chunk ``i`` while chunk ``i`` is sealed/opened and written overlaps the two most expensive
    steps on a second core (about 1.5x on large files). :meth:`update` first waits for the
    previous buffer, so at most one buffer is in flight and it must not be reused before the
    next :meth:`update` or :meth:`hexdigest`. Small inputs hash inline: no thread is started.
    """

    def __init__(self, threaded: bool) -> None:
        self._sha = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sovml-sha256") if threaded else None
        self._pending: Future[None] | None = None

    def __enter__(self) -> _Sha256Behind:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def update(self, data: memoryview) -> None:
        """Hash ``data`` (in the background when threaded); the caller keeps it unchanged."""
        self._wait()
        if self._pool is None:
            self._sha.update(data)
        else:
            self._pending = self._pool.submit(self._sha.update, data)

    def hexdigest(self) -> str:
        """Digest of everything passed to :meth:`update`."""
        self._wait()
        return self._sha.hexdigest()


def _encrypt_stream(
    src: IO[bytes],
    dst: IO[bytes],
    aead: AESGCM,
    prefix: bytes,
    digest: bytes,
    chunk_size: int,
    progress: Progress | None,
) -> tuple[str, int]:
    """Seal ``src`` chunk by chunk into ``dst``; returns plaintext ``(sha256, size)``.

    Reads one chunk ahead to know which chunk is final (its flag is in the associated data)
    without knowing the size in advance; two input buffers and one output buffer are reused.
    """
    bufs = (memoryview(bytearray(chunk_size)), memoryview(bytearray(chunk_size)))
    out = memoryview(bytearray(chunk_size + TAG_SIZE))
    cur, n = 0, _read_full(src, bufs[0])
    index, total = 0, 0
    dst.write(MAGIC + digest)
    with _Sha256Behind(threaded=n == chunk_size) as sha:
        while True:
            data = bufs[cur][:n]
            # Also waits for the hash of the other buffer, which the next read overwrites.
            sha.update(data)
            nxt = 1 - cur
            m = _read_full(src, bufs[nxt]) if n == chunk_size else 0
            final = m == 0
            if index >= MAX_CHUNKS:
                raise ArtifactError("file too large for the chunk counter; use larger chunks")
            written = aead.encrypt_into(
                _nonce(prefix, index), data, _chunk_aad(digest, index, final), out[: n + TAG_SIZE]
            )
            dst.write(out[:written])
            total += n
            if progress:
                progress(n)
            if final:
                return sha.hexdigest(), total
            cur, n, index = nxt, m, index + 1


def _decrypt_stream(
    src: IO[bytes],
    dst: IO[bytes],
    aead: AESGCM,
    entry: FileEntry,
    where: Path,
    progress: Progress | None,
) -> None:
    """Open and verify every chunk of ``src`` into ``dst``; raises :class:`IntegrityError`."""
    chunk_size = entry.chunk_size
    prefix = _unb64(entry.header["nonce_prefix"], "nonce_prefix", NONCE_PREFIX_SIZE)
    digest = entry.digest
    expected_chunks = _chunk_count(entry.plaintext_size, chunk_size)
    record = chunk_size + TAG_SIZE
    bufs = (memoryview(bytearray(record)), memoryview(bytearray(record)))
    # Two plaintext buffers: one may still be hashing while the next chunk is opened.
    outs = (memoryview(bytearray(chunk_size)), memoryview(bytearray(chunk_size)))
    cur, n = 0, _read_full(src, bufs[0])
    index, total = 0, 0
    with _Sha256Behind(threaded=expected_chunks > 1) as sha:
        while True:
            nxt = 1 - cur
            m = _read_full(src, bufs[nxt]) if n == record else 0
            final = m == 0
            if n < TAG_SIZE:
                raise IntegrityError(f"truncated: chunk {index} is incomplete", where)
            sealed, out = bufs[cur][:n], outs[index % 2]
            try:
                size = aead.decrypt_into(
                    _nonce(prefix, index),
                    sealed,
                    _chunk_aad(digest, index, final),
                    out[: n - TAG_SIZE],
                )
            except InvalidTag:
                raise IntegrityError(
                    _diagnose(aead, prefix, digest, index, final, sealed), where
                ) from None
            sha.update(out[:size])
            dst.write(out[:size])
            total += size
            if progress:
                progress(size)
            if final:
                break
            if index + 1 >= expected_chunks:
                raise IntegrityError(
                    f"more chunks than the manifest's {entry.plaintext_size} bytes allow "
                    "(data appended or chunks duplicated)",
                    where,
                )
            cur, n, index = nxt, m, index + 1
        actual_sha = sha.hexdigest()
    if total != entry.plaintext_size or index + 1 != expected_chunks:
        raise IntegrityError(
            f"decrypted {total} bytes in {index + 1} chunks, manifest says {entry.plaintext_size} "
            f"bytes in {expected_chunks}",
            where,
        )
    if not secrets.compare_digest(actual_sha, entry.plaintext_sha256):
        raise IntegrityError("plaintext SHA-256 does not match the manifest", where)


def _diagnose(
    aead: AESGCM, prefix: bytes, digest: bytes, index: int, final: bool, sealed: memoryview
) -> str:
    """Say why chunk ``index`` failed: try it with the other final flag to spot truncation."""
    with contextlib.suppress(InvalidTag):
        aead.decrypt(_nonce(prefix, index), bytes(sealed), _chunk_aad(digest, index, not final))
        if final:
            return f"truncated: the file ends after chunk {index}, which is not the last chunk"
        return f"data found after the final chunk {index} (appended or duplicated chunks)"
    return (
        f"chunk {index} failed authentication: the ciphertext was modified, chunks were "
        "reordered, or the manifest header or data key does not belong to this file"
    )


# --------------------------------------------------------------------------------------------
# Public operations


@dataclass
class FileResult:
    """What happened to one file."""

    path: str
    size: int
    seconds: float
    key_version: KeyVersion | None = None
    previous_version: KeyVersion | None = None


@dataclass
class Report:
    """Result of :func:`encrypt_path`, :func:`decrypt_path` or :func:`rewrap_path`."""

    operation: str
    source: Path
    destination: Path
    manifest: Path
    backend: str
    key: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        """Plaintext bytes processed."""
        return sum(f.size for f in self.files)

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes per second) over the whole operation."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def _check_slot(entry: FileEntry, service: KeyService, where: Path) -> None:
    slot = entry.key
    if slot.backend != service.backend:
        raise KeyServiceError(
            f"{entry.path} was encrypted with the {slot.backend} backend, not {service.backend}",
            where,
        )
    if slot.name != service.name:
        raise KeyServiceError(
            f"wrong key: {entry.path} needs {slot.backend} key {slot.name!r}, but "
            f"{service.describe()} was given",
            where,
        )
    shown = service.wrapped_version(slot.wrapped)
    if shown is not None and shown != slot.version:
        raise IntegrityError(
            f"manifest says key version {slot.version!r} for {entry.path} but the wrapped key is "
            f"version {shown!r} (manifest modified)",
            where,
        )


def _list_files(root: Path) -> list[tuple[str, Path]]:
    """Regular files under ``root`` (file symlinks followed), as sorted ``(posix path, path)``."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for d in dirnames:
            if (here / d).is_symlink():
                raise ArtifactError("symlinked folders are not supported; copy them in", here / d)
        for name in filenames:
            full = here / name
            try:
                st = full.stat()
            except OSError as exc:
                raise ArtifactError(f"cannot read: {exc.strerror}", full) from None
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError("not a regular file (device, socket or fifo)", full)
            found.append((full.relative_to(root).as_posix(), full))
    found.sort()
    return found


def _new_artifact(name: str, kind: str, paths: list[str]) -> dict[str, Any]:
    return {
        "id": secrets.token_hex(16),
        "name": name,
        "kind": kind,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files_sha256": _files_digest(paths),
    }


def _encrypt_one(
    src: Path,
    rel: str,
    dst: Path,
    service: KeyService,
    artifact: dict[str, Any],
    chunk_size: int,
    progress: Progress | None,
) -> tuple[FileEntry, float]:
    started = time.perf_counter()
    with open(src, "rb") as fin:
        mode = stat.S_IMODE(os.fstat(fin.fileno()).st_mode)
        prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
        header: dict[str, Any] = {
            "format": FORMAT,
            "algorithm": ALGORITHM,
            "chunk_size": chunk_size,
            "nonce_scheme": NONCE_SCHEME,
            "nonce_prefix": _b64(prefix),
            "path": rel,
            "mode": f"{mode:04o}",
            "artifact": artifact,
        }
        digest = _header_digest(header)
        data_key, wrapped, version = service.generate_data_key(_context_for(header, digest))
        with open(dst, "wb") as fout:
            sha, size = _encrypt_stream(
                fin, fout, AESGCM(data_key), prefix, digest, chunk_size, progress
            )
            fout.flush()
            os.fsync(fout.fileno())
    del data_key
    slot = KeySlot(service.backend, service.name, version, wrapped)
    return FileEntry(header, slot, sha, size), time.perf_counter() - started


def _default_encrypt_out(src: Path) -> Path:
    return src.with_name(src.name + CIPHERTEXT_SUFFIX)


def _check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ArtifactError(f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes")


@contextlib.contextmanager
def _temp_dir_for(final: Path) -> Iterator[Path]:
    """A private temp folder beside ``final``; removed with its contents unless renamed away."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".sovml-tmp", dir=final.parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename ``tmp`` (file or folder) onto ``final``, replacing it only when allowed."""
    if final.exists() or final.is_symlink():
        if not overwrite:
            raise ArtifactError("destination exists (use overwrite/--force)", final)
        if final.is_dir() != tmp.is_dir():
            # --force replaces like with like; it never swaps a folder for a file or back.
            kind = "folder" if final.is_dir() else "file"
            raise ArtifactError(f"destination is a {kind}; refusing to replace it", final)
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.{secrets.token_hex(4)}.sovml-old")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            _fsync_dir(final.parent)
            return
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _set_tree_modes(root: Path, mode: int) -> None:
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, mode)


def encrypt_path(
    src: str | os.PathLike[str],
    service: KeyService,
    *,
    out: str | os.PathLike[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Encrypt a file (to ``X.enc`` + ``X.enc.manifest.json``) or a folder (to ``D.enc/``).

    Output appears only when complete: it is written under a temporary name in the destination
    folder and renamed at the end.
    """
    _check_chunk_size(chunk_size)
    source = Path(src)
    if not source.exists():
        raise ArtifactError("no such file or folder", source)
    dest = Path(out) if out is not None else _default_encrypt_out(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files: list[FileResult] = []
    if source.is_dir():
        if dest.resolve().is_relative_to(source.resolve()):
            raise ArtifactError("the output folder must not be inside the input folder", dest)
        if (dest.exists() or dest.is_symlink()) and not overwrite:
            raise ArtifactError("destination exists (use overwrite/--force)", dest)
        listing = _list_files(source)
        if not listing:
            raise ArtifactError("folder has no files to encrypt", source)
        artifact = _new_artifact(source.name, "folder", [rel for rel, _ in listing])
        entries: list[FileEntry] = []
        with _temp_dir_for(dest) as tmp:
            for rel, full in listing:
                target = tmp.joinpath(*rel.split("/"))
                target = target.with_name(target.name + CIPHERTEXT_SUFFIX)
                target.parent.mkdir(parents=True, exist_ok=True)
                entry, secs = _encrypt_one(
                    full, rel, target, service, artifact, chunk_size, progress
                )
                entries.append(entry)
                files.append(FileResult(rel, entry.plaintext_size, secs, entry.key.version))
            manifest = Manifest(artifact, entries)
            _atomic_write_bytes(tmp / FOLDER_MANIFEST, manifest.dumps(), 0o666 & ~_umask())
            _set_tree_modes(tmp, 0o777 & ~_umask())
            _install(tmp, dest, overwrite)
        manifest_path = dest / FOLDER_MANIFEST
    else:
        manifest_path = dest.with_name(dest.name + MANIFEST_SUFFIX)
        for target in (dest, manifest_path):
            if (target.exists() or target.is_symlink()) and not overwrite:
                raise ArtifactError("destination exists (use overwrite/--force)", target)
        artifact = _new_artifact(source.name, "file", [source.name])
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{dest.name}.", suffix=".sovml-tmp", dir=dest.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            entry, secs = _encrypt_one(
                source, source.name, tmp, service, artifact, chunk_size, progress
            )
            os.chmod(tmp, 0o666 & ~_umask())
            # Ciphertext first, manifest last: a manifest on disk implies complete ciphertext.
            _install(tmp, dest, overwrite)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        manifest = Manifest(artifact, [entry])
        _atomic_write_bytes(manifest_path, manifest.dumps(), 0o666 & ~_umask())
        files.append(FileResult(source.name, entry.plaintext_size, secs, entry.key.version))
    return Report(
        "encrypt",
        source,
        dest,
        manifest_path,
        service.backend,
        service.name,
        files,
        time.perf_counter() - started,
    )


def _decrypt_one(
    located: Located,
    entry: FileEntry,
    service: KeyService,
    target: Path,
    progress: Progress | None,
) -> float:
    """Decrypt one entry to ``target`` (a path inside a temp location)."""
    started = time.perf_counter()
    enc = located.ciphertext_path(entry)
    _check_slot(entry, service, located.manifest_path)
    try:
        fin = open(enc, "rb")  # noqa: SIM115 - closed below; opened before the key service call
    except FileNotFoundError:
        raise IntegrityError(f"ciphertext of {entry.path} is missing", enc) from None
    with fin:
        actual = os.fstat(fin.fileno()).st_size
        expected = _ciphertext_size(entry.plaintext_size, entry.chunk_size)
        if actual != expected:
            what = "truncated" if actual < expected else "has trailing data"
            raise IntegrityError(
                f"ciphertext {what}: {actual} bytes, the manifest implies {expected}", enc
            )
        lead = fin.read(len(MAGIC) + 32)
        if lead[: len(MAGIC)] != MAGIC:
            raise IntegrityError("not a sovml envelope file (bad magic)", enc)
        if not secrets.compare_digest(lead[len(MAGIC) :], entry.digest):
            raise IntegrityError(
                "ciphertext does not belong to this manifest entry (header digest differs: "
                "manifest header modified or files swapped)",
                enc,
            )
        data_key = service.decrypt_data_key(
            entry.key.wrapped, _context_for(entry.header, entry.digest)
        )
        with open(target, "wb") as fout:
            _decrypt_stream(fin, fout, AESGCM(data_key), entry, enc, progress)
            fout.flush()
            os.fsync(fout.fileno())
        del data_key
    # Permission bits only (no setuid/setgid/sticky from a manifest), filtered by the umask.
    os.chmod(target, int(entry.header["mode"], 8) & 0o777 & ~_umask())
    return time.perf_counter() - started


def _default_decrypt_out(located: Located) -> Path:
    root = located.root
    if root.name.endswith(CIPHERTEXT_SUFFIX) and len(root.name) > len(CIPHERTEXT_SUFFIX):
        return root.with_name(root.name[: -len(CIPHERTEXT_SUFFIX)])
    return root.with_name(located.manifest.artifact["name"])


def decrypt_path(
    path: str | os.PathLike[str],
    service: KeyService,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Decrypt an artifact (``X.enc``, its manifest, or a ``D.enc`` folder) to ``out``.

    Plaintext is written to a temporary file/folder beside the destination and renamed into place
    only after every chunk, size and SHA-256 verified; on any failure it is deleted, so no partial
    plaintext remains. Raises :class:`IntegrityError` or :class:`KeyServiceError`.
    """
    located = locate(path)
    dest = Path(out) if out is not None else _default_decrypt_out(located)
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise ArtifactError("destination exists (use overwrite/--force)", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files: list[FileResult] = []
    manifest = located.manifest
    with _temp_dir_for(dest) as tmp:
        if manifest.kind == "folder":
            for entry in manifest.files:
                target = tmp.joinpath(*entry.path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                secs = _decrypt_one(located, entry, service, target, progress)
                files.append(FileResult(entry.path, entry.plaintext_size, secs, entry.key.version))
            _set_tree_modes(tmp, 0o777 & ~_umask())
            _install(tmp, dest, overwrite)
        else:
            entry = manifest.files[0]
            target = tmp / "plaintext"
            secs = _decrypt_one(located, entry, service, target, progress)
            files.append(FileResult(entry.path, entry.plaintext_size, secs, entry.key.version))
            _install(target, dest, overwrite)
    return Report(
        "decrypt",
        located.root,
        dest,
        located.manifest_path,
        service.backend,
        service.name,
        files,
        time.perf_counter() - started,
    )


def rewrap_path(path: str | os.PathLike[str], service: KeyService) -> Report:
    """Re-wrap every data key of an artifact under the newest key version; data is untouched.

    The manifest is replaced atomically once every key was re-wrapped, so an interrupted rewrap
    leaves the previous (still valid) manifest.
    """
    located = locate(path)
    started = time.perf_counter()
    files: list[FileResult] = []
    new_entries: list[FileEntry] = []
    for entry in located.manifest.files:
        t0 = time.perf_counter()
        _check_slot(entry, service, located.manifest_path)
        wrapped, version = service.rewrap(
            entry.key.wrapped, _context_for(entry.header, entry.digest)
        )
        slot = KeySlot(entry.key.backend, entry.key.name, version, wrapped)
        new_entries.append(
            FileEntry(entry.header, slot, entry.plaintext_sha256, entry.plaintext_size)
        )
        files.append(
            FileResult(entry.path, 0, time.perf_counter() - t0, version, entry.key.version)
        )
    manifest = Manifest(located.manifest.artifact, new_entries)
    mode = stat.S_IMODE(located.manifest_path.stat().st_mode)
    _atomic_write_bytes(located.manifest_path, manifest.dumps(), mode)
    return Report(
        "rewrap",
        located.root,
        located.root,
        located.manifest_path,
        service.backend,
        service.name,
        files,
        time.perf_counter() - started,
    )
