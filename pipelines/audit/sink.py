"""The lifecycle log on the cluster: a chain of objects in the object-locked audit bucket.

When ``SOVML_AUDIT_BUCKET`` is set, the bucket IS the log (a pod's local file is throwaway): entry
``n`` is the object ``<prefix>/<n, 12 digits>.json`` (prefix ``$SOVML_AUDIT_PREFIX``, default
``lifecycle``) holding the entry's canonical JSON and a newline, the same bytes as a line of the
file. The key is the sequence number alone, so one ``seq`` can have one object only.

An append finds the chain's head, builds the next entry on it (``prev`` = the head's hash, ``seq``
= the head's + 1) and puts it with ``If-None-Match: *``: S3 refuses the put when the key exists,
so of two writers that built on one head exactly one lands; the other gets ``412
PreconditionFailed`` (or ``409 ConditionalRequestConflict`` while the first is in flight), finds
the new head and retries, up to :data:`MAX_ATTEMPTS` times with jittered backoff, then raises
:class:`~pipelines.audit.log.AuditError`.

Finding the head never lists the whole bucket: each ``LIST`` asks for one key (``StartAfter`` a
seq's key, ``MaxKeys=1``: "is there an entry after seq k?"), starting from the head this process
last saw (a hint; the seq-keyed objects are the truth) and galloping forward, then bisecting: one
``LIST`` when nothing was appended since, about 2 log2(n) on a cold start. The head's body is
read and checked before anything is built on it; an object under the prefix that is not an
entry's key, or a damaged head, stops the append (run ``sovml audit verify --bucket``).

The bucket's default Object Lock retention (compliance mode, set by the stack) locks every entry:
within retention no one, the account root included, can delete or overwrite that version. A
``DELETE`` only adds a delete marker and a plain ``PUT`` a newer version; the verifier reads the
versions and reports both (:func:`pipelines.audit.verify.verify_bucket`).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pipelines.audit.entries import canonical, new_entry, stored_problem
from pipelines.audit.log import AuditError

BUCKET_ENV = "SOVML_AUDIT_BUCKET"
"""The audit bucket: set, every append goes to its chain."""
PREFIX_ENV = "SOVML_AUDIT_PREFIX"
"""The folder of the chain in the bucket (default :data:`DEFAULT_PREFIX`)."""
DEFAULT_PREFIX = "lifecycle"
SEQ_DIGITS = 12
"""Digits of a key's sequence number: keys sort as numbers up to 10^12 - 1."""
MAX_ATTEMPTS = 10
"""Conditional puts an append tries before giving up (each lost one means another writer won)."""
BACKOFF_S = 0.02
"""First pause after a lost put; doubles each time (full jitter), up to :data:`MAX_BACKOFF_S`."""
MAX_BACKOFF_S = 1.0
"""The longest pause between two attempts."""
READERS = 8
"""Parallel downloads when reading the whole chain."""

_LOST = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_MISSING_BUCKET = frozenset({"NoSuchBucket", "InvalidBucketName"})
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")

# (bucket, prefix) -> the newest entry this process saw: a hint where to start looking.
_HEADS: dict[tuple[str, str], dict[str, Any]] = {}
_HEADS_LOCK = threading.Lock()


class BucketError(AuditError):
    """The bucket could not be read or written; ``bad_input`` when it does not exist."""

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input
        """True for a bucket that does not exist (the caller named it wrong), else False."""


def configured_bucket() -> str | None:
    """``$SOVML_AUDIT_BUCKET`` when set and not blank."""
    return os.environ.get(BUCKET_ENV, "").strip() or None


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` is not an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."""
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        return "not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')"
    return None


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` is not a chain's folder: S3-safe characters in non-empty segments."""
    parts = prefix.strip("/").split("/")
    if not _PREFIX.match(prefix.strip("/")) or any(p in (".", "..") for p in parts):
        return "not a key prefix (letters, digits, !_.*'()- in '/'-separated segments)"
    if len(prefix) > 512:
        return "longer than 512 characters"
    return None


@dataclass(frozen=True)
class Stored:
    """One key under the chain's prefix, as the verifier sees it.

    Attributes:
        key: The object key.
        seq: The sequence number the key names; None for a key that is not an entry's.
        versions: Object versions under the key (1 unless it was overwritten).
        deleted: The latest version is a delete marker (the key looks deleted).
        body: The current version's bytes (None when deleted).
        lock_mode: The current version's Object Lock mode (``COMPLIANCE``), None without one.
    """

    key: str
    seq: int | None
    versions: int
    deleted: bool
    body: bytes | None
    lock_mode: str | None


class BucketLog:
    """The chain under ``s3://<bucket>/<prefix>/``: append to it, read it."""

    def __init__(self, bucket: str, prefix: str | None = None, client: Any = None) -> None:
        """Name the chain; the S3 client is made on first use unless given.

        Raises:
            AuditError: The bucket or prefix is not acceptable.
        """
        chosen = prefix if prefix is not None else os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)
        for what, value, problem in (
            ("bucket", bucket, bucket_problem(bucket)),
            ("prefix", chosen, prefix_problem(chosen)),
        ):
            if problem:
                raise BucketError(f"audit {what} {value!r}: {problem}", bad_input=True)
        self.bucket = bucket
        """The bucket's name."""
        self.prefix = chosen.strip("/")
        """The chain's folder, without slashes at its ends."""
        self._client = client
        self._key = re.compile(rf"^{re.escape(self.prefix)}/(\d{{{SEQ_DIGITS}}})\.json$")

    @property
    def where(self) -> str:
        """``s3://<bucket>/<prefix>/``, for messages."""
        return f"s3://{self.bucket}/{self.prefix}/"

    def key(self, seq: int) -> str:
        """The key of entry ``seq``: ``<prefix>/<seq, 12 digits>.json`` (``<prefix>/`` for -1,
        which sorts before every entry)."""
        return f"{self.prefix}/" if seq < 0 else f"{self.prefix}/{seq:0{SEQ_DIGITS}d}.json"

    def seq_of(self, key: str) -> int | None:
        """The seq a key names, None when it is not an entry's key."""
        match = self._key.match(key)
        return int(match.group(1)) if match else None

    # ---------------------------------------------------------------------------- S3 calls

    def _s3(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as exc:
                raise BucketError(f"{BUCKET_ENV} is set but boto3 is missing: {exc}") from None
            self._client = boto3.client("s3")
        return self._client

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, every S3 or client failure as a :class:`BucketError` naming ``what``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _LOST:
                raise
            raise BucketError(f"{what}: {exc}", bad_input=code in _MISSING_BUCKET) from None
        except BotoCoreError as exc:  # no credentials, no endpoint, no region
            raise BucketError(f"{what}: {exc}") from None

    def _first_after(self, seq: int) -> str | None:
        """The first key under the prefix after entry ``seq``'s key, None when there is none."""
        reply = self._call(
            f"cannot list {self.where}",
            lambda: self._s3().list_objects_v2(
                Bucket=self.bucket,
                Prefix=f"{self.prefix}/",
                StartAfter=self.key(seq),
                MaxKeys=1,
            ),
        )
        contents = reply.get("Contents") or []
        return contents[0]["Key"] if contents else None

    def _any_after(self, seq: int) -> bool:
        """Whether an entry with a seq above ``seq`` exists.

        Raises:
            AuditError: The next key is not an entry's (something else was written there).
        """
        key = self._first_after(seq)
        if key is None:
            return False
        if self.seq_of(key) is None:
            raise AuditError(
                f"s3://{self.bucket}/{key} is not a lifecycle entry's key; refusing to extend "
                f"the chain; run `sovml audit verify --bucket {self.bucket} --prefix {self.prefix}`"
            )
        return True

    def _newest_after(self, seq: int) -> int | None:
        """The newest entry's seq when it is above ``seq``, else None (O(log n) one-key LISTs)."""
        if not self._any_after(seq):
            return None
        low, step = seq, 1  # invariant: an entry above `low` exists, none above `high`
        high = low + step
        while self._any_after(high):
            low, step = high, step * 2
            high = low + step
        while high - low > 1:
            middle = (low + high) // 2
            if self._any_after(middle):
                low = middle
            else:
                high = middle
        return high

    def _entry(self, seq: int) -> dict[str, Any]:
        """Entry ``seq`` read from its object and checked: the head an append builds on."""
        key = self.key(seq)
        reply = self._call(
            f"cannot read s3://{self.bucket}/{key}",
            lambda: self._s3().get_object(Bucket=self.bucket, Key=key),
        )
        entry, problem = stored_problem(reply["Body"].read())
        if problem is None and entry is not None and entry["seq"] != seq:
            problem = f"it holds entry {entry['seq']}"
        if problem is not None or entry is None:
            raise AuditError(
                f"s3://{self.bucket}/{key}: the head entry is damaged ({problem}); refusing to "
                f"extend it; run `sovml audit verify --bucket {self.bucket} --prefix {self.prefix}`"
            )
        return entry

    def head(self) -> dict[str, Any] | None:
        """The chain's newest entry (None for an empty chain), found from this process's hint."""
        with _HEADS_LOCK:
            hint = _HEADS.get((self.bucket, self.prefix))
        newest = self._newest_after(hint["seq"] if hint else -1)
        if newest is None:
            return hint
        entry = self._entry(newest)
        self._remember(entry)
        return entry

    def _remember(self, entry: dict[str, Any]) -> None:
        with _HEADS_LOCK:
            known = _HEADS.get((self.bucket, self.prefix))
            if known is None or known["seq"] < entry["seq"]:
                _HEADS[(self.bucket, self.prefix)] = entry

    def _put_new(self, entry: dict[str, Any]) -> bool:
        """Put ``entry`` under its key unless the key exists; False when another writer won."""
        from botocore.exceptions import ClientError

        key = self.key(entry["seq"])
        try:
            self._call(
                f"cannot put s3://{self.bucket}/{key}",
                lambda: self._s3().put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=canonical(entry) + b"\n",
                    ContentType="application/json",
                    IfNoneMatch="*",
                    # Object Lock buckets refuse a put without an integrity checksum.
                    ChecksumAlgorithm="SHA256",
                ),
            )
        except ClientError:  # only the codes of a lost race get here (see _call)
            return False
        return True

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Append the checked ``fields`` (event, subject, inputs, outputs, details) as the next
        entry and return it.

        Raises:
            AuditError: S3 failed, the chain's head is damaged, or every attempt lost its race.
        """
        for attempt in range(MAX_ATTEMPTS):
            entry = new_entry(fields, self.head())
            if self._put_new(entry):
                self._remember(entry)
                return entry
            # Full jitter: writers that lost together do not collide again in lockstep.
            time.sleep(random.uniform(0, min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt)))
        raise AuditError(
            f"cannot append to {self.where}: another writer took the next entry in each of "
            f"{MAX_ATTEMPTS} attempts"
        )

    # ---------------------------------------------------------------------------- reading

    def _versions(self) -> dict[str, tuple[int, bool]]:
        """Key -> (object versions, latest is a delete marker), for every key under the prefix."""
        seen: dict[str, list[int]] = {}

        def pages() -> list[dict[str, Any]]:
            paginator = self._s3().get_paginator("list_object_versions")
            return list(paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"))

        for page in self._call(f"cannot list the versions in {self.where}", pages):
            for version in page.get("Versions") or []:
                counts = seen.setdefault(version["Key"], [0, 0])
                counts[0] += 1
            for marker in page.get("DeleteMarkers") or []:
                counts = seen.setdefault(marker["Key"], [0, 0])
                counts[1] |= int(bool(marker.get("IsLatest")))
        return {key: (versions, bool(latest)) for key, (versions, latest) in seen.items()}

    def _read_one(self, key: str, versions: int, deleted: bool) -> Stored:
        body, mode = None, None
        if not deleted:
            reply = self._call(
                f"cannot read s3://{self.bucket}/{key}",
                lambda: self._s3().get_object(Bucket=self.bucket, Key=key),
            )
            body, mode = reply["Body"].read(), reply.get("ObjectLockMode")
        return Stored(key, self.seq_of(key), versions, deleted, body, mode)

    def read(self) -> list[Stored]:
        """Every key under the prefix in key order (= seq order), with its current body.

        Raises:
            BucketError: Listing or reading failed (``bad_input`` for a missing bucket).
        """
        listed = sorted(self._versions().items())
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            return list(pool.map(lambda item: self._read_one(item[0], *item[1]), listed))


__all__ = [
    "BUCKET_ENV",
    "MAX_ATTEMPTS",
    "PREFIX_ENV",
    "BucketError",
    "BucketLog",
    "Stored",
    "bucket_problem",
    "configured_bucket",
    "prefix_problem",
]
