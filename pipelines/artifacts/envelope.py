"""The envelope format: identifiers, sizes, file names and the chunk arithmetic.

Every file gets its own random AES-256-GCM data key. The data key is wrapped by a key service
(Vault transit, KMS or the embedded local key file, see :mod:`pipelines.artifacts.keys`) and only
the wrapped form is stored, in a JSON manifest next to the ciphertext:

* a file ``X`` becomes ``X.enc`` plus ``X.enc.manifest.json``;
* a folder ``D`` becomes a folder ``D.enc`` holding ``<relative path>.enc`` for every file plus
  one ``sovml-manifest.json`` that lists them all.

Ciphertext files start with ``MAGIC`` and the SHA-256 of the entry's *header* (the immutable part
of its manifest entry), followed by fixed-size chunks. Chunk ``i`` is sealed with the nonce
``prefix(8 random bytes) || i (4 bytes, big endian)`` and associated data
``header_sha256 || i (8 bytes) || final flag (1 byte)``, so a modified byte, dropped or reordered
chunks, a truncated tail or an edited header all fail authentication. The plaintext SHA-256 and
size are checked at the end; the wrapped key is protected by the key service itself (it will not
unwrap a modified blob) and is bound to the artifact through an encryption context.
"""

from __future__ import annotations

from pipelines.artifacts.errors import ArtifactError

FORMAT = "sovml-envelope/1"
"""Format identifier written into every manifest and header."""
ALGORITHM = "AES-256-GCM"
"""The AEAD every chunk is sealed with."""
NONCE_SCHEME = "prefix64-random+counter32-be"
"""12-byte GCM nonce: 8 random bytes per file, then the chunk index as a 4-byte big-endian int."""
DEFAULT_CHUNK_SIZE = 1 << 20
"""Plaintext bytes per chunk unless the caller chooses."""
MIN_CHUNK_SIZE = 16
"""Smallest chunk size a manifest may name."""
MAX_CHUNK_SIZE = 64 << 20
"""Largest chunk size a manifest may name (bounds the buffers a decrypt allocates)."""
MAGIC = b"SOVMLE01"
"""First bytes of every ciphertext file."""
TAG_SIZE = 16
"""GCM authentication tag bytes after every sealed chunk."""
DATA_KEY_SIZE = 32
"""AES-256 data key bytes."""
NONCE_PREFIX_SIZE = 8
"""Random nonce bytes per file; the chunk counter fills the other four."""
MAX_CHUNKS = 1 << 32
"""The counter is 4 bytes; beyond it nonces would repeat."""
CIPHERTEXT_SUFFIX = ".enc"
"""Suffix of ciphertext files and of encrypted folders."""
MANIFEST_SUFFIX = ".manifest.json"
"""Suffix of a single file's manifest, beside its ``.enc`` file."""
FOLDER_MANIFEST = "sovml-manifest.json"
"""Name of the manifest inside an encrypted folder."""
BACKENDS = ("local", "vault", "kms")
"""Key services a manifest may name."""


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks a plaintext of ``size`` bytes is sealed in (an empty file still has one)."""
    return max(1, -(-size // chunk_size))


def ciphertext_size(size: int, chunk_size: int) -> int:
    """Bytes of the ciphertext file of a ``size``-byte plaintext: lead, chunks and tags."""
    return len(MAGIC) + 32 + size + TAG_SIZE * chunk_count(size, chunk_size)


def check_chunk_size(chunk_size: int) -> None:
    """Refuse a chunk size outside ``MIN_CHUNK_SIZE..MAX_CHUNK_SIZE``."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ArtifactError(f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes")
