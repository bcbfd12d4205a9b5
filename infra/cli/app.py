"""``sovml``: synthesize, check and operate the sovereign-ml platform from a terminal.

Exit codes: 0 success, 1 a check or run failed, 2 bad input (stack config, arguments).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from infra import config as cfgmod
from infra.synth import runner as synthmod

app = typer.Typer(
    name="sovml",
    help="sovereign-ml: a data-resident ML platform on AWS, as Pulumi Python, checked offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the stack configuration schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _register_subcommands() -> None:
    # Each workload area keeps its commands in its own module; imported here so `sovml --help`
    # lists them all. Heavy libraries are imported inside the commands, not at module level.
    from infra.cli.artifact import artifact_app
    from infra.cli.cost import cost_command
    from infra.cli.drift import drift_command
    from infra.cli.features import features_app
    from infra.cli.pipeline import pipeline_app
    from infra.cli.serve import abtest_command, bench_serve_command, serve_command
    from infra.cli.tenant import tenant_app

    app.add_typer(tenant_app, name="tenant")
    app.command("cost")(cost_command)
    app.command("drift")(drift_command)
    app.add_typer(artifact_app, name="artifact")
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(features_app, name="features")
    app.command("serve")(serve_command)
    app.command("abtest")(abtest_command)
    bench_app = typer.Typer(help="Benchmarks against named baselines.", no_args_is_help=True)
    bench_app.command("serve")(bench_serve_command)
    app.add_typer(bench_app, name="bench")


_register_subcommands()

console = Console()
err = Console(stderr=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def print_problems(problems: list[cfgmod.ConfigProblem], title: str) -> None:
    """A table of config problems: key, value, what is allowed."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_column("allowed")
    for p in problems:
        shown = "(missing)" if p.value is None else json.dumps(p.value, default=str)
        table.add_row(p.key, shown, p.allowed)
    err.print(table)


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
    root = Tree(f"[bold]{record['project']}[/] / [bold cyan]{record['stack']}[/]")

    def add(node: Tree, parent: str | None) -> None:
        kids = children.get(parent, [])
        counts = Counter(k["type"] for k in kids if k["custom"] and not children.get(k["urn"]))
        for k in kids:
            if not k["custom"] or children.get(k["urn"]):
                label = f"[bold]{k['name']}[/] [dim]{k['type']}[/]"
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
    counts = synthmod.summary(record)
    for typ, n in counts.items():
        table.add_row(typ, str(n))
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    return table


@app.command()
def synth(
    stack: Annotated[str | None, typer.Argument(help="Stack name, e.g. prod-uae.")] = None,
    all_stacks: Annotated[
        bool, typer.Option("--all", help="Synthesize every stack in stacks/.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the one-line summary.")
    ] = False,
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = synthmod.STACKS,
    program: Annotated[Path, typer.Option(help="Pulumi program to run.")] = synthmod.PROGRAM,
) -> None:
    """Run the real Pulumi program under the SDK mocks and write build/STACK/resources.json."""
    stacks = synthmod.list_stacks(stacks_dir) if all_stacks else [stack] if stack else []
    if not stacks:
        err.print("[red]give a STACK or --all[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    failed = False
    for name in stacks:
        try:
            with console.status(f"synthesizing {name} ..."):
                result = synthmod.synthesize(name, stacks_dir=stacks_dir, program=program)
        except synthmod.SynthError as exc:
            failed = True
            if exc.problems:
                print_problems(exc.problems, f"{exc}; nothing was declared or written")
            else:
                err.print(f"[red]{name}: {exc}[/]")
            continue
        record = result.record
        if not quiet:
            console.print(resource_tree(record))
            console.print(type_table(record))
        custom = sum(1 for r in record["resources"] if r["custom"])
        console.print(
            f"[green]{name}[/]: {custom} resources in {result.seconds:.2f}s -> "
            f"{result.path.relative_to(synthmod.ROOT)}"
        )
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def gate_table(report: Any) -> Table:
    """Findings of one stack's gate run: id, resource, message, status."""
    table = Table(title=f"{report.stack}: findings", title_justify="left", show_lines=False)
    for col in ("source", "id", "resource", "message", "status"):
        table.add_column(col, overflow="fold")
    for f in sorted(report.findings, key=lambda f: (f.status != "failed", f.source, f.id)):
        style = "red" if f.status == "failed" else "yellow"
        table.add_row(
            f.source,
            f.id,
            f.resource.rsplit("::", 1)[-1],
            (
                f.message
                if f.status == "failed"
                else f"{f.message} [dim](suppressed: {f.justification})[/]"
            ),
            f"[{style}]{f.status}[/]",
        )
    return table


@app.command()
def check(
    stack: Annotated[str | None, typer.Argument(help="Stack name, e.g. prod-uae.")] = None,
    all_stacks: Annotated[
        bool, typer.Option("--all", help="Check every stack in stacks/.")
    ] = False,
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = synthmod.STACKS,
    no_checkov: Annotated[
        bool, typer.Option("--no-checkov", help="Skip checkov (rules and schemas only).")
    ] = False,
    program: Annotated[
        Path, typer.Option(help="Pulumi program to judge (tests use insecure fixtures).")
    ] = synthmod.PROGRAM,
) -> None:
    """Policy gate: rules, Kubernetes schemas and checkov over what the program would create.

    Synthesizes first when the record is missing or older than the sources. Writes
    build/STACK/report.json, report.junit.xml and report.sarif. Exits 1 on any failure.
    """
    from infra.gate import run as gate

    stacks = synthmod.list_stacks(stacks_dir) if all_stacks else [stack] if stack else []
    if not stacks:
        err.print("[red]give a STACK or --all[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        suppressions = gate.load_suppressions()
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    summary_rows = []
    bad_input = failed = False
    for name in stacks:
        try:
            with console.status(f"checking {name}: synth, rules, schemas, checkov ..."):
                report = gate.run_gate(
                    name,
                    stacks_dir=stacks_dir,
                    checkov=not no_checkov,
                    suppressions=suppressions,
                    program=program,
                )
        except synthmod.SynthError as exc:
            bad_input = True
            if exc.problems:
                print_problems(exc.problems, str(exc))
            else:
                err.print(f"[red]{name}: {exc}[/]")
            continue
        if report.findings:
            console.print(gate_table(report))
        for e in report.errors:
            err.print(f"[red]{name}: {e}[/]")
        failed |= not report.ok
        ck = report.checkov
        bad_schema = sum(1 for f in report.failures if f.source == "schema")
        summary_rows.append(
            (
                name,
                "[green]pass[/]" if report.ok else "[red]FAIL[/]",
                str(sum(1 for f in report.failures if f.source == "rule")),
                f"{report.schema_validated} ok, {bad_schema} bad",
                str(sum(v.get("passed", 0) for v in ck.values())),
                str(sum(v.get("failed", 0) for v in ck.values())),
                f"{sum(f.status == 'suppressed' for f in report.findings)} "
                f"({len(report.suppressions_used)} entries)",
                f"{report.seconds:.1f}s",
            )
        )
    table = Table(title="policy gate", title_justify="left")
    for col in ("stack", "result", "rule violations", "k8s schema", "checkov passed",
                "checkov failed", "suppressed", "time"):  # fmt: skip
        table.add_column(col)
    for row in summary_rows:
        table.add_row(*row)
    console.print(table)
    if summary_rows:
        console.print("reports: build/<stack>/report.json, report.junit.xml, report.sarif")
    if bad_input:
        raise typer.Exit(EXIT_BAD_INPUT)
    if failed:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def demo() -> None:
    """The showcase: every stage end to end on the embedded defaults, then a summary table."""
    from infra.demo import steps as demomod

    outcomes = demomod.run(console)
    console.print(demomod.summary_table(outcomes))
    console.print(
        "outputs: build/<stack>/ (records, reports, cost), build/demo/ (tenant, pipeline runs, "
        "serving evidence, drift report)"
    )
    if not all(o.ok for o in outcomes):
        raise typer.Exit(EXIT_FAILED)


@config_app.command("schema")
def config_schema(
    write: Annotated[bool, typer.Option(help="Rewrite the config section of Pulumi.yaml.")] = False,
) -> None:
    """Print (or write into Pulumi.yaml) the config declarations generated from infra/config/__init__.py."""
    path = synthmod.ROOT / "Pulumi.yaml"
    project = yaml.safe_load(path.read_text())
    project["config"] = cfgmod.project_config_schema()
    text = yaml.safe_dump(project, sort_keys=False, width=100)
    if write:
        header = (
            "# The config section is generated: edit KEYS in infra/config/__init__.py, then run\n"
            "# `sovml config schema --write`.\n"
        )
        path.write_text(header + text)
        console.print(f"wrote {path.name}")
    else:
        console.print(text, markup=False, highlight=False)


@config_app.command("validate")
def config_validate(
    stack: Annotated[str, typer.Argument(help="Stack name, e.g. prod-uae.")],
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = synthmod.STACKS,
) -> None:
    """Validate a stack file without running the program; list every problem."""
    try:
        cfg, _, _ = synthmod.load_stack(stack, stacks_dir)
    except synthmod.SynthError as exc:
        if exc.problems:
            print_problems(exc.problems, str(exc))
        else:
            err.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console.print(
        f"[green]{cfg.source}[/]: valid ({cfg.environment}, zone {cfg.zone}, {cfg.region}, "
        f"{len(cfg.node_pools)} node pools, {len(cfg.tenants)} tenants)"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
