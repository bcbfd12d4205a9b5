"""``sovml cost STACK [--compare OTHER]``: monthly cost at node-pool min and max sizes.

Register it on the main app with ``app.command("cost")(cost_command)``. Reads the synth record
(synthesizing first when it is missing or older than the stack file or the program), prices it
with ``infra/cost/prices/<region>.yaml`` (approximate list prices, dated) and writes
``build/<stack>/cost.json``; the work is ``infra.cost.stack.estimate_stack``.

Exit codes follow ``infra.cli.common``: 0 success, 2 bad input (stack name or config, missing price
table, a ``--build-dir`` under a file), 3 an internal error; never 1 (a cost has no verdict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from infra.cli.common import (
    EXIT_BAD_INPUT,
    consoles,
    error_line,
    fail,
    folder_problem,
    print_bounded,
    styled,
)
from infra.config.stackfile import stack_name_problem
from infra.cost.estimate import Comparison, CostEstimate
from infra.cost.price_table import PRICES_DIR, CostError
from infra.cost.stack import cost_path, estimate_stack
from infra.synth import runner as synthmod


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def _delta(x: float) -> Text:
    if round(x) == 0:
        return styled("$0", "dim")
    return styled(f"+{_usd(x)}", "red") if x > 0 else styled(f"-{_usd(-x)}", "green")


def estimate_table(est: CostEstimate) -> Table:
    """One line per item: what it is, how it was computed, monthly at min and at max."""
    table = Table(
        title=(
            f"{est.stack}: monthly cost ({est.currency}, {est.region}, "
            f"prices of {est.prices_date})"
        ),
        title_justify="left",
    )
    table.add_column("item")
    table.add_column("detail", overflow="fold")
    table.add_column("at min", overflow="fold")
    table.add_column("monthly min", justify="right")
    table.add_column("monthly max", justify="right")
    for i in est.items:
        basis = i.basis_min if i.basis_min == i.basis_max else f"{i.basis_min} (max {i.basis_max})"
        table.add_row(i.key, i.detail, basis, _usd(i.monthly_min), _usd(i.monthly_max))
    table.add_section()
    low, high = _usd(est.total_min), _usd(est.total_max)
    table.add_row(styled("total", "bold"), "", "", styled(low, "bold"), styled(high, "bold"))
    return table


def compare_table(base: CostEstimate, other: CostEstimate) -> Table:
    """Both stacks side by side per item, with ``other`` minus ``base``."""
    cmp = Comparison(base, other)
    table = Table(
        title=f"{base.stack} vs {other.stack}: monthly cost ({base.currency})", title_justify="left"
    )
    table.add_column("item")
    for label in (f"{base.stack} min", f"{base.stack} max", f"{other.stack} min",
                  f"{other.stack} max", "diff min", "diff max"):  # fmt: skip
        table.add_column(label, justify="right")
    for key in cmp.keys:
        row = cmp.row(key)
        diffs = _delta(row[2] - row[0]), _delta(row[3] - row[1])
        table.add_row(key, *(_usd(v) for v in row), *diffs)
    table.add_section()
    totals = cmp.totals()
    table.add_row(
        styled("total", "bold"),
        *(styled(_usd(v), "bold") for v in totals),
        _delta(totals[2] - totals[0]),
        _delta(totals[3] - totals[1]),
    )
    return table


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(synthmod.ROOT)
    except ValueError:
        return path


def cost_command(
    stack: Annotated[str, typer.Argument(help="Stack name, e.g. prod-uae.")],
    compare: Annotated[
        str | None, typer.Option("--compare", help="A second stack to show side by side.")
    ] = None,
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = synthmod.STACKS,
    build_dir: Annotated[Path, typer.Option(help="Folder of synth records.")] = synthmod.BUILD,
    prices_dir: Annotated[
        Path, typer.Option(help="Folder of price tables (<region>.yaml).")
    ] = PRICES_DIR,
) -> None:
    """Monthly cost of a stack at node-pool min and max sizes, from its synth record.

    Prices come from infra/cost/prices/<region>.yaml: approximate list prices with a date; usage the
    record cannot know (NAT GB, log GB, stored GB) is an assumption named in each line.
    Writes build/STACK/cost.json.
    """
    console, err = consoles()
    if problem := folder_problem(build_dir):
        fail(err, f"--build-dir {build_dir}: {problem}", EXIT_BAD_INPUT)
    estimates: list[CostEstimate] = []
    for name in [stack] + ([compare] if compare else []):
        if problem := stack_name_problem(name):
            fail(err, problem, EXIT_BAD_INPUT)
        try:
            with console.status(f"estimating {name} ..."):
                estimates.append(estimate_stack(name, stacks_dir, build_dir, prices_dir))
        except synthmod.SynthError as exc:
            error_line(err, f"{name}: {exc}")
            print_bounded(err, exc.problems, lambda shown: "\n".join(f"  - {p}" for p in shown))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except CostError as exc:
            fail(err, f"{name}: {exc}", EXIT_BAD_INPUT)

    for est in estimates:
        console.print(estimate_table(est))
    if len(estimates) == 2:
        console.print(compare_table(*estimates))
    first = estimates[0]
    for est in estimates:
        for missing in est.unpriced:
            err.print(styled(f"{est.stack}: unpriced (counted as $0): {missing}", "yellow"))
    console.print(styled(f"assumptions: {'; '.join(first.assumptions)}", "dim"))
    console.print(styled(f"not included: {'; '.join(first.excluded)}", "dim"))
    console.print(styled(f"prices: {first.prices_source}", "dim"))
    for est in estimates:
        console.print(
            Text.assemble(
                styled(est.stack, "green"),
                f": {_usd(est.total_min)} - {_usd(est.total_max)} per month -> "
                f"{_relative(cost_path(est.stack, build_dir))}",
            )
        )
