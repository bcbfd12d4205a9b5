"""The CrossGuard pack's config for a stack: ``build/<stack>/policy-config.json``.

    pulumi preview --policy-pack policies --policy-pack-config build/STACK/policy-config.json

hands each policy its entry of this file (policy name -> config object, the properties of
``CONFIG_SCHEMA`` in ``policies/crossguard.py``), so the pack judges with the context the offline
gate builds from the synth record: residency zone, environment, allowed accounts, in-zone external
resources and allowed ingress CIDRs. Without the file the pack falls back to the provider's
default tags and empty allow-lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policies.rules.record import policy_pack_config

FILE = "policy-config.json"
"""Name of the file beside the record."""


def write_pack_config(record: dict[str, Any], out: Path) -> Path:
    """Write the pack config for the record's stack into ``out`` and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE
    doc = policy_pack_config(record.get("config") or {})
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
