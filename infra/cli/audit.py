"""``sovml audit``: verify and show the lifecycle log (:mod:`pipelines.audit`).

Registered in ``infra/cli/app.py`` with ``app.add_typer(audit_app, name="audit")``::

    sovml audit verify [--log PATH] [--head HASH] [--json]
    sovml audit show [--log PATH] [--event E] [--subject S] [--last N] [--json]

Exit codes as in :mod:`infra.cli.common`: ``verify`` exits 0 when the log is intact (it prints
the entry count and the head hash, to keep elsewhere), 1 when it is broken (the first broken
entry: seq, line and reason), 2 for bad input (a log that is missing, a folder or unreadable; a
``--head`` that is not a SHA-256); ``show`` exits 0 or 2, never 1. Both: 3 for anything
unexpected. The default log is ``$SOVML_AUDIT_LOG``, else ``build/audit/lifecycle.jsonl``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from infra.cli.common import EXIT_NEGATIVE, consoles, fail, joined, styled

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


@audit_app.command("verify")
def verify_cmd(
    log: LogOpt = None,
    head: Annotated[
        str | None,
        typer.Option(help="A head hash kept elsewhere: it must be in the chain."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the chain, the head record and the recorded digests; name the first broken entry."""
    from pipelines.audit.entries import is_hash
    from pipelines.audit.verify import verify

    out, err = consoles()
    kept = head.strip().lower() if head is not None else None
    if kept is not None and not is_hash(kept):
        fail(err, f"--head {head!r}: not a SHA-256 (64 hexadecimal digits)")
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
        out.print(
            joined(
                styled("BROKEN", "red"),
                f" at entry {b.seq} (line {b.line}{found}): {b.reason}: {b.detail}",
            ),
            soft_wrap=True,
        )
        out.print(f"entries before it verify: {result.entries}", soft_wrap=True)
    if result.broken is not None:
        raise typer.Exit(EXIT_NEGATIVE)


def _read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The entries of ``path`` that parse as JSON objects, and how many lines did not."""
    entries: list[dict[str, Any]] = []
    bad = 0
    for line in path.read_bytes().splitlines():
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
    path = _readable_log(err, log)
    try:
        entries, bad = _read(path)
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
        out.print(f"{bad} line(s) are not JSON entries: run `sovml audit verify`", soft_wrap=True)
