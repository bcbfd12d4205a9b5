"""``sovml tenant``: create tenant stacks from the templates in infra/tenants/templates.py.

Register it on the main app with ``app.add_typer(tenant_app, name="tenant")``.

Exit codes as in :mod:`infra.cli.common`: 0 success, 1 template files out of date (``templates``
without ``--write``), 2 bad input (name, template, zone, region, existing stack, config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from infra import tenants as tenantmod
from infra.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_NEGATIVE,
    consoles,
    joined,
    print_bounded,
    styled,
)
from infra.config.redaction import shown_name
from infra.config.stackfile import ROOT, STACKS

tenant_app = typer.Typer(
    help="Create tenant stacks (smb, enterprise) from the templates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _summary(created: tenantmod.RenderedTenant) -> str:
    """Three indented lines: the tier and residency, the node pools, the budget."""
    cfg = created.config
    pools = ", ".join(
        f"{p.role} {p.min_size}-{p.max_size} x {p.instance_types[0]} {p.capacity_type}"
        for p in cfg.node_pools
    )
    budget_text = (
        f"${cfg.monthly_budget_usd:,}/month, alerts to {', '.join(cfg.budget_alert_emails)}"
        if cfg.monthly_budget_usd
        else "none"
    )
    return (
        f"  template {created.template.name} ({cfg.tier}, {cfg.environment}), "
        f"zone {cfg.zone}, region {cfg.region}\n"
        f"  node pools: {pools}\n"
        f"  budget: {budget_text}"
    )


@tenant_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="Tenant name; also the stack name (e.g. acme).")],
    template: Annotated[
        str, typer.Option("--template", "-t", help="Tier: smb or enterprise.")
    ] = "smb",
    zone: Annotated[str, typer.Option(help="Residency zone: uae, bahrain, ksa or eu.")] = "uae",
    region: Annotated[
        str | None, typer.Option(help="AWS region inside the zone [default: the zone's first].")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="owner tag [default: the tenant name].")] = None,
    cost_center: Annotated[
        str | None, typer.Option("--cost-center", help="cost-center tag [default: tenant-NAME].")
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option(help="Monthly budget in USD; 0 for none [default: the template's]."),
    ] = None,
    email: Annotated[
        list[str] | None,
        typer.Option("--email", "-e", help="Budget alert address (repeat for more)."),
    ] = None,
    alert_webhook: Annotated[
        str | None,
        typer.Option(
            "--alert-webhook",
            help="Incident webhook (https) that receives the stack's pages; required.",
        ),
    ] = None,
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = STACKS,
) -> None:
    """Render stacks/Pulumi.NAME.yaml from a template, validated before it is written.

    Refuses a bad or reserved tenant name, a region outside the zone, a missing or non-https
    --alert-webhook and an existing stack file; nothing is written when anything is wrong.
    """
    out, err = consoles()
    request = tenantmod.TenantRequest(
        name=name,
        template=template,
        zone=zone,
        region=region,
        owner=owner,
        cost_center=cost_center,
        budget_usd=budget,
        emails=tuple(email or ()),
        alert_webhook=alert_webhook,
    )
    try:
        created = tenantmod.create_tenant(request, stacks_dir)
    except tenantmod.TenantError as exc:
        err.print(
            joined(
                styled(f"tenant {shown_name(name)}: not created", "red"), " (nothing was written)"
            ),
            soft_wrap=True,
        )
        print_bounded(err, exc.problems, lambda shown: "\n".join(f"  - {p}" for p in shown))
        raise typer.Exit(EXIT_BAD_INPUT) from None

    out.print(joined(styled("created", "green"), " ", tenantmod.display_path(created.path)))
    out.print(_summary(created))
    extra = "" if stacks_dir.resolve() == STACKS.resolve() else f" --stacks-dir {stacks_dir}"
    out.print("next:")
    out.print(f"  sovml check {name}{extra}")
    out.print(f"  pulumi stack init {name} && pulumi up -s {name}")


@tenant_app.command("templates")
def templates(
    write: Annotated[
        bool, typer.Option(help="Rewrite the generated files under stacks/templates/.")
    ] = False,
) -> None:
    """Check (or rewrite) stacks/templates/ against the definitions in
    infra/tenants/templates.py."""
    out, err = consoles()
    if write:
        written = tenantmod.write_template_files()
        for path in written:
            out.print(f"wrote {path.relative_to(ROOT)}")
        if not written:
            out.print("stacks/templates/ is up to date")
        return
    stale = tenantmod.stale_template_files()
    for path in stale:
        err.print(joined(styled("out of date:", "red"), f" {path.relative_to(ROOT)}"))
    if stale:
        err.print("run `sovml tenant templates --write`")
        raise typer.Exit(EXIT_NEGATIVE)
    out.print("stacks/templates/ is up to date")
