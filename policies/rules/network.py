"""Network exposure: private EKS API in production, ingress only from allowed public ranges,
IMDSv2 only, no public buckets.

Ingress is judged by coverage, not by spelling: the ranges a security group admits (its inline
ingress, its ``aws:ec2/securityGroupRule`` and ``aws:vpc/securityGroupIngressRule`` resources,
and the entries of prefix lists it admits), minus private and reserved space, must lie inside the
stack's ``ingressAllowedCidrs``. ``0.0.0.0/1`` + ``128.0.0.0/1``, a handful of /8s, or two halves
of ``::/0`` fail exactly like ``0.0.0.0/0``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from policies.rules.base import Context, Resource, as_list, rule, stack_rule

OPEN = ("0.0.0.0/0", "::/0")


@rule(
    "SOV-NET-001",
    "eks-private-endpoint",
    "critical",
    "The EKS API endpoint is private in production; elsewhere public only to listed CIDRs.",
    types=("aws:eks/cluster:Cluster",),
)
def eks_private_endpoint(r: Resource, ctx: Context) -> list[str]:
    vpc = r.get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True) is not False  # AWS defaults to public
    cidrs = vpc.get("publicAccessCidrs") or ["0.0.0.0/0"]
    if public and ctx.production:
        return ["the API endpoint is public in production: set endpoint_public_access=false"]
    if public and any(c in OPEN for c in cidrs):
        return ["the public API endpoint is open to the internet: list specific CIDRs"]
    if vpc.get("endpointPrivateAccess") is not True:
        return ["private endpoint access is off: nodes would reach the API over the internet"]
    return []


SG_TYPES = (
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
)
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
PREFIX_LIST = "aws:ec2/managedPrefixList:ManagedPrefixList"
PREFIX_ENTRY = "aws:ec2/managedPrefixListEntry:ManagedPrefixListEntry"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NOT_PUBLIC: tuple[Network, ...] = tuple(
    ipaddress.ip_network(c)
    for c in (
        # IPv4: "this network", RFC 1918, CGNAT (RFC 6598), loopback, link-local, multicast and
        # the reserved 240/4 (RFC 6890): no internet host reaches a group from these.
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        # IPv6: unspecified, loopback, unique local (RFC 4193), link-local, multicast.
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
"""Address space that is not public; documentation ranges (203.0.113.0/24 ...) count as public,
so a test range is judged like a real one."""


@dataclass
class _Group:
    """What one security group admits, gathered from every resource that adds ingress to it."""

    label: str
    """How findings name the group."""
    owner: Resource
    """The resource a finding is reported on: the group, or the first rule of an outside group."""
    sources: list[tuple[str, Network]] = field(default_factory=list)
    """(where, range) of every ingress range."""
    problems: list[str] = field(default_factory=list)
    """Ranges or prefix lists that cannot be judged (deny by default)."""


def _intervals(nets: list[Network], version: int) -> list[tuple[int, int]]:
    spans = sorted(
        (int(n.network_address), int(n.broadcast_address)) for n in nets if n.version == version
    )
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _subtract(spans: list[tuple[int, int]], cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for lo, hi in spans:
        for clo, chi in cut:  # cut is merged and sorted
            if chi < lo or clo > hi:
                continue
            if clo > lo:
                out.append((lo, clo - 1))
            lo = chi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return out


def uncovered(nets: list[Network], allowed: list[Network]) -> list[Network]:
    """The public part of ``nets`` that ``allowed`` does not cover, as CIDRs (IPv4 first)."""
    out: list[Network] = []
    for version, address in ((4, ipaddress.IPv4Address), (6, ipaddress.IPv6Address)):
        cut = _intervals([*NOT_PUBLIC, *allowed], version)
        for lo, hi in _subtract(_intervals(nets, version), cut):
            out += ipaddress.summarize_address_range(address(lo), address(hi))
    return out


def _count(nets: list[Network]) -> str:
    """How many addresses, readable at IPv6 sizes."""
    n = sum(net.num_addresses for net in nets)
    return (
        f"{n:,} address{'es' if n != 1 else ''}"
        if n < 2**32
        else f"about 2^{n.bit_length() - 1} addresses"
    )


def _ports(block: dict[str, Any]) -> str:
    proto, low, high = block.get("protocol"), block.get("fromPort"), block.get("toPort")
    if str(proto) in ("-1", "all") or proto is None:
        return "all traffic"
    return f"{proto} {low}" if low == high else f"{proto} {low}-{high}"


def _parse(value: Any) -> Network | None:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def _ingress_entries(r: Resource) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, ingress block) of a group or rule resource, with CIDR and prefix-list fields."""
    if r.type in SG_TYPES:
        for i, item in enumerate(as_list(r.inputs.get("ingress"))):
            if isinstance(item, dict):
                yield f"{r.name} ingress[{i}]", item
    elif r.type == SG_RULE and r.inputs.get("type") == "ingress":
        yield f"rule {r.name}", dict(r.inputs)
    elif r.type == VPC_INGRESS:
        i = r.inputs
        yield f"rule {r.name}", {
            "cidrBlocks": as_list(i.get("cidrIpv4")),
            "ipv6CidrBlocks": as_list(i.get("cidrIpv6")),
            "prefixListIds": as_list(i.get("prefixListId")),
            "protocol": i.get("ipProtocol"),
            "fromPort": i.get("fromPort"),
            "toPort": i.get("toPort"),
        }


def _prefix_lists(resources: list[Resource]) -> dict[str, list[Network]]:
    """Entries of every prefix list the program declares, by the list's URN."""
    lists = {r.urn: [] for r in resources if r.type == PREFIX_LIST}
    for r in resources:
        if r.type == PREFIX_LIST:
            for e in as_list(r.inputs.get("entries")):
                net = _parse(e.get("cidr")) if isinstance(e, dict) else None
                lists[r.urn] += [net] if net else []
        elif r.type == PREFIX_ENTRY:
            net = _parse(r.inputs.get("cidr"))
            for d in r.dependencies:
                if d in lists and net:
                    lists[d].append(net)
    return lists


def _group_of(r: Resource, groups: dict[str, _Group], by_urn: dict[str, Resource]) -> _Group:
    if r.type in SG_TYPES:
        key, label, owner = r.urn, f"security group {r.name}", r
    else:
        # A CIDR rule names one group (source groups and CIDRs exclude each other), so the one
        # group it depends on is its own; otherwise the group lives outside the program.
        owned = [d for d in r.dependencies if d in by_urn and by_urn[d].type in SG_TYPES]
        if len(owned) == 1:
            sg = by_urn[owned[0]]
            key, label, owner = sg.urn, f"security group {sg.name}", sg
        else:
            gid = r.inputs.get("securityGroupId")
            named = f"security group {gid!r}" if isinstance(gid, str) else "a security group"
            key, label, owner = f"id:{gid}", f"{named} outside this program", r
    return groups.setdefault(key, _Group(label, owner))


def _prefix_refs(r: Resource) -> int:
    """How many prefix lists the resource references anywhere (ingress and egress)."""
    blocks = [b for _, b in _ingress_entries(r)]
    if r.type in SG_TYPES:
        blocks += [b for b in as_list(r.inputs.get("egress")) if isinstance(b, dict)]
    return sum(len(as_list(b.get("prefixListIds"))) for b in blocks)


def _gather(resources: list[Resource]) -> list[_Group]:
    by_urn = {r.urn: r for r in resources}
    lists = _prefix_lists(resources)
    groups: dict[str, _Group] = {}
    for r in resources:
        entries = list(_ingress_entries(r))
        if not entries:
            continue
        group = _group_of(r, groups, by_urn)
        declared = [d for d in r.dependencies if d in lists]
        for where, block in entries:
            ports = f"({_ports(block)})"
            for key in ("cidrBlocks", "ipv6CidrBlocks"):
                for cidr in as_list(block.get(key)):
                    net = _parse(cidr)
                    if net is None:
                        group.problems.append(f"{where} {key} {cidr!r} is not a CIDR")
                    else:
                        group.sources.append((f"{where} {ports}", net))
            refs = as_list(block.get("prefixListIds"))
            if not refs:
                continue
            # Prefix-list ids are only known after creation; a referenced list is resolved through
            # the lists the resource depends on, and only when they account for every reference.
            if len(declared) < _prefix_refs(r):
                group.problems.append(
                    f"{where} admits prefix list(s) {refs} that this program does not declare, so "
                    "their ranges cannot be checked: declare the list (aws.ec2.ManagedPrefixList) "
                    "or name the CIDRs"
                )
                continue
            for urn in declared:
                group.sources += [
                    (f"{where} {ports} prefix list {by_urn[urn].name}", n) for n in lists[urn]
                ]
    return list(groups.values())


def ingress_findings(resources: list[Resource], ctx: Context) -> list[tuple[Resource | None, str]]:
    """One finding per security group whose public ingress is not covered by the allow-list."""
    allowed = [n for n in (_parse(c) for c in ctx.ingress_allowed_cidrs) if n]
    listed = ", ".join(ctx.ingress_allowed_cidrs) or "none"
    out: list[tuple[Resource | None, str]] = []
    for g in _gather(resources):
        out += [(g.owner, f"{g.label}: {p}") for p in g.problems]
        left = uncovered([n for _, n in g.sources], allowed)
        if not left:
            continue
        culprits: dict[str, list[str]] = {}
        for where, net in g.sources:
            if uncovered([net], allowed):
                culprits.setdefault(where, []).append(str(net))
        through = "; ".join(f"{w} {', '.join(nets)}" for w, nets in culprits.items())
        widest = sorted(left, key=lambda n: -n.num_addresses)
        shown = ", ".join(str(n) for n in widest[:3]) + (
            f" and {len(left) - 3} more ranges" if len(left) > 3 else ""
        )
        out.append(
            (
                g.owner,
                f"{g.label} admits public addresses outside ingressAllowedCidrs ({listed}) "
                f"through {through}: {shown} ({_count(left)}) may not reach it; admit only the "
                "VPC, a load balancer's security group or listed CIDRs, and put a public range "
                "the stack must admit in ingressAllowedCidrs",
            )
        )
    return out


@stack_rule(
    "SOV-NET-002",
    "ingress-within-allowed-cidrs",
    "critical",
    "The public address space a security group admits (inline ingress, ingress rule resources "
    "and prefix lists together, IPv4 and IPv6) lies inside the stack's ingressAllowedCidrs.",
)
def ingress_within_allowed(
    resources: list[Resource], ctx: Context
) -> list[tuple[Resource | None, str]]:
    return ingress_findings(resources, ctx)


@rule(
    "SOV-NET-003",
    "imdsv2-required",
    "high",
    "Instances and launch templates require IMDSv2 session tokens.",
    types=("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"),
)
def imdsv2(r: Resource, ctx: Context) -> list[str]:
    if r.get("metadataOptions", "httpTokens") != "required":
        return ["IMDSv1 is allowed: set metadata_options.http_tokens='required'"]
    return []


PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")


@stack_rule(
    "SOV-NET-004",
    "s3-no-public-access",
    "critical",
    "Every bucket blocks public access (all four flags) and no ACL grants public access.",
)
def s3_no_public(resources: list[Resource], ctx: Context) -> list[tuple[Resource | None, str]]:
    blocked = {
        d
        for r in resources
        if r.type == PAB and all(r.inputs.get(f) is True for f in PAB_FLAGS)
        for d in r.dependencies
    }
    out: list[tuple[Resource | None, str]] = [
        (b, "bucket has no public-access block with all four flags: add one")
        for b in resources
        if b.type == "aws:s3/bucket:Bucket" and b.urn not in blocked
    ]
    out += [
        (r, f"ACL {r.inputs.get('acl')!r} makes objects public: remove it (ownership is enforced)")
        for r in resources
        if r.type in ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
        and r.inputs.get("acl") in PUBLIC_ACLS
    ]
    return out
