"""AWS KMS as the key service, with an encryption context per file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pipelines.artifacts.encoding import b64, unb64
from pipelines.artifacts.errors import KeyServiceError
from pipelines.artifacts.keys.base import KeyService

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
            hint = _HINTS.get(code, "")
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
        return resp["Plaintext"], b64(resp["CiphertextBlob"]), version

    def decrypt_data_key(self, wrapped: str, context: Mapping[str, str] | None = None) -> bytes:
        """``Decrypt`` pinned to this key (KMS would otherwise use whichever key the blob names)."""
        blob = _blob(wrapped)
        resp = self._guard(
            "Decrypt",
            lambda: self.client.decrypt(
                CiphertextBlob=blob, KeyId=self.name, EncryptionContext=dict(context or {})
            ),
        )
        return bytes(resp["Plaintext"])

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
        return b64(resp["CiphertextBlob"]), version

    def rotate(self) -> None:
        """``RotateKeyOnDemand``: KMS adds key material asynchronously; old material still works."""
        self._guard("RotateKeyOnDemand", lambda: self.client.rotate_key_on_demand(KeyId=self.name))
