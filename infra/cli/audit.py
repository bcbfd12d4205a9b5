"""``sovml audit``: verify and show the lifecycle log (:mod:`pipelines.audit`).

Registered in ``infra/cli/app.py`` with ``app.add_typer(audit_app, name="audit")``::

    sovml audit verify [--log PATH | --bucket NAME [--prefix P]] [--head HASH] [--json]
    sovml audit show [--log PATH | --bucket NAME [--prefix P]] [--event E] [--subject S]
                     [--last N] [--json]

Exit codes as in :mod:`infra.cli.common`: ``verify`` exits 0 when the log is intact (it prints
the entry count and the head hash, to keep elsewhere), 1 when it is broken (the first broken
entry: seq, line or object key, and reason), 2 for bad input (a log that is missing, a folder or
unreadable; a bucket that does not exist or holds no entry under the prefix; a bad bucket name or
prefix; ``--log`` with ``--bucket``; a ``--head`` that is not a SHA-256); ``show`` exits 0 or 2,
never 1. Both: 3 when S3 cannot be reached or refuses the credentials (or there are none), and
for anything unexpected. The default log is ``$SOVML_AUDIT_LOG``, else
``build/audit/lifecycle.jsonl``; ``--bucket`` reads the cluster's chain instead
(:mod:`pipelines.audit.sink`), under ``--prefix`` (default ``$SOVML_AUDIT_PREFIX``, else
``lifecycle``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.table import Table

from infra.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    consoles,
    fail,
    joined,
    styled,
)

audit_app = typer.Typer(
    help="Verify and show the tamper-evident lifecycle log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LogOpt = Annotated[
    Path | None,
    typer.Option(
        "--log",
        help="The lifecycle log [default: $SOVML_AUDIT_LOG or build/audit/lifecycle.jsonl].",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
BucketOpt = Annotated[
    str | None,
    typer.Option(help="Read the cluster's chain in this object-locked S3 bucket, not a file."),
]
PrefixOpt = Annotated[
    str | None,
    typer.Option(
        help="The chain's key prefix in --bucket [default: $SOVML_AUDIT_PREFIX or lifecycle]."
    ),
]
T = TypeVar("T")
MAX_DETAILS = 120
"""Characters of the details column of ``show``."""


def _readable_log(err: Any, log: Path | None) -> Path:
    """The log to read: ``--log`` or the default; exits 2 unless it is a readable file."""
    from pipelines.audit.log import log_path

    path = log if log is not None else log_path()
    if not path.exists():
        fail(err, f"--log {path}: no such file")
    if not path.is_file():
        fail(err, f"--log {path}: not a regular file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        fail(err, f"--log {path}: {exc.strerror or exc}")
    return path


def _chain(err: Any, log: Path | None, bucket: str | None, prefix: str | None) -> Any:
    """The bucket chain ``--bucket``/``--prefix`` name (None without ``--bucket``); exits 2 for
    options that do not go together or are not a bucket name and prefix."""
    from pipelines.audit.sink import BucketLog, bucket_problem, prefix_problem

    if bucket is None:
        if prefix is not None:
            fail(err, "--prefix needs --bucket")
        return None
    if log is not None:
        fail(err, "--log and --bucket exclude each other: a file or the bucket chain")
    if problem := bucket_problem(bucket):
        fail(err, f"--bucket {bucket!r}: {problem}")
    if prefix is not None and (problem := prefix_problem(prefix)):
        fail(err, f"--prefix {prefix!r}: {problem}")
    return BucketLog(bucket, prefix)


def _from_s3(err: Any, chain: Any, read: Callable[[Any], T]) -> T:
    """``read(chain)``; exits 2 for a bucket that does not exist, 3 when S3 fails otherwise
    (unreachable, no credentials, access denied)."""
    from pipelines.audit.sink import BucketError

    try:
        return read(chain)
    except BucketError as exc:
        fail(err, str(exc), EXIT_BAD_INPUT if exc.bad_input else EXIT_INTERNAL)


def _nothing_under(err: Any, chain: Any) -> NoReturn:
    """Exit 2: no key under the prefix (a mistyped prefix must not verify as an empty chain)."""
    fail(err, f"no lifecycle entries under {chain.where} (wrong --bucket or --prefix?)")


@audit_app.command("verify")
def verify_cmd(
    log: LogOpt = None,
    bucket: BucketOpt = None,
    prefix: PrefixOpt = None,
    head: Annotated[
        str | None,
        typer.Option(help="A head hash kept elsewhere: it must be in the chain."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the chain, the head record and the recorded digests; name the first broken entry."""
    from pipelines.audit.entries import is_hash
    from pipelines.audit.verify import verify, verify_bucket

    out, err = consoles()
    kept = head.strip().lower() if head is not None else None
    if kept is not None and not is_hash(kept):
        fail(err, f"--head {head!r}: not a SHA-256 (64 hexadecimal digits)")
    chain = _chain(err, log, bucket, prefix)
    if chain is not None:
        result = _from_s3(err, chain, lambda c: verify_bucket(c, kept))
        if result.entries == 0 and result.broken is None:
            _nothing_under(err, chain)
    else:
        path = _readable_log(err, log)
        try:
            result = verify(path, kept)
        except OSError as exc:
            fail(err, f"--log {path}: {exc.strerror or exc}")
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    elif result.broken is None:
        out.print(
            joined(styled("intact", "green"), f": {result.entries} entries, head {result.head}"),
            soft_wrap=True,
        )
        unchecked = f", {len(result.unchecked)} gone (unchecked)" if result.unchecked else ""
        out.print(f"digests: {result.checked} recomputed and matching{unchecked}", soft_wrap=True)
        for note in result.notes:
            out.print(f"note: {note}", soft_wrap=True)
    else:
        b = result.broken
        found = f", holds seq {b.found}" if b.found is not None and b.found != b.seq else ""
        where = f"object {b.key}" if b.key is not None else f"line {b.line}"
        out.print(
            joined(
                styled("BROKEN", "red"),
                f" at entry {b.seq} ({where}{found}): {b.reason}: {b.detail}",
            ),
            soft_wrap=True,
        )
        out.print(f"entries before it verify: {result.entries}", soft_wrap=True)
        for note in result.notes:
            out.print(f"note: {note}", soft_wrap=True)
    if result.broken is not None:
        raise typer.Exit(EXIT_NEGATIVE)


def _read(lines: list[bytes]) -> tuple[list[dict[str, Any]], int]:
    """The ``lines`` that parse as JSON objects, and how many did not."""
    entries: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            bad += 1
    return entries, bad


def _details_text(entry: dict[str, Any]) -> str:
    details = entry.get("details")
    if not isinstance(details, dict):
        return ""
    text = ", ".join(f"{k}={v}" for k, v in details.items() if v is not None)
    return text if len(text) <= MAX_DETAILS else f"{text[: MAX_DETAILS - 3]}..."


def _table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="lifecycle log (not verified: run `sovml audit verify`)")
    for column in ("seq", "time", "actor", "event", "subject", "details"):
        table.add_column(column, justify="right" if column == "seq" else "left")
    for e in entries:
        table.add_row(
            str(e.get("seq", "?")),
            str(e.get("time", "?")),
            str(e.get("actor", "?")),
            str(e.get("event", "?")),
            str(e.get("subject", "?")),
            _details_text(e),
        )
    return table


@audit_app.command("show")
def show_cmd(
    log: LogOpt = None,
    bucket: BucketOpt = None,
    prefix: PrefixOpt = None,
    event: Annotated[
        str | None, typer.Option(help="Only this event (e.g. model.registered).")
    ] = None,
    subject: Annotated[str | None, typer.Option(help="Only subjects containing this text.")] = None,
    last: Annotated[int | None, typer.Option(help="Only the last N matching entries.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the log's entries as a table (or JSON), filtered by event, subject, count."""
    from pipelines.audit.entries import EVENTS

    out, err = consoles()
    if event is not None and event not in EVENTS:
        fail(err, f"--event {event!r}: choose one of {', '.join(sorted(EVENTS))}")
    if last is not None and last < 1:
        fail(err, f"--last {last}: must be 1 or more")
    chain = _chain(err, log, bucket, prefix)
    if chain is not None:
        stored = _from_s3(err, chain, lambda c: c.read())
        if not stored:
            _nothing_under(err, chain)
        # A deleted entry is verify's to report; show prints what the bodies say.
        entries, bad = _read([item.body for item in stored if item.body is not None])
    else:
        path = _readable_log(err, log)
        try:
            entries, bad = _read(path.read_bytes().splitlines())
        except OSError as exc:
            fail(err, f"--log {path}: {exc.strerror or exc}")
    if event is not None:
        entries = [e for e in entries if e.get("event") == event]
    if subject is not None:
        entries = [e for e in entries if subject in str(e.get("subject", ""))]
    if last is not None:
        entries = entries[-last:]
    if as_json:
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return
    out.print(_table(entries))
    if bad:
        out.print(
            f"{bad} line(s) or object(s) are not JSON entries: run `sovml audit verify`",
            soft_wrap=True,
        )
