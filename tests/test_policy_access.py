"""Provider escapes, IAM grants and ingress coverage: the rules' building blocks, the context the
CrossGuard pack gets from ``build/<stack>/policy-config.json``, and the SDK names the rules read.

The pass/fail fixtures of the rules themselves are in ``tests/policy_cases.py`` (run offline and
through the pack by ``tests/test_policy_rules.py``); the mutation corpus in ``tests/mutations``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.gate.pack_config import FILE, write_pack_config
from policies.rules import RULES, Context, Resource, evaluate, iam, network, providers
from policies.rules.record import context_from_record, policy_pack_config, resources_from_record
from tests.policy_cases import as_record
from tests.policy_fixtures import R, _allow, _eks, _prov, _sg

ROOT = Path(__file__).resolve().parents[1]
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
NAMES = {r.id: r.name for r in RULES}

OFFICE = "203.0.113.0/24"
VPCE = "bucket.vpce-0a1b.s3.me-central-1.vpce.amazonaws.com"
PUBLIC_API = _eks(endpointPublicAccess=True, publicAccessCidrs=[OFFICE])
DEPLOY = "arn:aws:iam::{}:role/deploy"

REPLICATION = [
    R(
        "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
        "r",
        {
            "role": "arn:aws:iam::123456789012:role/replication",
            "bucket": "source",
            "rules": [{"status": "Enabled", "destination": {"bucket": "arn:aws:s3:::archive"}}],
        },
    )
]
"""Replication into a bucket the program does not declare (source and role listed as external)."""
KNOWN = ["source", "arn:aws:iam::123456789012:role/replication"]

# (rule id, label, resources, stack config beyond the defaults, expected violations). Each pair
# shows one context field changing the verdict, offline and in the pack alike.
CONTEXT_CASES: list[tuple[str, str, list[Resource], dict[str, Any], int]] = [
    ("SOV-RES-001", "eu provider in zone eu", [_prov(region="eu-central-1")], {"zone": "eu"}, 0),
    ("SOV-RES-001", "eu provider in zone uae", [_prov(region="eu-central-1")], {}, 1),
    ("SOV-NET-001", "public endpoint in dev", [PUBLIC_API], {"environment": "dev"}, 0),
    ("SOV-NET-001", "public endpoint in prod", [PUBLIC_API], {}, 1),
    (
        "SOV-IAM-009",
        "assume-role into an allowed account",
        [
            _prov(
                assumeRoles=[{"roleArn": DEPLOY.format("111122223333")}],
                allowedAccountIds=["111122223333"],
            )
        ],
        {"allowed_account_ids": ["111122223333"]},
        0,
    ),
    (
        "SOV-IAM-009",
        "assume-role into another account",
        [_prov(assumeRoles=[{"roleArn": DEPLOY.format("999999999999")}])],
        {"allowed_account_ids": ["111122223333"]},
        1,
    ),
    (
        "SOV-RES-003",
        "endpoint host declared in zone",
        [_prov(endpoints=[{"s3": f"https://{VPCE}"}])],
        {"in_zone_external_resources": [VPCE]},
        0,
    ),
    (
        "SOV-RES-003",
        "endpoint host not declared",
        [_prov(endpoints=[{"s3": f"https://{VPCE}"}])],
        {"in_zone_external_resources": ["proxy.example.com"]},
        1,
    ),
    (
        "SOV-RES-003",
        "proxy host declared in zone",
        [_prov(httpsProxy="http://proxy.example.com:3128")],
        {"in_zone_external_resources": ["proxy.example.com"]},
        0,
    ),
    (
        "SOV-RES-004",
        "replica bucket declared in zone",
        REPLICATION,
        {"in_zone_external_resources": [*KNOWN, "arn:aws:s3:::archive"]},
        0,
    ),
    (
        "SOV-RES-004",
        "replica bucket not declared",
        REPLICATION,
        {"in_zone_external_resources": KNOWN},
        1,
    ),
    (
        "SOV-NET-002",
        "office ranges allowed",
        [_sg(OFFICE, "2001:db8::/48")],
        {"ingress_allowed_cidrs": [OFFICE, "2001:db8::/48"]},
        0,
    ),
    (
        "SOV-NET-002",
        "office range wider than allowed",
        [_sg(OFFICE)],
        {"ingress_allowed_cidrs": ["203.0.113.0/25"]},
        1,
    ),
    (
        "SOV-NET-002",
        "an allowed IPv4 range says nothing about IPv6",
        [_sg("2001:db8::/48", key="ipv6CidrBlocks")],
        {"ingress_allowed_cidrs": [OFFICE]},
        1,
    ),
]


def _record(resources: list[Resource], config: dict[str, Any]) -> dict[str, Any]:
    return as_record(resources, **{"zone": "uae", "environment": "prod", **config})


@pytest.mark.parametrize(
    ("rule_id", "label", "resources", "config", "expected"),
    CONTEXT_CASES,
    ids=[f"{c[0]}:{c[1]}" for c in CONTEXT_CASES],
)
def test_context_case_offline(
    rule_id: str, label: str, resources: list[Resource], config: dict[str, Any], expected: int
) -> None:
    ctx = context_from_record(_record(resources, config))
    found = [v for v in evaluate(resources, ctx) if v.rule_id == rule_id]
    assert len(found) == expected, [v.message for v in found]


def test_every_context_field_changes_a_verdict() -> None:
    fields = {k for _, _, _, cfg, _ in CONTEXT_CASES for k in cfg}
    assert fields == {
        "zone",
        "environment",
        "allowed_account_ids",
        "in_zone_external_resources",
        "ingress_allowed_cidrs",
    }


def _harness(*args: str) -> Any:
    proc = subprocess.run(
        [str(POLICY_PYTHON), "-m", "policies.crossguard_harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def test_the_pack_gets_the_same_context_case_by_case(tmp_path: Path) -> None:
    """Each record's pack config is built from its own config, as ``sovml check`` writes it."""
    assert POLICY_PYTHON.exists(), ".venv-policy missing: run make setup"
    paths, records = [], []
    for i, (_, _, resources, config, _) in enumerate(CONTEXT_CASES):
        record = _record(resources, config)
        path = tmp_path / f"case{i}.json"
        path.write_text(json.dumps(record))
        paths.append(str(path))
        records.append(record)
    results = _harness(*paths)
    for path, record, (rule_id, label, resources, _, expected) in zip(
        paths, records, CONTEXT_CASES, strict=True
    ):
        pack = Counter(v["policy"] for v in results[path])
        offline = Counter(v.rule_name for v in evaluate(resources, context_from_record(record)))
        assert pack == offline, f"{rule_id} {label}: pack {pack} offline {offline}"
        assert pack[NAMES[rule_id]] == expected, f"{rule_id} {label}"


def test_the_written_pack_config_drives_the_pack(tmp_path: Path) -> None:
    """``--config build/<stack>/policy-config.json`` overrides what the record would give."""
    resources = [_sg("203.0.113.0/24")]
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps(_record(resources, {})))
    allowing = write_pack_config(
        {"config": {"zone": "uae", "ingress_allowed_cidrs": ["203.0.113.0/24"]}}, tmp_path / "b"
    )
    found = _harness(str(strict))
    assert [v["policy"] for v in found] == [NAMES["SOV-NET-002"]]
    assert _harness("--config", str(allowing), str(strict)) == []


@cache
def _config_schema() -> dict[str, Any]:
    code = (
        "import json; from policies.crossguard import CONFIG_SCHEMA; "
        "print(json.dumps(CONFIG_SCHEMA.properties))"
    )
    out = subprocess.run(
        [str(POLICY_PYTHON), "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return {"type": "object", "properties": json.loads(out), "additionalProperties": False}


def test_pack_config_file_names_every_policy_and_fits_its_schema(
    stack_records: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The format ``pulumi preview --policy-pack-config`` reads: policy name -> config object."""
    record = stack_records["prod-uae"]
    path = write_pack_config(record, tmp_path)
    assert path == tmp_path / FILE
    doc = json.loads(path.read_text())
    assert set(doc) == {r.name for r in RULES}
    for name, config in doc.items():
        jsonschema.validate(config, _config_schema())
        assert "enforcementLevel" not in config, name  # levels stay as the pack declares them
    values = doc[NAMES["SOV-RES-001"]]
    cfg = record["config"]
    assert values == {
        "zone": cfg["zone"],
        "environment": cfg["environment"],
        "allowed_account_ids": list(cfg["allowed_account_ids"]),
        "in_zone_external_resources": list(cfg["in_zone_external_resources"]),
        "ingress_allowed_cidrs": list(cfg["ingress_allowed_cidrs"]),
        "unpinned_images": [],  # written without suppressions: none accepted
    }
    assert doc == policy_pack_config(cfg)


def test_sovml_check_writes_the_pack_config_beside_the_record(tmp_path: Path) -> None:
    from infra.gate.run import run_gate

    report = run_gate("prod-uae", build_dir=tmp_path, checkov=False)
    assert not [f for f in report.failures if f.source == "rule"]
    doc = json.loads((tmp_path / "prod-uae" / FILE).read_text())
    assert doc[NAMES["SOV-NET-002"]]["zone"] == "uae"


def test_our_stacks_pass_the_provider_iam_and_network_rules(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    mine = {r.id for r in RULES if r.check.__module__ in (iam.__name__, providers.__name__)}
    mine |= {"SOV-NET-002"}
    for stack, record in stack_records.items():
        found = evaluate(resources_from_record(record), context_from_record(record))
        assert [v.message for v in found if v.rule_id in mine] == [], stack
        provider = next(r for r in record["resources"] if r["type"] == providers.AWS_PROVIDER)
        assert provider["inputs"]["skipRegionValidation"] == "false", stack


# Building blocks ---------------------------------------------------------------------------


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


@pytest.mark.parametrize(
    ("ranges", "allowed", "left"),
    [
        (["0.0.0.0/1", "128.0.0.0/1"], [], 3_702_390_784),  # 2^32 minus the non-public space
        (["0.0.0.0/0"], [], 3_702_390_784),
        (["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "fd00::/8", "fe80::/10"], [], 0),
        (["203.0.113.0/24"], ["203.0.113.0/24"], 0),
        (["203.0.112.0/23"], ["203.0.113.0/24"], 256),
        (["198.51.100.7/32", "198.51.100.7/32"], [], 1),
    ],
)
def test_uncovered_public_space(ranges: list[str], allowed: list[str], left: int) -> None:
    out = network.uncovered([_net(r) for r in ranges], [_net(a) for a in allowed])
    assert sum(n.num_addresses for n in out) == left


def test_ipv6_halves_cover_the_public_internet() -> None:
    out = network.uncovered([_net("::/1"), _net("8000::/1")], [])
    assert _net("2000::/3") in out  # global unicast
    assert not any(n.overlaps(_net("fc00::/7")) for n in out)


_V4 = st.builds(
    lambda a, p: ipaddress.ip_network((a, p), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_V4, min_size=1, max_size=5), st.lists(_V4, max_size=3))
def test_uncovered_agrees_with_address_by_address(
    ranges: list[ipaddress.IPv4Network], allowed: list[ipaddress.IPv4Network]
) -> None:
    """At every range boundary (where the answer can change), an address is left over exactly
    when a range admits it and it is neither private nor allowed."""
    left = network.uncovered(ranges, allowed)
    edges = {
        int(x) + d
        for n in [*ranges, *allowed, *network.NOT_PUBLIC]
        if n.version == 4
        for x in (n.network_address, n.broadcast_address)
        for d in (-1, 0, 1)
    }
    for i in (e for e in edges if 0 <= e < 2**32):
        a = ipaddress.IPv4Address(i)
        expected = (
            any(a in n for n in ranges)
            and not any(a in n for n in network.NOT_PUBLIC if n.version == 4)
            and not any(a in n for n in allowed)
        )
        assert any(a in n for n in left) == expected, a


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("*", True),
        ("arn:*", True),
        ("arn:aws:*:*:*:*", True),
        ("arn:aws:iam::123456789012:role/*", True),
        ("arn:aws:kms:me-central-1:123456789012:key/*", True),
        ("arn:aws:logs:me-central-1:123456789012:log-group:*", True),
        ("arn:aws:s3:::*/*", True),
        ("arn:aws:s3:::bucket/*", False),  # one bucket's objects
        ("arn:aws:iam::123456789012:role/service-role/*", False),
        ("arn:aws:logs:me-central-1:123456789012:log-group:/app:*", False),
        ("arn:aws:kms:me-central-1:123456789012:key/abc", False),
    ],
)
def test_unbounded_resources(resource: str, expected: bool) -> None:
    assert iam.unbounded(resource) is expected


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        ("arn:aws:iam::aws:policy/AdministratorAccess", "AdministratorAccess"),
        ("arn:aws:iam::aws:policy/job-function/SystemAdministrator", "SystemAdministrator"),
        ("arn:aws-cn:iam::aws:policy/AmazonDynamoDBFullAccess", "AmazonDynamoDBFullAccess"),
        (
            "arn:aws:iam::aws:policy/AWSKeyManagementServicePowerUser",
            "AWSKeyManagementServicePowerUser",
        ),
        ("arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy", None),
        ("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy", None),
        ("arn:aws:iam::123456789012:policy/AdministratorAccess", None),  # customer-managed
    ],
)
def test_admin_equivalent_managed_policies(arn: str, name: str | None) -> None:
    assert iam.admin_equivalent(arn) == name


def test_statements_in_every_written_form() -> None:
    stmt = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    forms = [
        json.dumps({"Statement": [stmt]}),
        json.dumps({"Statement": stmt}),
        {"Statement": [stmt]},
        {"Statement": stmt},
    ]
    for form in forms:
        r = Resource("aws:iam/policy:Policy", "p", {"policy": form})
        assert [s.body for s in iam.statements(r, iam.IDENTITY_POLICIES)] == [stmt], form
    assert (
        iam.statements(
            Resource("aws:iam/policy:Policy", "p", {"policy": "{not json"}), iam.IDENTITY_POLICIES
        )
        == []
    )


def test_one_statement_is_reported_by_its_widest_grant() -> None:
    ids = Counter(v.rule_id for v in evaluate([_allow(["*", "iam:PassRole", "s3:*"])], Context()))
    assert ids == Counter({"SOV-IAM-001": 1})
    ids = Counter(
        v.rule_id for v in evaluate([_allow(["iam:PassRole", "iam:CreateAccessKey"])], Context())
    )
    assert ids == Counter({"SOV-IAM-002": 1, "SOV-IAM-004": 1})


# The names the rules read exist in the pinned SDK -------------------------------------------


@cache
def _sdk_modules() -> dict[str, str]:
    """Type token -> source of the pulumi_aws module declaring it (read as text, not imported)."""
    import pulumi_aws

    out = {}
    for path in Path(pulumi_aws.__file__).parent.rglob("*.py"):
        text = path.read_text()
        for token in re.findall(r'@pulumi\.type_token\("([^"]+)"\)', text):
            out[token] = text
    return out


def _has_input(source: str, wire: str) -> bool:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", wire).lower()
    return f'@pulumi.getter(name="{wire}")' in source or f"def {snake}(self)" in source


POLICY_INPUTS = {
    (token, field.split("[]")[0])
    for table in (iam.IDENTITY_POLICIES, iam.RESOURCE_POLICIES, iam.ATTACHMENTS)
    for token, fields in table.items()
    for field in fields
}
NETWORK_INPUTS = {
    *((t, "ingress") for t in network.SG_TYPES),
    *((network.SG_RULE, f) for f in ("type", "cidrBlocks", "ipv6CidrBlocks", "prefixListIds")),
    *((network.VPC_INGRESS, f) for f in ("cidrIpv4", "cidrIpv6", "prefixListId")),
    (network.SG_RULE, "securityGroupId"),
    (network.VPC_INGRESS, "securityGroupId"),
    (network.PREFIX_LIST, "entries"),
    (network.PREFIX_ENTRY, "cidr"),
}
LAMBDA_INPUTS = {
    ("aws:lambda/permission:Permission", f)
    for f in ("principal", "sourceAccount", "sourceArn", "principalOrgId")
}
READS = sorted(POLICY_INPUTS | NETWORK_INPUTS | LAMBDA_INPUTS)
"""(type token, input) pairs the IAM and network rules read."""


@pytest.mark.parametrize(("token", "field"), READS, ids=[f"{t}.{f}" for t, f in READS])
def test_the_rules_read_inputs_the_sdk_has(token: str, field: str) -> None:
    source = _sdk_modules().get(token)
    assert source is not None, f"{token} is not a type of the installed pulumi-aws"
    assert _has_input(source, field), f"{token} has no input {field}"


def test_provider_inputs_the_rules_read_exist() -> None:
    import pulumi_aws

    source = (Path(pulumi_aws.__file__).parent / "provider.py").read_text()
    read = (
        "endpoints",
        "httpProxy",
        "httpsProxy",
        "stsRegion",
        "skipRegionValidation",
        "insecure",
        "assumeRoles",
        "assumeRoleWithWebIdentity",
        "allowedAccountIds",
    )
    assert [w for w in read if not _has_input(source, w)] == []


CONTEXT_MEMO_PROBE = """
import json
from policies import crossguard
from policies.rules.record import context_from_config

def tags(zone, env):
    return {"defaultTags": {"tags": {"residency-zone": zone, "environment": env}}}

config = {"allowed_account_ids": ["111122223333"]}
out = []
cases = [("uae", "prod"), ("ksa", "dev"), ("uae", "prod"), (["uae"], "prod"), (1, "prod"),
         (True, "prod"), ("uae", 1.0)]
for zone, env in cases:
    got = crossguard._context(config, tags(zone, env))
    expected = context_from_config({**config, "zone": zone, "environment": env})
    out.append([got == expected, got.zone, got.environment])
other = {"allowed_account_ids": []}  # another policy's config, the same tags
out.append([list(crossguard._context(other, tags("uae", "prod")).allowed_account_ids)])
print(json.dumps(out))
"""


def test_the_packs_context_memo_follows_each_policys_config_and_provider_tags() -> None:
    """``policies.crossguard._context`` builds a context once per (config, zone, environment):
    another zone or environment tag, or another config object, gets its own; a tag that is not a
    string (a list; 1 and True, equal as keys) never shares one."""
    assert POLICY_PYTHON.exists(), ".venv-policy missing: run make setup"
    proc = subprocess.run(
        [str(POLICY_PYTHON), "-c", CONTEXT_MEMO_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout) == [
        [True, "uae", "prod"],
        [True, "ksa", "dev"],
        [True, "uae", "prod"],
        [True, "['uae']", "prod"],
        [True, "1", "prod"],
        [True, "True", "prod"],
        [True, "uae", "1.0"],
        [[]],
    ]
