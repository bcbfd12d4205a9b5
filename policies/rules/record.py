"""Read the synth record (build/<stack>/resources.json) into the rules' view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.base import Context, Resource


def context_from_record(record: Mapping[str, Any]) -> Context:
    """The rule context of a synthesized stack."""
    cfg = record.get("config") or {}
    return Context(zone=cfg.get("zone", "uae"), environment=cfg.get("environment", "prod"))


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
