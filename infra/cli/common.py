"""What every ``sovml`` command shares: the consoles, the exit codes and literal error lines.

Output is literal everywhere: ``consoles()`` interpret no rich markup and no emoji codes, so a
value such as ``[/]``, ``[secret]`` or ``:warning:`` prints as itself wherever it appears (a
cell, a title, a tree label, a status line). Styling is applied with ``styled``/``Text`` only,
never by embedding ``[red]...[/]`` in a string. Values that might be secrets are shown through
``infra.config.redaction`` (masked with their length), and lists of problems through
``print_bounded`` (the first ``MAX_LISTED`` and a count of the rest).

Exit codes are one contract for every command:

* ``0`` success (for ``drift``: no drift; for ``check``: the gate passed);
* ``1`` a negative result: drift found, the gate failed, a canary rolled back, a run failed,
  a control of the evidence pack failed, a tenant only partly shredded (``tenant offboard``: a
  key service refused a key, named);
* ``2`` bad input: arguments, stack files, input files, paths;
* ``3`` an internal or environment error (a tool or server missing, a key service unreachable
  or its credentials missing, a registry unreachable so ``images lock`` left entries
  unresolved, an unexpected exception).

Beyond the four: a command stopped by SIGINT exits 130 (``error: interrupted``), one whose
output pipe was closed (``sovml ... | head -1``) exits 141, silently, as a tool killed by SIGPIPE
would; the artifact commands die of SIGTERM/SIGHUP themselves (143/129) after cleaning up.
An exception no command expected becomes one line, ``error: internal error: <type>: <message>
(details: <log>)``, and exit 3; the traceback goes to a private log file (``crash_log_dir``).
The table of what each code means per command is in the README ("Exit codes").
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
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
EXIT_INTERRUPTED = 130
"""128 + SIGINT, what a shell shows for a command stopped with Ctrl-C."""
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, what a shell shows for a tool whose reader went away (``| head -1``)."""

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


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be (or become) a folder to write into, or None.

    The nearest existing path of ``folder`` and its parents must be a folder: a file there
    (``--build-dir report.json``) would otherwise fail deep inside a command, as an OSError.
    """
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else f"{path} is not a folder"
    return None


def shown_path(path: Path | None) -> str:
    """A path as a user reads it: relative to the working folder when inside it; ``-`` for none."""
    if path is None:
        return "-"
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


LOG_DIR_ENV = "SOVML_LOG_DIR"
MAX_LOG = 1 << 20
"""Characters of one crash log; a longer traceback (deep recursion, huge values) is cut."""


def crash_log_dir() -> Path:
    """Where crash logs go: ``$SOVML_LOG_DIR``, else ``$XDG_STATE_HOME/sovml/logs``.

    ``XDG_STATE_HOME`` defaults to ``~/.local/state``, as the XDG base directory spec says.
    """
    configured = os.environ.get(LOG_DIR_ENV)
    if configured:
        return Path(configured)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sovml" / "logs"


def _private_folder(folder: Path) -> None:
    """``folder`` and every missing parent, each created 0700 (``os.makedirs`` would not)."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        # Made meanwhile by a concurrent run: fine.
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)


def write_crash_log(exc: BaseException, argv: Sequence[str]) -> Path:
    """Write ``exc``'s traceback and the command line to a new 0600 log file; return its path.

    Credential-looking text is scrubbed (``infra.config.redaction.scrub``) from all of it: a
    traceback quotes values (tokens, URLs with passwords) that a user's bug report would carry.
    Raises ``OSError`` when the file cannot be written.
    """
    folder = crash_log_dir()
    _private_folder(folder)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    text = "".join(
        [
            f"sovml crash log, {datetime.now(UTC).isoformat()}, pid {os.getpid()}\n",
            f"command: {' '.join(argv)}\n",
            f"python: {sys.version.split()[0]} ({sys.executable})\n\n",
            *traceback.format_exception(exc),
        ]
    )
    if len(text) > MAX_LOG:
        text = f"{text[: MAX_LOG // 2]}\n... cut ...\n{text[-MAX_LOG // 2 :]}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(100):  # O_EXCL: never write into a file (or link) that exists
        path = folder / f"sovml-{stamp}-{os.getpid()}{f'-{attempt}' if attempt else ''}.log"
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as log:
            os.fchmod(fd, 0o600)  # whatever the umask left
            log.write(scrub(text))
        return path
    raise FileExistsError(f"{folder}: no free log file name")


def one_line(text: str) -> str:
    """``text`` on one line: line breaks become spaces, other control characters escapes."""
    return "".join(
        " " if ch in "\r\n\t\v\f" else ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text
    ).strip()


def internal_error(err: Console, exc: BaseException, argv: Sequence[str] | None = None) -> int:
    """Report an exception no command expected: one line on ``err``, the traceback in a log.

    The line is ``error: internal error: <type>: <message> (details: <log path>)``, or ends in
    ``(no log written: <why>)`` when the log cannot be written. Returns ``EXIT_INTERNAL``.
    """
    try:
        where = f"details: {write_crash_log(exc, sys.argv if argv is None else argv)}"
    except Exception as log_exc:  # the report must still come out, whatever broke the log
        reason = log_exc.strerror if isinstance(log_exc, OSError) else None
        filename = getattr(log_exc, "filename", None)
        shown = f"{filename}: {reason}" if filename and reason else str(log_exc)
        where = f"no log written: {one_line(shown)}"
    try:
        message = str(exc)
    except Exception:  # an exception whose __str__ fails still gets its line
        message = "<message unavailable>"
    error_line(err, f"internal error: {type(exc).__name__}: {one_line(message)} ({where})")
    return EXIT_INTERNAL


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Ctrl-C and a plain ``kill`` both raise ``KeyboardInterrupt`` in the body, so its
    ``finally`` runs (a long-running command stops its server there): SIGINT may be ignored when
    started in the background, and SIGTERM would otherwise skip the clean-up. The previous
    handlers are back afterwards, so an in-process call (as in the tests) leaves its process as
    it found it."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
