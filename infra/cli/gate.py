"""``sovml gate``: the fleet gate's helpers around ``sovml check``.

* ``gate merge DIR...`` merges the fleet reports of ``sovml check --all --shard K/N`` runs into
  one (JSON, JUnit, SARIF), refusing overlapping, repeated, foreign or missing shards.
* ``gate hook [FILE]...`` is the pre-commit entry (``.pre-commit-hooks.yaml``): it maps the
  changed files to the stacks they can affect and checks those.

Exit codes (``infra.cli.common``): 0 success, 1 the merged fleet or a hooked stack failed the
gate, 2 bad input (a shard report that cannot be merged, a bad option), 3 a tool failed.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from infra.cli.common import EXIT_NEGATIVE, consoles, fail, shown_path
from infra.cli.stacks import StacksDirOption, run_check
from infra.config.stackfile import ROOT, STACKS, list_stacks, stack_name_problem
from infra.synth.runner import BUILD, PROGRAM

gate_app = typer.Typer(
    help="Fleet gate helpers: merge shard reports; the pre-commit hook.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PROGRAM_INPUTS = ("infra/", "components/", "policies/", "kernels/", "stacks/templates/",
                  "Pulumi.yaml", "pyproject.toml", "requirements/")  # fmt: skip
"""Repository paths that feed every stack's record or verdict: a change there checks all stacks
(the fingerprint then skips those it does not affect, so this costs little when nothing did)."""


def stacks_for_files(files: list[str], stacks_dir: Path = STACKS) -> list[str]:
    """The stacks a commit touching ``files`` (repository-relative, as pre-commit passes them)
    can change: a stack file names its stack; a program or policy input means every stack;
    anything else (docs, tests) none. Stack files that no longer exist (deleted) are left out."""
    known = list_stacks(stacks_dir)
    chosen: set[str] = set()
    for raw in files:
        path = PurePosixPath(raw.replace("\\", "/"))
        name = path.name
        if name.startswith("Pulumi.") and name.endswith(".yaml") and name != "Pulumi.yaml":
            stack = name[len("Pulumi.") : -len(".yaml")]
            if stack in known and (stacks_dir / name).resolve() == (ROOT / path).resolve():
                chosen.add(stack)
                continue
        if any(str(path) == p or str(path).startswith(p) for p in PROGRAM_INPUTS):
            return known
    return sorted(chosen)


@gate_app.command("merge")
def merge(
    reports: Annotated[
        list[Path], typer.Argument(help="Shard report folders (or their report.json files).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the merged fleet report.")] = BUILD
    / "fleet",
) -> None:
    """Merge the fleet reports of `sovml check --all --shard K/N` into one; exit 1 if it fails."""
    from infra.gate.fleet_reports import FleetReportError, merge, read_shard, write_fleet

    console, err = consoles()
    try:
        doc = merge([read_shard(path) for path in reports])
    except FleetReportError as exc:
        fail(err, str(exc))
    paths = write_fleet(doc, out)
    counts = doc["counts"]
    console.print(
        f"merged {len(doc['shards'])} shard(s): {counts['stacks']} stack(s), {counts['failed']} "
        f"failed -> {', '.join(shown_path(p) for p in paths)}"
    )
    if not doc["ok"]:
        raise typer.Exit(EXIT_NEGATIVE)


@gate_app.command("hook")
def hook(
    files: Annotated[
        list[str] | None, typer.Argument(help="Changed files (from pre-commit).")
    ] = None,
    stacks_dir: StacksDirOption = STACKS,
    no_checkov: Annotated[
        bool, typer.Option("--no-checkov", help="Skip checkov (rules and schemas only).")
    ] = False,
) -> None:
    """Pre-commit: check the stacks the changed FILES affect (a stack file: that stack; the
    program, components, policies or templates: every stack, unchanged ones skipped)."""
    console, err = consoles()
    names = stacks_for_files(files or [], stacks_dir)
    bad = [problem for name in names if (problem := stack_name_problem(name))]
    if bad:
        fail(err, bad[0])
    if not names:
        console.print("no stack affected by these files: nothing to check")
        return
    run_check(names, stacks_dir=stacks_dir, checkov=not no_checkov, program=PROGRAM)
