"""Run the real Pulumi program under the SDK's mock runtime and record what it would create.

``synthesize(stack)`` reads ``stacks/Pulumi.<stack>.yaml`` the way the Pulumi CLI would (project
defaults from ``Pulumi.yaml``, values from the stack file), validates it, then runs
``infra/__main__.py`` unchanged with ``pulumi.runtime.set_mocks``. A recording monitor keeps every
``RegisterResource`` request (type, name, parent, provider, dependencies, protect, inputs) and the
mocks answer invokes with realistic values for the provider's region (availability zones, caller
identity, partition, add-on versions). The record is written to ``build/<stack>/resources.json``:
other tools (policies, checkov bridge, k8s validation, cost) read only that file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import runpy
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra import config as cfgmod
from policies.zones import region_info

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "infra" / "__main__.py"
STACKS = ROOT / "stacks"
BUILD = ROOT / "build"
RECORD_VERSION = 1
MOCK_ACCOUNT = "123456789012"
REDACTED = "[secret]"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
# Add-on versions the mocks report; what `pulumi up` resolves depends on the EKS release then.
ADDON_VERSIONS = {
    "vpc-cni": "v1.20.1-eksbuild.3",
    "kube-proxy": "v1.33.3-eksbuild.4",
    "coredns": "v1.12.2-eksbuild.4",
    "aws-ebs-csi-driver": "v1.46.0-eksbuild.1",
}


class SynthError(Exception):
    """The stack cannot be synthesized; ``problems`` holds config problems when that is why."""

    def __init__(self, message: str, problems: list[cfgmod.ConfigProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def program_label(program: Path) -> str:
    """How a record names the program it came from (repository-relative when possible)."""
    program = program.resolve()
    return str(program.relative_to(ROOT)) if program.is_relative_to(ROOT) else str(program)


def stack_file(stack: str, stacks_dir: Path = STACKS) -> Path:
    """Path of a stack's config file."""
    return stacks_dir / f"Pulumi.{stack}.yaml"


def list_stacks(stacks_dir: Path = STACKS) -> list[str]:
    """Every stack with a file in ``stacks_dir``, sorted."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def read_stack_config(path: Path) -> tuple[dict[str, Any], set[str]]:
    """The ``config:`` map of a stack file and the keys whose values are secrets.

    Raises SynthError for a missing or malformed file.
    """
    if not path.is_file():
        raise SynthError(f"{path}: no such stack file")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SynthError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise SynthError(f"{path}: expected a mapping with a 'config:' mapping")
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in (doc.get("config") or {}).items():
        key = str(key)
        if ":" not in key:
            key = f"{cfgmod.PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret.add(key)
            value = REDACTED
        raw[key] = value
    return raw, secret


def _engine_value(value: Any) -> str:
    # The engine passes config to programs as strings; objects and arrays as JSON.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _plain(value: Any) -> Any:
    """Inputs as JSON data: secrets redacted, integral floats back to ints, assets named."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            # Keep the shape (a Secret's keys, a list's length) so manifests stay valid.
            inner = value.get("value")
            if isinstance(inner, dict):
                return {str(k): REDACTED for k in inner}
            if isinstance(inner, list):
                return [REDACTED for _ in inner]
            return REDACTED
        return {str(k): _plain(v) for k, v in value.items() if k != _SIG_KEY}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        # The engine carries every number as a float; AWS and Kubernetes want ints back.
        return int(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def provider_urn(reference: str) -> str:
    """The URN part of a provider reference ``<urn>::<id>`` (URNs contain ``::`` themselves)."""
    return reference.rsplit("::", 1)[0]


def _decode_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _hex(*parts: str, n: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


@dataclass
class Recording:
    """What the recording monitor saw, in registration order."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    provider_regions: dict[str, str] = field(default_factory=dict)
    invokes: list[str] = field(default_factory=list)


def _make_mocks(stack_region: str, recording: Recording) -> Any:
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
            info = region_info(region)
            partition = info.partition if info else "aws"
            token = args.token
            if token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": MOCK_ACCOUNT,
                    "arn": f"arn:{partition}:iam::{MOCK_ACCOUNT}:role/sovml-deployer",
                    "userId": "AROAEXAMPLEDEPLOYER",
                    "id": MOCK_ACCOUNT,
                }
            if token == "aws:index/getPartition:getPartition":
                return {"partition": partition, "dnsSuffix": "amazonaws.com", "id": partition}
            if token == "aws:index/getRegion:getRegion":
                return {"name": region, "region": region, "id": region}
            if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                azs = list(info.availability_zones) if info else [f"{region}{s}" for s in "abc"]
                short = "".join(w[0] for w in region.split("-")[:-1]) + region.split("-")[-1]
                return {
                    "names": azs,
                    "zoneIds": [f"{short}-az{i + 1}" for i in range(len(azs))],
                    "id": region,
                }
            if token == "aws:ec2/getManagedPrefixList:getManagedPrefixList":
                # Synthetic CIDRs in the shape AWS returns; the real list is read at deploy time.
                name = args.args.get("name", "")
                return {
                    "id": f"pl-{_hex(name, n=8)}",
                    "name": name,
                    "entries": [
                        {"cidr": "3.5.232.0/22", "description": ""},
                        {"cidr": "16.12.56.0/21", "description": ""},
                    ],
                }
            if token == "aws:eks/getAddonVersion:getAddonVersion":
                name = args.args.get("addonName", "")
                return {"version": ADDON_VERSIONS.get(name, "v1.0.0-eksbuild.1"), "id": name}
            raise NotImplementedError(f"synth mocks have no answer for invoke {token}")

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            region = self._region(args.provider)
            return _mock_state(args.typ, args.name, dict(args.inputs), region)

    return RegionalMocks()


def _mock_state(typ: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict]:
    """A realistic id and output state for one resource."""
    acct = MOCK_ACCOUNT
    info = region_info(region)
    p = info.partition if info else "aws"
    h = _hex(typ, name)
    state = dict(inputs)
    if typ.startswith("pulumi:providers:"):
        return str(uuid.UUID(_hex(typ, name, n=32))), state
    if typ == "random:index/randomPassword:RandomPassword":
        # A deterministic stand-in; the record redacts it like any secret output.
        state["result"] = {_SIG_KEY: _SECRET_SIG, "value": f"synth-{_hex(typ, name, n=32)}"}
        return f"{name}-{h[:8]}", state
    if not typ.startswith("aws:"):
        return f"{name}-{h[:8]}", state
    module, _, kind = typ.split(":")[1].partition("/")
    # Auto-named resources get Pulumi's random suffix; physical names given stay as they are.
    physical = state.get("name") or f"{name}-{h[:7]}"
    rid = f"{name}-{h[:8]}"
    arn = f"arn:{p}:{module}:{region}:{acct}:{kind.split(':')[0]}/{physical}"
    if typ == "aws:kms/key:Key":
        key_id = str(uuid.UUID(_hex(typ, name, n=32)))
        rid, arn = key_id, f"arn:{p}:kms:{region}:{acct}:key/{key_id}"
        state["keyId"] = key_id
    elif typ == "aws:s3/bucket:Bucket":
        rid = state.get("bucket") or f"{name}-{h[:8]}"
        state["bucket"] = rid
        arn = f"arn:{p}:s3:::{rid}"
        state["bucketRegionalDomainName"] = f"{rid}.s3.{region}.amazonaws.com"
    elif typ == "aws:iam/role:Role":
        rid = state["name"] = physical
        arn = f"arn:{p}:iam::{acct}:role/{physical}"
    elif typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        arn = f"arn:{p}:iam::{acct}:oidc-provider/{str(state.get('url', '')).removeprefix('https://')}"
        rid = arn
    elif typ == "aws:cloudwatch/logGroup:LogGroup":
        rid = physical
        arn = f"arn:{p}:logs:{region}:{acct}:log-group:{physical}"
    elif typ == "aws:eks/cluster:Cluster":
        rid = physical
        arn = f"arn:{p}:eks:{region}:{acct}:cluster/{physical}"
        oidc_id = _hex(typ, name, "oidc", n=32).upper()
        state["endpoint"] = f"https://{oidc_id}.gr7.{region}.eks.amazonaws.com"
        state["certificateAuthority"] = {
            "data": base64.b64encode(f"synth CA of {physical}".encode()).decode()
        }
        state["identities"] = [
            {"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{oidc_id}"}]}
        ]
        state["vpcConfig"] = {**state.get("vpcConfig", {}), "clusterSecurityGroupId": f"sg-{h}"}
        state["platformVersion"] = "eks.1"
    elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
        rid = f"lt-{h}"
        state["latestVersion"] = 1
    elif typ == "aws:elasticache/replicationGroup:ReplicationGroup":
        rid = str(state.get("replicationGroupId") or physical)
        state["primaryEndpointAddress"] = f"master.{rid}.{h[:6]}.mec1.cache.amazonaws.com"
    elif typ == "aws:eks/nodeGroup:NodeGroup":
        rid = f"{state.get('clusterName')}:{state.get('nodeGroupName')}"
    else:
        prefixes = {
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
        if typ in prefixes:
            rid = f"{prefixes[typ]}-{h}"
            arn = f"arn:{p}:ec2:{region}:{acct}:{kind.split(':')[0].lower()}/{rid}"
    state.setdefault("arn", arn)
    state.setdefault("id", rid)
    return rid, state


def _alias(alias: Any) -> dict[str, Any]:
    """An alias of a registration as data: the old URN, or the parts of an alias spec."""
    if alias.WhichOneof("alias") == "urn":
        return {"urn": alias.urn}
    spec = alias.spec
    out = {k: getattr(spec, k) for k in ("name", "type", "stack", "project") if getattr(spec, k)}
    if spec.WhichOneof("parent") == "parentUrn":
        out["parentUrn"] = spec.parentUrn
    elif spec.WhichOneof("parent") == "noParent":
        out["noParent"] = spec.noParent
    return out


def _make_monitor(mocks: Any, recording: Recording) -> Any:
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        """The SDK's mock monitor, keeping each registration request as the engine would."""

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            response = super().RegisterResource(request)
            if request.type == "pulumi:pulumi:Stack":
                return response
            inputs = rpc.deserialize_properties(request.object, keep_internal=False)
            urn = response.urn
            if request.type.startswith("pulumi:providers:"):
                # Provider inputs arrive JSON-encoded (``defaultTags``); keep them as data.
                inputs = {k: _decode_json(v) for k, v in inputs.items()}
                region = inputs.get("region")
                if isinstance(region, str):
                    recording.provider_regions[urn] = region
            provider = provider_urn(request.provider) if request.provider else None
            recording.resources.append(
                {
                    "urn": urn,
                    "type": request.type,
                    "name": request.name,
                    "custom": bool(request.custom),
                    "id": response.id or None,
                    "parent": request.parent or None,
                    "provider": provider,
                    "dependencies": sorted(set(request.dependencies)),
                    # Which input came from which resources: the checkov bridge turns these into
                    # Terraform references so cross-resource checks can link them.
                    "propertyDependencies": {
                        prop: sorted(set(deps.urns))
                        for prop, deps in sorted(request.propertyDependencies.items())
                        if deps.urns
                    },
                    "protect": bool(request.protect),
                    "retainOnDelete": bool(getattr(request, "retainOnDelete", False)),
                    "ignoreChanges": list(request.ignoreChanges),
                    # A resource moved into another component keeps its deployed identity only
                    # through an alias to its old parent; the record keeps them to prove it.
                    "aliases": [_alias(a) for a in request.aliases],
                    "inputs": _plain(inputs),
                }
            )
            return response

    return RecordingMonitor(mocks)


def run_recorded(program: Callable[[], Any], *, stack: str, region: str) -> Recording:
    """Run ``program`` under the recording mocks (fresh runtime state) and return what it declared.

    Component tests use this too, so components are judged by the same record as stacks.
    """
    import pulumi
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    recording = Recording()
    mocks = _make_mocks(region, recording)
    pulumi.runtime.set_mocks(
        mocks,
        project=cfgmod.PROJECT,
        stack=stack,
        preview=False,
        monitor=_make_monitor(mocks, recording),
    )
    try:
        _sync_await(run_pulumi_func(program))
    except pulumi.RunError as exc:
        raise SynthError(str(exc)) from None
    return recording


@dataclass
class SynthResult:
    """The record and where it was written."""

    record: dict[str, Any]
    path: Path
    seconds: float


def load_stack(stack: str, stacks_dir: Path = STACKS) -> tuple[cfgmod.PlatformConfig, dict, set]:
    """Read and validate a stack file; raise SynthError listing every config problem."""
    path = stack_file(stack, stacks_dir)
    raw, secret_keys = read_stack_config(path)
    source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    result = cfgmod.parse(raw, stack=stack, source=source)
    if isinstance(result, list):
        raise SynthError(f"{source}: {len(result)} config problem(s)", result)
    return result, raw, secret_keys


def synthesize(
    stack: str,
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    write: bool = True,
    program: Path = PROGRAM,
) -> SynthResult:
    """Run the program for ``stack`` under mocks and write ``build/<stack>/resources.json``.

    ``program`` defaults to ``infra/__main__.py``; tests point it at deliberately insecure
    fixture programs to prove the gate catches what the real program never declares.
    """
    from pulumi.runtime import config as runtime_config

    started = time.perf_counter()
    cfg, raw, secret_keys = load_stack(stack, stacks_dir)
    engine_config = {k: _engine_value(v) for k, v in raw.items()}
    # Stack files hold overrides only: apply Pulumi.yaml defaults as the CLI does.
    for key in cfgmod.KEYS:
        if key.default is not cfgmod.REQUIRED:
            engine_config.setdefault(f"{cfgmod.PROJECT}:{key.name}", _engine_value(key.default))
    runtime_config.set_all_config(engine_config, sorted(secret_keys))

    try:
        recording = run_recorded(
            lambda: runpy.run_path(str(program), run_name="__main__"),
            stack=stack,
            region=cfg.region,
        )
    finally:
        runtime_config.set_all_config({}, [])

    record = {
        "version": RECORD_VERSION,
        "stack": stack,
        "project": cfgmod.PROJECT,
        "source": cfg.source,
        "program": program_label(program),
        "config": cfg.to_record(),
        "secretKeys": sorted(secret_keys),
        "resources": recording.resources,
    }
    out = build_dir / stack / "resources.json"
    if write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return SynthResult(record, out, time.perf_counter() - started)


def summary(record: Mapping[str, Any]) -> dict[str, int]:
    """Resource counts per type token (custom resources only), sorted by type."""
    counts: dict[str, int] = {}
    for r in record["resources"]:
        if r["custom"]:
            counts[r["type"]] = counts.get(r["type"], 0) + 1
    return dict(sorted(counts.items()))


if (
    __name__ == "__main__"
):  # pragma: no cover - convenience for `python -m infra.synth.runner STACK`
    res = synthesize(sys.argv[1])
    print(f"{res.path}: {len(res.record['resources'])} resources in {res.seconds:.2f}s")
