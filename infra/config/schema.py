"""The ``config:`` section of ``Pulumi.yaml``, generated from ``KEYS``."""

from __future__ import annotations

from typing import Any

from infra.config.keys import KEYS, REQUIRED


def project_config_schema() -> dict[str, Any]:
    """The ``config:`` section of ``Pulumi.yaml``, generated from ``KEYS``."""
    out: dict[str, Any] = {}
    for k in KEYS:
        entry: dict[str, Any] = {"type": k.type, "description": k.description}
        if k.type == "array":
            entry["items"] = {"type": k.items}
        if k.default is not REQUIRED:
            entry["default"] = k.default
        out[k.name] = entry
    return out
