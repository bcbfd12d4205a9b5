"""The generated files under ``stacks/templates/``: the stack-file templates and ``pulumi new``.

For each tier, ``stacks/templates/<t>.yaml`` is the tenant stack file with ``${...}``
placeholders (for people who copy files by hand) and ``stacks/templates/<t>/Pulumi.yaml`` is the
same template for ``pulumi new``. Both are generated from ``infra.tenants.templates`` by ``sovml
tenant templates --write``, and a test keeps them current.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.config import KEYS_BY_NAME, project_config_schema
from infra.config import PROJECT as P
from infra.config.stackfile import ROOT
from infra.tenants.render import stack_config, stack_text, template_prose
from infra.tenants.templates import CHOICES, TEMPLATES, TenantTemplate
from policies.zones import ZONES

EXAMPLE_TENANT = "acme"
"""The tenant the ``pulumi new`` prompts show as their defaults."""


# --------------------------------------------------------------------------------------------
# The stack-file templates (stacks/templates/<t>.yaml)
# --------------------------------------------------------------------------------------------


def placeholder_values() -> dict[str, Any]:
    """Each choice as its own ``${NAME}`` placeholder (list keys: a one-item list)."""
    return {
        c.placeholder: [f"${{{c.placeholder}}}"] if c.array_hint else f"${{{c.placeholder}}}"
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
        f"Prefer `sovml tenant new NAME --template {template.name} --email ADDR "
        "--alert-webhook URL",
        "--oidc-issuer URL --oidc-jwks-uri URL`: it fills the placeholders, checks the name,",
        "the zone's regions and the whole config (the webhook must be https: the stack's pages",
        "go there; so must the issuer and its keys), and never overwrites a stack.",
        "By hand: copy it to stacks/Pulumi.<tenant>.yaml and replace",
        *[f"  ${{{c.placeholder}}}: {c.description}" for c in CHOICES],
        "",
        *template_prose(template),
    ]
    return stack_text(stack_config(template, placeholder_values()), header)


# --------------------------------------------------------------------------------------------
# The pulumi new templates (stacks/templates/<t>/Pulumi.yaml)
# --------------------------------------------------------------------------------------------


def _example_defaults(template: TenantTemplate) -> dict[str, str]:
    """The prompts' defaults: the example tenant in the UAE with the tier's budget."""
    zone = ZONES["uae"]
    return {
        f"{P}:tenant": EXAMPLE_TENANT,
        f"{P}:residencyZone": zone.name,
        "aws:region": zone.default_region,
        f"{P}:owner": EXAMPLE_TENANT,
        f"{P}:costCenter": f"tenant-{EXAMPLE_TENANT}",
        f"{P}:monthlyBudgetUsd": str(template.default_budget_usd),
        f"{P}:alertWebhookUrl": f"https://alerts.{EXAMPLE_TENANT}.example/alertmanager",
        f"{P}:gatewayOidcIssuer": f"https://login.{EXAMPLE_TENANT}.example/realms/ml",
        f"{P}:gatewayOidcJwksUri": f"https://login.{EXAMPLE_TENANT}.example/realms/ml/certs",
    }


def _config_value_text(value: Any) -> str:
    """A prompt default as the CLI stores it: text (booleans in YAML's spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _key_description(key: str) -> str:
    """The description ``Pulumi.yaml`` gives ``key``; the key itself when it declares none."""
    bare = key.removeprefix(f"{P}:")
    found = KEYS_BY_NAME.get(bare)
    return found.description if found else key


def _prompts(
    template: TenantTemplate,
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]], list[str]]:
    """What ``pulumi new`` asks, and what it cannot ask.

    Returns the prompts (every scalar a tenant chooses, then the tier's fixed scalars with their
    values as defaults), the ``--path`` assignments of the array values, and the keys whose
    fixed value is an empty list.
    """
    defaults = _example_defaults(template)
    prompts: dict[str, dict[str, str]] = {}
    arrays: list[tuple[str, str]] = []
    for c in CHOICES:
        if c.array_hint:
            arrays.append((f"{c.key}[0]", c.array_hint))
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
    return prompts, arrays, empty


def _template_description(template: TenantTemplate, project_name: str) -> str:
    """The template's description: what it is, how to run it, and the preferred command."""
    return (
        f"{template.summary} A template folder cannot carry the program: `pulumi new` copies "
        "only this Pulumi.yaml and `main: infra/` resolves next to it. So run it from the root "
        "of a sovereign-ml checkout: `pulumi new stacks/templates/"
        f"{template.name} --force --name {project_name} --stack <tenant>`. It writes "
        "stacks/Pulumi.<tenant>.yaml and rewrites Pulumi.yaml with the same project (the "
        "template section dropped, a pulumi:tags entry added; `git checkout Pulumi.yaml` "
        "restores it). Preferred: `sovml tenant new <tenant> --template "
        f"{template.name} --email <address> --alert-webhook <https-url> --oidc-issuer "
        "<https-url> --oidc-jwks-uri <https-url>`, which validates "
        "everything before writing."
    )


def _quickstart(arrays: list[tuple[str, str]], empty: list[str]) -> str:
    """The steps after ``pulumi new``: set the arrays, add the empty lists, check, deploy."""
    sets = "\n".join(f"  pulumi config set --path '{k}' '{v}'" for k, v in arrays)
    edits = "".join(
        f"  add `{k}: []` to stacks/Pulumi.<tenant>.yaml (an empty list)\n" for k in empty
    )
    return (
        "Set the values a prompt cannot (arrays), then check the stack:\n"
        f"{sets}\n{edits}"
        "  sovml check <tenant>\n"
        "  pulumi up -s <tenant>"
    )


def project_template(template: TenantTemplate, project: Mapping[str, Any]) -> dict[str, Any]:
    """``stacks/templates/<t>/Pulumi.yaml`` for ``pulumi new``, as data.

    The project part (name, runtime, main, stackConfigDir, config schema) is the repository's
    ``Pulumi.yaml``, so the file ``pulumi new --force`` writes over it declares the same program.
    ``template.config`` prompts for every scalar a tenant chooses and carries the tier's fixed
    scalars with their values as defaults. Array values cannot come from a prompt (the CLI
    stores prompt answers as strings, and an array-typed key then fails type checking), so the
    quickstart lists them as ``pulumi config set --path`` commands.
    """
    prompts, arrays, empty = _prompts(template)
    project_description = str(project.get("description") or "")
    out: dict[str, Any] = {
        "name": project["name"],
        "description": f"{project_description} Tenant template: {template.name}.".lstrip(),
    }
    for key in ("runtime", "main", "stackConfigDir"):
        if key in project:
            out[key] = project[key]
    out["config"] = project_config_schema()
    out["template"] = {
        "displayName": template.display_name,
        "description": _template_description(template, project["name"]),
        "quickstart": _quickstart(arrays, empty),
        "config": prompts,
    }
    return out


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as ``|`` blocks (the quickstart stays legible)."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """A string node, block style when it spans lines."""
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


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


# --------------------------------------------------------------------------------------------
# Checking and writing them
# --------------------------------------------------------------------------------------------


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


def _stale(root: Path) -> dict[Path, str]:
    """The generated files that are missing or differ, with the content they should have."""
    return {
        path: text
        for path, text in template_files(root).items()
        if not path.is_file() or path.read_text() != text
    }


def stale_template_files(root: Path = ROOT) -> list[Path]:
    """Generated template files that are missing or differ from the definitions."""
    return list(_stale(root))


def write_template_files(root: Path = ROOT) -> list[Path]:
    """Rewrite the stale template files; returns those written."""
    written = []
    for path, text in _stale(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        written.append(path)
    return written
