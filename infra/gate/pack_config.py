"""The CrossGuard pack's config for a stack: ``build/<stack>/policy-config.json``.

    pulumi preview --policy-pack policies --policy-pack-config build/STACK/policy-config.json

hands each policy its entry of this file (policy name -> config object, the properties of
``CONFIG_SCHEMA`` in ``policies/crossguard.py``), so the pack judges with the context the offline
gate builds from the synth record: residency zone, environment, allowed accounts, in-zone external
resources, allowed ingress CIDRs, and the inventory images the reviewed suppressions accept
without a digest for now. Without the file the pack falls back to the provider's
default tags and empty allow-lists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.gate.findings import Suppression
from policies.rules.record import policy_pack_config

FILE = "policy-config.json"
"""Name of the file beside the record."""


def unpinned_images(suppressions: Sequence[Suppression], stack: str) -> list[str]:
    """Inventory image ids the reviewed suppressions accept without a digest in ``stack``: the
    per-image entries for SOV-SUP-002 that cover every resource (the pack sees one resource at a
    time and has no suppressions file, so an entry narrowed to some resources is not handed on
    and the pack stays stricter than the offline gate, never looser)."""
    ids: list[str] = []
    for s in suppressions:
        if "SOV-SUP-002" in s.ids and s.resource == "*" and (not s.stacks or stack in s.stacks):
            ids += [i for i in s.images if i not in ids]
    return sorted(ids)


def write_pack_config(
    record: dict[str, Any], out: Path, suppressions: Sequence[Suppression] = ()
) -> Path:
    """Write the pack config for the record's stack into ``out`` and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE
    cfg = dict(record.get("config") or {})
    cfg["unpinned_images"] = unpinned_images(suppressions, str(record.get("stack") or ""))
    doc = policy_pack_config(cfg)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
