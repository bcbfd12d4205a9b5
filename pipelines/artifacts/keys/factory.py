"""Which key service a backend name and key reference mean: the one place that opens one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipelines.artifacts.envelope import BACKENDS
from pipelines.artifacts.keys.base import KeyService
from pipelines.artifacts.keys.kms import DEFAULT_KMS_KEY, KmsKeys
from pipelines.artifacts.keys.local import DEFAULT_LOCAL_KEY_FILE, LocalKeyFile
from pipelines.artifacts.keys.vault import (
    DEFAULT_VAULT_AUTH_MOUNT,
    DEFAULT_VAULT_KEY,
    DEFAULT_VAULT_MOUNT,
    VaultTransitKeys,
)

if TYPE_CHECKING:
    from pipelines.artifacts.manifest import Located


def open_key_service(
    backend: str,
    key: str | None = None,
    *,
    local_key_file: str | None = None,
    create_local: bool = False,
    on_create: Callable[[LocalKeyFile], None] | None = None,
    vault_mount: str = DEFAULT_VAULT_MOUNT,
    vault_role: str | None = None,
    vault_auth_mount: str = DEFAULT_VAULT_AUTH_MOUNT,
    region: str | None = None,
) -> KeyService:
    """The key service of ``backend``; nothing is contacted until a key is used.

    Args:
        backend: ``local`` (a key file), ``vault`` (transit engine of Vault/OpenBao; address and
            token from ``VAULT_ADDR``/``VAULT_TOKEN``) or ``kms``.
        key: Key file path (local), transit key name (vault) or key id, ARN or alias (kms);
            None or empty for the backend's default.
        local_key_file: The key file of the local backend when ``key`` is empty (a setting
            from the environment, say); None or empty for ``DEFAULT_LOCAL_KEY_FILE``.
        create_local: Create the local key file (mode 0600) when it does not exist yet.
        on_create: Called with the key file when ``create_local`` created it.
        vault_mount: Mount path of the transit engine.
        vault_role: Log in with Kubernetes auth as this role (the pod's service-account token);
            None or empty for token auth.
        vault_auth_mount: Mount path of the Kubernetes auth method.
        region: AWS region of the KMS key; None for the environment's.

    Raises:
        ValueError: ``backend`` is not one of ``BACKENDS``.
        KeyServiceError: The local key file is missing (and not to be created) or not private.
    """
    if backend == "local":
        path = key or local_key_file or DEFAULT_LOCAL_KEY_FILE
        if not create_local:
            return LocalKeyFile(path)
        keys, created = LocalKeyFile.open_or_create(path)
        if created and on_create is not None:
            on_create(keys)
        return keys
    if backend == "vault":
        return VaultTransitKeys(
            key or DEFAULT_VAULT_KEY,
            mount_point=vault_mount,
            kubernetes_role=vault_role or None,
            kubernetes_mount=vault_auth_mount,
        )
    if backend == "kms":
        return KmsKeys(key or DEFAULT_KMS_KEY, region=region)
    raise ValueError(f"encryption backend must be one of {BACKENDS}, got {backend!r}")


def open_artifact_key_service(
    located: Located, key: str | None = None, **options: Any
) -> KeyService:
    """The key service an encrypted artifact's manifest names.

    Args:
        located: The artifact (:func:`pipelines.artifacts.locate`).
        key: Overrides the key the manifest names. A local artifact names its key file's id,
            not its path: its key file is ``key``, else ``local_key_file``, else the default.
        **options: Passed to :func:`open_key_service` (``local_key_file``, ``vault_mount``,
            ``vault_role``, ``vault_auth_mount``, ``region``).

    Raises:
        ArtifactError: The artifact's files use more than one key.
    """
    backend, name = located.key()
    return open_key_service(backend, key or (None if backend == "local" else name), **options)
