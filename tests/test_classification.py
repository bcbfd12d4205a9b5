"""The generated classification of every AWS type, and the residency and encryption rules on it.

The table (``policies/rules/aws_types.json``) must be what ``python -m policies.gen_classification``
generates from the installed pulumi-aws, must hold every CustomResource type of that SDK, and must
classify the destination fields the issue names. The rules read it offline and in the CrossGuard
pack alike; the allow-list of in-zone external resources and the resolution of declared resources
through the record are checked both ways here (the per-rule fixtures are in ``policy_cases``).
"""

from __future__ import annotations

import json
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from policies.gen_classification import kinds as leaf_kinds_module
from policies.gen_classification import table as generator
from policies.rules import Context, evaluate
from policies.rules.classification import (
    TABLE_FILE,
    is_unknown,
    leaves,
    pulumi_aws_version,
    snake,
    strings,
    table,
)
from policies.rules.record import context_from_record, resources_from_record
from policies.rules.residency import az_ids, in_zone_az, in_zone_endpoint
from tests.policy_cases import as_record
from tests.policy_fixtures import KEY, R

ROOT = Path(__file__).resolve().parents[1]
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SDK_TOKEN = re.compile(
    r'@pulumi\.type_token\("(aws:[^"]+)"\)\s*\nclass \w+\(pulumi\.CustomResource\)'
)


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    """The table generated now from the installed SDK (one generation for the module)."""
    return generator.build()


def test_the_table_is_current_for_the_installed_pulumi_aws(generated: dict[str, Any]) -> None:
    assert generated["pulumiAwsVersion"] == version("pulumi-aws") == pulumi_aws_version()
    assert TABLE_FILE.read_text() == generator.render(
        generated
    ), "stale: run python -m policies.gen_classification --write and review the diff"


def test_the_table_says_it_is_generated() -> None:
    doc = json.loads(TABLE_FILE.read_text())
    assert "GENERATED" in doc["_comment"] and "do not edit" in doc["_comment"]
    assert doc["generatedBy"] == "python -m policies.gen_classification"


def test_every_type_of_the_sdk_has_both_classifications() -> None:
    sdk = generator.sdk_root()
    tokens = {
        m.group(1)
        for path in sdk.rglob("*.py")
        if not path.name.startswith("_")
        for m in SDK_TOKEN.finditer(path.read_text(encoding="utf-8"))
    }
    assert len(tokens) > 1500  # 1,748 in pulumi-aws 7.51.1
    assert set(table()) == tokens
    for token, info in table().items():
        assert isinstance(info["regional"], bool), token
        assert isinstance(info["paths"], dict), token
        assert all(set(p["kinds"]) <= set(leaf_kinds_module.KINDS) for p in info["paths"].values())
        enc = info["encryption"]
        assert isinstance(enc["storesData"], bool), token
        if enc["storesData"]:
            assert enc["default"], token
            assert enc.get("cmk") is not None or enc.get("noCmk") or enc.get("via"), token


REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
ECR = "aws:ecr/replicationConfiguration:ReplicationConfiguration"
SPOT_CHECKS = [
    # (type, path, kind, is a destination)
    (REPLICATION, "rules[].destination.bucket", "arn", True),
    (REPLICATION, "rules[].destination.encryptionConfiguration.replicaKmsKeyId", "kms", True),
    (FIREHOSE, "extendedS3Configuration.bucketArn", "bucket", True),
    (FIREHOSE, "httpEndpointConfiguration.url", "endpoint", True),
    (ECR, "replicationConfiguration.rules[].destinations[].region", "region", True),
    ("aws:secretsmanager/secret:Secret", "replicas[].region", "region", True),
    ("aws:dynamodb/table:Table", "replicas[].regionName", "region", True),
    ("aws:kms/replicaKey:ReplicaKey", "primaryKeyArn", "arn", True),
    ("aws:rds/instance:Instance", "replicateSourceDb", "arn", True),
    ("aws:rds/cluster:Cluster", "replicationSourceIdentifier", "arn", True),
    ("aws:rds/cluster:Cluster", "sourceRegion", "region", False),
    ("aws:docdb/globalCluster:GlobalCluster", "sourceDbClusterIdentifier", "arn", True),
    ("aws:neptune/globalCluster:GlobalCluster", "sourceDbClusterIdentifier", "arn", True),
    ("aws:ebs/snapshotCopy:SnapshotCopy", "sourceRegion", "region", True),
    ("aws:rds/snapshotCopy:SnapshotCopy", "destinationRegion", "region", True),
    ("aws:sns/topicSubscription:TopicSubscription", "endpoint", "endpoint", True),
    ("aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter", "destinationArn", "arn", True),
    ("aws:cloudwatch/eventTarget:EventTarget", "arn", "arn", True),
    ("aws:backup/plan:Plan", "rules[].copyActions[].destinationVaultArn", "arn", True),
    ("aws:s3/bucketLogging:BucketLogging", "targetBucket", "bucket", True),
    ("aws:ec2/flowLog:FlowLog", "logDestination", "arn", True),
    ("aws:ec2/subnet:Subnet", "availabilityZone", "az", False),
    ("aws:athena/workgroup:Workgroup", "configuration.resultConfiguration.outputLocation", "bucket",
     True),
]  # fmt: skip
"""Destination fields the issue names, and where they sit in the table."""


@pytest.mark.parametrize(
    ("token", "path", "kind", "destination"),
    SPOT_CHECKS,
    ids=[f"{c[0]}:{c[1]}" for c in SPOT_CHECKS],
)
def test_destination_fields_are_classified(
    token: str, path: str, kind: str, destination: bool
) -> None:
    spec = table()[token]["paths"][path]
    assert kind in spec["kinds"]
    assert spec["destination"] is destination


def test_switches_and_matchers_are_not_endpoints() -> None:
    assert (
        "metadataOptions.httpEndpoint"
        not in table()["aws:ec2/launchTemplate:LaunchTemplate"]["paths"]
    )
    assert leaf_kinds_module.leaf_kinds("regionConcurrencyType", "") == []
    assert leaf_kinds_module.leaf_kinds("stateOrRegion", "State or region of the address.") == []
    assert leaf_kinds_module.leaf_kinds("role", "ARN of the IAM role to assume.") == ["arn"]
    assert leaf_kinds_module.leaf_kinds("destinationBucketArn", "") == ["arn", "bucket"]
    assert leaf_kinds_module.leaf_kinds("kmsKeyId", "") == ["kms"]


def test_global_services_are_marked() -> None:
    assert table()["aws:iam/role:Role"]["regional"] is False
    assert table()["aws:cloudfront/distribution:Distribution"]["regional"] is False
    assert table()["aws:route53/resolverEndpoint:ResolverEndpoint"]["regional"] is True
    assert table()["aws:s3/bucket:Bucket"]["regional"] is True


def test_encryption_classification_of_the_data_stores() -> None:
    def enc(token: str) -> dict[str, Any]:
        return dict(table()[token]["encryption"])

    assert enc("aws:dynamodb/table:Table")["cmk"] == ["serverSideEncryption.kmsKeyArn"]
    assert enc("aws:dynamodb/table:Table")["companions"] == {"serverSideEncryption.enabled": [True]}
    assert "SQS-managed" in enc("aws:sqs/queue:Queue")["default"]
    assert enc("aws:ssm/parameter:Parameter")["when"] == {"type": ["SecureString"]}
    assert enc("aws:rds/instance:Instance")["companions"]["storageEncrypted"] == [True]
    assert "performanceInsightsKmsKeyId" in enc("aws:rds/instance:Instance")["cmkWhenConfigured"]
    assert enc("aws:glacier/vault:Vault")["noCmk"] is True
    assert enc("aws:s3/bucket:Bucket")["via"].startswith("aws:s3/bucketServerSideEncryption")
    assert enc("aws:kms/key:Key") == {"storesData": False}
    assert enc("aws:iam/role:Role") == {"storesData": False}
    stores = [t for t, v in table().items() if v["encryption"]["storesData"]]
    assert len(stores) > 150


def test_walking_paths_names_every_element() -> None:
    inputs = {"rules": [{"destination": {"bucket": "a"}}, {"destination": {}}, {"other": 1}]}
    assert list(leaves(inputs, "rules[].destination.bucket")) == [
        ("rules[0].destination.bucket", "a"),
        ("rules[1].destination.bucket", None),
    ]
    # one object where a list is declared, and a list where an object is declared
    odd = {"rules": {"destination": [{"bucket": "b"}]}}
    assert list(leaves(odd, "rules[].destination.bucket")) == [("rules.destination[0].bucket", "b")]
    assert list(leaves({"m": {"k1": {"url": "u"}}}, "m{}.url")) == [("m.k1.url", "u")]
    regions = list(leaves({"regions": ["x", "y"]}, "regions[]"))
    assert regions == [("regions[0]", "x"), ("regions[1]", "y")]
    assert list(strings({"a": [{"b": "c"}, UNKNOWN]})) == [("a[0].b", "c")]
    assert is_unknown(UNKNOWN) and not is_unknown("x")
    assert snake("serverSideEncryption.kmsKeyArn") == "server_side_encryption.kms_key_arn"


def test_zone_regions_zones_and_endpoints() -> None:
    ctx = Context()
    assert az_ids("me-central-1") == ("me-central-1", "mec1-az")
    assert az_ids("us-gov-west-1")[1] == "usgw1-az"
    assert in_zone_az("me-central-1c", ctx) and in_zone_az("mec1-az3", ctx)
    assert not in_zone_az("eu-west-1a", ctx) and not in_zone_az("euw1-az1", ctx)
    assert in_zone_endpoint("https://sqs.me-central-1.amazonaws.com/1/q", ctx)
    assert in_zone_endpoint("b.s3.me-central-1.amazonaws.com", ctx)
    assert not in_zone_endpoint("https://s3.amazonaws.com/b", ctx)
    assert not in_zone_endpoint("https://me-central-1.amazonaws.com.evil.example/", ctx)
    assert not in_zone_endpoint("ops@example.com", ctx)
    # a bucket named like the region behind the global endpoint proves nothing
    assert not in_zone_endpoint("https://x-me-central-1.s3.amazonaws.com/k", ctx)
    assert in_zone_endpoint("vpce-1.s3.me-central-1.vpce.amazonaws.com", ctx)


def test_a_finding_names_the_path_the_value_and_the_fix() -> None:
    ecr = R(
        ECR,
        "e",
        {"replicationConfiguration": {"rules": [{"destinations": [{"region": "eu-west-1"}]}]}},
    )
    [v] = [v for v in evaluate([ecr], Context()) if v.rule_id == "SOV-RES-002"]
    assert v.resource == ecr.urn
    assert v.message.startswith(
        "replicationConfiguration.rules[0].destinations[0].region = 'eu-west-1'"
    )
    assert "use me-central-1" in v.message
    [v] = [
        v
        for v in evaluate([R("aws:sqs/queue:Queue", "q", {})], Context())
        if v.rule_id == "SOV-ENC-010"
    ]
    assert "kmsMasterKeyId is unset" in v.message and "SQS-managed" in v.message
    assert "set kms_master_key_id to" in v.message
    [v] = [
        v
        for v in evaluate([R("aws:madeup/thing:Thing", "t", {})], Context())
        if v.rule_id == "SOV-RES-002"
    ]
    assert (
        "not classified" in v.message
        and "python -m policies.gen_classification --write" in v.message
    )


def test_values_unknown_at_preview_are_not_judged() -> None:
    ecr = R(
        ECR, "e", {"replicationConfiguration": {"rules": [{"destinations": [{"region": UNKNOWN}]}]}}
    )
    log = R("aws:s3/bucketLogging:BucketLogging", "l", {"bucket": UNKNOWN, "targetBucket": UNKNOWN})
    found = [v.rule_id for v in evaluate([ecr, log], Context())]
    assert "SOV-RES-002" not in found and "SOV-RES-004" not in found


def _pack(records: list[dict[str, Any]], tmp_path: Path) -> list[list[dict[str, Any]]]:
    """The CrossGuard pack's violations for each record (one harness process)."""
    paths = []
    for i, record in enumerate(records):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(record))
    proc = subprocess.run(
        [str(POLICY_PYTHON), "-m", "policies.crossguard_harness", *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    results = json.loads(proc.stdout)
    return [results[str(p)] for p in paths]


def _offline(record: dict[str, Any], rule_id: str) -> int:
    found = evaluate(resources_from_record(record), context_from_record(record))
    return sum(1 for v in found if v.rule_id == rule_id)


def _reported(reports: list[dict[str, Any]], rule_id: str) -> int:
    return sum(1 for v in reports if v["message"].startswith(f"[{rule_id}] "))


def test_in_zone_external_resources_and_declared_resources_agree_offline_and_in_the_pack(
    tmp_path: Path,
) -> None:
    """An external bucket passes only when the stack lists it; a role passes when the program
    declares it (resolved through the record's outputs, as a stack policy sees outputs)."""
    if not POLICY_PYTHON.exists():
        pytest.skip(".venv-policy is missing (make setup creates it)")
    logging = R(
        "aws:s3/bucketLogging:BucketLogging", "l", {"bucket": "b", "targetBucket": "partner-logs"}
    )
    bucket = R("aws:s3/bucket:Bucket", "b", {"bucket": "b"})
    unlisted = as_record([bucket, logging])
    listed = as_record([bucket, logging])
    listed["config"]["in_zone_external_resources"] = ["partner-logs"]

    role_arn = "arn:aws:iam::123456789012:role/cluster"
    secrets = {"resources": ["secrets"], "provider": {"keyArn": KEY}}
    cluster = R(
        "aws:eks/cluster:Cluster", "eks", {"roleArn": role_arn, "encryptionConfig": secrets}
    )
    declared = as_record([R("aws:iam/role:Role", "cluster", {"name": "cluster"}), cluster])
    declared["resources"][-2]["outputs"] = {"arn": role_arn}
    undeclared = as_record([cluster])

    records = [unlisted, listed, declared, undeclared]
    expected = [1, 0, 0, 1]
    offline = [_offline(r, "SOV-RES-004") for r in records]
    pack = [_reported(v, "SOV-RES-004") for v in _pack(records, tmp_path)]
    assert offline == expected
    assert pack == expected
