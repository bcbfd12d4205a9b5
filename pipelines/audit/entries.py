"""What one lifecycle-log entry is: its fields, its closed set of events, its canonical bytes.

An entry is a JSON object with exactly the fields of :data:`FIELDS`. ``hash`` is the SHA-256 of
the canonical JSON (:func:`canonical`) of every other field, ``prev`` the ``hash`` of the entry
before it (:data:`GENESIS` for the first), so each entry commits to the whole history before it.
On disk an entry is its canonical JSON (``hash`` included) on one line: any byte changed in a
line, whitespace included, is a change the verifier sees.

Only the standard library: the pipeline steps, the CLI and the cluster jobs all import this.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import math
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS: frozenset[str] = frozenset(
    {
        "pipeline.run.started",
        "pipeline.run.finished",
        "model.registered",
        "model.approved",
        "model.rejected",
        "model.promoted",
        "model.rolled_back",
        "canary.held",
        "drift.decided",
        "retraining.submitted",
        "artifact.encrypted",
        "artifact.rewrapped",
        "tenant.offboarded",
        "automated.action",
    }
)
"""The closed set of lifecycle events; anything else is refused when appending and verifying."""

RUN_OUTCOMES = ("succeeded", "failed")
"""``details.outcome`` of a ``pipeline.run.finished`` entry (required there)."""

FIELDS = (
    "seq",
    "time",
    "actor",
    "event",
    "subject",
    "inputs",
    "outputs",
    "details",
    "prev",
    "hash",
)
"""Every entry has exactly these fields."""

GENESIS = "0" * 64
"""``prev`` of the first entry."""

ACTOR_ENV = "SOVML_ACTOR"
"""Who is acting, when the caller says so (a CI job, a named operator)."""

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
"""Where a pod sees its service account's token (its ``sub`` claim names the account)."""

MAX_TEXT = 1024
"""Characters of ``actor``, ``subject``, a name, a path or a string detail."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical(body: dict[str, Any]) -> bytes:
    """The one byte form of ``body``: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of every field of ``entry`` but ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def utc_now() -> str:
    """Now in UTC, ISO 8601 with microseconds and ``Z`` (fixed width: strings sort as times)."""
    return datetime.now(UTC).strftime(_TIME_FORMAT)


def is_hash(text: object) -> bool:
    """Whether ``text`` is 64 lowercase hex digits (a SHA-256 as entries hold it)."""
    return isinstance(text, str) and bool(_HEX64.match(text))


def _service_account() -> str | None:
    """``system:serviceaccount:<ns>:<name>`` from the pod's token, when one is mounted.

    The token is only read for its ``sub`` claim (not verified: the API server did that when it
    mounted it); anything unreadable means "not in a pod".
    """
    try:
        token = SERVICE_ACCOUNT_TOKEN.read_text().strip()
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else None
    except (OSError, IndexError, ValueError, AttributeError):
        return None


def actor() -> str:
    """Who acts: ``$SOVML_ACTOR``, else the pod's service account, else ``user@host``."""
    named = os.environ.get(ACTOR_ENV, "").strip()
    if named:
        return named
    account = _service_account()
    if account:
        return account
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def digest_path(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, or of a folder as a tree.

    A tree's digest covers every regular file's relative path and content digest, and every
    symbolic link's target (links are not followed), in sorted order: renaming, adding, removing
    or changing any file changes it.
    """
    target = Path(path)
    if not target.is_dir():
        return _file_digest(target)
    tree = hashlib.sha256()
    for folder, dirs, files in os.walk(target):
        dirs.sort()
        for name in sorted(files):
            item = Path(folder) / name
            relative = item.relative_to(target).as_posix()
            if item.is_symlink():
                tree.update(f"link {relative}\0{os.readlink(item)}\n".encode())
            elif item.is_file():
                tree.update(f"file {relative}\0{_file_digest(item)}\n".encode())
    return tree.hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _text_problem(value: object, what: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{what} must be a non-empty string"
    if len(value) > MAX_TEXT:
        return f"{what} is longer than {MAX_TEXT} characters"
    if not value.isprintable():
        return f"{what} holds a line break or control character"
    return None


def _digests_problem(value: object, what: str) -> str | None:
    """``{name: {"sha256": hex, "path"?: str}}`` or why not."""
    if not isinstance(value, dict):
        return f"{what} must be an object"
    for name, item in value.items():
        if problem := _text_problem(name, f"{what} name"):
            return problem
        if not isinstance(item, dict) or not {"sha256"} <= set(item) <= {"sha256", "path"}:
            return f"{what}.{name} must be {{sha256, path?}}"
        if not is_hash(item["sha256"]):
            return f"{what}.{name}.sha256 is not a SHA-256"
        if "path" in item and (problem := _text_problem(item["path"], f"{what}.{name}.path")):
            return problem
    return None


def _details_problem(event: str, value: object) -> str | None:
    if not isinstance(value, dict):
        return "details must be an object"
    for name, item in value.items():
        if problem := _text_problem(name, "a details name"):
            return problem
        if isinstance(item, float) and not math.isfinite(item):
            return f"details.{name} is not a finite number"
        if isinstance(item, str) and len(item) > MAX_TEXT:
            return f"details.{name} is longer than {MAX_TEXT} characters"
        if item is not None and not isinstance(item, (str, int, float, bool)):
            return f"details.{name} must be a JSON scalar (string, number, boolean or null)"
    if event == "pipeline.run.finished" and value.get("outcome") not in RUN_OUTCOMES:
        return f"details.outcome of pipeline.run.finished must be one of {', '.join(RUN_OUTCOMES)}"
    return None


def content_problem(fields: dict[str, Any]) -> str | None:
    """Why the caller-given part of an entry (event, subject, inputs, outputs, details) is not
    acceptable, or None. The one check appends and the verifier share."""
    event = fields.get("event")
    if event not in EVENTS:
        return f"event {event!r} is not one of the lifecycle events ({', '.join(sorted(EVENTS))})"
    return (
        _text_problem(fields.get("subject"), "subject")
        or _digests_problem(fields.get("inputs"), "inputs")
        or _digests_problem(fields.get("outputs"), "outputs")
        or _details_problem(event, fields.get("details"))
    )


def new_entry(fields: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    """The entry that follows ``last`` (None: the first), hashed: the one way entries are made.

    ``fields`` are the checked caller-given part (event, subject, inputs, outputs, details).
    """
    now = utc_now()
    entry: dict[str, Any] = {
        "seq": 0 if last is None else last["seq"] + 1,
        # Never before the previous entry, even when the clock stepped back.
        "time": now if last is None else max(now, last["time"]),
        "actor": actor(),
        **fields,
        "prev": GENESIS if last is None else last["hash"],
    }
    entry["hash"] = entry_hash(entry)
    return entry


def json_error(exc: ValueError) -> str:
    """What ``json.loads`` said, for a person (bytes that are not UTF-8 raise no JSON error)."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)


def stored_problem(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(entry, None) when ``data`` is one stored entry (its canonical JSON and a newline), else
    (what parsed or None, why not). What an append checks before extending a chain."""
    if not data.endswith(b"\n") or b"\n" in data[:-1]:
        return None, "not one newline-terminated line"
    try:
        entry = json.loads(data[:-1])
    except ValueError as exc:
        return None, f"not JSON ({json_error(exc)})"
    if problem := entry_problem(entry):
        return (entry if isinstance(entry, dict) else None), problem
    if entry_hash(entry) != entry["hash"] or canonical(entry) != data[:-1]:
        return entry, "its hash or form does not match its content"
    return entry, None


def entry_problem(entry: object) -> str | None:
    """Why ``entry`` is not a well-formed entry (fields, types, event), or None.

    The chain (``seq``, ``prev``, ``hash`` agreeing with the neighbours) is the verifier's.
    """
    if not isinstance(entry, dict):
        return "not a JSON object"
    if set(entry) != set(FIELDS):
        missing = sorted(set(FIELDS) - set(entry))
        extra = sorted(set(entry) - set(FIELDS))
        return f"fields differ (missing {missing or 'none'}, unexpected {extra or 'none'})"
    seq = entry["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return "seq must be a non-negative integer"
    if not isinstance(entry["time"], str) or not _TIME.match(entry["time"]):
        return "time is not UTC ISO 8601 (YYYY-MM-DDTHH:MM:SS.ffffffZ)"
    if problem := _text_problem(entry["actor"], "actor"):
        return problem
    if not is_hash(entry["prev"]) or not is_hash(entry["hash"]):
        return "prev and hash must be SHA-256 hex digests"
    return content_problem(entry)
