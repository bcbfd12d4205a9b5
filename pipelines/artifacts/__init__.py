"""Envelope encryption of model artifacts (files, model-repository folders): the public API."""

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
