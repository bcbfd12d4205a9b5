"""Pseudonymization tokens: HMAC-SHA256 under a key derived inside the key service.

A token is ``pz_`` + the first 32 hex digits (128 bits) of ``HMAC-SHA256(K, kind NUL canonical)``:
deterministic, so the same person gets the same token in every table and joins still work, and
without ``K`` neither reversible nor recomputable (a hash without a key is not: the 10^7 phone
numbers of an area code are hashed in seconds).

``K`` comes from the same key service as the artifact encryption (the backend chosen the same
way, :func:`pipelines.artifacts.open_key_service`), through its ``derive_key`` with the fixed
label :data:`LABEL`:

* ``local``: HKDF-SHA256 of the key file's newest key version, with the label and the key id
  as ``info``; never the key-encryption key itself.
* ``vault``: the transit engine's ``hmac`` endpoint over the label (Vault/OpenBao keep a separate
  HMAC key per transit key version), on the tenant's transit key: deleting that key
  (crypto-shredding) also makes its tokens unlinkable to anyone who did not keep them.
* ``kms``: ``GenerateMac`` with an HMAC_256 KMS key (a KMS key has one usage, so not the
  encryption key): :data:`DEFAULT_KMS_PSEUDONYM_KEY` unless named.

One derivation per run, then HMACs in-process: a key-service call per value would be 20,000
round trips for a 20,000-row table (and a KMS request each). Rotating the key version rotates
every token (recorded as ``key_version``): tokens join within one key version.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Any

LABEL = b"sovml-pseudonymization/1"
"""What the pseudonymization key is derived for: fixed, so every run derives the same key."""
TOKEN_PREFIX = "pz_"
TOKEN_HEX = 32
"""Hex digits of the HMAC kept in a token (128 bits: no collision in any realistic table)."""
DEFAULT_KMS_PSEUDONYM_KEY = "alias/sovml-dev-pseudonymization"
"""The HMAC_256 KMS key of the ``kms`` backend when none is named: the dev stack's
(``components/encryption.py`` names every stack's ``alias/sovml-<stack>-pseudonymization``, as
the artifact default ``alias/sovml-dev-storage`` is the dev stack's storage key); other stacks'
runs name theirs in the pipeline's ``pseudonymization_key``."""


@dataclass(frozen=True)
class PseudonymKey:
    """A derived pseudonymization key and where it came from (the key itself is never shown).

    Attributes:
        material: The 32-byte HMAC key.
        backend: ``local``, ``vault`` or ``kms``.
        key_id: The key service's key: local key-file id, transit key name or KMS key ARN.
        key_version: The key version it was derived from.
    """

    material: bytes = field(repr=False)
    backend: str
    key_id: str
    key_version: str

    def describe(self) -> dict[str, str]:
        """What the metadata records: backend, key id, version, algorithm, label; no key."""
        return {
            "backend": self.backend,
            "key_id": self.key_id,
            "key_version": self.key_version,
            "algorithm": "HMAC-SHA256, key derived with label " + LABEL.decode(),
        }


class Pseudonymizer:
    """Makes tokens with one derived key; caches them, since identifiers repeat in a table."""

    def __init__(self, key: PseudonymKey) -> None:
        if len(key.material) != 32:
            raise ValueError(f"pseudonymization key must be 32 bytes, got {len(key.material)}")
        self.key = key
        self._cache: dict[tuple[str, str], str] = {}

    def token(self, kind: str, canonical: str) -> str:
        """The token of ``canonical`` (an identifier's canonical form) of ``kind``."""
        cached = self._cache.get((kind, canonical))
        if cached is None:
            message = kind.encode() + b"\x00" + canonical.encode()
            digest = hmac.new(self.key.material, message, hashlib.sha256).hexdigest()
            cached = TOKEN_PREFIX + digest[:TOKEN_HEX]
            self._cache[(kind, canonical)] = cached
        return cached


def derive_key(service: Any) -> PseudonymKey:
    """The pseudonymization key of a key service (:class:`pipelines.artifacts.KeyService`).

    Raises:
        KeyServiceError: The key service refused or cannot derive keys.
    """
    material, version = service.derive_key(LABEL)
    return PseudonymKey(material, service.backend, service.name, str(version))


def open_pseudonymizer(backend: str, key: str = "", *, create_local: bool = False) -> Pseudonymizer:
    """The pseudonymizer of ``backend``'s key service, key derived now.

    Args:
        backend: ``local``, ``vault`` or ``kms`` (as for the artifact encryption).
        key: Key file (local), transit key name (vault) or HMAC key id/alias (kms); empty for
            the backend's default (:data:`DEFAULT_KMS_PSEUDONYM_KEY` for kms).
        create_local: Create the local key file (mode 0600) when it does not exist yet.

    Raises:
        ValueError: ``backend`` is not a key-service backend.
        KeyServiceError: The key service is unreachable, refuses, or the key is missing.
    """
    from pipelines.artifacts.keys.factory import open_key_service

    if backend == "kms" and not key:
        key = DEFAULT_KMS_PSEUDONYM_KEY
    service = open_key_service(
        backend,
        key or None,
        create_local=create_local,
        # Inside the cluster the pod logs in to Vault as its namespace's role (as encrypt does).
        vault_role=os.environ.get("SOVML_VAULT_K8S_ROLE"),
    )
    return Pseudonymizer(derive_key(service))
