"""What every ``sovml`` command shares: the consoles, the exit codes and literal error lines.

Output is literal everywhere: ``consoles()`` interpret no rich markup and no emoji codes, so a
value such as ``[/]``, ``[secret]`` or ``:warning:`` prints as itself wherever it appears (a
cell, a title, a tree label, a status line). Styling is applied with ``styled``/``Text`` only,
never by embedding ``[red]...[/]`` in a string. Values that might be secrets are shown through
``infra.config.redaction`` (masked with their length), and lists of problems through
``print_bounded`` (the first ``MAX_LISTED`` and a count of the rest).

Exit codes are one contract for every command:

* ``0`` success (for ``drift``: no drift; for ``check``: the gate passed);
* ``1`` a negative result: drift found, the gate failed, a canary rolled back, a run failed;
* ``2`` bad input: arguments, stack files, input files;
* ``3`` an internal or environment error (a tool or server missing, an unexpected exception).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO, TypeVar

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from infra.config.problems import MAX_LISTED
from infra.config.redaction import scrub

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

WIDE = 140
"""Columns when the output is not a terminal: rich would otherwise squeeze tables to 80 columns
and elide cells in logs and CI captures."""


def consoles() -> tuple[Console, Console]:
    """(stdout, stderr) consoles bound to the streams of this call.

    Created per call, not at import: typer's test runner swaps the streams per invocation.
    """
    out, err = _console(sys.stdout), _console(sys.stderr)
    # Problem tables go to stderr: it is as wide as stdout in a log. COLUMNS, when set, wins.
    wide = None if os.environ.get("COLUMNS") else WIDE
    return (
        out if out.is_terminal else _console(sys.stdout, width=wide),
        err if err.is_terminal else _console(sys.stderr, width=wide),
    )


def _console(file: TextIO, width: int | None = None) -> Console:
    """A console that prints every string literally: no markup, no emoji codes, no highlighting."""
    return Console(file=file, width=width, markup=False, emoji=False, highlight=False)


def styled(text: str, style: str) -> Text:
    """``text`` in ``style`` (``"red"``, ``"bold"``), literally: the way to colour a value."""
    return Text(text, style=style)


def joined(*parts: str | Text) -> Text:
    """One line from plain strings and ``styled`` pieces, every string taken literally."""
    return Text.assemble(*parts)


MAX_MESSAGE = 2000
"""Characters of one error line; a longer message (a tool's output, say) is cut with its size."""


def bounded_message(message: str) -> str:
    """``message`` with credential-looking parts masked, cut at ``MAX_MESSAGE`` characters."""
    message = scrub(message)
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE]}... ({len(message):,} characters in all)"


def error_line(err: Console, message: str) -> None:
    """``error: <message>`` in red on one line, printed literally (no markup is interpreted)."""
    # soft_wrap: one line per message however narrow the terminal (log scrapers, grep).
    err.print(
        f"error: {bounded_message(message)}",
        style="red",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


T = TypeVar("T")


def print_bounded(
    console: Console,
    items: Sequence[T],
    render: Callable[[Sequence[T]], RenderableType],
    limit: int = MAX_LISTED,
) -> None:
    """``render`` the first ``limit`` items, then ``... and K more`` when there are more."""
    console.print(render(items[:limit]))
    if len(items) > limit:
        console.print(f"... and {len(items) - limit:,} more", soft_wrap=True)


def fail(err: Console, message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``message`` as an error line and end the command with ``code``."""
    error_line(err, message)
    raise typer.Exit(code)


def shown_path(path: Path | None) -> str:
    """A path as a user reads it: relative to the working folder when inside it; ``-`` for none."""
    if path is None:
        return "-"
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
