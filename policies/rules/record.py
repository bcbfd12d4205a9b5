"""Read the synth record (build/<stack>/resources.json) into the rules' view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.base import RULES, Context, Resource


def context_from_record(record: Mapping[str, Any]) -> Context:
    """The rule context of a synthesized stack."""
    return context_from_config(record.get("config") or {})


CONTEXT_LISTS = (
    "allowed_account_ids",
    "in_zone_external_resources",
    "ingress_allowed_cidrs",
    "unpinned_images",
)
"""Context fields that are lists of strings, named as in the record's config (the record never
carries ``unpinned_images``: only the pack config written by ``sovml`` does)."""


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


def pack_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The context part of a stack's config as one CrossGuard policy's config holds it (the
    properties of ``CONFIG_SCHEMA`` in ``policies/crossguard.py``): the pack then builds the same
    :class:`Context` as :func:`context_from_config` does offline."""
    ctx = context_from_config(cfg)
    lists = {name: list(getattr(ctx, name)) for name in CONTEXT_LISTS}
    return {"zone": ctx.zone, "environment": ctx.environment, **lists}


def policy_pack_config(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``--policy-pack-config`` document for a stack: every policy name -> its config."""
    return {r.name: pack_config(cfg) for r in RULES}


def resources_from_record(record: Mapping[str, Any]) -> list[Resource]:
    """Custom resources and providers of a record, with their provider's inputs attached."""
    by_urn = {r["urn"]: r for r in record.get("resources", [])}
    out = []
    for r in record.get("resources", []):
        # A Helm v4 Chart is a component the provider renders; offline only its values exist.
        if not r.get("custom") and r["type"] != "kubernetes:helm.sh/v4:Chart":
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
                outputs={**(r.get("outputs") or {}), **({"id": r["id"]} if r.get("id") else {})},
            )
        )
    return out
