"""The cluster copy of the lifecycle log: one object per entry in the object-locked audit bucket.

When ``SOVML_AUDIT_BUCKET`` is set, every appended entry is also put as
``<prefix>/<seq, 12 digits>-<hash>.json`` (prefix ``$SOVML_AUDIT_PREFIX``, default
``lifecycle``) with ``If-None-Match: *``: S3 refuses the put when the key exists, so an entry is
never overwritten, and the bucket's Object Lock (compliance mode, set up by the stack) keeps it
from being deleted or replaced for the retention period. Two entries with one ``seq`` (a fork,
from two logs that do not share a file) show up as two keys with the same number.

This is what the local file cannot give: someone who can rewrite the whole file and its head
record leaves a chain that verifies; the bucket's copies, which they cannot change, do not match.
"""

from __future__ import annotations

import os
from typing import Any

BUCKET_ENV = "SOVML_AUDIT_BUCKET"
PREFIX_ENV = "SOVML_AUDIT_PREFIX"
DEFAULT_PREFIX = "lifecycle"


def object_key(entry: dict[str, Any], prefix: str | None = None) -> str:
    """``<prefix>/<seq:012d>-<hash>.json``: listing order is chain order."""
    prefix = (prefix if prefix is not None else os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)).strip(
        "/"
    )
    return f"{prefix}/{entry['seq']:012d}-{entry['hash']}.json"


def put_entry(entry: dict[str, Any], line: bytes, client: Any = None) -> str | None:
    """Put ``entry`` (its log ``line``) into ``$SOVML_AUDIT_BUCKET``; its key, None without one.

    Raises:
        AuditError: The put failed, or the key already exists (never overwritten).
    """
    from pipelines.audit.log import AuditError

    bucket = os.environ.get(BUCKET_ENV, "").strip()
    if not bucket:
        return None
    key = object_key(entry)
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        raise AuditError(f"{BUCKET_ENV} is set but boto3 is not installed: {exc}") from None
    s3 = client or boto3.client("s3")
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=line,
            ContentType="application/json",
            IfNoneMatch="*",
            # Object Lock buckets require an integrity checksum on every put.
            ChecksumAlgorithm="SHA256",
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise AuditError(
                f"s3://{bucket}/{key} already exists: the audit bucket is never overwritten "
                "(two logs with one sequence number?)"
            ) from None
        raise AuditError(f"cannot put s3://{bucket}/{key}: {exc}") from None
    except BotoCoreError as exc:
        raise AuditError(f"cannot put s3://{bucket}/{key}: {exc}") from None
    return key
