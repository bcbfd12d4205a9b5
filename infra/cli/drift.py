"""``sovml drift REFERENCE CURRENT``: per-feature drift of a data window and a retraining decision.

Register it on the main app with ``app.command("drift")(drift_command)``. The comparison and its
decision are :func:`pipelines.monitoring.compare.compare_files` (the rules per column kind are in
that module and :mod:`pipelines.monitoring.kinds`), the HTML report is
:func:`pipelines.monitoring.report.write_report`; this command validates its arguments, writes the
report, prints the table and exits. Nothing is printed to stdout before the report is written,
and the decision is always the last line.

Exit codes follow ``infra.cli.common``; an error is never 1, so a scheduler that retrains on 1
never retrains because of an error:

* ``0`` no feature drifted (``no retraining needed``);
* ``1`` at least one feature drifted (``... -> retrain``);
* ``2`` bad input, one ``error:`` line naming what and why, checked in this order:

  - ``--statistic`` other than psi, ks, js, w1 (any case);
  - ``--threshold`` not finite or outside the statistic's range: ``> 0`` for psi and w1,
    ``(0, 1]`` for ks, ``(0, sqrt(ln 2) = 0.832555]`` for js;
  - ``--html`` that cannot be written: a folder, a FIFO or other non-regular file, a path under a
    file, a file or folder without write permission, or one of the two input files;
  - an input that is missing, a folder, not a regular file, not .parquet/.pq/.csv/.txt, corrupt
    or unreadable, or has 0 rows (``empty reference`` / ``empty window``);
  - columns: duplicate names, no column in common, columns missing or unexpected (the order may
    differ), a column whose kind (numeric, categorical, boolean) differs between the two files,
    an unsupported kind (datetime, duration, bytes, nested values...), a reference column with
    no value, +-inf in a numeric column, an integer too large for float64;

* ``3`` internal or environment error: the drift libraries cannot be loaded, an unexpected
  exception while comparing, the report cannot be written after all (disk full, the folder
  vanished), or the decision cannot be recorded in the lifecycle log (:mod:`pipelines.audit`);
  one ``error:`` line, no decision printed.

Missing values (empty cells, NaN, None) are dropped and counted; a window column with no value
at all counts as drifted (exit 1), as in the hourly drift job.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.cli.common import EXIT_INTERNAL, EXIT_NEGATIVE, consoles, fail, styled

if TYPE_CHECKING:
    from pipelines.monitoring.compare import Comparison

DEFAULT_HTML = Path("build/drift/report.html")


def drift_command(
    reference: Annotated[Path, typer.Argument(help="Reference data (.parquet or .csv).")],
    current: Annotated[Path, typer.Argument(help="Current window (.parquet or .csv).")],
    # The defaults are the monitoring job's own (pipelines.monitoring.compare), resolved when the
    # command runs: importing the drift kernels (torch, scipy) would slow every sovml command.
    threshold: Annotated[
        float | None,
        typer.Option(
            help="A feature drifts when the statistic exceeds this [default: the drift job's]."
        ),
    ] = None,
    html: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = DEFAULT_HTML,
    statistic: Annotated[
        str | None,
        typer.Option(
            help="Statistic the decision uses: psi, ks, js or w1 [default: the drift job's]."
        ),
    ] = None,
) -> None:
    """Compare CURRENT with REFERENCE per feature; exit 1 when any feature drifts (retrain)."""
    out, err = consoles()
    try:
        from kernels.drift import DriftError, check_statistic, check_threshold
        from pipelines.monitoring.compare import DEFAULT_STATISTIC, DEFAULT_THRESHOLD, compare_files
        from pipelines.monitoring.report import output_problem, write_report
    except Exception as exc:  # a broken install (torch, scipy, pandas): not the user's input
        fail(err, f"cannot load the drift libraries: {_what(exc)}", EXIT_INTERNAL)

    statistic = (DEFAULT_STATISTIC if statistic is None else statistic).lower()
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    # Every argument is checked before any data is read: a bad one costs nothing to find out.
    try:
        check_statistic(statistic)
    except DriftError as exc:
        fail(err, f"--statistic: {exc}")
    try:
        check_threshold(threshold, statistic)
    except DriftError as exc:
        fail(err, f"--threshold: {exc}")
    why = output_problem(html, (reference, current))
    if why is not None:
        fail(err, f"--html {html}: {why}")

    try:
        comparison = compare_files(reference, current, threshold, statistic)
    except DriftError as exc:
        fail(err, str(exc))
    except Exception as exc:  # anything else is ours: never "drift", never the user's input
        fail(err, f"internal error while comparing: {_what(exc)}", EXIT_INTERNAL)
    try:
        write_report(html, comparison, reference, current)
    except OSError as exc:
        fail(err, f"cannot write the report {html}: {exc.strerror or exc}", EXIT_INTERNAL)
    except Exception as exc:
        fail(err, f"cannot write the report {html}: {_what(exc)}", EXIT_INTERNAL)

    _record(err, comparison, reference, current, html)
    # Only now, with the report written and recorded, the table and the decision (always the
    # last line).
    decision = comparison.decision
    out.print(_table(comparison, reference, current))
    out.print(f"report: {html}", markup=False)
    out.print(decision.summary(), style="bold red" if decision.retrain else "bold green")
    if decision.retrain:
        raise typer.Exit(EXIT_NEGATIVE)


def _record(
    err: Console, comparison: Comparison, reference: Path, current: Path, html: Path
) -> None:
    """``drift.decided`` in the lifecycle log; exit 3 when it cannot be written.

    Digests only: reference, window and report are files a user replaces (the next window, the
    next report); their paths are in the details.
    """
    from pipelines.audit import log as audit

    decision = comparison.decision
    try:
        audit.append(
            "drift.decided",
            str(current.name),
            inputs={"reference": audit.digest_ref(reference), "current": audit.digest_ref(current)},
            outputs={"report": audit.digest_ref(html)},
            details={
                "retrain": decision.retrain,
                "drifted": ", ".join(decision.drifted)[:1024],
                "statistic": comparison.statistic,
                "threshold": comparison.threshold,
                "reference_path": str(reference.resolve())[:1024],
                "current_path": str(current.resolve())[:1024],
            },
        )
    except (audit.AuditError, OSError) as exc:
        fail(err, f"cannot record the decision: {exc}", EXIT_INTERNAL)


def _what(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _table(comparison: Comparison, reference: Path, current: Path) -> Table:
    """The per-feature table, drifted features marked in red."""
    from pipelines.monitoring.report import stat_cells

    title = f"drift of {current.name} against {reference.name}"
    table = Table(
        title=f"{title} ({comparison.statistic} > {comparison.threshold:g})",
        title_justify="left",
    )
    for col in ("feature", "kind", "PSI", "KS", "JS", "W1", "chi2 p", "missing", "drifted"):
        table.add_column(col, justify="left" if col in ("feature", "kind") else "right")
    for r in comparison.rows:
        drifted = styled("yes", "red") if r.drifted else styled("no", "green")
        table.add_row(r.name, r.kind, *stat_cells(r), drifted)
    return table
