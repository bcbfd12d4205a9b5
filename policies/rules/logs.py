"""Log shipping stays in the zone: a Helm release's log output names an in-zone region and host.

A log collector deployed by Helm (Fluent Bit, or any chart whose values configure log shipping)
decides where logs go through its values, which no AWS resource rule sees. This rule reads them:
Fluent Bit configuration text anywhere in the values (its ``[OUTPUT]`` sections), and values
whose path speaks of logs or outputs (``cloudWatchLogs.region``, ``output.host``). A region must
be a region of the zone; an ``endpoint``/``host`` must be an AWS endpoint of a zone region
(``logs.me-central-1.amazonaws.com``), a cluster-local Service (``*.svc``,
``*.svc.cluster.local``), or listed in ``inZoneExternalResources``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules.base import Context, Resource, rule
from policies.rules.helm_charts import HELM_TYPES
from policies.rules.residency import EXTERNAL_KEY, in_zone_endpoint, listed, zone_text

REGION_KEYS = frozenset({"region", "awsregion", "aws_region"})
"""Keys (lower-cased, ``-`` dropped) naming a region."""
HOST_KEYS = frozenset({"endpoint", "host", "hostname", "url", "sts_endpoint", "endpoint_url"})
"""Keys naming where data is sent."""
SHIPPING_WORDS = ("log", "output", "cloudwatch", "opensearch", "elasticsearch", "firehose")
"""A values path with one of these in a segment configures log shipping."""
SECTION = re.compile(r"^\s*\[([A-Za-z_]+)\]\s*$")
CLUSTER_LOCAL = re.compile(r"[a-z0-9.-]+\.svc(\.cluster\.local)?\.?")


def _key(name: str) -> str:
    return name.lower().replace("-", "")


def output_settings(text: str) -> Iterator[tuple[int, str, str]]:
    """(section number, key, value) of every setting in the ``[OUTPUT]`` sections of a Fluent
    Bit classic-mode configuration text."""
    section, number = "", 0
    for line in text.splitlines():
        m = SECTION.match(line)
        if m:
            section = m[1].upper()
            number += section == "OUTPUT"
            continue
        parts = line.split(None, 1)
        if section == "OUTPUT" and len(parts) == 2 and not parts[0].startswith("#"):
            yield number, parts[0], parts[1].strip()


def shipping_values(values: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(values path, key, value) of every region or host setting of log shipping in ``values``.

    Settings inside Fluent Bit text are reported as ``<path> [OUTPUT #n] <key>``.
    """
    if isinstance(values, Mapping):
        for k, v in values.items():
            yield from shipping_values(v, f"{path}.{k}" if path else str(k))
    elif isinstance(values, list):
        for i, v in enumerate(values):
            yield from shipping_values(v, f"{path}[{i}]")
    elif isinstance(values, str):
        if "[OUTPUT]" in values.upper():
            for n, key, value in output_settings(values):
                if _key(key) in REGION_KEYS or _key(key) in HOST_KEYS:
                    yield f"{path} [OUTPUT #{n}] {key}", key, value
            return
        key = re.split(r"[.\[]", path)[-1] if path else ""
        segments = path.lower().split(".")
        if (_key(key) in REGION_KEYS or _key(key) in HOST_KEYS) and any(
            w in s for s in segments[:-1] for w in SHIPPING_WORDS
        ):
            yield path, key, values


def judge(key: str, value: str, ctx: Context) -> str | None:
    """Why a shipping setting leaves the zone (None when it stays in)."""
    regions = " or ".join(ctx.regions) or "a region of the zone"
    if listed(value, ctx):
        return None
    if _key(key) in REGION_KEYS:
        if value in ctx.regions:
            return None
        return f"is a region outside {zone_text(ctx)}: set it to {regions}"
    if in_zone_endpoint(value, ctx) or CLUSTER_LOCAL.fullmatch(value.lower()):
        return None
    return (
        f"is not an AWS endpoint of {zone_text(ctx)} nor a cluster Service: remove it (the "
        f"output then uses the regional endpoint of {regions}), or list the host in "
        f"{EXTERNAL_KEY} once you have checked it is in the zone"
    )


@rule(
    "SOV-RES-005",
    "log-destination-in-zone",
    "critical",
    "Helm-deployed log shipping (Fluent Bit outputs, log values) names only regions and "
    "endpoints inside the residency zone.",
    types=HELM_TYPES,
)
def log_destination_in_zone(r: Resource, ctx: Context) -> list[str]:
    out = []
    release = str(r.inputs.get("name") or r.name)
    for path, key, value in shipping_values(r.inputs.get("values")):
        problem = judge(key, value, ctx)
        if problem:
            out.append(f"Helm release {release}: values {path} = {value!r} {problem}")
    return out
