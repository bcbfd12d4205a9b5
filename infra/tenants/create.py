"""``sovml tenant new`` as logic: a request checked, rendered, validated, then written once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from infra.config import (
    PROJECT,
    RESERVED_NAMESPACES,
    TENANT_NAME,
    TENANT_NAME_RULE,
    PlatformConfig,
)
from infra.config.problems import StackFileError
from infra.config.redaction import quoted
from infra.config.stackfile import STACKS, validate_bytes
from infra.tenants.render import stack_config, stack_text, tenant_header
from infra.tenants.templates import TEMPLATES, TenantTemplate
from policies.zones import ZONES, ResidencyZone, zone_of_region


class TenantError(Exception):
    """A tenant stack cannot be created; ``problems`` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class TenantRequest:
    """What ``sovml tenant new`` was asked for; ``None`` means the documented default."""

    name: str
    """Tenant name; also the stack name and its namespace."""
    template: str = "smb"
    """Tier: a key of ``TEMPLATES``."""
    zone: str = "uae"
    """Residency zone: a key of ``policies.zones.ZONES``."""
    region: str | None = None
    """Default: the zone's default region."""
    owner: str | None = None
    """Default: the tenant name."""
    cost_center: str | None = None
    """Default: ``tenant-<name>``."""
    budget_usd: int | None = None
    """Default: the template's ``default_budget_usd``; 0 for no budget."""
    emails: tuple[str, ...] = ()
    """Budget alert addresses; required when the budget is above 0."""
    alert_webhook: str | None = None
    """Incident webhook (https) that receives the pages; required (a tenant stack is prod)."""
    account_id: str | None = None
    """The AWS account (12 digits) the stack deploys into; required: its ECR registry is the
    zone mirror a tenant stack pulls every image and chart from (a tenant stack is prod)."""
    oidc_issuer: str | None = None
    """OIDC issuer (https) of the inference gateway's tokens; required (a tenant stack is prod)."""
    oidc_jwks_uri: str | None = None
    """The issuer's JWKS URL (https); required with the issuer."""


@dataclass(frozen=True)
class RenderedTenant:
    """A validated tenant stack file, ready to write."""

    stack: str
    """Stack (and tenant) name."""
    path: Path
    """Where the stack file goes."""
    text: str
    """The stack file's content."""
    config: PlatformConfig
    """The config parsed back from ``text``."""
    template: TenantTemplate
    """The tier it was rendered from."""
    written: bool = False
    """Whether ``path`` has been written."""


@dataclass(frozen=True)
class _Resolved:
    """A request with its defaults filled in, every check passed."""

    template: TenantTemplate
    """The requested tier."""
    zone: ResidencyZone
    """The requested residency zone."""
    region: str
    """The region, the zone's default unless one was asked for."""
    budget: int
    """Monthly budget in USD, the tier's unless one was asked for."""
    path: Path
    """The stack file to write (it does not exist yet)."""


def name_problems(name: str) -> list[str]:
    """Why ``name`` cannot be a tenant (the ``tenants`` rule of infra/config/parsing.py), or []."""
    if not TENANT_NAME.fullmatch(name):
        return [f"tenant name {quoted(name)}: {TENANT_NAME_RULE} and not ending with '-'"]
    if name in RESERVED_NAMESPACES:
        return [
            f"tenant name {quoted(name)} is a reserved namespace; not one of "
            f"{', '.join(RESERVED_NAMESPACES)}"
        ]
    return []


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _resolve(request: TenantRequest, stacks_dir: Path) -> _Resolved:
    """Fill in the request's defaults and check it, raising every problem at once."""
    problems = name_problems(request.name)
    template = TEMPLATES.get(request.template)
    if template is None:
        problems.append(f"template {quoted(request.template)}: one of {', '.join(TEMPLATES)}")
    zone = ZONES.get(request.zone)
    region = request.region
    if zone is None:
        problems.append(f"zone {quoted(request.zone)}: one of {', '.join(ZONES)}")
    else:
        region = region or zone.default_region
        if region not in zone.region_names:
            other = zone_of_region(region)
            where = f"; it belongs to zone {other.name}" if other else ""
            problems.append(
                f"region {quoted(region)} is outside residency zone {zone.name!r} "
                f"(allowed: {', '.join(zone.region_names)}){where}"
            )
    path = stacks_dir / f"Pulumi.{request.name}.yaml"
    if path.exists():
        problems.append(
            f"{display_path(path)} already exists; refusing to overwrite it "
            "(pick another name, or remove the file yourself)"
        )
    budget = (
        request.budget_usd
        if request.budget_usd is not None
        else (template.default_budget_usd if template else 0)
    )
    if budget < 0:
        problems.append(f"budget {budget}: 0 (no budget) or a positive number of USD")
    elif budget == 0 and template is not None and template.fixed.get(f"{PROJECT}:tier") == "smb":
        problems.append(
            "budget 0: the smb tier needs a monthly budget with alerts (a tier rule, "
            "infra/config/tiers.py); give --budget USD and --email ADDR"
        )
    if budget > 0 and not request.emails:
        problems.append(
            f"budget ${budget}/month needs at least one --email for its alerts (or --budget 0)"
        )
    if not request.alert_webhook:
        # A tenant stack is prod, and a prod Alertmanager without a paging receiver drops
        # pages silently (infra/config/alerting.py refuses it; this says which option to give).
        problems.append(
            "a tenant stack is prod and must page someone: give --alert-webhook https://URL "
            "(the incident webhook that receives its pages)"
        )
    if not (request.oidc_issuer and request.oidc_jwks_uri):
        problems.append(
            "a tenant stack is prod and its models answer only tokens of its identity "
            "provider: give --oidc-issuer https://URL and --oidc-jwks-uri https://URL"
        )
    if not request.account_id:
        problems.append(
            "a tenant stack is prod and pulls from its zone's registry: give --account-id "
            "<12 digits> (the AWS account it deploys into)"
        )
    if problems or template is None or zone is None or region is None:
        raise TenantError(problems)
    return _Resolved(template, zone, region, budget, path)


def plan_tenant(request: TenantRequest, stacks_dir: Path = STACKS) -> RenderedTenant:
    """Render and validate the tenant's stack file without writing it.

    Raises:
        TenantError: listing every problem: a bad or reserved name, an unknown template or zone,
            a region outside the zone, an existing stack file, a missing alert address or
            webhook, or any problem :func:`infra.config.parse` finds in the rendered config
            (a webhook that is not https among them).
    """
    name = request.name
    resolved = _resolve(request, stacks_dir)
    values = {
        "TENANT": name,
        "ZONE": resolved.zone.name,
        "REGION": resolved.region,
        "OWNER": request.owner if request.owner is not None else name,
        "COST_CENTER": request.cost_center if request.cost_center is not None else f"tenant-{name}",
        "BUDGET_USD": resolved.budget,
        "ALERT_EMAIL": list(request.emails),
        "ALERT_WEBHOOK": request.alert_webhook,
        "ACCOUNT_ID": [request.account_id],
        "OIDC_ISSUER": request.oidc_issuer,
        "OIDC_JWKS_URI": request.oidc_jwks_uri,
    }
    template = resolved.template
    text = stack_text(stack_config(template, values), tenant_header(template, name))
    # Validate exactly what will be written: the bytes read back through the one validation
    # path every command uses (infra.config.stackfile), as the synth will read them.
    try:
        parsed, _ = validate_bytes(text.encode(), stack=name, source=display_path(resolved.path))
    except StackFileError as exc:
        raise TenantError([str(exc)]) from None
    if isinstance(parsed, list):
        raise TenantError([str(problem) for problem in parsed])
    return RenderedTenant(name, resolved.path, text, parsed, template)


def create_tenant(request: TenantRequest, stacks_dir: Path = STACKS) -> RenderedTenant:
    """Validate, then write ``<stacks_dir>/Pulumi.<name>.yaml``; nothing is written on error."""
    planned = plan_tenant(request, stacks_dir)
    try:
        planned.path.parent.mkdir(parents=True, exist_ok=True)
        # "x": create only; a file that appeared since the check is not overwritten either.
        with planned.path.open("x") as f:
            f.write(planned.text)
    except FileExistsError:
        raise TenantError(
            [f"{display_path(planned.path)} already exists; refusing to overwrite it"]
        ) from None
    except OSError as exc:
        where = display_path(planned.path)
        raise TenantError([f"{where}: cannot write ({exc.strerror})"]) from None
    return dataclasses.replace(planned, written=True)
