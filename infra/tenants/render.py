"""How a tenant stack file is written: its ``config:`` map, its YAML text and its comment header."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from infra.config import PROJECT as P
from infra.tenants.templates import CHOICES, TenantTemplate


def stack_config(template: TenantTemplate, values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config:`` map of a tenant stack file, in the order a reader wants it.

    ``values`` maps each :data:`CHOICES` placeholder name (``TENANT``, ...) to its value; the
    ``budgetAlertEmails`` and ``allowedAccountIds`` values are lists. Placeholders themselves
    (``"${TENANT}"``) are values too, which is how ``stacks/templates/<t>.yaml`` is made.
    """
    by_name = {c.placeholder: c.key for c in CHOICES}
    chosen = {by_name[name]: value for name, value in values.items()}
    out: dict[str, Any] = {"aws:region": chosen["aws:region"]}
    out[f"{P}:environment"] = template.fixed[f"{P}:environment"]
    out[f"{P}:residencyZone"] = chosen[f"{P}:residencyZone"]
    out[f"{P}:tier"] = template.fixed[f"{P}:tier"]
    out[f"{P}:tenant"] = chosen[f"{P}:tenant"]
    out[f"{P}:tenants"] = [chosen[f"{P}:tenant"]]
    for key in (
        f"{P}:allowedAccountIds",
        f"{P}:owner",
        f"{P}:costCenter",
        f"{P}:monthlyBudgetUsd",
        f"{P}:budgetAlertEmails",
        f"{P}:alertWebhookUrl",
        f"{P}:gatewayOidcIssuer",
        f"{P}:gatewayOidcJwksUri",
    ):
        out[key] = chosen[key]
    for key, value in template.fixed.items():
        out.setdefault(key, value)
    return out


TEXT_PLACEHOLDERS = ("${ACCOUNT_ID}",)
"""Placeholders whose value is all digits but must read back as text."""

_TAME = re.compile(r"[A-Za-z0-9_./@+-][A-Za-z0-9 _./@+=:-]{0,127}")
"""Text that may be written as a plain YAML scalar if it also reads back as itself."""


def _scalar(value: Any) -> str:
    """A YAML scalar: plain when it reads back as itself, else a JSON (double-quoted) string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if re.fullmatch(r"\$\{[A-Z_]+\}", text):
        # A placeholder stays bare, so a number substituted in reads as a number; one whose value
        # is digits that must stay text (an account id may start with 0) is quoted.
        return json.dumps(text) if text in TEXT_PLACEHOLDERS else text
    # Only short, tame text is a candidate for a plain scalar (anything else, e.g. a value from
    # the command line with brackets, newlines or anchors, is quoted without asking YAML).
    plain = bool(_TAME.fullmatch(text))
    if plain:
        try:
            plain = yaml.safe_load(f"k: {text}")["k"] == text
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
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


def wrap(text: str, width: int = 96) -> list[str]:
    """``text`` as lines of at most ``width`` characters (a longer word stays whole)."""
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return lines + ([line] if line else [])


def template_prose(template: TenantTemplate) -> list[str]:
    """The tier's summary and notes as comment lines."""
    return [*wrap(template.summary), *[line for note in template.notes for line in wrap(note)]]


def tenant_header(template: TenantTemplate, tenant: str) -> list[str]:
    """Comment lines at the top of a rendered tenant stack file."""
    return [
        f"Tenant {tenant}: rendered by `sovml tenant new {tenant} --template {template.name}` "
        "(infra/tenants/templates.py).",
        *template_prose(template),
        "Stack files hold overrides only; every key and its default is declared in "
        "../Pulumi.yaml.",
    ]
