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
from infra import synth as synthmod

app = typer.Typer(
    name="sovml",
    help="sovereign-ml: a data-resident ML platform on AWS, as Pulumi Python, checked offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the stack configuration schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")

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
                result = synthmod.synthesize(name, stacks_dir=stacks_dir)
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


@config_app.command("schema")
def config_schema(
    write: Annotated[bool, typer.Option(help="Rewrite the config section of Pulumi.yaml.")] = False,
) -> None:
    """Print (or write into Pulumi.yaml) the config declarations generated from infra/config.py."""
    path = synthmod.ROOT / "Pulumi.yaml"
    project = yaml.safe_load(path.read_text())
    project["config"] = cfgmod.project_config_schema()
    text = yaml.safe_dump(project, sort_keys=False, width=100)
    if write:
        header = (
            "# The config section is generated: edit KEYS in infra/config.py, then run\n"
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
