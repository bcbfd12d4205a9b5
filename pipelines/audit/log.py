"""The lifecycle log file: where it is, and the one way to append to a lifecycle log.

:func:`append` goes to the object-locked bucket chain when ``SOVML_AUDIT_BUCKET`` is set (the
cluster: :mod:`pipelines.audit.sink`), else to the file. A file append takes an exclusive
``fcntl.flock`` on the log, checks that the last line is a whole, intact entry and that the head
record beside the log names it, writes the new entry as one line, ``fsync``s and rewrites the head
record (``<log>.head``: the last ``seq`` and ``hash``) atomically before the lock is released.
Several processes (a pipeline's step subprocesses, two commands at once) therefore extend one
chain, never fork it.

A failed append raises :class:`AuditError` naming the path: recording an event never fails
silently, and a command whose event cannot be recorded fails (``sovml`` exit 3).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipelines.audit.entries import (
    canonical,
    content_problem,
    digest_path,
    entry_hash,
    entry_problem,
    new_entry,
)

LOG_ENV = "SOVML_AUDIT_LOG"
"""Overrides the log's location (the local pipeline run exports it to its step subprocesses)."""

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LOG = PROJECT_ROOT / "build" / "audit" / "lifecycle.jsonl"
"""The log when ``$SOVML_AUDIT_LOG`` is not set: ``build/audit/lifecycle.jsonl`` of the project."""

HEAD_SUFFIX = ".head"
_TAIL_BLOCK = 1 << 16


class AuditError(RuntimeError):
    """An event could not be recorded (the log, its head or the bucket); names what and why."""


def log_path() -> Path:
    """The log every recorder in this process appends to: ``$SOVML_AUDIT_LOG`` or the default.

    A relative override is taken from the working folder, once, here.
    """
    configured = os.environ.get(LOG_ENV, "").strip()
    return Path(configured).absolute() if configured else DEFAULT_LOG


def head_path(log: Path) -> Path:
    """The head record beside ``log`` (``lifecycle.jsonl`` -> ``lifecycle.jsonl.head``)."""
    return log.with_name(log.name + HEAD_SUFFIX)


def file_ref(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{"sha256", "path"}`` of a file or folder that should stay as it is: ``sovml audit
    verify`` re-hashes it while it exists, and a different digest is a break."""
    return {"sha256": digest_path(path), "path": str(Path(path).resolve())}


def digest_ref(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{"sha256"}`` of a file or folder that is rewritten by design (a report replaced by the
    next run, a rolling data window): recorded, never re-checked."""
    return {"sha256": digest_path(path)}


def read_head(log: Path) -> dict[str, Any] | None:
    """The head record beside ``log`` (``{"seq", "hash"}``), None when there is none.

    Raises:
        AuditError: The record exists but is not ``{"seq": int, "hash": str}``.
    """
    path = head_path(log)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuditError(f"{path}: unreadable head record: {exc}") from None
    if not (
        isinstance(body, dict)
        and set(body) == {"seq", "hash"}
        and isinstance(body["seq"], int)
        and isinstance(body["hash"], str)
    ):
        raise AuditError(f"{path}: the head record is not {{seq, hash}}")
    return body


@contextlib.contextmanager
def _locked(log: Path) -> Iterator[int]:
    """The log opened for appending (0600, created with its folders), exclusively locked."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(log, flags, 0o600)
    except OSError as exc:
        raise AuditError(f"cannot open the lifecycle log {log}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask, or an earlier mode, left
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _last_line(fd: int) -> bytes | None:
    """The last line of the open log (without its newline), None for an empty log.

    Raises:
        AuditError: The log does not end with a newline (a torn or edited last line).
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    tail = b""
    offset = size
    while True:
        start = max(0, offset - _TAIL_BLOCK)
        tail = os.pread(fd, offset - start, start) + tail
        offset = start
        if not tail.endswith(b"\n"):
            raise AuditError("the last line does not end with a newline (torn or edited)")
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0 or start == 0:
            return tail[cut + 1 : -1]


def _tail_entry(fd: int, log: Path) -> dict[str, Any] | None:
    """The intact last entry of the log (None when empty), checked against the head record."""
    try:
        line = _last_line(fd)
    except AuditError as exc:
        raise AuditError(f"{log}: {exc}; run `sovml audit verify`") from None
    head = read_head(log)
    if line is None:
        if head is not None:
            raise AuditError(
                f"{log}: empty, but its head record names entry {head['seq']}: the log was "
                "truncated; run `sovml audit verify`"
            )
        return None
    try:
        last = json.loads(line)
    except ValueError:
        last = None
    problem = entry_problem(last)
    if problem is None and (entry_hash(last) != last["hash"] or canonical(last) != line):
        problem = "its hash or form does not match its content"
    if problem is not None:
        raise AuditError(
            f"{log}: the last entry is damaged ({problem}); refusing to extend it; "
            "run `sovml audit verify`"
        )
    if head is None or (head["seq"], head["hash"]) != (last["seq"], last["hash"]):
        said = "is missing" if head is None else f"names entry {head['seq']}"
        raise AuditError(
            f"{log}: the head record {said} but the last entry is {last['seq']}: truncated "
            "or rewritten; refusing to extend it; run `sovml audit verify`"
        )
    return last


def _write_head(log: Path, entry: dict[str, Any]) -> None:
    """Replace the head record atomically (temporary file, fsync, rename, fsync the folder)."""
    path = head_path(log)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = canonical({"seq": entry["seq"], "hash": entry["hash"]}) + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def append(
    event: str,
    subject: str,
    *,
    inputs: Mapping[str, Mapping[str, str]] | None = None,
    outputs: Mapping[str, Mapping[str, str]] | None = None,
    details: Mapping[str, Any] | None = None,
    log: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Append one entry to the lifecycle log and return it.

    Args:
        event: One of :data:`pipelines.audit.entries.EVENTS`.
        subject: What the event is about (``credit_risk v3``, an artifact path, a tenant).
        inputs: Name -> ``{"sha256", "path"?}`` (:func:`file_ref`, :func:`digest_ref`).
        outputs: As ``inputs``, for what the event produced.
        details: JSON scalars only (the reason of a decision, an outcome, a backend).
        log: The log file. Default: the bucket chain when ``$SOVML_AUDIT_BUCKET`` is set (the
            cluster, :mod:`pipelines.audit.sink`), else the file :func:`log_path`.

    Raises:
        ValueError: The event is not in the closed set, or a field is not acceptable.
        AuditError: The log, its head record or the bucket could not be written, the log's
            tail is damaged (nothing is appended to a chain that is already broken at its end),
            or the bucket's head kept moving through every retry.
    """
    fields = {
        "event": event,
        "subject": subject,
        "inputs": {k: dict(v) for k, v in (inputs or {}).items()},
        "outputs": {k: dict(v) for k, v in (outputs or {}).items()},
        "details": dict(details or {}),
    }
    if problem := content_problem(fields):
        raise ValueError(f"lifecycle log: {problem}")
    from pipelines.audit import sink

    if log is None and (bucket := sink.configured_bucket()):
        return sink.BucketLog(bucket).append(fields)
    path = Path(log).absolute() if log is not None else log_path()
    with _locked(path) as fd:
        entry = new_entry(fields, _tail_entry(fd, path))
        line = canonical(entry) + b"\n"
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
            _write_head(path, entry)
        except OSError as exc:
            raise AuditError(
                f"cannot write the lifecycle log {path}: {exc.strerror or exc}"
            ) from None
    return entry
