"""Audit trail settings of a stack: how long the trail's files stay locked, and its log group's
retention (``components/audit_trail.py`` builds the trail from them)."""

from __future__ import annotations

from typing import Any

from infra.config.keys import LOG_RETENTION_DAYS
from infra.config.reader import Reader

MAX_LOCK_DAYS = 36500
"""Longest Object Lock default retention S3 accepts in days (100 years)."""
PROD_MIN_DAYS = 365
"""Production keeps audit evidence at least a year, locked and in its log group alike."""


def parse_audit(r: Reader, production: bool) -> dict[str, Any]:
    """``audit_retention_days`` and ``audit_log_retention_days``; problems go on ``r``."""
    locked = r.integer("auditRetentionDays", 1, MAX_LOCK_DAYS)
    if production and locked is not None and locked < PROD_MIN_DAYS:
        r.problem(
            "auditRetentionDays",
            locked,
            f">= {PROD_MIN_DAYS} in prod (COMPLIANCE-mode Object Lock keeps a year of evidence)",
        )
    retention = r.integer("auditLogRetentionDays", 1, 3653)
    if retention is not None and retention not in LOG_RETENTION_DAYS:
        r.problem(
            "auditLogRetentionDays",
            retention,
            f"a CloudWatch retention value: {LOG_RETENTION_DAYS}",
        )
        retention = None
    elif production and retention is not None and retention < PROD_MIN_DAYS:
        r.problem("auditLogRetentionDays", retention, f">= {PROD_MIN_DAYS} in prod")
    return {"audit_retention_days": locked, "audit_log_retention_days": retention}
