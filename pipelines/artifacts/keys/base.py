"""What a key service does: generate, unwrap and re-wrap AES-256 data keys."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pipelines.artifacts.errors import KeyServiceError

KeyVersion = int | str
"""Key version recorded in a manifest: an int for Vault/local keys, KMS key-material id (str)."""


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

    def derive_key(self, label: bytes) -> tuple[bytes, KeyVersion]:
        """A 32-byte key for another purpose (``label``), derived inside the key service.

        Deterministic for a key version and label, so the same key comes back run after run,
        and never the key-encryption key itself: the pseudonymization key of
        :mod:`pipelines.privacy.tokens` is one. Returns ``(key, key_version)``.
        """
        raise KeyServiceError(f"{self.describe()} cannot derive keys")

    def files(self) -> list[Path]:
        """Local files the service reads its keys or credentials from (never to be overwritten)."""
        return []

    def describe(self) -> str:
        """One-line description for messages."""
        return f"{self.backend} key {self.name!r}"
