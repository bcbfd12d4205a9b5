"""``sovml drift REFERENCE CURRENT``: per-feature drift of a data window and a retraining decision.

Register it on the main app with ``app.command("drift")(drift_command)``. The comparison and its
decision are :func:`pipelines.monitoring.compare.compare_files` (the rules per column kind are in
that module), the HTML report is :func:`pipelines.monitoring.report.write_report`; this command
prints the table and exits.

Exit codes follow ``infra.cli.common``: 0 no drift, 1 drift above the threshold (retrain), 2 bad
input (unreadable file, schema mismatch, empty window, unknown statistic).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from infra.cli.common import EXIT_NEGATIVE, consoles, fail, styled

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
    from kernels.drift import DriftError
    from pipelines.monitoring.compare import DEFAULT_STATISTIC, DEFAULT_THRESHOLD, compare_files
    from pipelines.monitoring.report import write_report

    out, err = consoles()
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    statistic = DEFAULT_STATISTIC if statistic is None else statistic
    try:
        comparison = compare_files(reference, current, threshold, statistic.lower())
    except DriftError as exc:
        fail(err, str(exc))
    out.print(_table(comparison, reference, current))
    decision = comparison.decision
    write_report(html, comparison, reference, current)
    out.print(f"report: {html}", markup=False)
    out.print(decision.summary(), style="bold red" if decision.retrain else "bold green")
    if decision.retrain:
        raise typer.Exit(EXIT_NEGATIVE)


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
