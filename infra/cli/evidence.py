"""``sovml evidence STACK``: the compliance evidence pack of a stack, for auditors.

Register it on the main app with ``app.command("evidence")(evidence_command)``. The work is
``infra.evidence.pack``: the stack's current synth record (reused while its fingerprint holds),
the gate's checks on it, the reviewed control catalogue (``policies/controls/catalogue.toml``)
evaluated control by control; written as ``evidence.json`` and ``evidence.html``.

Exit codes (``infra.cli.common``): 0 the pack is written and no control failed; 1 the pack is
written and a control failed; 2 bad input (stack name, stack file, ``--out``, ``--build-dir``,
invalid suppressions); 3 an internal or environment error (the catalogue is invalid, or checkov
could not run: the pack is still written, with its checks as gaps, and says why).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from infra.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    consoles,
    error_line,
    fail,
    folder_problem,
    print_bounded,
    shown_path,
    styled,
)
from infra.config.stackfile import STACKS, stack_name_problem
from infra.evidence import pack as packmod
from infra.evidence.catalogue import CatalogueError
from infra.synth.runner import BUILD, SynthError


class Format(StrEnum):
    """What to write: the page, the JSON, or both."""

    html = "html"
    json = "json"
    both = "both"


def summary_table(doc: dict) -> Table:
    """Controls per framework and status, as the page's summary."""
    table = Table(title=f"{doc['stack']}: compliance evidence", title_justify="left")
    for col in ("framework", "controls", "satisfied", "failed", "gap"):
        table.add_column(col, justify="left" if col == "framework" else "right")
    for f in doc["frameworks"]:
        failed = styled(str(f["failed"]), "red" if f["failed"] else "")
        gap = styled(str(f["gap"]), "yellow" if f["gap"] else "")
        table.add_row(f["title"], str(f["controls"]), str(f["satisfied"]), failed, gap)
    return table


def evidence_command(
    stack: Annotated[str, typer.Argument(help="Stack name, e.g. prod-uae.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to write the pack into (default: build/STACK/evidence)."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="What to write.")] = Format.both,
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = STACKS,
    build_dir: Annotated[Path, typer.Option(help="Folder of synth records.")] = BUILD,
    no_checkov: Annotated[
        bool, typer.Option("--no-checkov", help="Skip checkov: its checks become gaps.")
    ] = False,
) -> None:
    """Write the compliance evidence pack of STACK: each control of the catalogue (UAE PDPL, ISO/IEC
    27001:2022 Annex A, CIS Amazon EKS), the checks that prove it and their results on the stack's
    current synth record (fingerprint included), and the gaps. Exits 1 when a control failed.
    """
    console, err = consoles()
    if problem := stack_name_problem(stack):
        fail(err, problem)
    for option, folder in (("--build-dir", build_dir), ("--out", out)):
        if folder is not None and (problem := folder_problem(folder)):
            fail(err, f"{option} {folder}: {problem}")
    target = out if out is not None else packmod.default_out(stack, build_dir)
    try:
        with console.status(f"{stack}: record, rules, schemas, checkov, controls ..."):
            pack = packmod.build_pack(
                stack, stacks_dir=stacks_dir, build_dir=build_dir, checkov=not no_checkov
            )
    except SynthError as exc:
        error_line(err, f"{stack}: {exc}")
        if exc.problems:
            print_bounded(err, exc.problems, lambda shown: "\n".join(f"  - {p}" for p in shown))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except CatalogueError as exc:
        fail(err, f"control catalogue: {exc}", EXIT_INTERNAL)
    except ValueError as exc:  # policies/suppressions.yaml breaks its schema
        fail(err, str(exc))
    try:
        written = packmod.write_pack(pack.doc, target, fmt.value)
    except OSError as exc:
        fail(err, f"--out {target}: {exc.strerror or exc}")
    console.print(summary_table(pack.doc))
    for c in pack.failed:
        error_line(err, f"{c.control.id} failed: {c.reason}")
    for line in pack.tool_errors:
        error_line(err, f"{stack}: {line}; its checks are gaps in the pack")
    console.print(f"record {pack.doc['record']['fingerprint']}", markup=False, highlight=False)
    console.print(f"evidence: {', '.join(shown_path(p) for p in written)}", soft_wrap=True)
    if pack.tool_errors:
        raise typer.Exit(EXIT_INTERNAL)
    if pack.failed:
        raise typer.Exit(EXIT_NEGATIVE)
