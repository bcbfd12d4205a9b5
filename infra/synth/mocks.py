"""The synth mocks: what AWS would answer in the provider's region, deterministically.

Invokes get realistic values (availability zones, caller identity, partition, add-on versions)
and every new resource a stable id, ARN and output state derived from its type and name, so two
syntheses of the same stack give the same record.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.synth.expand import decode_invoke
from infra.synth.recorder import SECRET_SIG, SIG_KEY, Recording, provider_urn
from policies.zones import region_info

MOCK_ACCOUNT = "123456789012"
"""The AWS account every mocked ARN and caller identity names."""
# Add-on versions the mocks report; what `pulumi up` resolves depends on the EKS release then.
ADDON_VERSIONS = {
    "vpc-cni": "v1.20.1-eksbuild.3",
    "kube-proxy": "v1.33.3-eksbuild.4",
    "coredns": "v1.12.2-eksbuild.4",
    "aws-ebs-csi-driver": "v1.46.0-eksbuild.1",
}
# EC2 resources whose ids are ``<prefix>-<hex>`` (and whose ARNs name the lower-cased kind).
EC2_ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/flowLog:FlowLog": "fl",
}


def _hex(*parts: str, n: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def _partition(region: str) -> str:
    info = region_info(region)
    return info.partition if info else "aws"


# --- invokes ----------------------------------------------------------------------------------


def _caller_identity(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    return {
        "accountId": MOCK_ACCOUNT,
        "arn": f"arn:{_partition(region)}:iam::{MOCK_ACCOUNT}:role/sovml-deployer",
        "userId": "AROAEXAMPLEDEPLOYER",
        "id": MOCK_ACCOUNT,
    }


def _partition_answer(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    partition = _partition(region)
    return {"partition": partition, "dnsSuffix": "amazonaws.com", "id": partition}


def _region_answer(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    return {"name": region, "region": region, "id": region}


def _availability_zones(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    info = region_info(region)
    azs = list(info.availability_zones) if info else [f"{region}{s}" for s in "abc"]
    short = "".join(w[0] for w in region.split("-")[:-1]) + region.split("-")[-1]
    return {"names": azs, "zoneIds": [f"{short}-az{i + 1}" for i in range(len(azs))], "id": region}


def _managed_prefix_list(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    # Synthetic CIDRs in the shape AWS returns; the real list is read at deploy time.
    name = args.get("name", "")
    return {
        "id": f"pl-{_hex(name, n=8)}",
        "name": name,
        "entries": [
            {"cidr": "3.5.232.0/22", "description": ""},
            {"cidr": "16.12.56.0/21", "description": ""},
        ],
    }


def _addon_version(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    name = args.get("addonName", "")
    return {"version": ADDON_VERSIONS.get(name, "v1.0.0-eksbuild.1"), "id": name}


INVOKES: dict[str, Callable[[Mapping[str, Any], str], dict[str, Any]]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:index/getPartition:getPartition": _partition_answer,
    "aws:index/getRegion:getRegion": _region_answer,
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:ec2/getManagedPrefixList:getManagedPrefixList": _managed_prefix_list,
    "aws:eks/getAddonVersion:getAddonVersion": _addon_version,
    # The v1 yaml ConfigGroup/ConfigFile parse manifests through the provider, then register
    # each object themselves: answered with the gate's bounded parser.
    "kubernetes:yaml:decode": decode_invoke,
}
"""The invokes the mocks answer, by token: ``answer(args, region)``."""


def invoke_answer(token: str, args: Mapping[str, Any], region: str) -> dict[str, Any]:
    """What AWS would answer to invoke ``token`` in ``region``; NotImplementedError if unknown."""
    answer = INVOKES.get(token)
    if answer is None:
        raise NotImplementedError(f"synth mocks have no answer for invoke {token}")
    return answer(args, region)


# --- resources --------------------------------------------------------------------------------


@dataclass
class _NewResource:
    """One AWS resource being mocked: what its id, ARN and outputs are derived from."""

    typ: str
    name: str
    region: str
    partition: str
    state: dict[str, Any]
    """The output state, starting as the inputs; the per-type answers add outputs to it."""
    h: str
    """The resource's stable hash (17 hex digits of type and name)."""
    physical: str
    """The physical name given, else the auto-name Pulumi would make."""


def _kms_key(r: _NewResource) -> tuple[str, str]:
    key_id = str(uuid.UUID(_hex(r.typ, r.name, n=32)))
    r.state["keyId"] = key_id
    return key_id, f"arn:{r.partition}:kms:{r.region}:{MOCK_ACCOUNT}:key/{key_id}"


def _s3_bucket(r: _NewResource) -> tuple[str, str]:
    rid = r.state.get("bucket") or f"{r.name}-{r.h[:8]}"
    r.state["bucket"] = rid
    r.state["bucketRegionalDomainName"] = f"{rid}.s3.{r.region}.amazonaws.com"
    return rid, f"arn:{r.partition}:s3:::{rid}"


def _iam_role(r: _NewResource) -> tuple[str, str]:
    r.state["name"] = r.physical
    return r.physical, f"arn:{r.partition}:iam::{MOCK_ACCOUNT}:role/{r.physical}"


def _oidc_provider(r: _NewResource) -> tuple[str, str]:
    url = str(r.state.get("url", "")).removeprefix("https://")
    arn = f"arn:{r.partition}:iam::{MOCK_ACCOUNT}:oidc-provider/{url}"
    return arn, arn


def _log_group(r: _NewResource) -> tuple[str, str]:
    return r.physical, f"arn:{r.partition}:logs:{r.region}:{MOCK_ACCOUNT}:log-group:{r.physical}"


def _eks_cluster(r: _NewResource) -> tuple[str, str]:
    oidc_id = _hex(r.typ, r.name, "oidc", n=32).upper()
    r.state["endpoint"] = f"https://{oidc_id}.gr7.{r.region}.eks.amazonaws.com"
    r.state["certificateAuthority"] = {
        "data": base64.b64encode(f"synth CA of {r.physical}".encode()).decode()
    }
    r.state["identities"] = [
        {"oidcs": [{"issuer": f"https://oidc.eks.{r.region}.amazonaws.com/id/{oidc_id}"}]}
    ]
    r.state["vpcConfig"] = {**r.state.get("vpcConfig", {}), "clusterSecurityGroupId": f"sg-{r.h}"}
    r.state["platformVersion"] = "eks.1"
    return r.physical, f"arn:{r.partition}:eks:{r.region}:{MOCK_ACCOUNT}:cluster/{r.physical}"


def _launch_template(r: _NewResource) -> str:
    r.state["latestVersion"] = 1
    return f"lt-{r.h}"


def _replication_group(r: _NewResource) -> str:
    rid = str(r.state.get("replicationGroupId") or r.physical)
    r.state["primaryEndpointAddress"] = f"master.{rid}.{r.h[:6]}.mec1.cache.amazonaws.com"
    return rid


def _node_group(r: _NewResource) -> str:
    return f"{r.state.get('clusterName')}:{r.state.get('nodeGroupName')}"


def _ec2_prefixed(r: _NewResource) -> tuple[str, str]:
    rid = f"{EC2_ID_PREFIXES[r.typ]}-{r.h}"
    kind = r.typ.split(":")[1].partition("/")[2]
    return rid, f"arn:{r.partition}:ec2:{r.region}:{MOCK_ACCOUNT}:{kind.lower()}/{rid}"


# Types whose id and ARN AWS shapes its own way; ``(id, arn)`` from the resource.
_ID_AND_ARN: dict[str, Callable[[_NewResource], tuple[str, str]]] = {
    "aws:kms/key:Key": _kms_key,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "aws:iam/role:Role": _iam_role,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:eks/cluster:Cluster": _eks_cluster,
    **dict.fromkeys(EC2_ID_PREFIXES, _ec2_prefixed),
}
# Types with their own id but the generic ARN.
_ID_ONLY: dict[str, Callable[[_NewResource], str]] = {
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
}


def mock_state(typ: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict]:
    """A realistic id and output state for one resource."""
    h = _hex(typ, name)
    state = dict(inputs)
    if typ.startswith("pulumi:providers:"):
        return str(uuid.UUID(_hex(typ, name, n=32))), state
    if typ == "random:index/randomPassword:RandomPassword":
        # A deterministic stand-in; the record redacts it like any secret output.
        state["result"] = {SIG_KEY: SECRET_SIG, "value": f"synth-{_hex(typ, name, n=32)}"}
        return f"{name}-{h[:8]}", state
    if not typ.startswith("aws:"):
        return f"{name}-{h[:8]}", state
    # Auto-named resources get Pulumi's random suffix; physical names given stay as they are.
    res = _NewResource(
        typ, name, region, _partition(region), state, h, state.get("name") or f"{name}-{h[:7]}"
    )
    module, _, kind = typ.split(":")[1].partition("/")
    rid = f"{name}-{h[:8]}"
    arn = f"arn:{res.partition}:{module}:{region}:{MOCK_ACCOUNT}:{kind}/{res.physical}"
    if typ in _ID_AND_ARN:
        rid, arn = _ID_AND_ARN[typ](res)
    elif typ in _ID_ONLY:
        rid = _ID_ONLY[typ](res)
    state.setdefault("arn", arn)
    state.setdefault("id", rid)
    return rid, state


def make_mocks(stack_region: str, recording: Recording) -> Any:
    """Mocks answering in each provider's region (``stack_region`` for the default provider)."""
    import pulumi

    class RegionalMocks(pulumi.runtime.Mocks):
        """Answers the way AWS would in the provider's region, deterministically."""

        def _region(self, provider: str | None) -> str:
            if provider:
                return recording.provider_regions.get(provider_urn(provider), stack_region)
            return stack_region

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
            region = self._region(args.provider)
            recording.invokes.append(args.token)
            return invoke_answer(args.token, args.args, region)

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            region = self._region(args.provider)
            return mock_state(args.typ, args.name, dict(args.inputs), region)

    return RegionalMocks()
