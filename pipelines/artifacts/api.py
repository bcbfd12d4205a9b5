"""The operations: encrypt, decrypt and rewrap a file or folder artifact, and their reports.

Decryption writes into a temporary file (or folder) in the destination folder and renames it into
place only after every chunk and the final digest verified, so a failure never leaves partial
plaintext behind. :func:`rewrap_path` re-wraps only the data keys (to the newest key version)
without touching the ciphertext.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipelines.artifacts import fs
from pipelines.artifacts.encoding import header_digest
from pipelines.artifacts.envelope import (
    CIPHERTEXT_SUFFIX,
    DEFAULT_CHUNK_SIZE,
    FOLDER_MANIFEST,
    MAGIC,
    MANIFEST_SUFFIX,
    NONCE_PREFIX_SIZE,
    check_chunk_size,
    ciphertext_size,
)
from pipelines.artifacts.errors import ArtifactError, IntegrityError, KeyServiceError
from pipelines.artifacts.keys.base import KeyService, KeyVersion
from pipelines.artifacts.manifest import (
    FileEntry,
    KeySlot,
    Located,
    Manifest,
    key_context,
    locate,
    new_artifact,
    new_header,
)
from pipelines.artifacts.stream import Progress, decrypt_stream, encrypt_stream


@dataclass
class FileResult:
    """What happened to one file."""

    path: str
    """Relative path inside the artifact."""
    size: int
    """Plaintext bytes processed (0 for a rewrap, which reads no data)."""
    seconds: float
    """Wall-clock time spent on this file."""
    key_version: KeyVersion | None = None
    """Key version its data key is wrapped with now."""
    previous_version: KeyVersion | None = None
    """Rewrap only: the key version before."""


@dataclass
class Report:
    """Result of :func:`encrypt_path`, :func:`decrypt_path` or :func:`rewrap_path`."""

    operation: str
    """``encrypt``, ``decrypt`` or ``rewrap``."""
    source: Path
    """What was read: the plaintext, or the encrypted artifact."""
    destination: Path
    """What was written: the ciphertext, the plaintext, or (rewrap) the artifact itself."""
    manifest: Path
    """The artifact's manifest file."""
    backend: str
    """Key service backend."""
    key: str
    """Identity of the key-encryption key."""
    files: list[FileResult] = field(default_factory=list)
    """One result per file."""
    seconds: float = 0.0
    """Wall-clock time of the whole operation."""

    @property
    def bytes(self) -> int:
        """Plaintext bytes processed."""
        return sum(f.size for f in self.files)

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes per second) over the whole operation."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON form (paths as strings; the totals rounded: seconds to 6 places, MB/s to 3)."""
        return {
            "operation": self.operation,
            "source": str(self.source),
            "destination": str(self.destination),
            "manifest": str(self.manifest),
            "backend": self.backend,
            "key": self.key,
            "files": [dataclasses.asdict(f) for f in self.files],
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "mb_per_s": round(self.mb_per_s, 3),
        }


def _report(
    operation: str,
    source: Path,
    destination: Path,
    manifest: Path,
    service: KeyService,
    files: list[FileResult],
    started: float,
) -> Report:
    seconds = time.perf_counter() - started
    return Report(
        operation, source, destination, manifest, service.backend, service.name, files, seconds
    )


def _result(entry: FileEntry, seconds: float) -> FileResult:
    return FileResult(entry.path, entry.plaintext_size, seconds, entry.key.version)


def _check_slot(entry: FileEntry, service: KeyService, where: Path) -> None:
    """The entry's data key must be wrapped by ``service``'s key, at the version it says."""
    slot = entry.key
    if slot.backend != service.backend:
        raise KeyServiceError(
            f"{entry.path} was encrypted with the {slot.backend} backend, not {service.backend}",
            where,
        )
    if slot.name != service.name:
        raise KeyServiceError(
            f"wrong key: {entry.path} needs {slot.backend} key {slot.name!r}, but "
            f"{service.describe()} was given",
            where,
        )
    shown = service.wrapped_version(slot.wrapped)
    if shown is not None and shown != slot.version:
        raise IntegrityError(
            f"manifest says key version {slot.version!r} for {entry.path} but the wrapped key is "
            f"version {shown!r} (manifest modified)",
            where,
        )


# ------------------------------------------------------------------------------------ encrypt


@dataclass(frozen=True)
class _Sealer:
    """Seals files of one encrypt operation: the key service, chunk size and progress callback."""

    service: KeyService
    """Wraps each file's fresh data key."""
    chunk_size: int
    """Plaintext bytes per chunk."""
    progress: Progress | None
    """Told about every chunk's plaintext bytes, if given."""

    def seal(
        self, src: Path, rel: str, dst: Path, artifact: dict[str, Any]
    ) -> tuple[FileEntry, float]:
        """Encrypt ``src`` (path ``rel`` in ``artifact``) into ``dst``, a temporary path.

        Returns the manifest entry and the seconds it took.
        """
        started = time.perf_counter()
        with open(src, "rb") as fin:
            mode = stat.S_IMODE(os.fstat(fin.fileno()).st_mode)
            prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
            header = new_header(artifact, rel, mode, self.chunk_size, prefix)
            digest = header_digest(header)
            data_key, wrapped, version = self.service.generate_data_key(key_context(header, digest))
            with open(dst, "wb") as fout:
                sha, size = encrypt_stream(
                    fin, fout, AESGCM(data_key), prefix, digest, self.chunk_size, self.progress
                )
                fout.flush()
                os.fsync(fout.fileno())
        del data_key
        slot = KeySlot(self.service.backend, self.service.name, version, wrapped)
        return FileEntry(header, slot, sha, size), time.perf_counter() - started


def _encrypt_folder(
    sealer: _Sealer, source: Path, dest: Path, overwrite: bool
) -> tuple[Path, list[FileResult]]:
    """Encrypt every file of ``source`` into the folder ``dest``; returns its manifest path."""
    if dest.resolve().is_relative_to(source.resolve()):
        raise ArtifactError("the output folder must not be inside the input folder", dest)
    fs.refuse_existing(dest, overwrite)
    listing = fs.list_files(source)
    if not listing:
        raise ArtifactError("folder has no files to encrypt", source)
    artifact = new_artifact(source.name, "folder", [rel for rel, _ in listing])
    entries: list[FileEntry] = []
    files: list[FileResult] = []
    with fs.private_temp_dir(dest) as tmp:
        for rel, full in listing:
            target = tmp.joinpath(*rel.split("/"))
            target = target.with_name(target.name + CIPHERTEXT_SUFFIX)
            target.parent.mkdir(parents=True, exist_ok=True)
            entry, secs = sealer.seal(full, rel, target, artifact)
            entries.append(entry)
            files.append(_result(entry, secs))
        Manifest(artifact, entries).write(tmp / FOLDER_MANIFEST, fs.new_file_mode())
        fs.set_tree_modes(tmp, fs.new_dir_mode())
        fs.install(tmp, dest, overwrite)
    return dest / FOLDER_MANIFEST, files


def _encrypt_file(
    sealer: _Sealer, source: Path, dest: Path, overwrite: bool
) -> tuple[Path, list[FileResult]]:
    """Encrypt the file ``source`` to ``dest`` plus its manifest beside it."""
    manifest_path = dest.with_name(dest.name + MANIFEST_SUFFIX)
    for target in (dest, manifest_path):
        fs.refuse_existing(target, overwrite)
    artifact = new_artifact(source.name, "file", [source.name])
    with fs.private_temp_file(dest) as tmp:
        entry, secs = sealer.seal(source, source.name, tmp, artifact)
        os.chmod(tmp, fs.new_file_mode())
        # Ciphertext first, manifest last: a manifest on disk implies complete ciphertext.
        fs.install(tmp, dest, overwrite)
    Manifest(artifact, [entry]).write(manifest_path, fs.new_file_mode())
    return manifest_path, [_result(entry, secs)]


def encrypt_path(
    src: str | os.PathLike[str],
    service: KeyService,
    *,
    out: str | os.PathLike[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Encrypt a file (to ``X.enc`` + ``X.enc.manifest.json``) or a folder (to ``D.enc/``).

    Output appears only when complete: it is written under a temporary name in the destination
    folder and renamed at the end.
    """
    check_chunk_size(chunk_size)
    source = Path(src)
    if not source.exists():
        raise ArtifactError("no such file or folder", source)
    dest = Path(out) if out is not None else source.with_name(source.name + CIPHERTEXT_SUFFIX)
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    encrypt = _encrypt_folder if source.is_dir() else _encrypt_file
    manifest_path, files = encrypt(_Sealer(service, chunk_size, progress), source, dest, overwrite)
    return _report("encrypt", source, dest, manifest_path, service, files, started)


# ------------------------------------------------------------------------------------ decrypt


def _check_ciphertext_lead(fin: IO[bytes], entry: FileEntry, enc: Path) -> None:
    """Size, magic and header digest of an opened ciphertext file, before any key is used."""
    actual = os.fstat(fin.fileno()).st_size
    expected = ciphertext_size(entry.plaintext_size, entry.chunk_size)
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing data"
        raise IntegrityError(
            f"ciphertext {what}: {actual} bytes, the manifest implies {expected}", enc
        )
    lead = fin.read(len(MAGIC) + 32)
    if lead[: len(MAGIC)] != MAGIC:
        raise IntegrityError("not a sovml envelope file (bad magic)", enc)
    if not secrets.compare_digest(lead[len(MAGIC) :], entry.digest):
        raise IntegrityError(
            "ciphertext does not belong to this manifest entry (header digest differs: "
            "manifest header modified or files swapped)",
            enc,
        )


def _decrypt_one(
    located: Located,
    entry: FileEntry,
    service: KeyService,
    target: Path,
    progress: Progress | None,
) -> float:
    """Decrypt one entry to ``target`` (a path inside a temp location); returns the seconds."""
    started = time.perf_counter()
    enc = located.ciphertext_path(entry)
    _check_slot(entry, service, located.manifest_path)
    try:
        fin = open(enc, "rb")  # noqa: SIM115 - closed below; opened before the key service call
    except FileNotFoundError:
        raise IntegrityError(f"ciphertext of {entry.path} is missing", enc) from None
    with fin:
        _check_ciphertext_lead(fin, entry, enc)
        data_key = service.decrypt_data_key(entry.key.wrapped, entry.context)
        with open(target, "wb") as fout:
            decrypt_stream(fin, fout, AESGCM(data_key), entry, enc, progress)
            fout.flush()
            os.fsync(fout.fileno())
        del data_key
    # Permission bits only (no setuid/setgid/sticky from a manifest), filtered by the umask.
    os.chmod(target, int(entry.header["mode"], 8) & 0o777 & ~fs.umask())
    return time.perf_counter() - started


def _default_decrypt_out(located: Located) -> Path:
    root = located.root
    if root.name.endswith(CIPHERTEXT_SUFFIX) and len(root.name) > len(CIPHERTEXT_SUFFIX):
        return root.with_name(root.name[: -len(CIPHERTEXT_SUFFIX)])
    return root.with_name(located.manifest.artifact["name"])


def decrypt_path(
    path: str | os.PathLike[str],
    service: KeyService,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Decrypt an artifact (``X.enc``, its manifest, or a ``D.enc`` folder) to ``out``.

    Plaintext is written to a temporary file/folder beside the destination and renamed into place
    only after every chunk, size and SHA-256 verified; on any failure it is deleted, so no partial
    plaintext remains. Raises :class:`IntegrityError` or :class:`KeyServiceError`.
    """
    located = locate(path)
    dest = Path(out) if out is not None else _default_decrypt_out(located)
    fs.refuse_existing(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files: list[FileResult] = []
    manifest = located.manifest
    with fs.private_temp_dir(dest) as tmp:
        if manifest.kind == "folder":
            for entry in manifest.files:
                target = tmp.joinpath(*entry.path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                secs = _decrypt_one(located, entry, service, target, progress)
                files.append(_result(entry, secs))
            fs.set_tree_modes(tmp, fs.new_dir_mode())
            fs.install(tmp, dest, overwrite)
        else:
            entry = manifest.files[0]
            target = tmp / "plaintext"
            secs = _decrypt_one(located, entry, service, target, progress)
            files.append(_result(entry, secs))
            fs.install(target, dest, overwrite)
    return _report("decrypt", located.root, dest, located.manifest_path, service, files, started)


# ------------------------------------------------------------------------------------- rewrap


def rewrap_path(path: str | os.PathLike[str], service: KeyService) -> Report:
    """Re-wrap every data key of an artifact under the newest key version; data is untouched.

    The manifest is replaced atomically once every key was re-wrapped, so an interrupted rewrap
    leaves the previous (still valid) manifest.
    """
    located = locate(path)
    started = time.perf_counter()
    files: list[FileResult] = []
    new_entries: list[FileEntry] = []
    for entry in located.manifest.files:
        t0 = time.perf_counter()
        _check_slot(entry, service, located.manifest_path)
        wrapped, version = service.rewrap(entry.key.wrapped, entry.context)
        slot = KeySlot(entry.key.backend, entry.key.name, version, wrapped)
        new_entries.append(
            FileEntry(entry.header, slot, entry.plaintext_sha256, entry.plaintext_size)
        )
        files.append(
            FileResult(entry.path, 0, time.perf_counter() - t0, version, entry.key.version)
        )
    mode = stat.S_IMODE(located.manifest_path.stat().st_mode)
    Manifest(located.manifest.artifact, new_entries).write(located.manifest_path, mode)
    return _report(
        "rewrap", located.root, located.root, located.manifest_path, service, files, started
    )
