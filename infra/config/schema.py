"""The ``config:`` section of ``Pulumi.yaml``, generated from ``KEYS``."""

from __future__ import annotations

from typing import Any

from infra.config.keys import KEYS, REQUIRED


def project_config_schema() -> dict[str, Any]:
    """The ``config:`` section of ``Pulumi.yaml``, generated from ``KEYS``.

    A credential (``Key.secret``) is not declared ``secret: true``, though the project schema
    has the field: Pulumi merges a key's default into the stack config as plain text and then
    requires every ``secret`` key's value to be encrypted, so a declared default fails every
    stack that leaves the key out, and without a default the key becomes required. Our
    credentials are optional (one paging receiver of several), so ``namespaces.check_keys``
    refuses a plain value instead, and their descriptions name ``pulumi config set --secret``.
    """
    out: dict[str, Any] = {}
    for k in KEYS:
        entry: dict[str, Any] = {"type": k.type, "description": k.description}
        if k.type == "array":
            entry["items"] = {"type": k.items}
        if k.default is not REQUIRED:
            entry["default"] = k.default
        out[k.name] = entry
    return out
