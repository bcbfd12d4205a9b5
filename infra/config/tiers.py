"""What a tier requires of a stack, whoever wrote the stack file.

``infra/tenants/templates.py`` renders a tier's values, but a stack file can be edited afterwards
(or written by hand), so the values that *define* a tier are rules checked here on every stack;
the rest of a template is a default a tenant may change.

Rules (``smb``): no GPU pool (``gpuPoolEnabled: false``; the key defaults to true, so an smb stack
says so), models served on the ``cpu`` profile only, a monthly budget above 0 (its alert
addresses are then required by the budget section), and a ``tenant`` that is one of ``tenants``
(the stack belongs to one tenant, whose namespace it declares). The tier also *allows* one shared
NAT gateway in prod (``parsing._parse_network``).

Defaults (``smb``), not rules: the pool instance types and sizes, spot workers, scale-to-zero
serving and its warm hours, the data classification. A tenant may keep a model warm or size
its pools; the prod rules (3 AZs, an on-demand system pool of at least 2 nodes, ...) bound them
as for any stack, and the budget alerts when the bill grows.

``enterprise`` adds no rule beyond the production rules every stack meets.
"""

from __future__ import annotations

import json
from typing import Any

from infra.config.reader import Reader

SMB = "smb"
"""The small-business tier."""


def _enabled(value: Any) -> bool:
    """Whether a raw boolean (native or engine text) says true."""
    return value is True or value == "true"


def _zero(value: Any) -> bool:
    """Whether a raw integer (native or engine text) is 0; an invalid one is reported elsewhere."""
    return (isinstance(value, int) and not isinstance(value, bool) and value == 0) or value == "0"


def _items(value: Any) -> list[Any]:
    """A raw list (native, or JSON text from the engine); [] when it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


def check_tier(r: Reader, tier: str | None) -> None:
    """A problem for every rule of ``tier`` the stack breaks (``None``: tier invalid, no rules)."""
    if tier != SMB:
        return
    cpu_only = "for the smb tier (CPU only; use tier enterprise for GPUs)"
    if _enabled(r.peek("gpuPoolEnabled")):
        r.problem("gpuPoolEnabled", r.peek("gpuPoolEnabled"), f"false {cpu_only}")
    for item in _items(r.peek("servedModels")):
        if isinstance(item, str) and item.endswith(":gpu"):
            r.problem("servedModels", item, f"'name:cpu' {cpu_only}")
    if _zero(r.peek("monthlyBudgetUsd")):
        r.problem(
            "monthlyBudgetUsd",
            0,
            "above 0 for the smb tier (a small business gets alerts before its bill grows); "
            "set it with budgetAlertEmails",
        )
    tenant, tenants = r.peek("tenant"), _items(r.peek("tenants"))
    if isinstance(tenant, str) and tenant not in tenants:
        r.problem(
            "tenant",
            tenant,
            "the smb stack's own tenant, one of tenants (a tenant name; its namespace)",
        )
