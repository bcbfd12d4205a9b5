"""The audit trail: the component under mocks, its config keys, the availability table, and the
gate refusing a production stack without it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.audit_trail import AuditTrail, AuditTrailArgs
from infra.config.parsing import parse
from policies.rules import Context, evaluate
from policies.rules.record import context_from_record, resources_from_record
from policies.zones import (
    AUDIT_SERVICE_SOURCES,
    OFFERED,
    SERVICE_AVAILABILITY,
    UNKNOWN,
    ZONES,
    service_availability,
)
from tests.component_mocks import KEY, children_named_after, of_type, record

COMPONENT = "sovereign-ml:audit_trail:AuditTrail"
DATA = ("arn:aws:s3:::models", "arn:aws:s3:::features")
AUDIT_TYPES = (
    "aws:cloudtrail/trail:Trail",
    "aws:guardduty/detector:Detector",
    "aws:guardduty/detectorFeature:DetectorFeature",
    "aws:cfg/recorder:Recorder",
    "aws:cfg/deliveryChannel:DeliveryChannel",
    "aws:cfg/recorderStatus:RecorderStatus",
)


def _audit(**kw: Any) -> AuditTrail:
    args: dict[str, Any] = {
        "name_prefix": "sovml-t",
        "account_id": "123456789012",
        "logs_key_arn": KEY,
        "access_logs_bucket": "sovml-t-access-logs",
        "object_lock_days": 2557,
        "log_retention_days": 365,
        "data_bucket_arns": list(DATA),
        "protect": True,
    }
    return AuditTrail("audit", AuditTrailArgs(**{**args, **kw}))


def _one(res: list[dict], typ: str) -> dict:
    found = of_type(res, typ)
    assert len(found) == 1, [r["urn"] for r in found]
    return found[0]


def _doc(resource: dict) -> dict:
    return json.loads(resource["inputs"]["policy"])


def test_trail_is_single_region_validated_encrypted_and_sent_to_cloudwatch() -> None:
    res = record(_audit)
    trail = _one(res, "aws:cloudtrail/trail:Trail")["inputs"]
    assert trail["name"] == "sovml-t-trail"
    assert trail["isMultiRegionTrail"] is False
    assert trail["enableLogFileValidation"] is True
    assert trail["kmsKeyId"] == KEY
    group = _one(res, "aws:cloudwatch/logGroup:LogGroup")["inputs"]
    assert group == {"name": "/aws/cloudtrail/sovml-t", "retentionInDays": 365, "kmsKeyId": KEY}
    assert trail["cloudWatchLogsGroupArn"] == (
        "arn:aws:logs:me-central-1:123456789012:log-group:/aws/cloudtrail/sovml-t:*"
    )
    assert trail["eventSelectors"] == [
        {
            "readWriteType": "All",
            "includeManagementEvents": True,
            "dataResources": [{"type": "AWS::S3::Object", "values": [f"{a}/" for a in DATA]}],
        }
    ]
    children_named_after(res, COMPONENT, "audit")


def test_cloudwatch_role_writes_only_the_trails_own_group() -> None:
    res = record(_audit)
    write = next(
        r for r in of_type(res, "aws:iam/rolePolicy:RolePolicy") if "cloudwatch" in r["name"]
    )
    (statement,) = _doc(write)["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == (
        "arn:aws:logs:me-central-1:123456789012:log-group:/aws/cloudtrail/sovml-t:log-stream:*"
    )
    role = next(r for r in of_type(res, "aws:iam/role:Role") if "cloudwatch" in r["name"])
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "cloudtrail.amazonaws.com"}


def test_bucket_is_locked_in_compliance_mode_and_protected_in_production() -> None:
    res = record(_audit)
    bucket = _one(res, "aws:s3/bucket:Bucket")
    assert bucket["inputs"]["objectLockEnabled"] is True
    assert bucket["inputs"]["bucket"] == "sovml-t-audit-trail-123456789012"
    assert bucket["protect"] is True and bucket["retainOnDelete"] is True
    lock = _one(res, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock["inputs"]["rule"] == {"defaultRetention": {"mode": "COMPLIANCE", "days": 2557}}
    sse = _one(
        res,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    default = sse["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}
    assert _one(res, "aws:cloudtrail/trail:Trail")["protect"] is True
    assert _one(res, "aws:cloudwatch/logGroup:LogGroup")["protect"] is True


def test_dev_bucket_is_not_protected_but_still_locked() -> None:
    res = record(lambda: _audit(protect=False, object_lock_days=1))
    bucket = _one(res, "aws:s3/bucket:Bucket")
    assert bucket["protect"] is False and bucket["inputs"]["objectLockEnabled"] is True
    lock = _one(res, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock["inputs"]["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 1}


def test_bucket_policy_admits_only_this_trail_and_this_accounts_config_over_tls() -> None:
    res = record(_audit)
    statements = {
        s["Sid"]: s for s in _doc(_one(res, "aws:s3/bucketPolicy:BucketPolicy"))["Statement"]
    }
    trail_arn = "arn:aws:cloudtrail:me-central-1:123456789012:trail/sovml-t-trail"
    write = statements["CloudTrailWrite"]
    assert write["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert write["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    assert write["Resource"].endswith("/trail/AWSLogs/123456789012/*")
    assert statements["CloudTrailAclCheck"]["Condition"]["StringEquals"] == {
        "aws:SourceArn": trail_arn
    }
    for sid in ("ConfigBucketCheck", "ConfigDelivery"):
        cond = statements[sid]["Condition"]["StringEquals"]
        assert cond["aws:SourceAccount"] == "123456789012", sid
    allowed = {s["Principal"]["Service"] for s in statements.values() if s["Effect"] == "Allow"}
    assert allowed == {"cloudtrail.amazonaws.com", "config.amazonaws.com"}
    assert statements["DenyInsecureTransport"]["Effect"] == "Deny"
    assert statements["DenyOutdatedTls"]["Condition"] == {
        "NumericLessThan": {"s3:TlsVersion": "1.2"}
    }


def test_detection_services_follow_the_args() -> None:
    full = record(_audit)
    assert _one(full, "aws:guardduty/detector:Detector")["inputs"]["enable"] is True
    features = {
        f["inputs"]["name"] for f in of_type(full, "aws:guardduty/detectorFeature:DetectorFeature")
    }
    assert features == {"S3_DATA_EVENTS", "EKS_AUDIT_LOGS"}
    assert _one(full, "aws:cfg/recorderStatus:RecorderStatus")["inputs"]["isEnabled"] is True
    channel = _one(full, "aws:cfg/deliveryChannel:DeliveryChannel")["inputs"]
    assert channel["s3KmsKeyArn"] == KEY and channel["s3KeyPrefix"] == "config"
    bare = record(lambda: _audit(detection_services=()))
    assert not [r for r in bare if r["type"] in AUDIT_TYPES[1:]]
    sids = {s["Sid"] for s in _doc(_one(bare, "aws:s3/bucketPolicy:BucketPolicy"))["Statement"]}
    assert not {"ConfigBucketCheck", "ConfigDelivery"} & sids


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"object_lock_days": 0}, "AuditTrailArgs.object_lock_days: 0; allowed 1-36500"),
        ({"log_retention_days": 0}, "AuditTrailArgs.log_retention_days: 0; allowed >= 1"),
        (
            {"detection_services": ["guardduty", "securityhub"]},
            "AuditTrailArgs.detection_services: ['guardduty', 'securityhub']; allowed distinct",
        ),
        (
            {"detection_services": ["config", "config"]},
            "AuditTrailArgs.detection_services: ['config', 'config']; allowed distinct",
        ),
        (
            {"data_bucket_arns": [f"arn:aws:s3:::b{i}" for i in range(251)]},
            "AuditTrailArgs.data_bucket_arns: 251 buckets; allowed at most 250",
        ),
    ],
)
def test_component_refuses_bad_args_before_creating_anything(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _audit(**change)


def test_the_components_resources_pass_the_audit_rules_in_production() -> None:
    from policies.rules.base import Resource

    res = record(_audit)
    resources = [
        Resource(
            r["type"],
            r["name"],
            r["inputs"] or {},
            r["urn"],
            {"region": "me-central-1"},
            tuple(r["dependencies"]),
        )
        for r in res
        if r["custom"]
    ]
    stack = [Resource("pulumi:providers:aws", "aws", {"region": "me-central-1"}), *resources]
    found = [v for v in evaluate(stack, Context()) if v.rule_id.startswith("SOV-AUD")]
    assert found == []
    # Without its detection services the same stack is refused, once per missing service.
    bare = [r for r in stack if r.type not in AUDIT_TYPES[1:]]
    found = [v for v in evaluate(bare, Context()) if v.rule_id.startswith("SOV-AUD")]
    assert [v.rule_id for v in found] == ["SOV-AUD-003", "SOV-AUD-003"]


BASE = {
    "aws:region": "me-central-1",
    "owner": "ml-platform",
    "costCenter": "cc-1",
    "alertWebhookUrl": "https://itsm.example.ae/alertmanager",
    "gatewayOidcIssuer": "https://login.example.ae/realms/ml",
    "gatewayOidcJwksUri": "https://login.example.ae/realms/ml/certs",
}


def test_config_defaults_are_years_in_production() -> None:
    cfg = parse(BASE, stack="t", source="Pulumi.t.yaml")
    assert not isinstance(cfg, list), cfg
    assert (cfg.audit_retention_days, cfg.audit_log_retention_days) == (2557, 365)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"auditRetentionDays": 30},
            "s: sovereign-ml:auditRetentionDays = 30: >= 365 in prod (COMPLIANCE-mode Object Lock "
            "keeps a year of evidence)",
        ),
        (
            {"auditRetentionDays": 0},
            "s: sovereign-ml:auditRetentionDays = 0: an integer from 1 to 36500",
        ),
        (
            {"auditLogRetentionDays": 90},
            "s: sovereign-ml:auditLogRetentionDays = 90: >= 365 in prod",
        ),
        (
            {"auditLogRetentionDays": 100},
            "s: sovereign-ml:auditLogRetentionDays = 100: a CloudWatch retention value: (1, 3,",
        ),
    ],
)
def test_config_refuses_short_or_invalid_retention(raw: dict[str, Any], expected: str) -> None:
    problems = parse({**BASE, **raw}, stack="t", source="s")
    assert isinstance(problems, list)
    texts = [str(p) for p in problems]
    assert len(texts) == 1 and texts[0].startswith(expected), texts


def test_dev_may_lock_for_a_day() -> None:
    cfg = parse({**BASE, "environment": "dev", "auditRetentionDays": 1}, stack="t", source="s")
    assert not isinstance(cfg, list), cfg
    assert cfg.audit_retention_days == 1


def test_availability_table_covers_every_zone_region_with_a_source() -> None:
    regions = {r for z in ZONES.values() for r in z.region_names}
    assert set(SERVICE_AVAILABILITY) == regions
    for region, services in SERVICE_AVAILABILITY.items():
        assert set(services) == set(AUDIT_SERVICE_SOURCES), region
        assert set(services.values()) <= {OFFERED, UNKNOWN}, region
    assert all(u.startswith("https://docs.aws.amazon.com/") for u in AUDIT_SERVICE_SOURCES.values())
    assert service_availability("me-central-1", "guardduty") == OFFERED
    assert service_availability("me-west-1", "config") == UNKNOWN
    assert service_availability("atlantis-1", "guardduty") == UNKNOWN
    assert service_availability("me-central-1", "made-up") == UNKNOWN


def test_gate_refuses_prod_uae_without_its_trail_and_detection(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    record_ = stack_records["prod-uae"]
    ctx = context_from_record(record_)
    resources = resources_from_record(record_)
    assert [v for v in evaluate(resources, ctx) if v.rule_id.startswith("SOV-AUD")] == []
    stripped = [r for r in resources if r.type not in AUDIT_TYPES]
    found = sorted(
        (v.rule_id, v.message) for v in evaluate(stripped, ctx) if v.rule_id.startswith("SOV-AUD")
    )
    assert [f[0] for f in found] == ["SOV-AUD-001", "SOV-AUD-003", "SOV-AUD-003"]
    assert found[0][1].startswith(
        "production stack uses me-central-1 but has no CloudTrail trail there: add one"
    )
    assert found[1][1].startswith(
        "production stack in me-central-1 lacks AWS Config's configuration recorder, delivery "
        "channel, recorder status with is_enabled true, though me-central-1 offers config "
        "(https://docs.aws.amazon.com/general/latest/gr/awsconfig.html)"
    )
    assert found[2][1].startswith(
        "production stack in me-central-1 lacks an enabled GuardDuty detector, though"
    )
    unlocked = [
        r
        for r in resources
        if r.type != "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
    ]
    (violation,) = [v for v in evaluate(unlocked, ctx) if v.rule_id == "SOV-AUD-002"]
    assert "trail bucket sovml-prod-uae-audit-trail-123456789012: default retention is none" in (
        violation.message
    )
    # Staging and dev are not judged: the same stripped resources pass there.
    dev = Context(zone="uae", environment="dev")
    assert not [v for v in evaluate(stripped, dev) if v.rule_id.startswith("SOV-AUD")]
