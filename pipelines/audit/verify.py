"""Verify a lifecycle log: the chain, the head record, and the digests the entries recorded.

Checked per line, in order: the line is whole (ends with a newline), parses, is in canonical form,
has exactly the entry fields with valid types and an event of the closed set, its ``hash``
matches its content, its ``seq`` is the next number, its ``prev`` is the previous entry's hash,
and its time does not go backwards. After the last line: the head record beside the log (written
on every append) names that last entry, and ``--head`` (a hash the auditor kept elsewhere) is in
the chain. Then, for every recorded input or output that has a ``path`` still there, its digest
is recomputed; a different one is a break, a path that is gone is counted as unchecked.

The first break is reported with its position: ``seq`` is the sequence number the entry at that
line should have (the line number is ``seq + 1``), ``found`` what the line holds, and the reason:
``edited``, ``deleted``, ``reordered``, ``inserted``, ``truncated`` or ``digest mismatch``.

:func:`verify_bucket` runs the same checks on the cluster's chain in the object-locked bucket
(:mod:`pipelines.audit.sink`), object by object in key order, where a break also names the key.

What a local file can and cannot prove: every edit, deletion, reordering or insertion of entries
is caught, and truncating the tail is caught by the head record. Someone who rewrites the whole
file *and* its head record (recomputing every hash) leaves a chain that verifies: only a head
kept elsewhere (``--head``) or the object-locked bucket's copies (:mod:`pipelines.audit.sink`)
catch that. The chain proves order and integrity, not that the times or actors were true when
written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.audit.entries import (
    GENESIS,
    canonical,
    digest_path,
    entry_hash,
    entry_problem,
    json_error,
)
from pipelines.audit.log import AuditError, read_head
from pipelines.audit.sink import BucketLog, Stored

REASONS = ("edited", "deleted", "reordered", "inserted", "truncated", "digest mismatch")
"""The kinds of break a verification names."""


@dataclass(frozen=True)
class Break:
    """The first place the log stops being what was appended.

    Attributes:
        seq: The sequence number the entry at ``line`` should have (entries before it verify).
        line: 1-based line number in the file.
        reason: One of :data:`REASONS`.
        detail: What exactly differs, for a person.
        found: The ``seq`` the line holds, when it parses.
        key: The object's key, for a bucket chain (``line`` is then its place in key order).
    """

    seq: int
    line: int
    reason: str
    detail: str
    found: int | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seq": self.seq,
            "line": self.line,
            "reason": self.reason,
            "detail": self.detail,
            "found": self.found,
            "key": self.key,
        }


@dataclass
class Verification:
    """The outcome of :func:`verify`.

    Attributes:
        log: The file verified, or the bucket chain's ``s3://<bucket>/<prefix>/``.
        entries: Entries that verified (all of them when intact).
        head: Hash of the last verified entry (``GENESIS`` for an empty log).
        broken: The first break, None when the log is intact.
        checked: Recorded digests recomputed and matching.
        unchecked: Recorded paths no longer there (``"<seq> <name>: <path>"``).
        notes: Other remarks (no head record for an empty log, etc.).
    """

    log: Path | str
    entries: int = 0
    head: str = GENESIS
    broken: Break | None = None
    checked: int = 0
    unchecked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """No break found."""
        return self.broken is None

    def to_json(self) -> dict[str, Any]:
        """JSON form (what ``sovml audit verify --json`` prints)."""
        return {
            "log": str(self.log),
            "intact": self.intact,
            "entries": self.entries,
            "head": self.head,
            "broken": self.broken.to_json() if self.broken else None,
            "digests_checked": self.checked,
            "digests_unchecked": self.unchecked,
            "notes": self.notes,
        }


def _split(data: bytes) -> list[bytes]:
    """The log's lines, without their newlines (a last line without one is kept)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(entry, None) for a valid, canonical, self-consistent line; else (parsed or None, why)."""
    try:
        entry = json.loads(line)
    except ValueError as exc:
        return None, f"not JSON ({json_error(exc)})"
    if problem := entry_problem(entry):
        return (entry if isinstance(entry, dict) else None), problem
    if entry_hash(entry) != entry["hash"]:
        return entry, "its hash does not match its content"
    if canonical(entry) != line:
        return entry, "the line is not in canonical form"
    return entry, None


def _seq_break(
    seq: int, line_no: int, entry: dict[str, Any], later: set[int], earlier: set[int]
) -> Break:
    """Why the valid entry at ``line_no`` holds another ``seq`` than the ``seq`` expected."""
    found = entry["seq"]
    if found > seq:
        if seq in later:
            return Break(seq, line_no, "reordered", f"entry {seq} comes later in the file", found)
        return Break(seq, line_no, "deleted", f"entries {seq}..{found - 1} are missing", found)
    if found in earlier:
        return Break(seq, line_no, "inserted", f"a second entry {found}", found)
    return Break(seq, line_no, "reordered", f"entry {found} comes after entry {seq - 1}", found)


def _chain(result: Verification, lines: list[bytes], torn: bool) -> list[dict[str, Any]]:
    """Walk the chain; set ``result.broken`` at the first break. Returns the verified entries."""
    parsed = [_parse(line) for line in lines]
    seqs_at = [e["seq"] if e is not None and why is None else None for e, why in parsed]
    verified: list[dict[str, Any]] = []
    prev, last_time = GENESIS, ""
    for index, (entry, why) in enumerate(parsed):
        seq, line_no = len(verified), index + 1
        found = entry.get("seq") if isinstance(entry, dict) else None
        found = found if isinstance(found, int) else None
        if torn and index == len(lines) - 1:
            result.broken = Break(seq, line_no, "truncated", "the last line is cut off", found)
        elif why is not None:
            result.broken = Break(seq, line_no, "edited", why, found)
        elif entry["seq"] != seq:  # type: ignore[index]
            later = {s for s in seqs_at[index + 1 :] if s is not None}
            earlier = {s for s in seqs_at[:index] if s is not None}
            result.broken = _seq_break(seq, line_no, entry, later, earlier)  # type: ignore[arg-type]
        elif entry["prev"] != prev:  # type: ignore[index]
            result.broken = Break(
                seq, line_no, "edited", f"prev does not match the hash of entry {seq - 1}", found
            )
        elif entry["time"] < last_time:  # type: ignore[index]
            result.broken = Break(
                seq, line_no, "edited", f"time goes backwards from entry {seq - 1}", found
            )
        if result.broken is not None:
            return verified
        assert entry is not None
        verified.append(entry)
        prev, last_time = entry["hash"], entry["time"]
    return verified


def _heads(result: Verification, lines: int, head: dict[str, Any] | None) -> None:
    """Check the head record beside the log against the last verified entry."""
    count = result.entries
    if head is None:
        if count:
            result.broken = Break(
                count, lines + 1, "truncated", "the head record beside the log is missing"
            )
        else:
            result.notes.append("empty log without a head record")
    elif head["seq"] >= count:
        result.broken = Break(
            count,
            lines + 1,
            "truncated",
            f"the head record names entry {head['seq']}, the log ends at entry {count - 1}",
        )
    elif head["seq"] != count - 1:
        result.broken = Break(
            head["seq"] + 1,
            head["seq"] + 2,
            "inserted",
            f"entries after the head record's entry {head['seq']}",
        )
    elif head["hash"] != result.head:
        result.broken = Break(
            count - 1, count, "edited", "the last entry's hash differs from the head record"
        )


def _digests(result: Verification, entries: list[dict[str, Any]]) -> None:
    """Recompute every recorded digest whose path is still there; the first mismatch breaks."""
    for entry in entries:
        for side in ("inputs", "outputs"):
            for name, ref in sorted(entry[side].items()):
                if "path" not in ref:
                    continue
                where = f"{entry['seq']} {side}.{name}: {ref['path']}"
                path = Path(ref["path"])
                if not path.exists():
                    result.unchecked.append(where)
                    continue
                try:
                    now = digest_path(path)
                except OSError as exc:
                    result.unchecked.append(f"{where} (unreadable: {exc.strerror or exc})")
                    continue
                if now != ref["sha256"]:
                    result.broken = Break(
                        entry["seq"],
                        entry["seq"] + 1,
                        "digest mismatch",
                        f"{side}.{name} ({ref['path']}) changed since it was recorded",
                        entry["seq"],
                    )
                    return
                result.checked += 1


def verify(log: str | Path, kept_head: str | None = None, digests: bool = True) -> Verification:
    """Verify ``log`` (and its head record); see the module docstring for what is checked.

    Args:
        log: The lifecycle log file.
        kept_head: A hash kept elsewhere that must be in the chain (the auditor's copy of a head).
        digests: Also recompute the digests of recorded paths that still exist.

    Raises:
        OSError: The log cannot be read (missing, a folder, no permission).
    """
    path = Path(log)
    data = path.read_bytes()
    lines = _split(data)
    torn = bool(lines) and not data.endswith(b"\n")
    result = Verification(path)
    verified = _chain(result, lines, torn)
    result.entries = len(verified)
    result.head = verified[-1]["hash"] if verified else GENESIS
    if result.broken is None:
        try:
            head = read_head(path)
        except AuditError as exc:
            result.broken = Break(result.entries, len(lines) + 1, "edited", str(exc))
        else:
            _heads(result, len(lines), head)
    _kept(result, verified, kept_head, len(lines) + 1)
    if result.broken is None and digests:
        _digests(result, verified)
    return result


def _kept(
    result: Verification, verified: list[dict[str, Any]], kept_head: str | None, line: int
) -> None:
    """A head hash kept elsewhere must be one of the verified entries' hashes."""
    if result.broken is not None or kept_head is None:
        return
    if kept_head not in {e["hash"] for e in verified}:
        result.broken = Break(
            result.entries,
            line,
            "truncated",
            f"the kept head {kept_head} is not in the chain (truncated or rewritten since)",
        )


def _object_break(
    seq: int, place: int, item: Stored, bodies: dict[int, int], prev: str, last_time: str
) -> tuple[dict[str, Any] | None, Break | None]:
    """(the entry, None) when object number ``place`` is entry ``seq``, else (None, why not)."""
    key = item.key

    def broken(reason: str, detail: str, found: int | None = None) -> Break:
        return Break(seq, place, reason, detail, found, key)

    if item.seq is None:
        return None, broken("inserted", f"{key} is not an entry's key")
    if item.seq > seq:
        return None, broken(
            "deleted", f"no object for entries {seq}..{item.seq - 1}", found=item.seq
        )
    if item.deleted or item.body is None:
        return None, broken(
            "deleted", "a delete marker hides it (its locked versions remain: list them)"
        )
    if item.versions > 1:
        return None, broken("edited", f"overwritten: the key has {item.versions} versions")
    entry, why = _parse_stored(item.body)
    found = entry.get("seq") if isinstance(entry, dict) else None
    found = found if isinstance(found, int) and not isinstance(found, bool) else None
    if why is not None or entry is None:
        return None, broken("edited", why or "unreadable", found)
    if found != seq:
        if bodies.get(seq, place) != place:  # this key's entry lies under another key
            return None, broken("reordered", f"the object holds entry {found}", found)
        return None, broken("inserted", f"the object holds entry {found}, not {seq}", found)
    if entry["prev"] != prev:
        return None, broken("edited", f"prev does not match the hash of entry {seq - 1}", found)
    if entry["time"] < last_time:
        return None, broken("edited", f"time goes backwards from entry {seq - 1}", found)
    return entry, None


def _parse_stored(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """As :func:`_parse`, for an object's body: one line and its newline."""
    if not body.endswith(b"\n") or b"\n" in body[:-1]:
        return None, "the object is not one newline-terminated line"
    return _parse(body[:-1])


def verify_bucket(
    chain: BucketLog, kept_head: str | None = None, digests: bool = True
) -> Verification:
    """Verify the bucket chain ``chain`` with the file's checks, object by object in key order.

    Beyond the file's checks: a missing seq is ``deleted`` (also a key whose latest version is a
    delete marker), a key holding another seq's body ``reordered`` (that entry is under another
    key) or ``inserted``, a key that is not an entry's ``inserted``, a key with more than one
    version ``edited`` (overwritten: the first version stays locked). Entries without Object
    Lock retention are noted, not broken (retention is the bucket's configuration).

    Raises:
        pipelines.audit.sink.BucketError: S3 could not be listed or read.
    """
    stored = chain.read()
    result = Verification(chain.where)
    bodies: dict[int, int] = {}
    for place, item in enumerate(stored, start=1):
        entry, _ = _parse_stored(item.body) if item.body is not None else (None, None)
        if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
            bodies.setdefault(entry["seq"], place)
    verified: list[dict[str, Any]] = []
    prev, last_time = GENESIS, ""
    for place, item in enumerate(stored, start=1):
        entry, broken = _object_break(len(verified), place, item, bodies, prev, last_time)
        if broken is not None or entry is None:
            result.broken = broken
            break
        verified.append(entry)
        prev, last_time = entry["hash"], entry["time"]
    result.entries = len(verified)
    result.head = verified[-1]["hash"] if verified else GENESIS
    _kept(result, verified, kept_head, len(stored) + 1)
    unlocked = sum(1 for item in stored[: len(verified)] if item.lock_mode != "COMPLIANCE")
    if unlocked:
        result.notes.append(
            f"{unlocked} entries carry no COMPLIANCE-mode Object Lock retention (is the bucket's "
            "default retention set?)"
        )
    if result.broken is None and digests:
        _digests(result, verified)
    return result


__all__ = ["REASONS", "AuditError", "Break", "Verification", "verify", "verify_bucket"]
