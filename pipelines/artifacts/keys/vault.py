"""Vault (or OpenBao) transit as the key service, with the environment Vault's own CLI reads."""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pipelines.artifacts import fs
from pipelines.artifacts.encoding import b64, canonical, shown
from pipelines.artifacts.envelope import DATA_KEY_SIZE
from pipelines.artifacts.errors import (
    ArtifactError,
    KeyNameError,
    KeyServiceError,
    UnwrapRefusedError,
)
from pipelines.artifacts.keys.base import KeyService
from pipelines.artifacts.keys.patterns import check_key_reference, check_mount, check_role

DEFAULT_VAULT_KEY = "sovml-artifacts"
"""Transit key used when none is named."""
DEFAULT_VAULT_MOUNT = "transit"
"""Mount path of the transit engine."""
DEFAULT_VAULT_AUTH_MOUNT = "kubernetes"
"""Mount path of the Kubernetes auth method."""
K8S_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""Where a pod finds its service-account token."""
MAX_TOKEN_BYTES = 64 << 10
"""Largest token or JWT file read."""
_REFUSED = ("message authentication failed", "invalid ciphertext", "unable to decrypt")
"""Vault's words for "this wrapped key does not open under this key and context"."""


def _env(suffix: str) -> str | None:
    """``VAULT_<suffix>``, else OpenBao's ``BAO_<suffix>``."""
    return os.environ.get(f"VAULT_{suffix}") or os.environ.get(f"BAO_{suffix}") or None


def _parse_bool(value: str) -> bool:
    # Same spellings as Go's strconv.ParseBool, which Vault's CLI uses for VAULT_SKIP_VERIFY.
    lowered = value.strip()
    if lowered in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if lowered in ("", "0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


class VaultTransitKeys(KeyService):
    """Vault (or OpenBao) transit engine through ``hvac``: ``datakey/plaintext``, decrypt, rewrap.

    Connection settings default to the environment Vault's own CLI reads: ``VAULT_ADDR``,
    ``VAULT_TOKEN`` (else ``~/.vault-token``), ``VAULT_NAMESPACE``, ``VAULT_CACERT`` /
    ``VAULT_CAPATH``, ``VAULT_CLIENT_CERT`` / ``VAULT_CLIENT_KEY`` and ``VAULT_SKIP_VERIFY``; the
    OpenBao spellings (``BAO_ADDR``...) are used when the Vault ones are unset. TLS verification
    is on unless explicitly skipped. With ``kubernetes_role`` the client logs in through the
    Kubernetes auth method with the pod's service-account JWT. Key versions come from the
    ``vault:vN:`` prefix of the transit ciphertext.

    The key name, mounts and role are checked against :mod:`pipelines.artifacts.keys.patterns`
    when the object is made (:class:`KeyNameError` otherwise) and handed to hvac as its ``name``
    and ``mount_point`` parameters, never pasted into a path here.
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
        kubernetes_mount: str = DEFAULT_VAULT_AUTH_MOUNT,
        jwt_path: str | os.PathLike[str] = K8S_JWT_PATH,
        timeout: float = 30.0,
        client: Any | None = None,
    ) -> None:
        try:
            self.key_name = check_key_reference("vault", key_name)
            self.mount_point = check_mount("transit mount", mount_point)
            check_mount("Kubernetes auth mount", kubernetes_mount)
            if kubernetes_role:
                check_role(kubernetes_role)
        except ValueError as exc:
            raise KeyNameError(str(exc)) from None
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

    def files(self) -> list[Path]:
        """The CLI's token file and the pod's service-account token, where they exist."""
        candidates = [self.jwt_path]
        with contextlib.suppress(RuntimeError, KeyError):  # no home folder: no token file
            candidates.append(Path.home() / ".vault-token")
        return [p for p in candidates if p.exists()]

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
            self._kubernetes_login(client)
        else:
            client.token = self._token_from_env()
        return client

    def _kubernetes_login(self, client: Any) -> None:
        """Log ``client`` in with the pod's service-account JWT as :attr:`kubernetes_role`."""
        try:
            jwt = fs.read_regular(self.jwt_path, MAX_TOKEN_BYTES).decode().strip()
        except (OSError, ArtifactError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "unreadable"
            raise KeyServiceError(
                f"Kubernetes auth (role {self.kubernetes_role!r}) needs the service-account "
                f"token at {self.jwt_path}: {why}; not running in a pod?"
            ) from None
        self._guard(
            f"Kubernetes login (role {self.kubernetes_role!r}, mount {self.kubernetes_mount!r})",
            lambda: client.auth.kubernetes.login(
                role=self.kubernetes_role, jwt=jwt, mount_point=self.kubernetes_mount
            ),
            forbidden=" (the service account is not bound to this role, or the server's "
            "TokenReview of the JWT failed)",
        )

    @staticmethod
    def _token_from_env() -> str:
        """``VAULT_TOKEN``, else the CLI's ``~/.vault-token``."""
        token = _env("TOKEN")
        if not token:
            with contextlib.suppress(OSError, ArtifactError, UnicodeDecodeError):
                raw = fs.read_regular(Path.home() / ".vault-token", MAX_TOKEN_BYTES)
                token = raw.decode().strip()
        if not token:
            raise KeyServiceError(
                "no Vault token found; set VAULT_TOKEN (or log in so ~/.vault-token exists), "
                "or use Kubernetes auth with a role"
            )
        return token

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
            if isinstance(exc, hvac.exceptions.InvalidRequest) and any(
                words in text for words in _REFUSED
            ):
                raise UnwrapRefusedError(
                    f"{what} failed: {text} (the wrapped data key or the artifact it is bound to "
                    f"was modified, or it belongs to another key) [{self.describe()}]"
                ) from None
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

    def _transit(self, what: str, operation: str, *fields: str, **params: Any) -> dict[str, Any]:
        """``client.secrets.transit.<operation>`` on this key and mount; its ``data``, checked.

        Errors are translated, and the response must hold ``data`` with every one of ``fields``
        as a string or integer: anything else is reported, never a KeyError or TypeError.
        """
        resp = self._guard(
            what,
            lambda: getattr(self.client.secrets.transit, operation)(
                name=self.key_name, mount_point=self.mount_point, **params
            ),
        )
        data = resp.get("data") if isinstance(resp, dict) else None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(f), str | int) and not isinstance(data.get(f), bool) for f in fields
        ):
            raise KeyServiceError(
                f"{what}: unexpected response from {self.describe()}: {shown(resp)}"
            )
        return data

    @staticmethod
    def _context(context: Mapping[str, str] | None) -> str | None:
        # Only keys created with derived=true use it; others ignore it (see module docs).
        return b64(canonical(dict(context))) if context else None

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
        data = self._transit(
            "transit generate_data_key",
            "generate_data_key",
            "plaintext",
            "ciphertext",
            key_type="plaintext",
            context=self._context(context),
        )
        plaintext = _key_bytes(data["plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyServiceError(f"Vault returned a {len(plaintext)}-byte data key, expected 32")
        return plaintext, data["ciphertext"], self._version_of(data["ciphertext"], "datakey")

    def decrypt_data_key(self, wrapped: str, context: Mapping[str, str] | None = None) -> bytes:
        """``transit/decrypt/<key>``."""
        data = self._transit(
            "transit decrypt of the data key",
            "decrypt_data",
            "plaintext",
            ciphertext=wrapped,
            context=self._context(context),
        )
        plaintext = _key_bytes(data["plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyServiceError(f"unwrapped data key has {len(plaintext)} bytes, expected 32")
        return plaintext

    def rewrap(self, wrapped: str, context: Mapping[str, str] | None = None) -> tuple[str, int]:
        """``transit/rewrap/<key>``: Vault re-wraps server-side; the data key never leaves it."""
        data = self._transit(
            "transit rewrap",
            "rewrap_data",
            "ciphertext",
            ciphertext=wrapped,
            context=self._context(context),
        )
        new = str(data["ciphertext"])
        return new, self._version_of(new, "rewrap")

    def derive_key(self, label: bytes) -> tuple[bytes, int]:
        """``transit/hmac/<key>/sha2-256`` of ``label``: a 32-byte key and the key version.

        Transit computes HMACs with a key of their own that it keeps for each key version,
        not with the encryption key, and the value never lets anyone recompute either.
        """
        data = self._transit(
            "transit hmac", "generate_hmac", "hmac", hash_input=b64(label), algorithm="sha2-256"
        )
        mac = str(data["hmac"])
        version = self._version_of(mac, "hmac")
        derived = _key_bytes(mac.split(":", 2)[2])
        if len(derived) != 32:
            raise KeyServiceError(f"Vault returned a {len(derived)}-byte HMAC, expected 32")
        return derived, version

    def rotate(self) -> int:
        """Rotate the transit key; returns the new latest version."""
        self._guard(
            "transit rotate",
            lambda: self.client.secrets.transit.rotate_key(
                name=self.key_name, mount_point=self.mount_point
            ),
        )
        info = self._transit("transit read_key", "read_key", "latest_version")
        return int(info["latest_version"])


def _key_bytes(text: object) -> bytes:
    """A data key Vault returned in base64; :class:`KeyServiceError` when it is not one."""
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise KeyServiceError("Vault returned a data key that is not base64") from None
