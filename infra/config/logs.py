"""Workload log settings of a stack: the record fields removed before logs leave a node.

Retention is ``logRetentionDays``, shared with the flow and control-plane logs and read with
them; this module reads only what the log collector adds.
"""

from __future__ import annotations

import re
from typing import Any

from infra.config.reader import Reader

MASKED_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
"""A record key the Lua masking filter can name: no quotes, spaces or brackets (it is written
into the script's Lua table literal, ``components/workload_logs.py``)."""


def parse_logs(r: Reader) -> dict[str, Any]:
    """``log_masked_fields`` as a ``PlatformConfig`` field; problems go on ``r``."""
    fields = r.strings("logMaskedFields")
    if fields is None:
        return {"log_masked_fields": None}
    bad = [f for f in fields if not MASKED_FIELD.fullmatch(f)]
    if bad:
        r.problem(
            "logMaskedFields",
            bad,
            "record field names: a letter or '_', then letters, digits, '_', '.' or '-' (<= 63)",
        )
        return {"log_masked_fields": None}
    if len(set(fields)) != len(fields):
        r.problem("logMaskedFields", list(fields), "each field once")
        return {"log_masked_fields": None}
    return {"log_masked_fields": fields}
