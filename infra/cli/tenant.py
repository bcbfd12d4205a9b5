"""``sovml tenant``: create tenant stacks from the templates, and offboard a tenant.

Register it on the main app with ``app.add_typer(tenant_app, name="tenant")``.

Exit codes as in :mod:`infra.cli.common`: 0 success, 1 template files out of date (``templates``
without ``--write``) or a tenant only partly shredded (``offboard``: a key refused), 2 bad input
(name, template, zone, region, existing stack, config, an unconfirmed offboarding), 3 a key
service unreachable or its credentials missing (``offboard``, before any key changed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra import tenants as tenantmod
from infra.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    bounded_message,
    consoles,
    error_line,
    fail,
    folder_problem,
    joined,
    print_bounded,
    shown_path,
    styled,
)
from infra.config.redaction import shown_name
from infra.config.stackfile import ROOT, STACKS
from infra.synth.runner import BUILD
from infra.tenants import offboard as offboardmod
from infra.tenants.shredders import ServiceUnavailableError
from pipelines.audit.log import AuditError

tenant_app = typer.Typer(
    help="Create tenant stacks (smb, enterprise) from the templates; offboard a tenant.",
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
    account_id: Annotated[
        str | None,
        typer.Option(
            "--account-id",
            help="AWS account (12 digits) the stack deploys into; its zone ECR registry is the "
            "mirror every image and chart comes from; required.",
        ),
    ] = None,
    oidc_issuer: Annotated[
        str | None,
        typer.Option(
            "--oidc-issuer",
            help="OIDC issuer (https) whose tokens the inference gateway accepts; required.",
        ),
    ] = None,
    oidc_jwks_uri: Annotated[
        str | None,
        typer.Option("--oidc-jwks-uri", help="The issuer's JWKS URL (https); required."),
    ] = None,
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = STACKS,
) -> None:
    """Render stacks/Pulumi.NAME.yaml from a template, validated before it is written.

    Refuses a bad or reserved tenant name, a region outside the zone, a missing or non-https
    --alert-webhook, a missing or malformed --account-id, a missing or non-https --oidc-issuer or
    --oidc-jwks-uri and an existing stack file; nothing is
    written when anything is wrong.
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
        account_id=account_id,
        oidc_issuer=oidc_issuer,
        oidc_jwks_uri=oidc_jwks_uri,
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


def _plan_table(plan: offboardmod.OffboardPlan) -> Table:
    """One row per key the plan shreds: service, key, purpose, what will be done."""
    table = Table(
        title=(
            f"tenant {plan.tenant} (stack {plan.stack}, {plan.region}): "
            f"{len(plan.keys)} keys to shred"
        ),
        title_justify="left",
    )
    for column in ("service", "key", "purpose", "action"):
        table.add_column(column, overflow="fold")
    for key in plan.keys:
        if key.problem is not None:
            action = styled(f"cannot: {key.problem}", "red")
        elif key.service == "kms":
            action = f"schedule deletion, {plan.deletion_window_days}-day window"
        else:
            action = f"allow deletion, delete now (mount {plan.transit_mount})"
        table.add_row(key.service, key.name, key.purpose, action)
    return table


_OUTCOME_STYLE = {"scheduled": "green", "deleted": "green", "already-pending": "dim",
                  "absent": "dim", "refused": "red"}  # fmt: skip


def _certificate_table(certificate: offboardmod.Certificate) -> Table:
    """One row per key of the certificate: before, after, deletion date, outcome."""
    body = certificate.body
    table = Table(
        title=f"tenant {body['tenant']} (stack {body['stack']}): {body['outcome']}",
        title_justify="left",
    )
    for column in ("service", "key", "key id", "before", "after", "deleted on", "outcome"):
        table.add_column(column, overflow="fold")
    for key in body["keys"]:
        table.add_row(
            key["service"],
            key["name"],
            key["key_id"] or "-",
            key["state_before"],
            key["state_after"],
            key["scheduled_deletion"] or ("now" if key["outcome"] == "deleted" else "-"),
            styled(key["outcome"], _OUTCOME_STYLE[key["outcome"]]),
        )
    return table


def _interactive() -> bool:
    """Whether a person can answer the confirmation (stdin is a terminal)."""
    return sys.stdin.isatty()


def _confirm(out: Console, err: Console, plan: offboardmod.OffboardPlan) -> None:
    """Ask for the tenant's name; anything else ends the command with 2, nothing changed."""
    if not _interactive():
        fail(
            err,
            f"offboarding {plan.tenant} destroys its data and needs confirmation: stdin is not "
            "a terminal; pass --yes (or --dry-run to see the plan); nothing was changed",
        )
    out.print(_plan_table(plan))
    answer = typer.prompt(
        f"type the tenant name ({plan.tenant}) to shred these keys", default="", show_default=False
    )
    if answer.strip() != plan.tenant:
        fail(err, f"not confirmed ({answer.strip()!r} is not {plan.tenant!r}); nothing changed")


@tenant_app.command("offboard")
def offboard(
    name: Annotated[str, typer.Argument(help="Tenant to offboard (its stack's tenant).")],
    stacks_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = STACKS,
    build_dir: Annotated[
        Path, typer.Option(help="Folder of synth records; certificates go to its offboarding/.")
    ] = BUILD,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing, call no service.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    region: Annotated[
        str | None,
        typer.Option(
            help="Region of the KMS keys, inside the stack's zone (default: the stack's)."
        ),
    ] = None,
) -> None:
    """Crypto-shred a tenant: schedule its KMS keys' deletion, delete its Vault transit keys.

    The keys come from the tenant stack's synth record: its KMS keys by alias (deleted after
    the stack's kmsDeletionWindowDays) and its Vault transit keys (VAULT_ADDR, VAULT_TOKEN).

    Every service is checked before any key changes; a certificate (JSON, 0600) is written to
    BUILD_DIR/offboarding/. Running it again reports keys already pending or gone.
    """
    out, err = consoles()
    if problem := folder_problem(build_dir):
        fail(err, f"--build-dir {build_dir}: {problem}")
    try:
        with out.status(f"reading the keys of {shown_name(name)} ..."):
            plan = offboardmod.plan_offboarding(name, stacks_dir, build_dir, region)
    except offboardmod.OffboardInputError as exc:
        error_line(err, str(exc))
        print_bounded(err, exc.problems, lambda shown: "\n".join(f"  - {p}" for p in shown))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if dry_run:
        out.print(_plan_table(plan))
        out.print("dry run: nothing was changed, no service was called")
        return
    if not yes:
        _confirm(out, err, plan)
    try:
        services = offboardmod.default_shredders(plan)
        certificate = offboardmod.shred_plan(plan, services)
    except ServiceUnavailableError as exc:
        fail(err, f"{exc}; nothing was changed", EXIT_INTERNAL)
    try:
        certificate = offboardmod.write_certificate(certificate, build_dir)
    except OSError as exc:
        out.print(_certificate_table(certificate))
        fail(err, f"keys shredded, but the certificate was not written: {exc}", EXIT_INTERNAL)
    out.print(_certificate_table(certificate))
    try:
        offboardmod.record(certificate)
    except AuditError as exc:
        fail(err, f"keys shredded and certified, but not recorded: {exc}", EXIT_INTERNAL)
    out.print(
        joined(
            "certificate: ",
            styled(shown_path(certificate.path), "bold"),
            f" (sha256 {certificate.sha256})",
        )
    )
    if not certificate.complete:
        for key in certificate.refused:  # a negative result, not an error: no "error:" prefix
            line = f"refused: {key['service']} {key['name']}: {key['detail']}"
            err.print(styled(bounded_message(line), "red"), soft_wrap=True)
        raise typer.Exit(EXIT_NEGATIVE)
