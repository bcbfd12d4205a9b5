"""What key names, mount paths, wrapped keys and key versions may look like, per backend.

Everything here is checked before a key service is called, whether the value came from the
caller or from a manifest: a transit key name ends up in a Vault URL path
(``transit/decrypt/<name>``), so ``../../sys/seal`` must never reach hvac. The patterns are
deliberately narrower than what the services accept; the platform creates only names that fit
them.
"""

from __future__ import annotations

import re

from pipelines.artifacts.encoding import shown, unb64
from pipelines.artifacts.envelope import DATA_KEY_SIZE, TAG_SIZE

VAULT_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A Vault/OpenBao transit key name: one path segment, no ``/``, and never ``..`` inside."""
VAULT_MOUNT = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(?:/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){0,7}"
)
"""A mount path (transit engine, Kubernetes auth): up to 8 segments like a key name."""
VAULT_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
"""A Kubernetes auth role name (sent in the request body, still kept plain)."""
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
_KEY_ID = r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
KMS_KEY_ARN = re.compile(rf"arn:aws(?:-[a-z]+)*:kms:{_REGION}:[0-9]{{12}}:key/{_KEY_ID}")
"""The ARN of a KMS key (what manifests record: aliases are resolved when encrypting)."""
KMS_KEY_REF = re.compile(
    rf"{_KEY_ID}|{_ALIAS}|arn:aws(?:-[a-z]+)*:kms:{_REGION}:[0-9]{{12}}:(?:key/{_KEY_ID}|{_ALIAS})"
)
"""What a caller may name a KMS key by: key id, alias, key ARN or alias ARN."""
LOCAL_KEY_ID = re.compile(r"local-[0-9a-f]{16}")
"""The random id of a local key file (``local-<16 hex>``)."""
_VAULT_WRAPPED = re.compile(r"vault:v([1-9][0-9]{0,9}):([A-Za-z0-9+/]{4,8192}={0,2})")
_LOCAL_WRAPPED = re.compile(r"sovml-local:v([1-9][0-9]{0,8}):([A-Za-z0-9+/]{4,8192}={0,2})")
_KMS_VERSION = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_KMS_BLOB = 6144
"""Largest ciphertext blob KMS produces."""
MAX_VERSION = 2**31 - 1
"""Largest integer key version accepted (Vault and local versions are small integers)."""


def _no_dots(name: str) -> bool:
    return ".." not in name


def check_key_name(backend: str, name: object) -> str:
    """The key name a manifest records for ``backend``; raises ValueError otherwise.

    vault: a transit key name; kms: a key ARN; local: a key file id.
    """
    if not isinstance(name, str):
        raise ValueError("key name is not a string")
    if backend == "vault":
        ok = VAULT_KEY_NAME.fullmatch(name) is not None and _no_dots(name)
    elif backend == "kms":
        ok = KMS_KEY_ARN.fullmatch(name) is not None
    elif backend == "local":
        ok = LOCAL_KEY_ID.fullmatch(name) is not None
    else:
        raise ValueError(f"unknown backend {shown(backend)}")
    if not ok:
        raise ValueError(f"{backend} key name {shown(name)} does not fit the allowed pattern")
    return name


def check_key_reference(backend: str, ref: str) -> str:
    """A key the caller names (vault: transit key name; kms: id, alias or ARN); ValueError else."""
    if backend == "vault":
        ok = VAULT_KEY_NAME.fullmatch(ref) is not None and _no_dots(ref)
        allowed = "letters, digits, '_', '.', '-' (no '/', no '..'), at most 128"
    elif backend == "kms":
        ok = KMS_KEY_REF.fullmatch(ref) is not None
        allowed = "a key id, alias/<name>, or a key or alias ARN"
    else:
        raise ValueError(f"unknown backend {shown(backend)}")
    if not ok:
        raise ValueError(f"{backend} key {shown(ref)} is not allowed: use {allowed}")
    return ref


def check_mount(what: str, mount: str) -> str:
    """A Vault mount path given by the caller; ValueError unless it fits :data:`VAULT_MOUNT`."""
    if VAULT_MOUNT.fullmatch(mount) is None or not _no_dots(mount):
        raise ValueError(
            f"{what} {shown(mount)} is not allowed: use segments of letters, digits, '_', '.', "
            "'-' separated by '/' (no '..')"
        )
    return mount


def check_role(role: str) -> str:
    """A Kubernetes auth role name; ValueError when it does not fit :data:`VAULT_ROLE`."""
    if VAULT_ROLE.fullmatch(role) is None:
        raise ValueError(f"Vault role {shown(role)} is not allowed")
    return role


def wrapped_version(backend: str, wrapped: str) -> int | None:
    """The key version a wrapped key shows (``vault:vN:``, ``sovml-local:vN:``), None for KMS."""
    pattern = {"vault": _VAULT_WRAPPED, "local": _LOCAL_WRAPPED}.get(backend)
    if pattern is None:
        return None
    match = pattern.fullmatch(wrapped)
    return int(match.group(1)) if match else None


def check_data_key_slot(backend: str, version: object, wrapped: object) -> None:
    """A manifest's wrapped data key and version are well formed and agree; ValueError otherwise.

    The version of a Vault or local wrapped key is part of the wrapped text (and authenticated by
    the key service), so a manifest version that differs from it was edited.
    """
    if not isinstance(wrapped, str):
        raise ValueError("wrapped data key is not a string")
    if backend == "kms":
        blob = unb64(wrapped, "wrapped data key")
        if not 1 <= len(blob) <= MAX_KMS_BLOB:
            raise ValueError("wrapped data key has an impossible length")
        if not isinstance(version, str) or _KMS_VERSION.fullmatch(version) is None:
            raise ValueError("kms key version must be a key-material id")
        return
    pattern = _VAULT_WRAPPED if backend == "vault" else _LOCAL_WRAPPED
    match = pattern.fullmatch(wrapped)
    if match is None:
        raise ValueError(f"wrapped data key is not in the {backend} format")
    body = unb64(match.group(2), "wrapped data key")
    if backend == "local" and len(body) != 12 + DATA_KEY_SIZE + TAG_SIZE:
        raise ValueError("wrapped data key has the wrong length")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise ValueError("key version must be a positive integer")
    if int(match.group(1)) != version:
        raise ValueError(
            f"key version {version} differs from the version the wrapped key shows "
            f"({match.group(1)})"
        )
