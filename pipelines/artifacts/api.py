"""The operations: encrypt, decrypt and rewrap a file or folder artifact, and their reports.

Every operation first checks what it can without a key (:mod:`pipelines.artifacts.preflight`)
and where it will write (:mod:`pipelines.artifacts.destinations`), then calls the key service.
Output is written into a private, locked temporary folder beside the destination and renamed into
place only when complete and verified; on any failure, and on SIGINT/SIGTERM/SIGHUP
(:mod:`pipelines.artifacts.signals`), the temporary folder is removed, so no partial plaintext
remains. :func:`rewrap_path` re-wraps only the data keys (to the newest key version) without
touching the ciphertext.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipelines.artifacts import fs
from pipelines.artifacts.destinations import Output, check_destination, check_protected
from pipelines.artifacts.encoding import entry_digest, header_digest
from pipelines.artifacts.envelope import (
    CIPHERTEXT_SUFFIX,
    DEFAULT_CHUNK_SIZE,
    FOLDER_MANIFEST,
    MANIFEST_SUFFIX,
    NONCE_PREFIX_SIZE,
    check_chunk_size,
)
from pipelines.artifacts.errors import ArtifactError, KeyServiceError, UnsafeDestinationError
from pipelines.artifacts.keys.base import KeyService, KeyVersion
from pipelines.artifacts.keys.patterns import check_data_key_slot
from pipelines.artifacts.manifest import (
    FileEntry,
    KeySlot,
    Located,
    Manifest,
    check_file_list,
    check_name,
    check_rel_path,
    is_manifest,
    key_context,
    locate,
    new_artifact,
    new_header,
)
from pipelines.artifacts.preflight import check_ciphertexts, check_key, open_ciphertext
from pipelines.artifacts.signals import cleanup_on_signals
from pipelines.artifacts.stream import Progress, decrypt_stream, encrypt_stream, write_lead


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


def _key_files(service: KeyService) -> list[tuple[str, Path]]:
    return [("the key file", p) for p in service.files()]


def _checked_slot(service: KeyService, version: KeyVersion, wrapped: str) -> None:
    """A wrapped key from the service must be one this tool will accept when reading it back."""
    try:
        check_data_key_slot(service.backend, version, wrapped)
    except ValueError as exc:
        raise KeyServiceError(
            f"{service.describe()} returned an unexpected wrapped key: {exc}"
        ) from None


@dataclass(frozen=True)
class _Target:
    """Where an operation writes, what it writes and what must never be touched."""

    dest: Path
    """The destination path."""
    output: Output
    """What is written there."""
    overwrite: bool
    """``--force``: an earlier output of this kind may be replaced."""
    protected: list[tuple[str, Path]]
    """Inputs and key files (description, path)."""
    paths: list[str] = field(default_factory=list)
    """The artifact's relative file paths (decrypt to a folder)."""

    def check(self) -> None:
        """Refuse an unsafe destination (:func:`check_destination`)."""
        check_destination(
            self.dest,
            self.output,
            overwrite=self.overwrite,
            protected=self.protected,
            paths=self.paths,
        )

    def install(self, item: Path, scratch: Path) -> None:
        """Check again (the destination may have changed while writing), then rename ``item``."""
        self.check()
        fs.install(item, self.dest, scratch, replace=self.overwrite)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a new file inside a private temp folder (no rename needed there)."""
    with os.fdopen(fs.create_private(path), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)


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
        """Encrypt ``src`` (path ``rel`` in ``artifact``) into ``dst``, a new temporary path.

        Returns the manifest entry and the seconds it took.
        """
        started = time.perf_counter()
        with os.fdopen(fs.open_regular(src), "rb") as fin:
            mode = stat.S_IMODE(os.fstat(fin.fileno()).st_mode)
            prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
            header = new_header(artifact, rel, mode, self.chunk_size, prefix)
            digest = header_digest(header)
            data_key, wrapped, version = self.service.generate_data_key(key_context(header, digest))
            _checked_slot(self.service, version, wrapped)
            with os.fdopen(fs.create_private(dst), "wb") as fout:
                sha, size = encrypt_stream(
                    fin, fout, AESGCM(data_key), prefix, digest, self.chunk_size, self.progress
                )
                write_lead(fout, entry_digest(header, sha, size))
                fout.flush()
                os.fsync(fout.fileno())
        del data_key
        slot = KeySlot(self.service.backend, self.service.name, version, wrapped)
        return FileEntry(header, slot, sha, size), time.perf_counter() - started


def _listing(source: Path) -> list[tuple[str, Path]]:
    """The files of a folder to encrypt, with names every reader of the manifest will accept."""
    listing = fs.list_files(source)
    if not listing:
        raise ArtifactError("folder has no files to encrypt", source)
    try:
        for rel, _ in listing:
            check_rel_path(rel, "file name")
        check_file_list([rel for rel, _ in listing], "folder")
    except ValueError as exc:
        raise ArtifactError(f"cannot encrypt this folder: {exc}", source) from None
    return listing


def _encrypt_folder(
    sealer: _Sealer, source: Path, dest: Path, overwrite: bool
) -> tuple[Path, list[FileResult]]:
    """Encrypt every file of ``source`` into the folder ``dest``; returns its manifest path."""
    protected = [("the input", source), *_key_files(sealer.service)]
    target = _Target(dest, Output.CIPHERTEXT_FOLDER, overwrite, protected)
    target.check()
    listing = _listing(source)
    service = sealer.service
    artifact = new_artifact(
        source.name, "folder", [rel for rel, _ in listing], service.backend, service.name
    )
    entries: list[FileEntry] = []
    files: list[FileResult] = []
    with fs.private_temp_dir(dest) as tmp:
        out = tmp / "out"
        out.mkdir(mode=0o700)
        for rel, full in listing:
            *folders, name = rel.split("/")
            sealed = out.joinpath(*folders, name + CIPHERTEXT_SUFFIX)
            sealed.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            entry, secs = sealer.seal(full, rel, sealed, artifact)
            entries.append(entry)
            files.append(_result(entry, secs))
        _write_new(out / FOLDER_MANIFEST, Manifest(artifact, entries).dumps(), fs.new_file_mode())
        fs.set_tree_modes(out, fs.new_dir_mode())
        target.install(out, tmp)
    return dest / FOLDER_MANIFEST, files


def _encrypt_file(
    sealer: _Sealer, source: Path, dest: Path, overwrite: bool
) -> tuple[Path, list[FileResult]]:
    """Encrypt the file ``source`` to ``dest`` plus its manifest beside it."""
    manifest_path = dest.with_name(dest.name + MANIFEST_SUFFIX)
    protected = [("the input", source), *_key_files(sealer.service)]
    target = _Target(dest, Output.CIPHERTEXT_FILE, overwrite, protected)
    target.check()
    check_protected(manifest_path, protected)
    if manifest_path.exists() or manifest_path.is_symlink():
        if not overwrite:
            raise ArtifactError(
                "destination exists (use --force to replace an earlier output)", manifest_path
            )
        if manifest_path.is_symlink() or not is_manifest(manifest_path):
            raise UnsafeDestinationError(
                "--force replaces only an earlier output, and this is not a manifest of this tool",
                manifest_path,
            )
    service = sealer.service
    artifact = new_artifact(source.name, "file", [source.name], service.backend, service.name)
    with fs.private_temp_dir(dest) as tmp:
        entry, secs = sealer.seal(source, source.name, tmp / "ciphertext", artifact)
        os.chmod(tmp / "ciphertext", fs.new_file_mode())
        # Ciphertext first, manifest last: a manifest on disk implies complete ciphertext.
        target.install(tmp / "ciphertext", tmp)
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

    Output appears only when complete: it is written into a private temporary folder beside the
    destination and renamed at the end. ``overwrite`` replaces only an earlier encrypt output
    (:mod:`pipelines.artifacts.destinations`); inputs and key files are never touched.
    """
    check_chunk_size(chunk_size)
    source = Path(src)
    if not source.name:  # "." or "/": the artifact is named after the folder itself
        source = source.resolve()
    try:
        st = source.stat()
    except FileNotFoundError:
        raise ArtifactError("no such file or folder", source) from None
    except OSError as exc:
        raise ArtifactError(f"cannot read: {exc.strerror}", source) from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise ArtifactError("only regular files and folders can be encrypted", source)
    try:
        check_name(source.name, "input name")
    except ValueError as exc:
        raise ArtifactError(f"cannot encrypt: {exc}", source) from None
    dest = Path(out) if out is not None else source.with_name(source.name + CIPHERTEXT_SUFFIX)
    started = time.perf_counter()
    encrypt = _encrypt_folder if stat.S_ISDIR(st.st_mode) else _encrypt_file
    with cleanup_on_signals():
        dest.parent.mkdir(parents=True, exist_ok=True)
        sealer = _Sealer(service, chunk_size, progress)
        manifest_path, files = encrypt(sealer, source, dest, overwrite)
    return _report("encrypt", source, dest, manifest_path, service, files, started)


# ------------------------------------------------------------------------------------ decrypt


def _decrypt_one(
    located: Located,
    entry: FileEntry,
    service: KeyService,
    target: Path,
    progress: Progress | None,
) -> float:
    """Decrypt one entry to ``target`` (a path inside a temp location); returns the seconds."""
    started = time.perf_counter()
    # Opened and checked again: the files may have changed since the preflight.
    with open_ciphertext(located, entry) as fin:
        data_key = service.decrypt_data_key(entry.key.wrapped, entry.context)
        with os.fdopen(fs.create_private(target), "wb") as fout:
            decrypt_stream(
                fin, fout, AESGCM(data_key), entry, located.ciphertext_path(entry), progress
            )
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
    path: str | os.PathLike[str] | Located,
    service: KeyService,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Decrypt an artifact (``X.enc``, its manifest, a ``D.enc`` folder, or a located one).

    Nothing is sent to ``service`` before the whole artifact passed the preflight and the
    destination was found safe. Plaintext is written into a private temporary folder beside the
    destination and renamed into place only after every chunk, size and SHA-256 verified; on any
    failure or handled signal it is deleted, so no partial plaintext remains.

    Raises:
        IntegrityError: The artifact or its manifest was modified or is not one.
        KeyMismatchError: ``service`` is not the key the manifest names.
        UnsafeDestinationError: ``out`` would replace something this tool did not produce.
        KeyServiceError: The key service failed or refused.
    """
    located = path if isinstance(path, Located) else locate(path)
    manifest = located.manifest
    dest = Path(out) if out is not None else _default_decrypt_out(located)
    check_ciphertexts(located)
    folder = manifest.kind == "folder"
    target = _Target(
        dest,
        Output.PLAINTEXT_FOLDER if folder else Output.PLAINTEXT_FILE,
        overwrite,
        [
            ("the encrypted artifact", located.root),
            ("the manifest", located.manifest_path),
            *_key_files(service),
        ],
        [e.path for e in manifest.files],
    )
    target.check()
    check_key(located, service)
    started = time.perf_counter()
    files: list[FileResult] = []
    with cleanup_on_signals():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with fs.private_temp_dir(dest) as tmp:
            result = tmp / ("out" if folder else "plaintext")
            if folder:
                result.mkdir(mode=0o700)
            for entry in manifest.files:
                *folders, name = entry.path.split("/")
                plain = result.joinpath(*folders, name) if folder else result
                plain.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                seconds = _decrypt_one(located, entry, service, plain, progress)
                files.append(_result(entry, seconds))
            if folder:
                fs.set_tree_modes(result, fs.new_dir_mode())
            target.install(result, tmp)
    return _report("decrypt", located.root, dest, located.manifest_path, service, files, started)


# ------------------------------------------------------------------------------------- rewrap


def rewrap_path(path: str | os.PathLike[str] | Located, service: KeyService) -> Report:
    """Re-wrap every data key of an artifact under the newest key version; data is untouched.

    The same preflight as :func:`decrypt_path` runs first. The manifest is replaced atomically
    once every key was re-wrapped, so an interrupted rewrap leaves the previous (still valid)
    manifest.
    """
    located = path if isinstance(path, Located) else locate(path)
    check_ciphertexts(located)
    check_key(located, service)
    started = time.perf_counter()
    files: list[FileResult] = []
    new_entries: list[FileEntry] = []
    with cleanup_on_signals():
        for entry in located.manifest.files:
            t0 = time.perf_counter()
            wrapped, version = service.rewrap(entry.key.wrapped, entry.context)
            _checked_slot(service, version, wrapped)
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
