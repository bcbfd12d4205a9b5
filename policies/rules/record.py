"""Read the synth record (build/<stack>/resources.json) into the rules' view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.base import Context, Resource


def context_from_record(record: Mapping[str, Any]) -> Context:
    """The rule context of a synthesized stack."""
    return context_from_config(record.get("config") or {})


CONTEXT_LISTS = ("allowed_account_ids", "in_zone_external_resources", "ingress_allowed_cidrs")
"""Context fields that are lists of strings, named as in the record's config."""


def context_from_config(cfg: Mapping[str, Any]) -> Context:
    """The rule context from a stack's validated config (the record's ``config``, or the
    CrossGuard pack config that ``sovml`` writes beside the record)."""
    lists = {
        name: tuple(str(v) for v in cfg.get(name) or () if isinstance(v, (str, int)))
        for name in CONTEXT_LISTS
    }
    return Context(
        zone=str(cfg.get("zone") or "uae"),
        environment=str(cfg.get("environment") or "prod"),
        **lists,
    )


def resources_from_record(record: Mapping[str, Any]) -> list[Resource]:
    """Custom resources and providers of a record, with their provider's inputs attached."""
    by_urn = {r["urn"]: r for r in record.get("resources", [])}
    out = []
    for r in record.get("resources", []):
        if not r.get("custom"):
            continue
        provider = by_urn.get(r.get("provider") or "", {})
        out.append(
            Resource(
                type=r["type"],
                name=r["name"],
                inputs=r.get("inputs") or {},
                urn=r["urn"],
                provider_inputs=provider.get("inputs") or {},
                dependencies=tuple(r.get("dependencies") or ()),
            )
        )
    return out
