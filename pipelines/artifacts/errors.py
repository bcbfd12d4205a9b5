"""The exceptions of artifact encryption: every failure is an :class:`ArtifactError`."""

from __future__ import annotations

import os


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
