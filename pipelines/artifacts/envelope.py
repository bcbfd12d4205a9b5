"""The envelope format: identifiers, sizes, bounds, file names and the chunk arithmetic.

Every file gets its own random AES-256-GCM data key. The data key is wrapped by a key service
(Vault transit, KMS or the embedded local key file, see :mod:`pipelines.artifacts.keys`) and only
the wrapped form is stored, in a JSON manifest next to the ciphertext:

* a file ``X`` becomes ``X.enc`` plus ``X.enc.manifest.json``;
* a folder ``D`` becomes a folder ``D.enc`` holding ``<relative path>.enc`` for every file plus
  one ``sovml-manifest.json`` that lists them all.

What the manifest authenticates, and how (format ``sovml-envelope/2``):

* Each file's *header* holds everything that decides what a decrypt does: format, algorithm,
  chunk size, nonce, path, mode and the artifact (id, name, kind, the digest of the file list and
  the *wrapping key*: backend and key name). Chunk ``i`` is sealed with the nonce
  ``prefix(8 random bytes) || i (4 bytes, big endian)`` and the associated data
  ``header_sha256 || i (8 bytes) || final flag (1 byte)``, and the header digest is part of the
  encryption context the data key is wrapped under.
* The ciphertext file starts with ``MAGIC`` and the *entry digest*: SHA-256 of the header, the
  plaintext SHA-256 and the plaintext size. A manifest edited on its own therefore no longer
  matches its ciphertext files, which is checked before any key service is called.
* Only the wrapped data key and its version may change after encryption (``rewrap``); the key
  service authenticates the wrapped key, and the version must equal the one the wrapped key shows.
"""

from __future__ import annotations

from pipelines.artifacts.errors import ArtifactError

FORMAT = "sovml-envelope/2"
"""Format identifier written into every manifest and header."""
OLD_FORMATS = ("sovml-envelope/1",)
"""Earlier formats: recognised (as earlier outputs of this tool), never decrypted."""
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
MAGIC = b"SOVMLE02"
"""First bytes of every ciphertext file of this format."""
OLD_MAGICS = (b"SOVMLE01",)
"""First bytes of ciphertext files of earlier formats."""
DIGEST_SIZE = 32
"""Bytes of the entry digest after the magic."""
LEAD_SIZE = len(MAGIC) + DIGEST_SIZE
"""Bytes before the first sealed chunk."""
TAG_SIZE = 16
"""GCM authentication tag bytes after every sealed chunk."""
DATA_KEY_SIZE = 32
"""AES-256 data key bytes."""
NONCE_PREFIX_SIZE = 8
"""Random nonce bytes per file; the chunk counter fills the other four."""
MAX_CHUNKS = 1 << 32
"""The counter is 4 bytes; beyond it nonces would repeat."""
MAX_MANIFEST_BYTES = 16 << 20
"""Largest manifest read (about 15,000 file entries); bounds the memory a hostile one costs."""
MAX_MANIFEST_DEPTH = 8
"""Deepest JSON nesting a manifest may have (the format needs 5); checked before parsing."""
MAX_FILES = 10_000
"""Most files one artifact may hold."""
MAX_PATH_BYTES = 1024
"""Longest relative path (UTF-8 bytes) a manifest may name."""
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
    return LEAD_SIZE + size + TAG_SIZE * chunk_count(size, chunk_size)


def check_chunk_size(chunk_size: int) -> None:
    """Refuse a chunk size outside ``MIN_CHUNK_SIZE..MAX_CHUNK_SIZE``."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ArtifactError(f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes")
