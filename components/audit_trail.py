"""The account's audit trail in the zone: CloudTrail to an object-locked bucket and CloudWatch Logs,
plus the regional threat detection (GuardDuty) and configuration recording (AWS Config) services.

Everything is created through the stack's one AWS provider, so in the stack's region only: the
trail is single-region (a multi-region trail would place shadow copies of its configuration in
every region of the partition, outside the residency zone). Since 2021-11-22 CloudTrail records
the events of global services (IAM, STS global endpoint, CloudFront) in ``us-east-1`` only, so a
trail in another region does not receive them: ``include_global_service_events`` is off rather
than promising what cannot arrive; regional STS calls and every KMS call made here (KMS calls are
management events) are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import (
    TYPE_PREFIX,
    child,
    managed_policy,
    objects_of,
    partition_of,
    policy,
    region_of,
    service_role,
)
from components._k8s import metadata
from components.storage import deny_all_when, hardened_bucket_settings
from policies.lifecycle import BUCKET_ENV, CONFIG_MAP, PREFIX_ENV, REGION_ENV, ROOT, chain_prefix

DETECTION_SERVICES = ("guardduty", "config")
"""Regional services the component can enable; the platform passes those its region offers
(``policies.zones.SERVICE_AVAILABILITY``)."""
GUARDDUTY_FEATURES = ("S3_DATA_EVENTS", "EKS_AUDIT_LOGS")
"""GuardDuty protections enabled beyond the foundational sources (CloudTrail management events,
VPC flow logs, DNS logs). Runtime Monitoring is left out: it runs an agent on every node and needs
a GuardDuty VPC endpoint, neither of which this program manages yet."""
MAX_DATA_RESOURCES = 250
"""CloudTrail's limit of data-resource values across a trail's basic event selectors."""
TRAIL_PREFIX = "trail"
CONFIG_PREFIX = "config"
"""Key prefixes of CloudTrail's and AWS Config's deliveries in the bucket."""
ACL_CONDITION = {"s3:x-amz-acl": "bucket-owner-full-control"}
"""The ACL both services set on what they deliver (the bucket enforces owner ownership anyway)."""
LIFECYCLE_PREFIX = ROOT
"""Key prefix of the lifecycle log's chains in the bucket (``lifecycle/<namespace>/``)."""


@dataclass(frozen=True)
class LifecycleSink:
    """Where the cluster's pods append the lifecycle log: the audit bucket, under
    ``lifecycle/<namespace>/``, encrypted with the logs key.

    The trail's own bucket rather than a second locked one: it already has Object Lock in
    COMPLIANCE mode with the stack's retention, the logs key, access logs and TLS-only access,
    and its policy keeps CloudTrail and Config to their own prefixes; a second bucket would
    duplicate all of it for no added separation (the prefix rules below separate the writers).
    """

    bucket: pulumi.Input[str]
    """The bucket's name (``SOVML_AUDIT_BUCKET``)."""
    bucket_arn: pulumi.Input[str]
    """Its ARN (IAM statements)."""
    key_arn: pulumi.Input[str]
    """The logs key: the bucket's default SSE-KMS key, so appenders need data keys from it."""
    region: pulumi.Input[str]
    """The stack's region (``AWS_REGION`` of the pods)."""


@dataclass
class AuditTrailArgs:
    """Inputs of :class:`AuditTrail`."""

    name_prefix: str
    """Prefix of the physical names (trail, bucket, log group, recorder)."""
    account_id: pulumi.Input[str]
    """The account: appended to the bucket name, and the only source the bucket policy admits."""
    logs_key_arn: pulumi.Input[str]
    """The stack's customer-managed ``logs`` key: trail files, the bucket, the log group and
    Config snapshots are encrypted with it (its policy lets CloudTrail use it for this account's
    trails in this region, ``components/encryption.py``)."""
    access_logs_bucket: pulumi.Input[str]
    """Bucket receiving the trail bucket's server access logs (the stack's access-log bucket)."""
    object_lock_days: int
    """Default Object Lock retention of every delivered file, in COMPLIANCE mode: nobody, the
    root user included, can delete or overwrite it before then (``auditRetentionDays``)."""
    log_retention_days: int
    """Retention of the trail's CloudWatch Logs group (``auditLogRetentionDays``)."""
    data_bucket_arns: Sequence[pulumi.Input[str]] = ()
    """Buckets whose object-level reads and writes are recorded as data events."""
    detection_services: Sequence[str] = DETECTION_SERVICES
    """Which of :data:`DETECTION_SERVICES` to enable: those the stack's region offers."""
    protect: bool = True
    """Protect the bucket, the trail and the log group from deletion and keep the bucket if it is
    removed from the program (production)."""


def _validate(args: AuditTrailArgs) -> None:
    if not 1 <= args.object_lock_days <= 36500:
        raise ValueError(
            f"AuditTrailArgs.object_lock_days: {args.object_lock_days}; allowed 1-36500"
        )
    if args.log_retention_days < 1:
        raise ValueError(
            f"AuditTrailArgs.log_retention_days: {args.log_retention_days}; allowed >= 1"
        )
    unknown = [s for s in args.detection_services if s not in DETECTION_SERVICES]
    if unknown or len(set(args.detection_services)) != len(args.detection_services):
        raise ValueError(
            f"AuditTrailArgs.detection_services: {list(args.detection_services)}; allowed "
            f"distinct names of {DETECTION_SERVICES}"
        )
    if len(args.data_bucket_arns) > MAX_DATA_RESOURCES:
        raise ValueError(
            f"AuditTrailArgs.data_bucket_arns: {len(args.data_bucket_arns)} buckets; allowed "
            f"at most {MAX_DATA_RESOURCES} (CloudTrail's data-resource limit)"
        )


class AuditTrail(pulumi.ComponentResource):
    """CloudTrail in the stack's region, delivered to an object-locked bucket and to CloudWatch.

    The trail records management events (read and write, KMS included) and the object-level data
    events of the data buckets, validates its log files (signed digest files), and encrypts them
    with the logs key. Its bucket has Object Lock in COMPLIANCE mode from creation, versioning,
    SSE-KMS, every public-access block, server access logs, and a policy that admits only
    CloudTrail for this trail (``aws:SourceArn``) and AWS Config for this account
    (``aws:SourceAccount``) and refuses requests without TLS 1.2. CloudWatch delivery goes through
    a role that may only write streams of the trail's own log group. GuardDuty (with S3 and EKS
    audit-log protection) and AWS Config (recorder, delivery channel into the same bucket,
    recorder on) are created where ``detection_services`` names them.
    """

    trail_arn: pulumi.Output[str]
    """ARN of the trail."""
    bucket_name: pulumi.Output[str]
    """Name of the object-locked bucket."""
    log_group_name: pulumi.Output[str]
    """The trail's CloudWatch Logs group."""
    lifecycle: LifecycleSink
    """Where the cluster's pods append the lifecycle log (this bucket, ``lifecycle/``)."""

    def __init__(
        self, name: str, args: AuditTrailArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _validate(args)
        super().__init__(f"{TYPE_PREFIX}:audit_trail:AuditTrail", name, None, opts)
        partition, region = partition_of(self), region_of(self)
        account = pulumi.Output.from_input(args.account_id)
        trail_name = f"{args.name_prefix}-trail"
        trail_arn = pulumi.Output.all(partition, region, account).apply(
            lambda v: f"arn:{v[0]}:cloudtrail:{v[1]}:{v[2]}:trail/{trail_name}"
        )
        keep = args.protect

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=account.apply(lambda a: f"{args.name_prefix}-audit-trail-{a}"),
            # Object Lock can only be turned on when the bucket is created.
            object_lock_enabled=True,
            force_destroy=False,
            tags={"purpose": "audit-trail"},
            opts=child(self, protect=keep, retain_on_delete=keep),
        )
        owned = child(self)
        made = {
            setting: kind(f"{name}-bucket-{setting}", bucket=bucket.id, opts=owned, **values)
            for setting, (kind, values) in hardened_bucket_settings(args.logs_key_arn).items()
        }
        aws.s3.BucketObjectLockConfiguration(
            f"{name}-bucket-object-lock",
            bucket=bucket.id,
            rule={"default_retention": {"mode": "COMPLIANCE", "days": args.object_lock_days}},
            opts=child(self, depends_on=[made["versioning"]]),
        )
        aws.s3.BucketLogging(
            f"{name}-bucket-logging",
            bucket=bucket.id,
            target_bucket=args.access_logs_bucket,
            target_prefix="audit-trail/",
            opts=owned,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    # Only uploads that never completed: delivered files stay until their
                    # retention ends and someone decides, not a timer, to remove them.
                    "id": "abort-incomplete-uploads",
                    "status": "Enabled",
                    "filter": {},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=owned,
        )
        with_config = "config" in args.detection_services
        bucket_policy = aws.s3.BucketPolicy(
            f"{name}-bucket-policy",
            bucket=bucket.id,
            policy=policy(bucket_statements(bucket.arn, account, trail_arn, with_config)),
            # A bucket policy put before the public-access block is settled can be rejected.
            opts=child(self, depends_on=[made["public-access-block"]]),
        )

        group = aws.cloudwatch.LogGroup(
            f"{name}-log-group",
            name=f"/aws/cloudtrail/{args.name_prefix}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            opts=child(self, protect=keep),
        )
        cw_role, cw_grants = service_role(
            f"{name}-cloudwatch-role",
            service="cloudtrail.amazonaws.com",
            description=f"CloudTrail writes trail {trail_name} to its own log group",
            inline={
                f"{name}-cloudwatch-write": policy(
                    [
                        {
                            "Sid": "WriteOwnLogGroup",
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": pulumi.Output.concat(group.arn, ":log-stream:*"),
                        }
                    ]
                )
            },
            opts=owned,
        )
        selector: dict = {"read_write_type": "All", "include_management_events": True}
        if args.data_bucket_arns:
            selector["data_resources"] = [
                {
                    "type": "AWS::S3::Object",
                    # ``<bucket arn>/``: every object of the bucket.
                    "values": [pulumi.Output.concat(arn, "/") for arn in args.data_bucket_arns],
                }
            ]
        trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=trail_name,
            s3_bucket_name=bucket.bucket,
            s3_key_prefix=TRAIL_PREFIX,
            is_multi_region_trail=False,
            include_global_service_events=False,
            enable_log_file_validation=True,
            enable_logging=True,
            kms_key_id=args.logs_key_arn,
            # CloudTrail wants the group's ARN with the log-stream wildcard.
            cloud_watch_logs_group_arn=pulumi.Output.concat(group.arn, ":*"),
            cloud_watch_logs_role_arn=cw_role.arn,
            event_selectors=[selector],
            # CloudTrail checks that it may write to the bucket and the group when it is created.
            opts=child(self, protect=keep, depends_on=[bucket_policy, *cw_grants]),
        )
        if "guardduty" in args.detection_services:
            self._guardduty(name)
        if with_config:
            self._config(name, args, bucket, bucket_policy, partition)

        self.trail_arn = trail.arn
        self.bucket_name = bucket.bucket
        self.log_group_name = group.name
        self.lifecycle = LifecycleSink(bucket.bucket, bucket.arn, args.logs_key_arn, region)
        self.register_outputs(
            {
                "trail_arn": self.trail_arn,
                "bucket_name": self.bucket_name,
                "log_group_name": self.log_group_name,
            }
        )

    def _guardduty(self, name: str) -> None:
        detector = aws.guardduty.Detector(
            f"{name}-guardduty",
            enable=True,
            finding_publishing_frequency="FIFTEEN_MINUTES",
            opts=child(self),
        )
        for feature in GUARDDUTY_FEATURES:
            aws.guardduty.DetectorFeature(
                f"{name}-guardduty-{feature.lower().replace('_', '-')}",
                detector_id=detector.id,
                name=feature,
                status="ENABLED",
                opts=child(self),
            )

    def _config(
        self,
        name: str,
        args: AuditTrailArgs,
        bucket: aws.s3.Bucket,
        bucket_policy: aws.s3.BucketPolicy,
        partition: pulumi.Output[str],
    ) -> None:
        account = pulumi.Output.from_input(args.account_id)
        role, grants = service_role(
            f"{name}-config-role",
            service="config.amazonaws.com",
            description="AWS Config records this region's resources into the audit bucket",
            managed={
                f"{name}-config-read": managed_policy(partition, "service-role/AWS_ConfigRole")
            },
            inline={
                f"{name}-config-deliver": policy(
                    [
                        {
                            "Sid": "CheckAuditBucket",
                            "Effect": "Allow",
                            "Action": "s3:GetBucketAcl",
                            "Resource": bucket.arn,
                        },
                        {
                            "Sid": "DeliverToAuditBucket",
                            "Effect": "Allow",
                            "Action": "s3:PutObject",
                            "Resource": config_objects(bucket.arn, account),
                            "Condition": {"StringEquals": ACL_CONDITION},
                        },
                        {
                            "Sid": "EncryptWithLogsKey",
                            "Effect": "Allow",
                            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                            "Resource": args.logs_key_arn,
                        },
                    ]
                )
            },
            opts=child(self),
        )
        recorder = aws.cfg.Recorder(
            f"{name}-config-recorder",
            name=f"{args.name_prefix}-recorder",
            role_arn=role.arn,
            # IAM and other global resources are recorded here: this is the stack's one region.
            recording_group={"all_supported": True, "include_global_resource_types": True},
            opts=child(self, depends_on=grants),
        )
        channel = aws.cfg.DeliveryChannel(
            f"{name}-config-delivery",
            name=f"{args.name_prefix}-delivery",
            s3_bucket_name=bucket.bucket,
            s3_key_prefix=CONFIG_PREFIX,
            s3_kms_key_arn=args.logs_key_arn,
            snapshot_delivery_properties={"delivery_frequency": "TwentyFour_Hours"},
            # AWS refuses a delivery channel before its recorder exists.
            opts=child(self, depends_on=[recorder, bucket_policy]),
        )
        aws.cfg.RecorderStatus(
            f"{name}-config-status",
            name=recorder.name,
            is_enabled=True,
            # Recording can start only once the channel exists.
            opts=child(self, depends_on=[channel]),
        )


def config_objects(bucket_arn: pulumi.Input[str], account: pulumi.Input[str]) -> pulumi.Output[str]:
    """Where AWS Config delivers in the bucket: ``<bucket>/config/AWSLogs/<account>/Config/*``."""
    return pulumi.Output.concat(bucket_arn, f"/{CONFIG_PREFIX}/AWSLogs/", account, "/Config/*")


def bucket_statements(
    bucket_arn: pulumi.Output[str],
    account: pulumi.Output[str],
    trail_arn: pulumi.Output[str],
    with_config: bool,
) -> list[dict]:
    """The trail bucket's policy: CloudTrail for this trail, Config for this account, TLS only."""
    trail_only = {"aws:SourceArn": trail_arn}
    account_only = {"aws:SourceAccount": account}
    statements: list[dict] = [
        {
            "Sid": "CloudTrailAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:GetBucketAcl",
            "Resource": bucket_arn,
            "Condition": {"StringEquals": trail_only},
        },
        {
            "Sid": "CloudTrailWrite",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": pulumi.Output.concat(
                bucket_arn, f"/{TRAIL_PREFIX}/AWSLogs/", account, "/*"
            ),
            "Condition": {"StringEquals": {**ACL_CONDITION, **trail_only}},
        },
    ]
    if with_config:
        statements += [
            {
                "Sid": "ConfigBucketCheck",
                "Effect": "Allow",
                "Principal": {"Service": "config.amazonaws.com"},
                "Action": ["s3:GetBucketAcl", "s3:ListBucket"],
                "Resource": bucket_arn,
                "Condition": {"StringEquals": account_only},
            },
            {
                "Sid": "ConfigDelivery",
                "Effect": "Allow",
                "Principal": {"Service": "config.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": config_objects(bucket_arn, account),
                "Condition": {"StringEquals": {**ACL_CONDITION, **account_only}},
            },
        ]
    everything = [bucket_arn, objects_of(bucket_arn)]
    return [
        *statements,
        *lifecycle_bucket_statements(bucket_arn),
        deny_all_when(
            "DenyInsecureTransport", {"Bool": {"aws:SecureTransport": "false"}}, everything
        ),
        deny_all_when("DenyOutdatedTls", {"NumericLessThan": {"s3:TlsVersion": "1.2"}}, everything),
    ]


def lifecycle_bucket_statements(bucket_arn: pulumi.Input[str]) -> list[dict]:
    """What the bucket refuses under ``lifecycle/``, to everyone (the root user included).

    A put without ``If-None-Match`` (S3's ``s3:if-none-match`` condition key, absent from the
    request) would replace an entry's current version; with it S3 writes only a key that does
    not exist yet, which is how the chain appends (``pipelines/audit/sink.py``). Multipart
    uploads and copies cannot carry the header and are refused too (entries are small single
    puts). Deleting an entry, or a version, is refused outright: Object Lock already stops a
    version's deletion within retention but lets anyone with ``s3:DeleteObject`` hide an entry
    behind a delete marker.
    """
    entries = objects_of(bucket_arn, f"{LIFECYCLE_PREFIX}/")
    return [
        {
            "Sid": "DenyUnconditionalLifecyclePut",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:PutObject",
            "Resource": entries,
            "Condition": {"Null": {"s3:if-none-match": "true"}},
        },
        {
            "Sid": "DenyLifecycleDeletion",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": entries,
        },
    ]


def lifecycle_writer_statements(sink: LifecycleSink, namespace: str) -> list[dict]:
    """IAM statements of a role whose pods append to ``namespace``'s chain, and only to it.

    List only ``lifecycle/<namespace>/`` (finding the head), read and put only its objects (the
    bucket policy makes every put conditional), and data keys of the logs key for SSE-KMS.
    """
    prefix = chain_prefix(namespace)
    return [
        {
            "Sid": "ListOwnLifecycleChain",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": sink.bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
        },
        {
            "Sid": "AppendOwnLifecycleChain",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": objects_of(sink.bucket_arn, f"{prefix}/"),
        },
        {
            "Sid": "LifecycleBucketKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": sink.key_arn,
        },
    ]


def audit_settings(sink: LifecycleSink, namespace: str) -> dict[str, pulumi.Input[str]]:
    """The ``sovml-audit`` ConfigMap's data: bucket, the namespace's chain, the region."""
    return {BUCKET_ENV: sink.bucket, PREFIX_ENV: chain_prefix(namespace), REGION_ENV: sink.region}


def audit_config_map(
    resource_name: str, sink: LifecycleSink, namespace: str, opts: pulumi.ResourceOptions
) -> k8s.core.v1.ConfigMap:
    """The ``sovml-audit`` ConfigMap of ``namespace``: what its appending pods get as env."""
    return k8s.core.v1.ConfigMap(
        resource_name,
        metadata=metadata(CONFIG_MAP, namespace),
        data=audit_settings(sink, namespace),
        opts=opts,
    )
