"""Envelope encryption of model artifacts (files, model-repository folders): the public API.

The names load on first use (PEP 562): a step that needs only the key services (the ingest step's
pseudonymization key) imports ``pipelines.artifacts.keys`` without the manifest, stream and API
modules, so the cluster can embed the key services alone (``pipelines/training/packaging.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.artifacts.api import FileResult, Report, decrypt_path, encrypt_path, rewrap_path
    from pipelines.artifacts.envelope import (
        ALGORITHM,
        BACKENDS,
        CIPHERTEXT_SUFFIX,
        DEFAULT_CHUNK_SIZE,
        FOLDER_MANIFEST,
        FORMAT,
        MANIFEST_SUFFIX,
        MAX_CHUNK_SIZE,
        MAX_FILES,
        MAX_MANIFEST_BYTES,
        MAX_MANIFEST_DEPTH,
        MIN_CHUNK_SIZE,
        NONCE_SCHEME,
    )
    from pipelines.artifacts.errors import (
        ArtifactError,
        IntegrityError,
        KeyFilePermissionError,
        KeyMismatchError,
        KeyNameError,
        KeyServiceError,
        ManifestError,
        UnsafeDestinationError,
        UnwrapRefusedError,
    )
    from pipelines.artifacts.fs import TEMP_SUFFIX, remove_stale_temps
    from pipelines.artifacts.keys.base import KeyService, KeyVersion
    from pipelines.artifacts.keys.factory import open_artifact_key_service, open_key_service
    from pipelines.artifacts.keys.kms import DEFAULT_KMS_KEY, KmsKeys
    from pipelines.artifacts.keys.local import DEFAULT_LOCAL_KEY_FILE, LocalKeyFile
    from pipelines.artifacts.keys.vault import (
        DEFAULT_VAULT_AUTH_MOUNT,
        DEFAULT_VAULT_KEY,
        DEFAULT_VAULT_MOUNT,
        VaultTransitKeys,
    )
    from pipelines.artifacts.manifest import (
        FileEntry,
        KeySlot,
        Located,
        Manifest,
        locate,
        parse_manifest,
    )
    from pipelines.artifacts.signals import Interrupted, cleanup_on_signals, exit_on_signals
    from pipelines.artifacts.stream import Progress

_EXPORTS: dict[str, str] = {
    "FileResult": "api",
    "Report": "api",
    "decrypt_path": "api",
    "encrypt_path": "api",
    "rewrap_path": "api",
    "ALGORITHM": "envelope",
    "BACKENDS": "envelope",
    "CIPHERTEXT_SUFFIX": "envelope",
    "DEFAULT_CHUNK_SIZE": "envelope",
    "FOLDER_MANIFEST": "envelope",
    "FORMAT": "envelope",
    "MANIFEST_SUFFIX": "envelope",
    "MAX_CHUNK_SIZE": "envelope",
    "MAX_FILES": "envelope",
    "MAX_MANIFEST_BYTES": "envelope",
    "MAX_MANIFEST_DEPTH": "envelope",
    "MIN_CHUNK_SIZE": "envelope",
    "NONCE_SCHEME": "envelope",
    "ArtifactError": "errors",
    "IntegrityError": "errors",
    "KeyFilePermissionError": "errors",
    "KeyMismatchError": "errors",
    "KeyNameError": "errors",
    "KeyServiceError": "errors",
    "ManifestError": "errors",
    "UnsafeDestinationError": "errors",
    "UnwrapRefusedError": "errors",
    "TEMP_SUFFIX": "fs",
    "remove_stale_temps": "fs",
    "KeyService": "keys.base",
    "KeyVersion": "keys.base",
    "open_artifact_key_service": "keys.factory",
    "open_key_service": "keys.factory",
    "DEFAULT_KMS_KEY": "keys.kms",
    "KmsKeys": "keys.kms",
    "DEFAULT_LOCAL_KEY_FILE": "keys.local",
    "LocalKeyFile": "keys.local",
    "DEFAULT_VAULT_AUTH_MOUNT": "keys.vault",
    "DEFAULT_VAULT_KEY": "keys.vault",
    "DEFAULT_VAULT_MOUNT": "keys.vault",
    "VaultTransitKeys": "keys.vault",
    "FileEntry": "manifest",
    "KeySlot": "manifest",
    "Located": "manifest",
    "Manifest": "manifest",
    "locate": "manifest",
    "parse_manifest": "manifest",
    "Interrupted": "signals",
    "cleanup_on_signals": "signals",
    "exit_on_signals": "signals",
    "Progress": "stream",
}
"""Public name -> the module of this package that defines it."""


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (then it is an ordinary global)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, loaded or not."""
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ALGORITHM",
    "BACKENDS",
    "CIPHERTEXT_SUFFIX",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_KMS_KEY",
    "DEFAULT_LOCAL_KEY_FILE",
    "DEFAULT_VAULT_AUTH_MOUNT",
    "DEFAULT_VAULT_KEY",
    "DEFAULT_VAULT_MOUNT",
    "FOLDER_MANIFEST",
    "FORMAT",
    "MANIFEST_SUFFIX",
    "MAX_CHUNK_SIZE",
    "MAX_FILES",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_DEPTH",
    "MIN_CHUNK_SIZE",
    "NONCE_SCHEME",
    "TEMP_SUFFIX",
    "ArtifactError",
    "FileEntry",
    "FileResult",
    "IntegrityError",
    "Interrupted",
    "KeyFilePermissionError",
    "KeyMismatchError",
    "KeyNameError",
    "KeyService",
    "KeyServiceError",
    "KeySlot",
    "KeyVersion",
    "KmsKeys",
    "LocalKeyFile",
    "Located",
    "Manifest",
    "ManifestError",
    "Progress",
    "Report",
    "UnsafeDestinationError",
    "UnwrapRefusedError",
    "VaultTransitKeys",
    "cleanup_on_signals",
    "decrypt_path",
    "encrypt_path",
    "exit_on_signals",
    "locate",
    "open_artifact_key_service",
    "open_key_service",
    "parse_manifest",
    "remove_stale_temps",
    "rewrap_path",
]
