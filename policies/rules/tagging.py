"""Tagging: owner, cost-center and data-classification on every taggable AWS resource."""

from __future__ import annotations

from policies.rules.base import Context, Resource, rule
from policies.rules.taggable import TAGGABLE

REQUIRED_TAGS = ("owner", "cost-center", "data-classification")


@rule(
    "SOV-TAG-001",
    "required-tags",
    "medium",
    "Every taggable AWS resource carries owner, cost-center and data-classification "
    "(resource tags or the provider's default tags).",
    types=tuple(sorted(TAGGABLE)),
)
def required_tags(r: Resource, ctx: Context) -> list[str]:
    defaults = (r.provider_inputs.get("defaultTags") or {}).get("tags") or {}
    tags = {**defaults, **(r.inputs.get("tags") or {})}
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    if missing:
        return [f"missing tags {', '.join(missing)}: set them on the provider's default_tags"]
    return []
