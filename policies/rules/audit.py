"""The audit trail in the zone: a production stack records what happens in every region it uses.

A production stack is a set of resources that declares an AWS provider (the program declares its
one regional provider; a slice of resources without one, such as a component under test, is not a
stack and is not judged). For every region it uses (an AWS provider's region, or the region an AWS
resource is created in: its provider's, or its own ``region`` input):

- SOV-AUD-001: a CloudTrail trail in that region that logs, records management events (KMS calls
  are management events), validates its log files, encrypts them with a customer-managed key and
  delivers them to CloudWatch Logs as well as to S3;
- SOV-AUD-002: each such trail's bucket is declared by the program, has Object Lock enabled, and a
  default retention in COMPLIANCE mode of at least a year (GOVERNANCE mode can be lifted by anyone
  holding ``s3:BypassGovernanceRetention``; a shorter lock is no evidence for an audit year);
- SOV-AUD-003: GuardDuty (a detector that is enabled) and AWS Config (a recorder, its delivery
  channel and a recorder status that is on) wherever the region offers them, as the availability
  table beside the residency zones says (``policies/zones.py``); a service the table does not
  know in a region is not required there.

Dev and staging stacks are not judged: they may run without the account-level services, which a
production account provides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from policies.rules.base import Context, Resource, is_aws, stack_rule
from policies.zones import AUDIT_SERVICE_SOURCES, OFFERED, service_availability

TRAIL = "aws:cloudtrail/trail:Trail"
BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
LOCK_CONFIGS = (
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2",
)
PROVIDER = "pulumi:providers:aws"
DETECTOR = "aws:guardduty/detector:Detector"
RECORDER = "aws:cfg/recorder:Recorder"
RECORDER_STATUS = "aws:cfg/recorderStatus:RecorderStatus"
DELIVERY_CHANNEL = "aws:cfg/deliveryChannel:DeliveryChannel"
MIN_LOCK_DAYS = 365
"""Shortest default Object Lock retention a production trail bucket may have."""
Findings = list[tuple[Resource | None, str]]


def region_of(r: Resource) -> str | None:
    """An AWS provider's region; where an AWS resource is created: its own ``region`` input,
    else its provider's."""
    region = r.inputs.get("region") or (
        None if r.type == PROVIDER else r.provider_inputs.get("region")
    )
    return region if isinstance(region, str) and region else None


def stack_regions(resources: Iterable[Resource]) -> list[str]:
    """Regions the stack uses (its AWS providers', its AWS resources'), sorted."""
    return sorted(
        {g for r in resources if (is_aws(r) or r.type == PROVIDER) and (g := region_of(r))}
    )


def judged(resources: list[Resource], ctx: Context) -> bool:
    """Whether the audit rules judge ``resources``: a production stack declaring an AWS provider."""
    return ctx.production and any(r.type == PROVIDER for r in resources)


def _true(value: Any) -> bool:
    return value is True or value == "true"


def _false(value: Any) -> bool:
    return value is False or value == "false"


def _records_management_events(trail: Resource) -> bool:
    """Whether the trail's selectors keep management events (both kinds absent: they do)."""
    advanced = trail.inputs.get("advancedEventSelectors")
    if isinstance(advanced, list) and advanced:
        return any(
            f.get("field") == "eventCategory" and "Management" in (f.get("equals") or [])
            for s in advanced
            if isinstance(s, dict)
            for f in s.get("fieldSelectors") or []
            if isinstance(f, dict)
        )
    basic = trail.inputs.get("eventSelectors")
    if isinstance(basic, list) and basic:
        return any(
            isinstance(s, dict) and not _false(s.get("includeManagementEvents")) for s in basic
        )
    return True


def trail_problems(trail: Resource) -> list[str]:
    """What keeps a trail from being the region's audit trail (empty when nothing does)."""
    key = trail.inputs.get("kmsKeyId")
    problems = []
    if _false(trail.inputs.get("enableLogging")):
        problems.append("logging is stopped (enable_logging false)")
    if not _records_management_events(trail):
        problems.append("its event selectors exclude management events")
    if not _true(trail.inputs.get("enableLogFileValidation")):
        problems.append("log file validation is off (set enable_log_file_validation)")
    if not isinstance(key, str) or not key or "alias/aws/" in key:
        problems.append("its files are not encrypted with a customer-managed key (set kms_key_id)")
    if not trail.inputs.get("cloudWatchLogsGroupArn") or not trail.inputs.get(
        "cloudWatchLogsRoleArn"
    ):
        problems.append(
            "it does not deliver to CloudWatch Logs (set cloud_watch_logs_group_arn and "
            "cloud_watch_logs_role_arn)"
        )
    return problems


def _trails_in(resources: list[Resource], region: str) -> list[Resource]:
    return [r for r in resources if r.type == TRAIL and region_of(r) == region]


@stack_rule(
    "SOV-AUD-001",
    "audit-trail-in-region",
    "critical",
    "A production stack has, in each region it uses, a CloudTrail trail that records management "
    "events, validates its log files, encrypts them with a customer-managed key and delivers "
    "them to CloudWatch Logs.",
)
def audit_trail_in_region(resources: list[Resource], ctx: Context) -> Findings:
    if not judged(resources, ctx):
        return []
    out: Findings = []
    for region in stack_regions(resources):
        trails = _trails_in(resources, region)
        verdicts = [(t, trail_problems(t)) for t in trails]
        if any(not problems for _, problems in verdicts):
            continue
        if not trails:
            out.append(
                (
                    None,
                    f"production stack uses {region} but has no CloudTrail trail there: add one "
                    "(components/audit_trail.py) with log file validation, the stack's logs key "
                    "and CloudWatch Logs delivery",
                )
            )
        for trail, problems in verdicts:
            name = trail.inputs.get("name") or trail.name
            out.append((trail, f"trail {name} in {region}: {'; '.join(problems)}"))
    return out


def _declared_bucket(resources: list[Resource], name: str) -> Resource | None:
    for r in resources:
        if r.type in BUCKETS and name in (
            r.inputs.get("bucket"),
            r.outputs.get("bucket"),
            r.outputs.get("id"),
        ):
            return r
    return None


def _retention(rule: Any) -> tuple[str, int] | None:
    """``(mode, days)`` of an Object Lock rule's default retention (years as 365 days)."""
    default = rule.get("defaultRetention") if isinstance(rule, dict) else None
    if not isinstance(default, dict):
        return None
    days, years = default.get("days"), default.get("years")
    span = 0
    if isinstance(days, int | str) and str(days).isdigit():
        span = int(days)
    elif isinstance(years, int | str) and str(years).isdigit():
        span = 365 * int(years)
    return str(default.get("mode")), span


def lock_problem(resources: list[Resource], bucket: Resource, name: str) -> str | None:
    """Why ``bucket`` does not lock its files in COMPLIANCE mode for a year (None: it does)."""
    if not _true(bucket.inputs.get("objectLockEnabled")):
        return "Object Lock is not enabled (set object_lock_enabled when creating the bucket)"
    rules = [
        r.get("rule")
        for r in resources
        if r.type in LOCK_CONFIGS
        and (r.inputs.get("bucket") == name or bucket.urn in r.dependencies)
    ]
    rules.append(bucket.get("objectLockConfiguration", "rule"))
    found = [x for x in (_retention(x) for x in rules) if x]
    if any(mode == "COMPLIANCE" and days >= MIN_LOCK_DAYS for mode, days in found):
        return None
    have = ", ".join(f"{mode} {days} days" for mode, days in found) or "none"
    return (
        f"default retention is {have}: set a BucketObjectLockConfiguration with mode "
        f"COMPLIANCE and at least {MIN_LOCK_DAYS} days (auditRetentionDays)"
    )


@stack_rule(
    "SOV-AUD-002",
    "audit-bucket-object-locked",
    "critical",
    "The bucket of a production stack's trail is declared by the program and locks every file "
    "with Object Lock in COMPLIANCE mode for at least 365 days.",
)
def audit_bucket_object_locked(resources: list[Resource], ctx: Context) -> Findings:
    if not judged(resources, ctx):
        return []
    out: Findings = []
    for trail in (r for r in resources if r.type == TRAIL):
        name = trail.inputs.get("s3BucketName")
        bucket = _declared_bucket(resources, name) if isinstance(name, str) else None
        if bucket is None:
            out.append(
                (
                    trail,
                    f"trail delivers to bucket {name!r}, which the program does not declare: its "
                    "Object Lock cannot be verified; deliver to the stack's audit bucket",
                )
            )
            continue
        problem = lock_problem(resources, bucket, str(name))
        if problem:
            out.append((bucket, f"trail bucket {name}: {problem}"))
    return out


def _detection_gaps(resources: list[Resource], region: str) -> dict[str, str]:
    """Service -> what is missing of it in ``region`` (services the region offers only)."""
    here = [r for r in resources if region_of(r) == region]

    def declared(typ: str, on: str | None = None) -> bool:
        return any(r.type == typ and (on is None or _true(r.inputs.get(on))) for r in here)

    gaps = {}
    detectors = [r for r in here if r.type == DETECTOR]
    if not any(not _false(r.inputs.get("enable")) for r in detectors):
        gaps["guardduty"] = "an enabled GuardDuty detector"
    missing = [
        what
        for what, ok in (
            ("configuration recorder", declared(RECORDER)),
            ("delivery channel", declared(DELIVERY_CHANNEL)),
            ("recorder status with is_enabled true", declared(RECORDER_STATUS, "isEnabled")),
        )
        if not ok
    ]
    if missing:
        gaps["config"] = "AWS Config's " + ", ".join(missing)
    return {s: g for s, g in gaps.items() if service_availability(region, s) == OFFERED}


@stack_rule(
    "SOV-AUD-003",
    "detection-services-in-region",
    "high",
    "A production stack enables GuardDuty and AWS Config recording in each region it uses where "
    "the region offers them (the availability table in policies/zones.py).",
)
def detection_services_in_region(resources: list[Resource], ctx: Context) -> Findings:
    if not judged(resources, ctx):
        return []
    return [
        (
            None,
            f"production stack in {region} lacks {gap}, though {region} offers "
            f"{service} ({AUDIT_SERVICE_SOURCES[service]}): add it (components/audit_trail.py)",
        )
        for region in stack_regions(resources)
        for service, gap in _detection_gaps(resources, region).items()
    ]
