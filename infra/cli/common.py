"""What every ``sovml`` command shares: the consoles, the exit codes and literal error lines.

Exit codes are one contract for every command:

* ``0`` success (for ``drift``: no drift; for ``check``: the gate passed);
* ``1`` a negative result: drift found, the gate failed, a canary rolled back, a run failed;
* ``2`` bad input: arguments, stack files, input files;
* ``3`` an internal or environment error (a tool or server missing, an unexpected exception).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

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
    out = Console(file=sys.stdout, highlight=False)
    if not out.is_terminal:
        out = Console(file=sys.stdout, highlight=False, width=WIDE)
    return out, Console(file=sys.stderr, highlight=False)


def error_line(err: Console, message: str) -> None:
    """``error: <message>`` in red on one line, printed literally (no markup is interpreted)."""
    # soft_wrap: one line per message however narrow the terminal (log scrapers, grep).
    err.print(f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True)


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
