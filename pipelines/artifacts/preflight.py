"""What is checked before any key service is called, and what that guarantees.

A manifest is untrusted input until its data keys unwrap and its chunks authenticate, and both
need the key service. So everything that can be checked without a key is checked first, for the
whole artifact, and only then is the key service called:

1. the manifest parses within bounds and strictly
   (:func:`pipelines.artifacts.manifest.parse_manifest`): key name, wrapped keys and versions
   fit their backend's patterns (so a name like ``../../sys/seal`` never reaches a URL), paths
   are safe;
2. the backend and key name equal those of the key service the caller gave (:func:`check_key`);
   with ``--key`` that is the caller's key, without it the manifest's (pattern-checked) one;
3. every ciphertext file is a regular file of exactly the size the manifest implies and starts
   with the digest of its manifest entry (:func:`check_ciphertexts`), so an edit of the manifest
   alone (header, file list, plaintext digest or size, key name, anything but the wrapped key)
   fails here.

What needs the key service: the wrapped data key itself (the service refuses a modified one), and
an attacker who rewrites the manifest *and* the leads of the ciphertext files consistently (the
digests are unkeyed). The unwrap then carries the new header digest in its encryption context, so
KMS, the local key file and derived transit keys refuse; a non-derived transit key returns the
data key, and chunk 0 fails authentication because its associated data binds the original header.
Either way no plaintext is written.
"""

from __future__ import annotations

import os
import secrets
from typing import IO

from pipelines.artifacts import fs
from pipelines.artifacts.envelope import LEAD_SIZE, MAGIC, OLD_MAGICS, ciphertext_size
from pipelines.artifacts.errors import ArtifactError, IntegrityError, KeyMismatchError
from pipelines.artifacts.keys.base import KeyService
from pipelines.artifacts.manifest import FileEntry, Located


def check_key(located: Located, service: KeyService) -> None:
    """The artifact's wrapping key must be ``service``'s key; refused before any unwrap.

    Only the caller's own key may be looked up here (a KMS alias resolved to its ARN); nothing
    from the manifest is sent anywhere.
    """
    backend, name = located.key()
    if backend != service.backend:
        raise KeyMismatchError(
            f"encrypted with the {backend} backend, but a {service.backend} key service was "
            "given; nothing was sent to it",
            located.manifest_path,
        )
    if name != service.name:
        raise KeyMismatchError(
            f"wrong key: the artifact names {backend} key {name!r}, but {service.describe()} was "
            "given; nothing was sent to the key service",
            located.manifest_path,
        )


def open_ciphertext(located: Located, entry: FileEntry) -> IO[bytes]:
    """The entry's ciphertext file, opened after checking its size and lead; positioned after it.

    Raises :class:`IntegrityError` when it is missing, not a regular file, of the wrong size, or
    does not start with this entry's digest.
    """
    enc = located.ciphertext_path(entry)
    try:
        fd = fs.open_regular(enc, follow=False)
    except FileNotFoundError:
        raise IntegrityError(f"ciphertext of {entry.path} is missing", enc) from None
    except ArtifactError as exc:
        raise IntegrityError(exc.reason, enc) from None
    fin = os.fdopen(fd, "rb")
    try:
        _check_lead(fin, entry, enc)
    except BaseException:
        fin.close()
        raise
    return fin


def _check_lead(fin: IO[bytes], entry: FileEntry, enc: os.PathLike[str]) -> None:
    actual = os.fstat(fin.fileno()).st_size
    expected = ciphertext_size(entry.plaintext_size, entry.chunk_size)
    lead = fin.read(LEAD_SIZE)
    if lead[: len(MAGIC)] in OLD_MAGICS:
        raise IntegrityError("ciphertext of an earlier format; not accepted", enc)
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing data"
        raise IntegrityError(
            f"ciphertext {what}: {actual} bytes, the manifest implies {expected}", enc
        )
    if lead[: len(MAGIC)] != MAGIC:
        raise IntegrityError("not a sovml envelope file (bad magic)", enc)
    if not secrets.compare_digest(lead[len(MAGIC) :], entry.lead_digest):
        raise IntegrityError(
            "ciphertext does not belong to this manifest entry (the manifest entry was "
            "modified, or ciphertext files were swapped)",
            enc,
        )


def check_ciphertexts(located: Located) -> None:
    """Every ciphertext file of the artifact passes :func:`open_ciphertext` (opened and closed)."""
    for entry in located.manifest.files:
        open_ciphertext(located, entry).close()
