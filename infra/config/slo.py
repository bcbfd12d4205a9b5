"""The SLO targets of a stack (``slo*`` keys) and the base of every alert's runbook link.

Pulumi config has no float type, so the fractions are written as text (``"0.999"``) and read
here; the burn-rate alerts built from them live in :mod:`components._alerts`.
"""

from __future__ import annotations

import re
from typing import Any

from infra.config.reader import Reader

FRACTION_KEYS = (
    "sloAvailabilityTarget",
    "sloLatencyObjective",
    "sloFeatureServerTarget",
    "sloPipelineSuccessTarget",
)
"""The SLO targets written as fractions of text."""

_FRACTION = re.compile(r"0\.[0-9]{1,6}")
"""A fraction below 1, at most six decimals (then bounded below per key)."""
LOWEST = {key: "0.94" for key in FRACTION_KEYS} | {"sloPipelineSuccessTarget": "0.84"}
"""The lowest target each key takes: below it the fastest burn-rate page could never fire (it
would need an error ratio above 1): 1 - 1/14.4 = 0.9306 for the request SLOs, 1 - 1/6 = 0.8334
for the pipeline's (its page burns at 6x, see components._alerts.PIPELINE_FAST_BURN)."""


def _field(key: str) -> str:
    """``sloAvailabilityTarget`` as the ``PlatformConfig`` field ``slo_availability_target``."""
    return re.sub(r"(?=[A-Z])", "_", key).lower()


def parse_slos(r: Reader) -> dict[str, Any]:
    """SLO targets and the runbook base as ``PlatformConfig`` fields; problems go on ``r``."""
    fields: dict[str, Any] = {"slo_latency_target_ms": r.integer("sloLatencyTargetMs", 1, 60_000)}
    for key in FRACTION_KEYS:
        text = r.string(key)
        ok = text is not None and _FRACTION.fullmatch(text) and float(text) >= float(LOWEST[key])
        if text is not None and not ok:
            r.problem(key, text, f"a number from {LOWEST[key]} to below 1 as text, e.g. 0.999")
        fields[_field(key)] = float(text) if ok and text else None
    base = r.string("runbookBaseUrl")
    if base is not None and not re.fullmatch(r"https://[\x21-\x7e]+|[\w./-]+", base):
        r.problem("runbookBaseUrl", base, "an https:// URL or a repository-relative path")
    return {**fields, "runbook_base_url": base}
