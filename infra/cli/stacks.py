"""The stack commands of ``sovml``: ``synth``, ``check``, ``config schema|validate`` and ``demo``.

Each command reads stack files through ``infra.config.stackfile``, runs the library
(``infra.synth``, ``infra.gate``, ``infra.demo``) and renders its tables here. Exit codes
(``infra.cli.common``): 0 success, 1 the gate or a demo step failed, 2 bad input (arguments,
stack files, suppressions, a ``--program`` that is not a Python file or that raised), 3 a tool
the gate needs failed (checkov missing, timed out or unable to parse). With several stacks the
highest code wins: an error outranks a gate failure, because the gate could not judge.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from infra.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    consoles,
    error_line,
    fail,
    joined,
    one_line,
    print_bounded,
    shown_path,
    styled,
)
from infra.config import ConfigProblem, project_config_schema
from infra.config.stackfile import (
    ROOT,
    STACKS,
    StackFileError,
    list_stacks,
    load_stack,
    stack_name_problem,
)
from infra.gate.findings import GateReport
from infra.synth.runner import BUILD, PROGRAM, SynthError, summary, synthesize

config_app = typer.Typer(help="Inspect the stack configuration schema.", no_args_is_help=True)

MAX_PROGRAM = 16 << 20
"""Bytes of a ``--program`` file read to check it compiles."""

StackArg = Annotated[str | None, typer.Argument(help="Stack name, e.g. prod-uae.")]
StacksDirOption = Annotated[Path, typer.Option(help="Folder of stack files.")]


# --- tables -----------------------------------------------------------------------------------


def print_problems(err: Console, problems: list[ConfigProblem], title: str) -> None:
    """A table of config problems (key, value, what is allowed), the first ``MAX_LISTED`` of them.

    Keys and values are shown through ``ConfigProblem.shown_key``/``shown``: literal, bounded,
    and masked (``<redacted, N chars>``) wherever the value might be a secret.
    """

    def table(shown: list[ConfigProblem]) -> Table:
        out = Table(show_lines=False)
        out.add_column("key", style="bold", overflow="fold")
        out.add_column("value", overflow="fold")
        out.add_column("allowed", overflow="fold")
        for p in shown:
            out.add_row(p.shown_key, p.shown, p.allowed)
        return out

    # The title on a line of its own: it names the file, whole, however narrow the table.
    err.print(title, soft_wrap=True)
    print_bounded(err, problems, table)


def resource_tree(record: dict[str, Any]) -> Tree:
    """Components as branches, with the count of each resource type below them."""
    stack_urn = next(
        (
            r["parent"]
            for r in record["resources"]
            if r["parent"] and "pulumi:pulumi:Stack" in r["parent"]
        ),
        None,
    )
    children: dict[str | None, list[dict]] = {}
    for r in record["resources"]:
        children.setdefault(r["parent"], []).append(r)
    root = Tree(
        joined(styled(record["project"], "bold"), " / ", styled(record["stack"], "bold cyan"))
    )

    def add(node: Tree, parent: str | None) -> None:
        kids = children.get(parent, [])
        counts = Counter(k["type"] for k in kids if k["custom"] and not children.get(k["urn"]))
        for k in kids:
            if not k["custom"] or children.get(k["urn"]):
                label = joined(styled(k["name"], "bold"), " ", styled(k["type"], "dim"))
                add(node.add(label), k["urn"])
        for typ, n in sorted(counts.items()):
            node.add(f"{n} x {typ}")

    add(root, stack_urn)
    return root


def type_table(record: dict[str, Any]) -> Table:
    """Resource counts per Pulumi type token."""
    table = Table(title=f"{record['stack']}: resources by type", title_justify="left")
    table.add_column("type")
    table.add_column("count", justify="right")
    counts = summary(record)
    for typ, n in counts.items():
        table.add_row(typ, str(n))
    table.add_row(styled("total", "bold"), styled(str(sum(counts.values())), "bold"))
    return table


def gate_table(report: GateReport) -> Table:
    """Findings of one stack's gate run: id, resource, message, status."""
    table = Table(title=f"{report.stack}: findings", title_justify="left", show_lines=False)
    for col in ("source", "id", "resource", "message", "status"):
        table.add_column(col, overflow="fold")
    for f in sorted(report.findings, key=lambda f: (f.status != "failed", f.source, f.id)):
        failed = f.status == "failed"
        message = (
            Text(f.message)
            if failed
            else joined(f.message, " ", styled(f"(suppressed: {f.justification})", "dim"))
        )
        status = styled(f.status, "red" if failed else "yellow")
        table.add_row(f.source, f.id, f.resource.rsplit("::", 1)[-1], message, status)
    return table


GATE_COLUMNS = ("stack", "result", "rule violations", "k8s schema", "checkov passed",
                "checkov failed", "suppressed", "time")  # fmt: skip


def gate_summary_row(report: GateReport, skipped: bool = False) -> tuple[str | Text, ...]:
    """One stack's line of the ``policy gate`` table (``GATE_COLUMNS``); a ``skipped`` stack
    shows its last report, marked unchanged."""
    ck = report.checkov
    bad_schema = sum(1 for f in report.failures if f.source == "schema")
    return (
        report.stack,
        (styled("pass", "green") if report.ok else styled("FAIL", "red"))
        + (styled(" (unchanged)", "dim") if skipped else ""),
        str(sum(1 for f in report.failures if f.source == "rule")),
        f"{report.schema_validated} ok, {bad_schema} bad",
        str(sum(v.get("passed", 0) for v in ck.values())),
        str(sum(v.get("failed", 0) for v in ck.values())),
        f"{sum(f.status == 'suppressed' for f in report.findings)} "
        f"({len(report.suppressions_used)} entries)",
        "skipped" if skipped else f"{report.seconds:.1f}s",
    )


def gate_summary_table(rows: list[tuple[str | Text, ...]]) -> Table:
    """The ``policy gate`` table: one ``gate_summary_row`` per stack checked."""
    table = Table(title="policy gate", title_justify="left")
    for col in GATE_COLUMNS:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    return table


# --- shared steps -----------------------------------------------------------------------------


def _stacks(stack: str | None, all_stacks: bool, stacks_dir: Path, err: Console) -> list[str]:
    """The stacks a command runs on; exits 2 when neither a STACK nor --all is given."""
    stacks = list_stacks(stacks_dir) if all_stacks else [stack] if stack else []
    if not stacks:
        error_line(err, "give a STACK or --all")
        raise typer.Exit(EXIT_BAD_INPUT)
    # A stack name also names files and build folders: refuse one that is not a name.
    bad = [problem for name in stacks if (problem := stack_name_problem(name))]
    if bad:
        for problem in bad[:10]:
            error_line(err, problem)
        raise typer.Exit(EXIT_BAD_INPUT)
    return stacks


def _check_program(program: Path, err: Console) -> None:
    """Exit 2 unless ``program`` is a readable Python file (checked before any stack runs)."""
    # is_file first: a FIFO or a device (/dev/zero) would block or never end when read.
    if not program.is_file():
        what = "not a file" if program.exists() else "no such file"
        fail(err, f"--program {program}: {what}")
    if program.stat().st_size > MAX_PROGRAM:
        fail(err, f"--program {program}: over {MAX_PROGRAM >> 20} MiB, not a Pulumi program")
    try:
        compile(program.read_bytes(), str(program), "exec", dont_inherit=True)
    except OSError as exc:
        fail(err, f"--program {program}: {exc.strerror or exc}")
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source
        fail(err, f"--program {program}: not a Python program: {one_line(str(exc))}")


def _raised_by_program(exc: BaseException, program: Path) -> bool:
    """Whether ``exc`` came out of ``program``'s own code (``infra.gate.fleet``'s test)."""
    from infra.gate.fleet import raised_by_program

    return raised_by_program(exc, program)


def _program_failed(err: Console, name: str, program: Path, exc: Exception) -> None:
    error_line(
        err, f"{name}: --program {program} raised {type(exc).__name__}: {one_line(str(exc))}"
    )


def _stack_error(err: Console, exc: SynthError | StackFileError, title: str, line: str) -> None:
    """A stack that cannot be read: its config problems under ``title``, else ``line``."""
    if exc.problems:
        print_problems(err, exc.problems, title)
    else:
        error_line(err, line)


# --- commands ---------------------------------------------------------------------------------


def synth(
    stack: StackArg = None,
    all_stacks: Annotated[
        bool, typer.Option("--all", help="Synthesize every stack in stacks/.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the one-line summary.")
    ] = False,
    stacks_dir: StacksDirOption = STACKS,
    program: Annotated[Path, typer.Option(help="Pulumi program to run.")] = PROGRAM,
) -> None:
    """Run the real Pulumi program under the SDK mocks and write build/STACK/resources.json."""
    console, err = consoles()
    failed = False
    names = _stacks(stack, all_stacks, stacks_dir, err)
    _check_program(program, err)
    for name in names:
        try:
            with console.status(f"synthesizing {name} ..."):
                result = synthesize(name, stacks_dir=stacks_dir, program=program)
        except SynthError as exc:
            failed = True
            _stack_error(err, exc, f"{exc}; nothing was declared or written", f"{name}: {exc}")
            continue
        except Exception as exc:
            if not _raised_by_program(exc, program):
                raise
            failed = True
            _program_failed(err, name, program, exc)
            continue
        record = result.record
        if not quiet:
            console.print(resource_tree(record))
            console.print(type_table(record))
        custom = sum(1 for r in record["resources"] if r["custom"])
        console.print(
            joined(
                styled(name, "green"),
                f": {custom} resources in {result.seconds:.2f}s -> {shown_path(result.path)}",
            )
        )
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Check only shard K of N (with --all; stacks assigned by a stable hash of the name).",
    ),
]


def check(
    stack: StackArg = None,
    all_stacks: Annotated[
        bool, typer.Option("--all", help="Check every stack in stacks/.")
    ] = False,
    stacks_dir: StacksDirOption = STACKS,
    no_checkov: Annotated[
        bool, typer.Option("--no-checkov", help="Skip checkov (rules and schemas only).")
    ] = False,
    program: Annotated[
        Path, typer.Option(help="Pulumi program to judge (tests use insecure fixtures).")
    ] = PROGRAM,
    shard: ShardOption = None,
    jobs: Annotated[
        int, typer.Option(min=1, max=64, help="Processes that synthesize stacks side by side.")
    ] = 2,
    force: Annotated[
        bool, typer.Option("--force", help="Check every stack, even those unchanged.")
    ] = False,
) -> None:
    """Policy gate: rules, Kubernetes schemas and checkov over what the program would create.

    Reuses build/STACK/resources.json only while its fingerprint holds (the content of every
    file the program imports or reads, the stack file and its folder, Pulumi.yaml, SDK versions,
    the policy code), else synthesizes again; says which and why. A stack whose record and the
    gate's own inputs (its code, suppressions, checkov's version) are unchanged since its last
    report is skipped, with the reason printed: that report's verdict (pass or fail) stands.
    checkov runs once per framework over all the stacks checked. Writes build/STACK/report.json,
    report.junit.xml and report.sarif, and the fleet summary build/fleet/report.json, .junit.xml
    and .sarif. Exits 1 on any failure.
    """
    from infra.gate.fleet_reports import FleetReportError, parse_shard, select_shard

    _, err = consoles()
    names = _stacks(stack, all_stacks, stacks_dir, err)
    which = None
    if shard is not None:
        if not all_stacks:
            fail(err, "--shard needs --all (a shard is a part of every stack)")
        try:
            which = parse_shard(shard)
        except FleetReportError as exc:
            fail(err, str(exc))
        names = select_shard(names, *which)
    run_check(
        names, stacks_dir=stacks_dir, checkov=not no_checkov, program=program, jobs=jobs,
        force=force, shard=which,
    )  # fmt: skip


def run_check(
    names: list[str],
    *,
    stacks_dir: Path,
    checkov: bool,
    program: Path,
    jobs: int = 2,
    force: bool = False,
    shard: tuple[int, int] | None = None,
) -> None:
    """The gate over ``names`` (``check`` and the pre-commit hook): tables, reports, exit code."""
    from infra.gate import findings, fleet
    from infra.gate.fleet_reports import fleet_doc, write_fleet

    console, err = consoles()
    _check_program(program, err)
    try:
        suppressions = findings.load_suppressions()
    except ValueError as exc:
        error_line(err, str(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    with console.status(
        f"checking {len(names)} stack(s): synth, rules, schemas, checkov ..."
    ) as st:
        result = fleet.run_fleet(
            names, stacks_dir=stacks_dir, build_dir=BUILD, checkov=checkov,
            suppressions=suppressions, program=program, jobs=jobs, force=force,
            progress=lambda text: st.update(f"checking: {text} ..."),
        )  # fmt: skip
    summary_rows = []
    bad_input = tool_failed = failed = False
    for outcome in result.outcomes:
        name, report = outcome.stack, outcome.report
        if outcome.status == fleet.ERROR:
            bad_input = True
            if outcome.program_error:
                error_line(err, f"{name}: {one_line(outcome.reason)}")
            elif outcome.problems:
                print_problems(err, outcome.problems, outcome.reason)
            else:
                error_line(err, f"{name}: {outcome.reason}")
            continue
        assert report is not None  # checked and skipped outcomes carry their report
        console.print(report.record, markup=False, highlight=False)
        skipped = outcome.status == fleet.SKIPPED
        if skipped:
            console.print(f"{name}: skipped: {outcome.reason}", markup=False, highlight=False)
        # A skipped stack's suppressed findings were shown when it was checked; failures, never
        # only remembered, are shown on every run.
        if report.failures or (report.findings and not skipped):
            console.print(gate_table(report))
        # A tool that did not run (checkov missing, timed out, unparsable input) is an error
        # of the environment, never a failed gate: exit 3, not 1.
        for e in report.errors:
            error_line(err, f"{name}: {e}")
        tool_failed |= bool(report.errors)
        failed |= bool(report.failures)
        summary_rows.append(gate_summary_row(report, skipped=skipped))
    console.print(gate_summary_table(summary_rows))
    doc = fleet_doc(
        [fleet.stack_doc(o) for o in result.outcomes], gate_inputs=result.gate_inputs,
        shard=shard, seconds=result.seconds,
    )  # fmt: skip
    write_fleet(doc, BUILD / "fleet")
    counts = doc["counts"]
    console.print(
        f"{counts['stacks']} stack(s): {counts['checked']} checked, {counts['skipped']} unchanged "
        f"and skipped, {counts['error']} not judged, in {result.seconds['total']:.1f}s"
    )
    if summary_rows:
        console.print("reports: build/<stack>/report.json, report.junit.xml, report.sarif")
    console.print("fleet: build/fleet/report.json, report.junit.xml, report.sarif")
    if tool_failed:
        raise typer.Exit(EXIT_INTERNAL)
    if bad_input:
        raise typer.Exit(EXIT_BAD_INPUT)
    if failed:
        raise typer.Exit(EXIT_NEGATIVE)


def demo(
    setup_seconds: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds the set-up took (make demo passes it), added to the table's total.",
        ),
    ] = None,
) -> None:
    """The showcase: every stage end to end on the embedded defaults, then a summary table."""
    from infra.demo import steps as demomod

    console, _ = consoles()
    outcomes = demomod.run(console)
    console.print(demomod.summary_table(outcomes, setup_seconds))
    console.print(
        "outputs: build/<stack>/ (records, reports, cost), build/demo/ (tenant, pipeline runs, "
        "serving evidence, drift report)"
    )
    if not all(o.ok for o in outcomes):
        raise typer.Exit(EXIT_NEGATIVE)


@config_app.command("schema")
def config_schema(
    write: Annotated[bool, typer.Option(help="Rewrite the config section of Pulumi.yaml.")] = False,
) -> None:
    """Print (or write into Pulumi.yaml) the config schema generated from infra/config/keys.py."""
    console, _ = consoles()
    path = ROOT / "Pulumi.yaml"
    project = yaml.safe_load(path.read_text())
    project["config"] = project_config_schema()
    text = yaml.safe_dump(project, sort_keys=False, width=100)
    if write:
        header = (
            "# The config section is generated: edit KEYS in infra/config/keys.py, then run\n"
            "# `sovml config schema --write`.\n"
        )
        path.write_text(header + text)
        console.print(f"wrote {path.name}")
    else:
        console.print(text, markup=False, highlight=False)


@config_app.command("validate")
def config_validate(
    stack: Annotated[str, typer.Argument(help="Stack name, e.g. prod-uae.")],
    stacks_dir: StacksDirOption = STACKS,
) -> None:
    """Validate a stack file without running the program; list every problem."""
    console, err = consoles()
    try:
        cfg, _, _ = load_stack(stack, stacks_dir)
    except StackFileError as exc:
        _stack_error(err, exc, str(exc), str(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console.print(
        joined(
            styled(cfg.source, "green"),
            f": valid ({cfg.environment}, zone {cfg.zone}, {cfg.region}, "
            f"{len(cfg.node_pools)} node pools, {len(cfg.tenants)} tenants)",
        )
    )
