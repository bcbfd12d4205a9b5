"""Residency: nothing is created, replicated, logged or copied outside the stack's zone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from policies.rules.base import Context, Resource, rule

# arn:partition:service:REGION:account:... ; S3 and IAM ARNs carry no region and are skipped.
ARN = re.compile(r"arn:aws[a-z-]*:([a-z0-9-]+):([a-z]{2}(?:-[a-z]+)+-\d):")
REGION_KEYS = {"region", "regionName", "sourceRegion", "destinationRegion", "replicaRegion"}


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


@rule(
    "SOV-RES-001",
    "provider-region-in-zone",
    "critical",
    "The AWS provider (and any per-resource region override) stays inside the residency zone.",
)
def provider_region_in_zone(r: Resource, ctx: Context) -> list[str]:
    if r.type == "pulumi:providers:aws":
        region = r.inputs.get("region")
        if region not in ctx.regions:
            return [
                f"AWS provider region is {region!r}, outside residency zone '{ctx.zone}' "
                f"({', '.join(ctx.regions) or 'no regions'}): set aws:region in the stack file "
                "to a region of the zone"
            ]
        return []
    if r.type.startswith("aws:") and r.inputs.get("region") not in (None, *ctx.regions):
        return [
            f"region override {r.inputs['region']!r} is outside residency zone '{ctx.zone}': "
            "remove the per-resource region so the stack's provider region applies"
        ]
    return []


@rule(
    "SOV-RES-002",
    "no-out-of-zone-destinations",
    "critical",
    "No replication, backup, log, snapshot or other destination (any ARN or region field) "
    "outside the residency zone.",
)
def no_out_of_zone_destinations(r: Resource, ctx: Context) -> list[str]:
    if not r.type.startswith("aws:") or not ctx.regions:
        return []
    found: list[str] = []
    for key, value in _walk(dict(r.inputs)):
        if not isinstance(value, str):
            continue
        if key in REGION_KEYS and key != "region" and value not in ctx.regions:
            found.append(f"{key} = {value!r} points outside residency zone '{ctx.zone}'")
        for m in ARN.finditer(value):
            if m[2] not in ctx.regions:
                found.append(
                    f"{key or 'input'} refers to {m[1]} in {m[2]}, outside residency zone "
                    f"'{ctx.zone}': keep replicas, backups, logs and snapshots in "
                    f"{', '.join(ctx.regions)}"
                )
    return sorted(set(found))
