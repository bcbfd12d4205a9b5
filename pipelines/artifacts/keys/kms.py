"""AWS KMS as the key service, with an encryption context per file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pipelines.artifacts.encoding import b64, shown, unb64
from pipelines.artifacts.envelope import DATA_KEY_SIZE
from pipelines.artifacts.errors import KeyNameError, KeyServiceError, UnwrapRefusedError
from pipelines.artifacts.keys.base import KeyService
from pipelines.artifacts.keys.patterns import KMS_KEY_ARN, check_key_reference

DEFAULT_KMS_KEY = "alias/sovml-dev-storage"
"""KMS key used when none is named."""

_HINTS = {
    "InvalidCiphertextException": " (wrong key, or the wrapped key or the artifact "
    "path/header it is bound to was modified)",
    "IncorrectKeyException": " (the data key was wrapped by a different KMS key)",
    "AccessDeniedException": " (IAM/key policy does not allow this call)",
    "KMSInvalidStateException": " (key disabled or pending deletion)",
    "DisabledException": " (key disabled)",
    "NotFoundException": " (no such key or alias in this account/region)",
}
"""What a KMS error code most likely means here, appended to its message."""
_REFUSED = ("InvalidCiphertextException", "IncorrectKeyException")
"""Codes saying "this wrapped key does not open under this key and context": the input's fault."""


def _blob(wrapped: str) -> bytes:
    """The wrapped key's bytes (strict base64, as in the manifest)."""
    try:
        return unb64(wrapped, "wrapped data key")
    except ValueError as exc:
        raise KeyServiceError(str(exc)) from None


class KmsKeys(KeyService):
    """AWS KMS through boto3: ``GenerateDataKey`` (AES_256), ``Decrypt``, ``ReEncrypt``.

    The encryption context names the artifact id, the file's relative path and its header digest,
    so KMS refuses to unwrap a data key for any other file (and CloudTrail shows which artifact a
    call was for). KMS rotates key material transparently; the recorded version is the
    ``KeyMaterialId`` AWS reports, or ``"kms-managed"`` where it reports none (informational:
    KMS picks the key material from the wrapped blob itself).

    The key reference is checked against :mod:`pipelines.artifacts.keys.patterns` when the
    object is made and passed to boto3 as ``KeyId``; a key ARN is used as the key's name without
    a call, anything else is resolved once with ``DescribeKey``.
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
        try:
            self.key_id = check_key_reference("kms", key_id)
        except ValueError as exc:
            raise KeyNameError(str(exc)) from None
        self.region = region
        self._client = client
        self._arn: str | None = key_id if KMS_KEY_ARN.fullmatch(key_id) else None

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
            hint = _HINTS.get(code, "")
            error = UnwrapRefusedError if code in _REFUSED else KeyServiceError
            raise error(
                f"KMS {what} with key {self.key_id!r} failed: {code}: {message}{hint}"
            ) from None
        except BotoCoreError as exc:
            raise KeyServiceError(f"KMS {what} with key {self.key_id!r} failed: {exc}") from None

    @property
    def name(self) -> str:
        """The key ARN (aliases resolved), so a manifest keeps working if an alias moves."""
        if self._arn is None:
            meta = self._guard("DescribeKey", lambda: self.client.describe_key(KeyId=self.key_id))
            arn = _field(meta, "KeyMetadata", "DescribeKey")
            arn = arn.get("Arn") if isinstance(arn, dict) else None
            if not isinstance(arn, str) or not KMS_KEY_ARN.fullmatch(arn):
                raise KeyServiceError(f"KMS DescribeKey returned no usable key ARN: {shown(arn)}")
            self._arn = arn
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
        plaintext = _bytes_field(resp, "Plaintext", "GenerateDataKey")
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyServiceError(f"KMS returned a {len(plaintext)}-byte data key, expected 32")
        return plaintext, b64(_bytes_field(resp, "CiphertextBlob", "GenerateDataKey")), version

    def decrypt_data_key(self, wrapped: str, context: Mapping[str, str] | None = None) -> bytes:
        """``Decrypt`` pinned to this key (KMS would otherwise use whichever key the blob names)."""
        blob = _blob(wrapped)
        resp = self._guard(
            "Decrypt",
            lambda: self.client.decrypt(
                CiphertextBlob=blob, KeyId=self.name, EncryptionContext=dict(context or {})
            ),
        )
        plaintext = _bytes_field(resp, "Plaintext", "Decrypt")
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyServiceError(f"unwrapped data key has {len(plaintext)} bytes, expected 32")
        return plaintext

    def rewrap(self, wrapped: str, context: Mapping[str, str] | None = None) -> tuple[str, str]:
        """``ReEncrypt`` to the key's current material; the data key never leaves KMS."""
        blob = _blob(wrapped)
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
        return b64(_bytes_field(resp, "CiphertextBlob", "ReEncrypt")), version

    def derive_key(self, label: bytes) -> tuple[bytes, str]:
        """``GenerateMac`` (HMAC_SHA_256) of ``label`` with this key, which must be an HMAC key.

        AWS documents the raw MAC as usable for key derivation; HMAC KMS keys are never rotated
        (no automatic or on-demand rotation), so the version is ``kms-managed``.
        """
        resp = self._guard(
            "GenerateMac",
            lambda: self.client.generate_mac(
                KeyId=self.name, Message=label, MacAlgorithm="HMAC_SHA_256"
            ),
        )
        derived = _bytes_field(resp, "Mac", "GenerateMac")
        if len(derived) != 32:
            raise KeyServiceError(f"KMS returned a {len(derived)}-byte MAC, expected 32")
        return derived, self.UNVERSIONED

    def rotate(self) -> None:
        """``RotateKeyOnDemand``: KMS adds key material asynchronously; old material still works."""
        self._guard("RotateKeyOnDemand", lambda: self.client.rotate_key_on_demand(KeyId=self.name))


def _field(resp: Any, name: str, what: str) -> Any:
    """``resp[name]`` of a KMS response; :class:`KeyServiceError` when it is missing."""
    if not isinstance(resp, dict) or name not in resp:
        raise KeyServiceError(f"KMS {what} returned no {name}")
    return resp[name]


def _bytes_field(resp: Any, name: str, what: str) -> bytes:
    """A bytes field of a KMS response."""
    value = _field(resp, name, what)
    if not isinstance(value, bytes | bytearray):
        raise KeyServiceError(f"KMS {what} returned a {type(value).__name__} as {name}")
    return bytes(value)
