"""Tenant stacks from templates: one definition, three outputs.

``TEMPLATES`` below is the single source of the tenant tiers (``smb``, ``enterprise``). From it:

- ``plan_tenant`` / ``create_tenant`` render ``stacks/Pulumi.<tenant>.yaml`` for ``sovml tenant
  new``, validated with :func:`infra.config.parse` before anything is written;
- ``template_files`` regenerates ``stacks/templates/<t>.yaml`` (the stack file with ``${...}``
  placeholders, for people who copy files by hand) and ``stacks/templates/<t>/Pulumi.yaml`` (the
  same template for ``pulumi new``), and a test keeps the files equal to it.

A tenant stack is ``environment: prod``: tenants are real customers, so every production rule of
``infra/config/__init__.py`` applies (3 AZs, a NAT gateway per AZ, private API endpoint, a year of logs, a
30-day key deletion window, an on-demand system pool of at least 2 nodes). The tiers differ only
in sizes and in what runs: same encryption, same residency.

This module is pure logic (no Pulumi, no terminal); ``infra/cli/tenant.py`` is the command.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra import config as cfgmod
from infra.config import RESERVED_NAMESPACES, TENANT_NAME
from policies.zones import ZONES, zone_of_region

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
TEMPLATES_DIR = STACKS / "templates"
EXAMPLE_TENANT = "acme"
"""The tenant the ``pulumi new`` prompts show as their defaults."""


class TenantError(Exception):
    """A tenant stack cannot be created; ``problems`` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# --------------------------------------------------------------------------------------------
# The definitions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A value each tenant chooses (the rest of a stack is fixed by its template)."""

    key: str
    """Config key as a stack file writes it (``sovereign-ml:tenant``, ``aws:region``)."""
    placeholder: str
    """Name of the ``${...}`` placeholder in ``stacks/templates/<t>.yaml``."""
    description: str
    """The question ``pulumi new`` asks."""


CHOICES: tuple[Choice, ...] = (
    Choice(
        "sovereign-ml:tenant",
        "TENANT",
        "Tenant name: 3-30 characters, lower-case letters, digits and '-', starting with a "
        "letter; also the stack name and the tenant's namespace",
    ),
    Choice(
        "sovereign-ml:residencyZone",
        "ZONE",
        f"Data-residency zone: one of {', '.join(ZONES)}",
    ),
    Choice("aws:region", "REGION", "AWS region, inside the residency zone"),
    Choice("sovereign-ml:owner", "OWNER", "owner tag: the team or person accountable"),
    Choice("sovereign-ml:costCenter", "COST_CENTER", "cost-center tag, for chargeback"),
    Choice(
        "sovereign-ml:monthlyBudgetUsd",
        "BUDGET_USD",
        "Monthly AWS Budget in USD (alerts at 80% actual and 100% forecast)",
    ),
    Choice(
        "sovereign-ml:budgetAlertEmails",
        "ALERT_EMAIL",
        "Addresses notified by the budget alerts",
    ),
)


@dataclass(frozen=True)
class TenantTemplate:
    """One tenant tier: what it is for and the stack values it fixes."""

    name: str
    display_name: str
    summary: str
    """One paragraph: who it is for and what it gets (stack-file header, template description)."""
    default_budget_usd: int
    fixed: Mapping[str, Any]
    """Stack values the tier fixes, keyed as in a stack file; defaults of Pulumi.yaml otherwise."""
    notes: tuple[str, ...] = ()
    """Why some values are what they are (comment lines in the stack file)."""


P = cfgmod.PROJECT
TEMPLATES: dict[str, TenantTemplate] = {
    t.name: t
    for t in (
        TenantTemplate(
            name="smb",
            display_name="sovereign-ml: SMB tenant (CPU only)",
            summary=(
                "Small-business tenant: a whole platform stack of its own, CPU only (no GPU pool), "
                "a small on-demand system pool and a spot worker pool that scales from zero; "
                "same encryption, residency and production rules as enterprise."
            ),
            default_budget_usd=1500,
            fixed={
                f"{P}:environment": "prod",
                f"{P}:tier": "smb",
                f"{P}:dataClassification": "confidential",
                # The smallest system pool prod allows (2 on-demand nodes); m7i.large still fits
                # CoreDNS, the add-ons and the platform services of one tenant.
                f"{P}:systemPoolInstanceTypes": ["m7i.large"],
                f"{P}:systemPoolMinSize": 2,
                f"{P}:systemPoolDesiredSize": 2,
                f"{P}:systemPoolMaxSize": 3,
                f"{P}:systemPoolDiskGiB": 50,
                # Pipelines are retried jobs, so spot is safe here; several same-size types keep
                # spot capacity available. Nothing runs on them while idle: min 0.
                f"{P}:workersPoolCapacityType": "SPOT",
                f"{P}:workersPoolInstanceTypes": ["m7i.xlarge", "m6i.xlarge", "m5.xlarge"],
                f"{P}:workersPoolMinSize": 0,
                f"{P}:workersPoolDesiredSize": 0,
                f"{P}:workersPoolMaxSize": 4,
                f"{P}:workersPoolDiskGiB": 50,
                f"{P}:gpuPoolEnabled": False,
                # One NAT for the stack: AWS-service traffic rides the VPC endpoints anyway.
                f"{P}:singleNatGateway": True,
                # CPU-tier inference: Triton on the worker pool, the backend chosen by measurement.
                f"{P}:servedModels": ["credit-risk:cpu"],
                # KEDA takes the model to zero replicas when idle, so the spot pool can go back
                # to zero nodes; waking it is a cold start (components/serving.py says how).
                f"{P}:servingScaleToZero": True,
                # The wake path: the floor during working hours (the zone's time zone).
                f"{P}:servingWarmHours": "Mon-Fri 08:00-18:00",
            },
            notes=(
                "prod rules still apply: 3 AZs, a private API endpoint, 365-day logs, 30-day key "
                "deletion window, a system pool of >= 2 on-demand nodes; one shared NAT gateway "
                "is allowed for the smb tier only.",
                "served models are kept up during servingWarmHours (Mon-Fri 08:00-18:00 in the "
                "zone's time zone) and scale to zero after servingIdleMinutes (default 15) "
                "without requests outside them, so the spot pool can empty; requests alone do "
                "not wake an idle model (scale its Rollout to 1, see components/serving.py); set "
                "servingScaleToZero: false to keep one replica warm.",
            ),
        ),
        TenantTemplate(
            name="enterprise",
            display_name="sovereign-ml: enterprise tenant (CPU + GPU)",
            summary=(
                "Enterprise tenant: a dedicated platform stack with an on-demand GPU pool for "
                "training and GPU inference, on-demand CPU workers and a 3-node system pool; "
                "production rules throughout."
            ),
            default_budget_usd=25000,
            fixed={
                f"{P}:environment": "prod",
                f"{P}:tier": "enterprise",
                f"{P}:dataClassification": "restricted",
                f"{P}:systemPoolMinSize": 3,
                f"{P}:systemPoolDesiredSize": 3,
                f"{P}:systemPoolMaxSize": 6,
                f"{P}:workersPoolCapacityType": "ON_DEMAND",
                f"{P}:workersPoolMinSize": 1,
                f"{P}:workersPoolDesiredSize": 1,
                f"{P}:workersPoolMaxSize": 10,
                f"{P}:gpuPoolEnabled": True,
                f"{P}:gpuPoolCapacityType": "ON_DEMAND",
                f"{P}:gpuPoolMinSize": 1,
                f"{P}:gpuPoolDesiredSize": 1,
                f"{P}:gpuPoolMaxSize": 8,
            },
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def stack_config(template: TenantTemplate, values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config:`` map of a tenant stack file, in the order a reader wants it.

    ``values`` maps each :data:`CHOICES` placeholder name (``TENANT``, ...) to its value; the
    ``budgetAlertEmails`` value is a list. Placeholders themselves (``"${TENANT}"``) are values
    too, which is how ``stacks/templates/<t>.yaml`` is made.
    """
    by_name = {c.placeholder: c.key for c in CHOICES}
    chosen = {by_name[name]: value for name, value in values.items()}
    out: dict[str, Any] = {"aws:region": chosen["aws:region"]}
    out[f"{P}:environment"] = template.fixed[f"{P}:environment"]
    out[f"{P}:residencyZone"] = chosen[f"{P}:residencyZone"]
    out[f"{P}:tier"] = template.fixed[f"{P}:tier"]
    out[f"{P}:tenant"] = chosen[f"{P}:tenant"]
    out[f"{P}:tenants"] = [chosen[f"{P}:tenant"]]
    for key in (f"{P}:owner", f"{P}:costCenter", f"{P}:monthlyBudgetUsd", f"{P}:budgetAlertEmails"):
        out[key] = chosen[key]
    for key, value in template.fixed.items():
        out.setdefault(key, value)
    return out


def _scalar(value: Any) -> str:
    """A YAML scalar: plain when it reads back as itself, else a JSON (double-quoted) string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if re.fullmatch(r"\$\{[A-Z_]+\}", text):
        return text  # a placeholder stays bare, so a number substituted in reads as a number
    try:
        plain = yaml.safe_load(f"k: {text}")["k"] == text and "#" not in text
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def stack_text(config: Mapping[str, Any], header: list[str]) -> str:
    """A stack file in the style of ``stacks/Pulumi.*.yaml``: comment header, then ``config:``."""
    lines = [f"# {h}".rstrip() for h in header] + ["config:"]
    for key, value in config.items():
        if isinstance(value, list | tuple):
            lines.append(f"  {key}:" + (" []" if not value else ""))
            lines += [f"    - {_scalar(v)}" for v in value]
        else:
            lines.append(f"  {key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 96) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return lines + ([line] if line else [])


def tenant_header(template: TenantTemplate, tenant: str) -> list[str]:
    """Comment lines at the top of a rendered tenant stack file."""
    return [
        f"Tenant {tenant}: rendered by `sovml tenant new {tenant} --template {template.name}` "
        "(infra/tenants/templates.py).",
        *_wrap(template.summary),
        *[line for note in template.notes for line in _wrap(note)],
        "Stack files hold overrides only; every key and its default is declared in "
        "../Pulumi.yaml.",
    ]


# --------------------------------------------------------------------------------------------
# sovml tenant new
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantRequest:
    """What ``sovml tenant new`` was asked for; ``None`` means the documented default."""

    name: str
    template: str = "smb"
    zone: str = "uae"
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


@dataclass(frozen=True)
class RenderedTenant:
    """A validated tenant stack file, ready to write."""

    stack: str
    path: Path
    text: str
    config: cfgmod.PlatformConfig
    template: TenantTemplate
    written: bool = False


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.items.append(message)


def name_problems(name: str) -> list[str]:
    """Why ``name`` cannot be a tenant (the ``tenants`` rule of infra/config/__init__.py), or []."""
    if not TENANT_NAME.match(name):
        return [
            f"tenant name {name!r}: 3-30 characters: lower-case letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        ]
    if name in RESERVED_NAMESPACES:
        return [
            f"tenant name {name!r} is a reserved namespace; not one of "
            f"{', '.join(RESERVED_NAMESPACES)}"
        ]
    return []


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def plan_tenant(request: TenantRequest, stacks_dir: Path = STACKS) -> RenderedTenant:
    """Render and validate the tenant's stack file without writing it.

    Raises:
        TenantError: listing every problem: a bad or reserved name, an unknown template or zone,
            a region outside the zone, an existing stack file, a missing alert address, or any
            problem :func:`infra.config.parse` finds in the rendered config.
    """
    p = _Problems()
    name = request.name
    for problem in name_problems(name):
        p.add(problem)
    template = TEMPLATES.get(request.template)
    if template is None:
        p.add(f"template {request.template!r}: one of {', '.join(TEMPLATES)}")
    zone = ZONES.get(request.zone)
    region = request.region
    if zone is None:
        p.add(f"zone {request.zone!r}: one of {', '.join(ZONES)}")
    else:
        region = region or zone.default_region
        if region not in zone.region_names:
            other = zone_of_region(region)
            where = f"; it belongs to zone {other.name}" if other else ""
            p.add(
                f"region {region!r} is outside residency zone {zone.name!r} "
                f"(allowed: {', '.join(zone.region_names)}){where}"
            )
    path = stacks_dir / f"Pulumi.{name}.yaml"
    if path.exists():
        p.add(
            f"{display_path(path)} already exists; refusing to overwrite it "
            "(pick another name, or remove the file yourself)"
        )
    budget = (
        request.budget_usd
        if request.budget_usd is not None
        else (template.default_budget_usd if template else 0)
    )
    if budget < 0:
        p.add(f"budget {budget}: 0 (no budget) or a positive number of USD")
    if budget > 0 and not request.emails:
        p.add(f"budget ${budget}/month needs at least one --email for its alerts (or --budget 0)")
    if p.items or template is None or zone is None or region is None:
        raise TenantError(p.items)

    values = {
        "TENANT": name,
        "ZONE": zone.name,
        "REGION": region,
        "OWNER": request.owner if request.owner is not None else name,
        "COST_CENTER": request.cost_center if request.cost_center is not None else f"tenant-{name}",
        "BUDGET_USD": budget,
        "ALERT_EMAIL": list(request.emails),
    }
    text = stack_text(stack_config(template, values), tenant_header(template, name))
    # Validate exactly what will be written: the text read back, as the synth will read it.
    raw = yaml.safe_load(text)["config"]
    parsed = cfgmod.parse(raw, stack=name, source=display_path(path))
    if isinstance(parsed, list):
        raise TenantError([str(problem) for problem in parsed])
    return RenderedTenant(name, path, text, parsed, template)


def create_tenant(request: TenantRequest, stacks_dir: Path = STACKS) -> RenderedTenant:
    """Validate, then write ``<stacks_dir>/Pulumi.<name>.yaml``; nothing is written on error."""
    planned = plan_tenant(request, stacks_dir)
    try:
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
    return RenderedTenant(
        planned.stack, planned.path, planned.text, planned.config, planned.template, written=True
    )


# --------------------------------------------------------------------------------------------
# The template files (generated)
# --------------------------------------------------------------------------------------------


def placeholder_values() -> dict[str, Any]:
    """Each choice as its own ``${NAME}`` placeholder (emails: a one-item list)."""
    return {
        c.placeholder: (
            [f"${{{c.placeholder}}}"] if c.key.endswith("Emails") else f"${{{c.placeholder}}}"
        )
        for c in CHOICES
    }


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Fill ``${NAME}`` placeholders in a stack template's text (what a person would do by hand)."""
    return re.sub(r"\$\{([A-Z_]+)\}", lambda m: str(values[m[1]]), text)


def stack_template_text(template: TenantTemplate) -> str:
    """``stacks/templates/<t>.yaml``: the tenant stack file with ``${...}`` placeholders."""
    header = [
        f"Stack-file template {template.name!r}: GENERATED from infra/tenants/templates.py by "
        "`sovml tenant templates --write`; edit that, not this.",
        f"Prefer `sovml tenant new NAME --template {template.name} --email ADDR`: it fills the",
        "placeholders, checks the name, the zone's regions and the whole config, and never",
        "overwrites a stack. By hand: copy it to stacks/Pulumi.<tenant>.yaml and replace",
        *[f"  ${{{c.placeholder}}}: {c.description}" for c in CHOICES],
        "",
        *_wrap(template.summary),
        *[line for note in template.notes for line in _wrap(note)],
    ]
    return stack_text(stack_config(template, placeholder_values()), header)


def _example_defaults(template: TenantTemplate) -> dict[str, str]:
    zone = ZONES["uae"]
    return {
        f"{P}:tenant": EXAMPLE_TENANT,
        f"{P}:residencyZone": zone.name,
        "aws:region": zone.default_region,
        f"{P}:owner": EXAMPLE_TENANT,
        f"{P}:costCenter": f"tenant-{EXAMPLE_TENANT}",
        f"{P}:monthlyBudgetUsd": str(template.default_budget_usd),
    }


def _config_value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _key_description(key: str) -> str:
    bare = key.removeprefix(f"{P}:")
    found = cfgmod.KEYS_BY_NAME.get(bare)
    return found.description if found else key


def project_template(template: TenantTemplate, project: Mapping[str, Any]) -> dict[str, Any]:
    """``stacks/templates/<t>/Pulumi.yaml`` for ``pulumi new``, as data.

    The project part (name, runtime, main, stackConfigDir, config schema) is the repository's
    ``Pulumi.yaml``, so the file ``pulumi new --force`` writes over it declares the same program.
    ``template.config`` prompts for every scalar a tenant chooses and carries the tier's fixed
    scalars with their values as defaults. Array values cannot come from a prompt (the CLI
    stores prompt answers as strings, and an array-typed key then fails type checking), so the
    quickstart lists them as ``pulumi config set --path`` commands.
    """
    defaults = _example_defaults(template)
    prompts: dict[str, dict[str, str]] = {}
    arrays: list[tuple[str, str]] = []
    for c in CHOICES:
        if c.key.endswith("Emails"):
            arrays.append((f"{c.key}[0]", "<alert e-mail address>"))
            continue
        prompts[c.key] = {"description": c.description, "default": defaults[c.key]}
    arrays.append((f"{P}:tenants[0]", "<tenant name>"))
    empty: list[str] = []
    for key, value in template.fixed.items():
        if isinstance(value, list) and not value:
            empty.append(key)
        elif isinstance(value, list):
            arrays += [(f"{key}[{i}]", str(v)) for i, v in enumerate(value)]
        else:
            prompts[key] = {
                "description": f"[{template.name} tier: keep the default] {_key_description(key)}",
                "default": _config_value_text(value),
            }
    sets = "\n".join(f"  pulumi config set --path '{k}' '{v}'" for k, v in arrays)
    description = (
        f"{template.summary} A template folder cannot carry the program: `pulumi new` copies "
        "only this Pulumi.yaml and `main: infra/` resolves next to it. So run it from the root "
        "of a sovereign-ml checkout: `pulumi new stacks/templates/"
        f"{template.name} --force --name {project['name']} --stack <tenant>`. It writes "
        "stacks/Pulumi.<tenant>.yaml and rewrites Pulumi.yaml with the same project (the "
        "template section dropped, a pulumi:tags entry added; `git checkout Pulumi.yaml` "
        "restores it). Preferred: `sovml tenant new <tenant> --template "
        f"{template.name} --email <address>`, which validates everything before writing."
    )
    edits = "".join(
        f"  add `{k}: []` to stacks/Pulumi.<tenant>.yaml (an empty list)\n" for k in empty
    )
    quickstart = (
        "Set the values a prompt cannot (arrays), then check the stack:\n"
        f"{sets}\n{edits}"
        "  sovml check <tenant>\n"
        "  pulumi up -s <tenant>"
    )
    project_description = str(project.get("description") or "")
    out: dict[str, Any] = {
        "name": project["name"],
        "description": f"{project_description} Tenant template: {template.name}.".lstrip(),
    }
    for key in ("runtime", "main", "stackConfigDir"):
        if key in project:
            out[key] = project[key]
    out["config"] = cfgmod.project_config_schema()
    out["template"] = {
        "displayName": template.display_name,
        "description": description,
        "quickstart": quickstart,
        "config": prompts,
    }
    return out


def project_template_text(template: TenantTemplate, project: Mapping[str, Any]) -> str:
    """The YAML text of ``stacks/templates/<t>/Pulumi.yaml``."""
    header = (
        f"# `pulumi new` template {template.name!r}: GENERATED from infra/tenants/templates.py by\n"
        "# `sovml tenant templates --write`; edit that, not this.\n"
    )
    return header + yaml.dump(
        project_template(template, project),
        Dumper=_BlockDumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
    )


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as ``|`` blocks (the quickstart stays legible)."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def template_files(root: Path = ROOT) -> dict[Path, str]:
    """Every generated template file and its content."""
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    out: dict[Path, str] = {}
    for t in TEMPLATES.values():
        out[root / "stacks" / "templates" / f"{t.name}.yaml"] = stack_template_text(t)
        out[root / "stacks" / "templates" / t.name / "Pulumi.yaml"] = project_template_text(
            t, project
        )
    return out


def stale_template_files(root: Path = ROOT) -> list[Path]:
    """Generated template files that are missing or differ from the definitions."""
    return [
        path
        for path, text in template_files(root).items()
        if not path.is_file() or path.read_text() != text
    ]


def write_template_files(root: Path = ROOT) -> list[Path]:
    """Rewrite the stale template files; returns those written."""
    written = []
    for path, text in template_files(root).items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
            written.append(path)
    return written


__all__ = [
    "CHOICES",
    "TEMPLATES",
    "RenderedTenant",
    "TenantError",
    "TenantRequest",
    "create_tenant",
    "plan_tenant",
    "stale_template_files",
    "template_files",
    "write_template_files",
]
