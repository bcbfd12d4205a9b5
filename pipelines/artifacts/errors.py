"""The exceptions of artifact encryption: every failure is an :class:`ArtifactError`.

Each class says whose problem it is in :attr:`ArtifactError.cause`: ``"input"`` (the artifact,
the manifest, the destination or an argument is wrong; retrying will not help) or
``"environment"`` (a key service is unreachable, refuses access or is misconfigured; fix the
environment and retry). Commands map them to exit codes 2 and 3.
"""

from __future__ import annotations

import os
from typing import ClassVar, Literal

Cause = Literal["input", "environment"]
"""Whose problem a failure is: bad input (exit 2) or the environment (exit 3)."""


class ArtifactError(Exception):
    """Any failure to encrypt, decrypt or rewrap an artifact; the message says what and where."""

    cause: ClassVar[Cause] = "input"
    """``input``: the artifact, manifest, destination or an argument is wrong."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class IntegrityError(ArtifactError):
    """Ciphertext or manifest failed verification: tampered, truncated, reordered or corrupt."""


class ManifestError(IntegrityError):
    """A manifest is missing, unreadable, or not a well-formed manifest of this format."""


class KeyMismatchError(ArtifactError):
    """The key or backend the caller gave is not the one the manifest names (refused unsent)."""


class KeyNameError(ArtifactError):
    """A key name, key reference or mount path the caller gave fails the strict pattern."""


class UnsafeDestinationError(ArtifactError):
    """An output would replace something the command did not produce (input, key, other files)."""


class KeyServiceError(ArtifactError):
    """The key service refused or failed: no access, unreachable, missing key or key version."""

    cause: ClassVar[Cause] = "environment"


class KeyFilePermissionError(KeyServiceError):
    """A local key file is readable or writable by group/others and is therefore not used."""


class UnwrapRefusedError(KeyServiceError):
    """The key service answered that the wrapped data key does not open under this key.

    Either the wrapped key (or the artifact it is bound to through the encryption context) was
    modified, or the artifact belongs to another key: a problem of the input, not of the service.
    """

    cause: ClassVar[Cause] = "input"
