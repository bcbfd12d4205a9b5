"""How one file is sealed and opened: chunked AES-256-GCM with a per-chunk nonce and AAD.

Chunk ``i`` is sealed with the nonce ``prefix || i (4 bytes, big endian)`` and the associated
data ``header_sha256 || i (8 bytes) || final flag (1 byte)``: a modified byte, reordered or
dropped chunks, a truncated tail or an edited header all fail authentication. Memory stays
constant (a few chunk-sized buffers) whatever the file size.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipelines.artifacts.encoding import unb64
from pipelines.artifacts.envelope import (
    DIGEST_SIZE,
    MAGIC,
    MAX_CHUNKS,
    NONCE_PREFIX_SIZE,
    TAG_SIZE,
    chunk_count,
)
from pipelines.artifacts.errors import ArtifactError, IntegrityError
from pipelines.artifacts.manifest import FileEntry

Progress = Callable[[int], None]
"""Called with the number of plaintext bytes just processed."""


def nonce(prefix: bytes, index: int) -> bytes:
    """The GCM nonce of chunk ``index``."""
    return prefix + struct.pack(">I", index)


def chunk_aad(header_digest: bytes, index: int, final: bool) -> bytes:
    """The associated data of chunk ``index``: header digest, index and final flag."""
    return header_digest + struct.pack(">QB", index, 1 if final else 0)


def _read_full(fh: IO[bytes], view: memoryview) -> int:
    """Fill ``view`` from ``fh``; returns the bytes read (short only at end of file)."""
    total = 0
    while total < len(view):
        n = fh.readinto(view[total:])  # type: ignore[attr-defined]
        if not n:
            break
        total += n
    return total


class _Sha256Behind:
    """SHA-256 that runs one buffer behind on a helper thread.

    hashlib releases the GIL for large buffers while AES-GCM (cryptography) does not, so hashing
    chunk ``i`` while chunk ``i`` is sealed/opened and written overlaps the two most expensive
    steps on a second core (about 1.5x on large files). :meth:`update` first waits for the
    previous buffer, so at most one buffer is in flight and it must not be reused before the
    next :meth:`update` or :meth:`hexdigest`. Small inputs hash inline: no thread is started.
    """

    def __init__(self, threaded: bool) -> None:
        self._sha = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sovml-sha256") if threaded else None
        self._pending: Future[None] | None = None

    def __enter__(self) -> _Sha256Behind:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def update(self, data: memoryview) -> None:
        """Hash ``data`` (in the background when threaded); the caller keeps it unchanged."""
        self._wait()
        if self._pool is None:
            self._sha.update(data)
        else:
            self._pending = self._pool.submit(self._sha.update, data)

    def hexdigest(self) -> str:
        """Digest of everything passed to :meth:`update`."""
        self._wait()
        return self._sha.hexdigest()


def encrypt_stream(
    src: IO[bytes],
    dst: IO[bytes],
    aead: AESGCM,
    prefix: bytes,
    digest: bytes,
    chunk_size: int,
    progress: Progress | None,
) -> tuple[str, int]:
    """Seal ``src`` chunk by chunk into ``dst``; returns plaintext ``(sha256, size)``.

    Reads one chunk ahead to know which chunk is final (its flag is in the associated data)
    without knowing the size in advance; two input buffers and one output buffer are reused.
    The lead's digest is left zero: the caller writes the entry digest there once the plaintext
    digest and size are known (:func:`write_lead`).
    """
    bufs = (memoryview(bytearray(chunk_size)), memoryview(bytearray(chunk_size)))
    out = memoryview(bytearray(chunk_size + TAG_SIZE))
    cur, n = 0, _read_full(src, bufs[0])
    index, total = 0, 0
    dst.write(MAGIC + bytes(DIGEST_SIZE))
    with _Sha256Behind(threaded=n == chunk_size) as sha:
        while True:
            data = bufs[cur][:n]
            # Also waits for the hash of the other buffer, which the next read overwrites.
            sha.update(data)
            nxt = 1 - cur
            m = _read_full(src, bufs[nxt]) if n == chunk_size else 0
            final = m == 0
            if index >= MAX_CHUNKS:
                raise ArtifactError("file too large for the chunk counter; use larger chunks")
            written = aead.encrypt_into(
                nonce(prefix, index), data, chunk_aad(digest, index, final), out[: n + TAG_SIZE]
            )
            dst.write(out[:written])
            total += n
            if progress:
                progress(n)
            if final:
                return sha.hexdigest(), total
            cur, n, index = nxt, m, index + 1


def write_lead(dst: IO[bytes], entry_digest: bytes) -> None:
    """Write the lead (magic and entry digest) at the start of a sealed file ``dst``."""
    dst.seek(0)
    dst.write(MAGIC + entry_digest)
    dst.seek(0, 2)


def decrypt_stream(
    src: IO[bytes],
    dst: IO[bytes],
    aead: AESGCM,
    entry: FileEntry,
    where: Path,
    progress: Progress | None,
) -> None:
    """Open and verify every chunk of ``src`` into ``dst``; raises :class:`IntegrityError`.

    ``src`` is positioned after the lead (magic and entry digest), which the caller checked.
    """
    chunk_size = entry.chunk_size
    prefix = unb64(entry.header["nonce_prefix"], "nonce_prefix", NONCE_PREFIX_SIZE)
    digest = entry.digest
    expected_chunks = chunk_count(entry.plaintext_size, chunk_size)
    record = chunk_size + TAG_SIZE
    bufs = (memoryview(bytearray(record)), memoryview(bytearray(record)))
    # Two plaintext buffers: one may still be hashing while the next chunk is opened.
    outs = (memoryview(bytearray(chunk_size)), memoryview(bytearray(chunk_size)))
    cur, n = 0, _read_full(src, bufs[0])
    index, total = 0, 0
    with _Sha256Behind(threaded=expected_chunks > 1) as sha:
        while True:
            nxt = 1 - cur
            m = _read_full(src, bufs[nxt]) if n == record else 0
            final = m == 0
            if n < TAG_SIZE:
                raise IntegrityError(f"truncated: chunk {index} is incomplete", where)
            sealed, out = bufs[cur][:n], outs[index % 2]
            try:
                size = aead.decrypt_into(
                    nonce(prefix, index),
                    sealed,
                    chunk_aad(digest, index, final),
                    out[: n - TAG_SIZE],
                )
            except InvalidTag:
                raise IntegrityError(
                    _diagnose(aead, prefix, digest, index, final, sealed), where
                ) from None
            sha.update(out[:size])
            dst.write(out[:size])
            total += size
            if progress:
                progress(size)
            if final:
                break
            if index + 1 >= expected_chunks:
                raise IntegrityError(
                    f"more chunks than the manifest's {entry.plaintext_size} bytes allow "
                    "(data appended or chunks duplicated)",
                    where,
                )
            cur, n, index = nxt, m, index + 1
        actual_sha = sha.hexdigest()
    _check_totals(entry, where, total, index + 1, actual_sha)


def _check_totals(entry: FileEntry, where: Path, size: int, chunks: int, sha256: str) -> None:
    """The opened plaintext's size, chunk count and SHA-256 must be the manifest's."""
    expected_chunks = chunk_count(entry.plaintext_size, entry.chunk_size)
    if size != entry.plaintext_size or chunks != expected_chunks:
        raise IntegrityError(
            f"decrypted {size} bytes in {chunks} chunks, manifest says {entry.plaintext_size} "
            f"bytes in {expected_chunks}",
            where,
        )
    if not secrets.compare_digest(sha256, entry.plaintext_sha256):
        raise IntegrityError("plaintext SHA-256 does not match the manifest", where)


def _diagnose(
    aead: AESGCM, prefix: bytes, digest: bytes, index: int, final: bool, sealed: memoryview
) -> str:
    """Say why chunk ``index`` failed: try it with the other final flag to spot truncation."""
    with contextlib.suppress(InvalidTag):
        aead.decrypt(nonce(prefix, index), bytes(sealed), chunk_aad(digest, index, not final))
        if final:
            return f"truncated: the file ends after chunk {index}, which is not the last chunk"
        return f"data found after the final chunk {index} (appended or duplicated chunks)"
    return (
        f"chunk {index} failed authentication: the ciphertext was modified, chunks were "
        "reordered, or the manifest header or data key does not belong to this file"
    )
