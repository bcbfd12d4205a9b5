"""The egress allow-list (policies/egress.py), the MeshEgress component, SOV-ZT-005 on a record.

Property tests generate stacks in every zone region with random accounts, buckets and declared
hosts: every host the generator derives from AWS data is in the stack's region, none is a
wildcard, and none passes the gate in another zone. The component is checked under the recording
mocks and in prod-uae's synth record, where every VPC endpoint the network creates has its route
out and SOV-ZT-005 passes once istiod (the mesh helper's) is there with REGISTRY_ONLY.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import components.network
from components.mesh_egress import GATEWAY_PODS, TLS_TARGET_PORT, MeshEgress, MeshEgressArgs
from policies import egress
from policies.egress import (
    INTERFACE_ENDPOINTS,
    Destination,
    allow_list,
    declared_hosts,
    host_in_zone,
)
from policies.rules import Context, Resource, evaluate
from policies.rules.egress import mesh_egress_in_zone
from policies.zones import ZONES
from tests.component_mocks import of_type, record
from tests.policy_cases_egress import entry, istiod, namespace

REGIONS = [(z.name, r) for z in ZONES.values() for r in z.region_names]
SE = "kubernetes:networking.istio.io/v1:ServiceEntry"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
accounts = st.lists(st.from_regex(r"[0-9]{12}", fullmatch=True), max_size=3, unique=True)
buckets = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True), max_size=4)


def _zone_messages(resources: list[Resource], **ctx: Any) -> list[str]:
    return [v.message for v in evaluate(resources, Context(**ctx)) if v.rule_id == "SOV-ZT-005"]


# --- the allow-list --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(where=st.sampled_from(REGIONS), ids=accounts, names=buckets)
def test_every_generated_host_is_in_the_stack_region_and_no_wildcard(
    where: tuple[str, str], ids: list[str], names: list[str]
) -> None:
    zone, region = where
    found = allow_list(region, account_ids=ids, buckets=names)
    hosts = [d.host for d in found]
    assert len(hosts) == len(set(hosts))
    for d in found:
        assert "*" not in d.host and d.port == 443 and d.protocol == "TLS" and d.why
        assert d.host.endswith(f".{region}.amazonaws.com"), d.host
        # The label right before the AWS domain is the region: nothing reaches another one.
        assert d.host.removesuffix(".amazonaws.com").rsplit(".", 1)[-1] == region
        assert host_in_zone(d.host, ZONES[zone].region_names, ids, ())
    other = [r for z, r in REGIONS if z != zone]
    for d in allow_list(other[len(names) % len(other)], account_ids=ids, buckets=names):
        assert not host_in_zone(d.host, ZONES[zone].region_names, ids, ()), d.host


@settings(max_examples=40, deadline=None)
@given(
    where=st.sampled_from(REGIONS),
    label=st.from_regex(r"[a-z0-9-]{0,20}", fullmatch=True),
    domain=st.sampled_from(["amazonaws.com", "example.com", "amazonaws.com.evil.example"]),
)
def test_no_name_outside_the_zone_passes_the_gate(
    where: tuple[str, str], label: str, domain: str
) -> None:
    """Any host under a region of another zone, or under a non-AWS domain, is refused."""
    zone, _ = where
    for other_zone, region in REGIONS:
        if other_zone == zone:
            continue
        host = f"{label + '.' if label else ''}s3.{region}.{domain}"
        assert not host_in_zone(host, ZONES[zone].region_names, (), ()), host
    assert not host_in_zone(f"{label}.{domain}", ZONES[zone].region_names, (), ())


def test_the_uae_allow_list_is_exactly_the_endpoints_registry_and_buckets() -> None:
    found = allow_list("me-central-1", ["111122223333"], ["sovml-artifacts-111122223333"])
    assert [d.host for d in found] == [
        "s3.me-central-1.amazonaws.com",
        "api.ecr.me-central-1.amazonaws.com",
        "sts.me-central-1.amazonaws.com",
        "kms.me-central-1.amazonaws.com",
        "logs.me-central-1.amazonaws.com",
        "ec2.me-central-1.amazonaws.com",
        "elasticloadbalancing.me-central-1.amazonaws.com",
        "autoscaling.me-central-1.amazonaws.com",
        "111122223333.dkr.ecr.me-central-1.amazonaws.com",
        "sovml-artifacts-111122223333.s3.me-central-1.amazonaws.com",
    ]
    assert found[3].why == "VPC endpoint com.amazonaws.me-central-1.kms"


def test_the_network_creates_the_endpoints_the_allow_list_reads() -> None:
    assert components.network.INTERFACE_ENDPOINTS is INTERFACE_ENDPOINTS


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: allow_list("us-east-1"), "region 'us-east-1' is in no residency zone"),
        (lambda: allow_list("me-central-1", ["12345"]), "account id '12345'; allowed 12 digits"),
        (lambda: allow_list("me-central-1", buckets=["a.b"]), "bucket 'a.b'; allowed 3-63"),
        (lambda: egress.service_host("ecr.dkr", "me-central-1"), "use registry_host"),
    ],
)
def test_the_generator_refuses_what_it_cannot_place(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_declared_hosts_are_exact_names_only() -> None:
    declared = [
        "arn:aws:s3:::partner-bucket",
        "partner-bucket",
        "*.partner.example",
        "https://Feed.Partner.example:8443/path",
        "mirror.partner.example",
        "mirror.partner.example",
    ]
    assert declared_hosts(declared) == ("feed.partner.example", "mirror.partner.example")
    found = allow_list("me-central-1", external=declared)
    assert [d.host for d in found[-2:]] == ["feed.partner.example", "mirror.partner.example"]
    assert host_in_zone("mirror.partner.example", ("me-central-1",), (), declared)


def test_registry_of_another_account_is_refused_when_the_stack_pins_accounts() -> None:
    host = "999999999999.dkr.ecr.me-central-1.amazonaws.com"
    assert host_in_zone(host, ("me-central-1",), (), ())
    assert not host_in_zone(host, ("me-central-1",), ("111122223333",), ())


# --- SOV-ZT-005 messages -----------------------------------------------------------------------
def test_rule_messages_name_the_host_and_the_fix() -> None:
    found = _zone_messages([istiod(), namespace(), entry("s3.eu-west-1.amazonaws.com")])
    assert found == [
        "ServiceEntry se-s3.eu-west-1.amazonaws.com host "
        "s3.eu-west-1.amazonaws.com is not in the egress allow-list of residency zone 'uae' "
        "(me-central-1): only the zone regions' VPC endpoint hosts, the zone registry, the "
        "stack's buckets and hosts declared in inZoneExternalResources may leave the mesh"
    ]
    assert _zone_messages([istiod("ALLOW_ANY"), namespace()]) == [
        "istiod's meshConfig.outboundTrafficPolicy.mode is ALLOW_ANY: set "
        "REGISTRY_ONLY so a host no ServiceEntry names is refused"
    ]
    wild = _zone_messages([istiod(), namespace(), entry("*.amazonaws.com", resolution="NONE")])
    assert len(wild) == 2 and "is a wildcard" in wild[0] and "resolution NONE" in wild[1]


def test_an_eu_stack_may_reach_any_eu_region_and_a_declared_host() -> None:
    ok = [istiod(), namespace(), entry("kms.eu-north-1.amazonaws.com"), entry("feed.partner.eu")]
    assert _zone_messages(ok, zone="eu", in_zone_external_resources=("feed.partner.eu",)) == []
    assert len(_zone_messages(ok, zone="eu")) == 1
    assert len(_zone_messages(ok, zone="uae")) == 2


# --- the component -----------------------------------------------------------------------------
def _egress(**kw: Any) -> MeshEgress:
    args: dict[str, Any] = dict(
        namespace="istio-egress",
        destinations=allow_list("me-central-1", ["111122223333"]),
        region="me-central-1",
        buckets={"models": "sovml-models-111122223333"},
    )
    return MeshEgress("egress", MeshEgressArgs(**{**args, **kw}))


def test_component_routes_every_allowed_host_through_the_gateway_and_passes_the_rule() -> None:
    res = record(_egress)
    entries = {r["inputs"]["spec"]["hosts"][0]: r["inputs"]["spec"] for r in of_type(res, SE)}
    expected = {d.host for d in allow_list("me-central-1", ["111122223333"])}
    assert set(entries) == expected | {"sovml-models-111122223333.s3.me-central-1.amazonaws.com"}
    for spec in entries.values():
        assert (spec["location"], spec["resolution"]) == ("MESH_EXTERNAL", "DNS")
        assert spec["ports"] == [{"number": 443, "name": "tls-443", "protocol": "TLS"}]
    routes = {r["inputs"]["spec"]["hosts"][0]: r["inputs"]["spec"] for r in of_type(res, VS)}
    assert set(routes) == set(entries)
    kms = routes["kms.me-central-1.amazonaws.com"]["tls"]
    assert kms[0]["route"][0]["destination"]["host"] == (
        "istio-egressgateway.istio-egress.svc.cluster.local"
    )
    assert kms[1]["match"][0]["gateways"] == ["istio-egress/egress"]
    assert kms[1]["route"][0]["destination"]["host"] == "kms.me-central-1.amazonaws.com"
    (gateway,) = of_type(res, "kubernetes:networking.istio.io/v1:Gateway")
    (server,) = gateway["inputs"]["spec"]["servers"]
    assert server["tls"] == {"mode": "PASSTHROUGH"} and set(server["hosts"]) == set(entries)
    (policy,) = of_type(res, NETPOL)
    assert policy["inputs"]["spec"]["podSelector"] == {"matchLabels": GATEWAY_PODS}
    assert policy["inputs"]["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": TLS_TARGET_PORT}
    ]
    judged = [Resource(r["type"], r["name"], r["inputs"]) for r in res]
    assert mesh_egress_in_zone([istiod(), namespace(), *judged], Context()) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"destinations": [Destination("*.amazonaws.com", 443, "TLS", "x")]}, "exact host"),
        ({"destinations": []}, "at least one"),
        ({"namespace": "Istio_Egress"}, "allowed a DNS label"),
        ({"namespace": "kube-system"}, "allowed a DNS label but kube-system"),
        ({"region": "us-east-1"}, "a region of a residency zone"),
        ({"replicas": 0}, "allowed 1-10"),
    ],
)
def test_component_refuses_bad_arguments(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        record(lambda: _egress(**override))


# --- prod-uae's record -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prod_uae(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from infra.synth.runner import synthesize

    out: Path = tmp_path_factory.mktemp("egress_record")
    return synthesize("prod-uae", build_dir=out).record


def test_prod_uae_routes_every_vpc_endpoint_and_its_buckets_out(prod_uae: dict[str, Any]) -> None:
    res = prod_uae["resources"]
    hosts = {h for r in of_type(res, SE) for h in r["inputs"]["spec"]["hosts"]}
    for ep in of_type(res, "aws:ec2/vpcEndpoint:VpcEndpoint"):
        service = ep["inputs"]["serviceName"].removeprefix("com.amazonaws.me-central-1.")
        if service == "ecr.dkr":
            assert "111122223333.dkr.ecr.me-central-1.amazonaws.com" in hosts
        else:
            assert egress.service_host(service, "me-central-1") in hosts, service
    buckets = [r["inputs"]["bucket"] for r in of_type(res, "aws:s3/bucket:Bucket")]
    assert sum(f"{b}.s3.me-central-1.amazonaws.com" in hosts for b in buckets) == 4  # not logs
    policies = {
        (r["inputs"]["metadata"]["namespace"], r["inputs"]["metadata"]["name"]): r["inputs"]["spec"]
        for r in of_type(res, NETPOL)
    }
    # Workloads reach the VPC (API server, interface endpoints) and the gateway, not S3's list.
    serving = policies[("serving", "allow-aws-endpoints")]["egress"][0]["to"]
    assert serving == [{"ipBlock": {"cidr": prod_uae["config"]["network"]["cidr"]}}]
    assert ("serving", "allow-to-egress-gateway") in policies
    gateway_out = policies[("istio-egress", "allow-aws-endpoints")]["egress"][0]["to"]
    assert len(gateway_out) > 1  # the VPC and the S3 prefix list
    assert ("istio-egress", "allow-to-egress-gateway") not in policies


def test_prod_uae_passes_sov_zt_005_with_the_mesh_and_fails_without(
    prod_uae: dict[str, Any],
) -> None:
    from policies.rules.egress import chart_basename
    from policies.rules.helm_charts import HELM_TYPES
    from policies.rules.record import context_from_record, resources_from_record

    def is_istiod(r: Any) -> bool:
        return r.type in HELM_TYPES and chart_basename(r) == "istiod"

    judged = resources_from_record(prod_uae)
    ctx = context_from_record(prod_uae)
    assert ctx.zone == "uae" and ctx.allowed_account_ids == ("111122223333",)
    assert any(is_istiod(r) for r in judged)  # the mesh (components/mesh.py) is in the record
    assert [m for _, m in mesh_egress_in_zone(judged, ctx)] == []
    without = [r for r in judged if not is_istiod(r)]
    alone = [m for _, m in mesh_egress_in_zone(without, ctx)]
    first = next(r for r in without if ".istio.io/" in r.type)
    assert alone == [
        f"Istio objects ({first.type.rsplit(':', 1)[-1]} {first.name} ...) but no istiod Helm "
        "release: nothing refuses a host no ServiceEntry names; deploy the mesh (infra/mesh.py) "
        "with meshConfig.outboundTrafficPolicy.mode REGISTRY_ONLY"
    ]
    other_zone = Context(zone="eu", allowed_account_ids=("111122223333",))
    leaving = [  # every entry but the in-cluster alias of the SSO issuer's name
        r
        for r in of_type(prod_uae["resources"], SE)
        if r["inputs"]["spec"].get("location") != "MESH_INTERNAL"
    ]
    assert len(leaving) >= 13
    assert len(mesh_egress_in_zone(judged, other_zone)) == len(leaving)  # fmt: skip


# --- the refused-egress alert ------------------------------------------------------------------
def test_egress_alert_without_the_blackhole_filter_fails_its_promtool_test(tmp_path: Path) -> None:
    """The case's allowed-host series is real: a rule counting every destination fires on it."""
    from components._alerts import BLACKHOLE, EGRESS_REFUSED
    from components.monitoring import alert_rules
    from tests.promtool_egress import egress_case
    from tests.promtool_rules import (
        RuleSet,
        monitoring_args,
        run_promtool,
        write_rules,
        write_unit_tests,
    )
    from tests.system import require_binary

    promtool = require_binary("promtool")
    args = monitoring_args()
    groups = alert_rules(args)
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == EGRESS_REFUSED]
    case = egress_case(rule, args)
    for expr, verdict in (
        (rule["expr"], 0),
        (rule["expr"].replace(BLACKHOLE, 'reporter="source"'), 1),
    ):
        rule["expr"] = expr
        rules = write_rules(tmp_path / "rules.yaml", RuleSet("t", groups, args).groups)
        tests = write_unit_tests(tmp_path / "rules_test.yaml", rules, [case.group])
        proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
        assert (proc.returncode != 0) == bool(verdict), proc.stdout + proc.stderr


def test_baseline_refuses_an_egress_gateway_namespace_it_does_not_create() -> None:
    from components.k8s_baseline import K8sBaseline, K8sBaselineArgs

    args = K8sBaselineArgs(
        vpc_cidr="10.40.0.0/16", volume_key_arn="k", egress_gateway_namespace="istio-egress"
    )
    with pytest.raises(ValueError, match="egress_gateway_namespace: 'istio-egress'; allowed a"):
        record(lambda: K8sBaseline("base", args))
