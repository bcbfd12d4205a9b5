"""Residency: nothing is created, replicated, delivered, logged or copied outside the stack's zone.

Both rules walk every input path that the generated classification (``aws_types.json``, see
:mod:`policies.rules.classification`) marks as able to name a region, an availability zone, an
ARN, an endpoint or a bucket, at any depth (``rules[0].destination.bucket``). What cannot be proven
to stay inside the zone fails; values CrossGuard does not know yet (preview) are not judged. The
provider and the per-resource ``region`` override are SOV-RES-001/SOV-RES-003 (``providers``).

* SOV-RES-002 judges what a value proves on its own, one resource at a time, so CrossGuard refuses
  the resource before it is created: a region must be a zone region; an availability zone must be
  one of theirs (name or zone id); an ARN that names a region must name a zone region (AWS-owned
  ARNs, account ``aws``, pass); an endpoint or URL must be an AWS endpoint of a zone region. Other
  string inputs (policy documents, unclassified fields) still may not mention an ARN of another
  region. A type the table does not know fails: deny by default until someone classifies it.
* SOV-RES-004 judges what only the whole program can prove: an ARN without a region (S3, IAM,
  CloudFront ...) or a bucket name (``s3://`` locations too) passes when it names a resource the
  program declares under an in-zone provider (resolved through the record: ``arn``, ``bucket``
  and ``id``), or when the stack lists it in ``inZoneExternalResources``.

The split follows CrossGuard: a resource policy runs before its resource is created, with every
input known at ``pulumi up``; a stack policy sees the other resources (their outputs too) but runs
once all are registered. So everything a value proves alone is SOV-RES-002's, and only the
resolution against the program is left to the stack rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from policies.rules.base import Context, Resource, rule, stack_rule
from policies.rules.classification import (
    REGENERATE,
    entry,
    leaves,
    pulumi_aws_version,
    strings,
)
from policies.zones import region_info

ARN = re.compile(r"^arn:(aws[a-z-]*):([^:]*):([^:]*):([^:]*):(.*)$", re.S)
"""``arn:partition:service:region:account:resource``."""
ARN_IN_TEXT = re.compile(r"arn:aws[a-z-]*:([a-z0-9-]+):([a-z]{2}(?:-[a-z]+)+-\d+):")
"""An ARN that names a region, anywhere in a text (policy documents)."""
AWS_DOMAINS = ("amazonaws.com", "amazonaws.com.cn", "api.aws", "on.aws")
"""DNS suffixes of AWS service endpoints; a host under one, labelled with the region, is in it."""
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
"""Types whose ``bucket``/``id`` is a bucket name the program declares."""
EXTERNAL_KEY = "inZoneExternalResources"
# AZ ids abbreviate the region: me-central-1 -> mec1-az1, us-gov-west-1 -> usgw1-az2.
_ABBREVIATIONS = {
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "central": "c",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "gov": "g",
}


@dataclass(frozen=True)
class Arn:
    """The parts of an ARN that residency needs."""

    service: str
    """``s3``, ``iam``, ``kms`` ..."""
    region: str
    """Empty for global and S3 ARNs."""
    account: str
    """``aws`` for AWS-owned resources (managed policies)."""
    resource: str
    """What follows the account (``bucket/key``, ``role/name`` ...)."""

    @property
    def aws_owned(self) -> bool:
        """AWS's own definitions: managed policies (account ``aws``) and AWS Private CA's
        certificate templates (``arn:aws:acm-pca:::template/<name>/V<n>``: no region, no
        account, no data; they only say which extensions a certificate gets)."""
        if self.account == "aws":
            return True
        return (
            self.service == "acm-pca"
            and not self.region
            and not self.account
            and re.fullmatch(r"template/[A-Za-z0-9_]+/V\d+", self.resource) is not None
        )


def parse_arn(text: str) -> Arn | None:
    """The ARN in ``text`` (the whole text), or None."""
    m = ARN.match(text)
    return Arn(m[2], m[3], m[4], m[5]) if m else None


def zone_text(ctx: Context) -> str:
    """``residency zone 'uae' (me-central-1)``, for messages."""
    return f"residency zone '{ctx.zone}' ({', '.join(ctx.regions) or 'no regions'})"


def _regions(ctx: Context) -> str:
    """``me-central-1`` (or ``eu-central-1 or eu-west-1 ...``) for fixes in messages."""
    return " or ".join(ctx.regions) or "a region of the zone"


def listed(text: str, ctx: Context) -> bool:
    """True when the stack's ``inZoneExternalResources`` lists the value, its host or bucket."""
    if not ctx.in_zone_external_resources:
        return False
    names = {text, _host(text), _bucket_of(text)}
    return any(n and n in ctx.in_zone_external_resources for n in names)


def _host(text: str) -> str:
    if "://" not in text:
        return ""
    return (urlsplit(text).hostname or "").lower()


def _bucket_of(text: str) -> str:
    """The bucket an S3 ARN or ``s3://`` location names ('' for anything else)."""
    arn = parse_arn(text)
    if arn and arn.service == "s3" and not arn.region:
        return arn.resource.split("/", 1)[0]
    if text.startswith("s3://"):
        return text[5:].split("/", 1)[0]
    return ""


def az_ids(region: str) -> tuple[str, str]:
    """The AZ-name prefix and the AZ-id prefix of a region (``me-central-1a``, ``mec1-az1``)."""
    parts = region.split("-")
    short = parts[0] + "".join(_ABBREVIATIONS.get(p, p[:1]) for p in parts[1:-1]) + parts[-1]
    return region, f"{short}-az"


def in_zone_az(text: str, ctx: Context) -> bool:
    """True for an availability zone (name or zone id) of a zone region."""
    for region in ctx.regions:
        name, zone_id = az_ids(region)
        info = region_info(region)
        names = info.availability_zones if info else ()
        if text in names or re.fullmatch(re.escape(name) + "[a-z]", text):
            return True
        if re.fullmatch(re.escape(zone_id) + r"\d+", text):
            return True
    return False


def in_zone_endpoint(text: str, ctx: Context) -> bool:
    """True for a URL or host name of an AWS endpoint in a zone region: the label just before
    the AWS domain (and before ``vpce`` for PrivateLink names) is the region
    (``https://sqs.me-central-1.amazonaws.com/...``, ``oidc.eks.me-central-1.amazonaws.com``)."""
    host = _host(text) or text.split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0].lower()
    for domain in AWS_DOMAINS:
        if host.endswith("." + domain):
            labels = host[: -len(domain) - 1].split(".")
            if labels[-1] == "vpce":
                labels = labels[:-1]
            return bool(labels) and labels[-1] in ctx.regions
    return False


def _judge(text: str, kinds: Iterable[str], ctx: Context) -> str | None:
    """What is wrong with a classified value as far as the value alone shows (None: nothing)."""
    kinds = set(kinds)
    arn = parse_arn(text)
    if listed(text, ctx) or (arn and (arn.aws_owned or not arn.region)):
        return None  # AWS-owned, or region-less: SOV-RES-004 resolves it against the program
    if arn:
        if arn.region in ctx.regions:
            return None
        return (
            f"names {arn.service} in {arn.region}, outside {zone_text(ctx)}: point it at a "
            f"resource in {_regions(ctx)}"
        )
    if text.startswith("s3://"):
        return None  # a bucket: SOV-RES-004
    if "region" in kinds:
        if text in ctx.regions:
            return None
        return f"is a region outside {zone_text(ctx)}: use {_regions(ctx)}"
    if "az" in kinds:
        if in_zone_az(text, ctx):
            return None
        return (
            f"is not an availability zone of {zone_text(ctx)}: use one of "
            f"{', '.join(az for r in ctx.regions for az in _zone_azs(r)) or 'the zone'}"
        )
    if "endpoint" in kinds and ("://" in text or "bucket" not in kinds):
        if in_zone_endpoint(text, ctx):
            return None
        return (
            f"is not an AWS endpoint of {zone_text(ctx)}, so nothing proves the data sent there "
            f"stays in the zone: use an AWS endpoint of {_regions(ctx)} "
            f"(<service>.<region>.amazonaws.com), or list the host in {EXTERNAL_KEY} once you "
            "have checked it is in the zone"
        )
    return None


def _zone_azs(region: str) -> tuple[str, ...]:
    info = region_info(region)
    return info.availability_zones if info else ()


def _classified(r: Resource) -> Iterable[tuple[str, str, list[str]]]:
    """(concrete path, string value, kinds) of every classified string input of ``r``; the
    top-level ``region`` (the per-resource override) is SOV-RES-001's."""
    info = entry(r.type) or {}
    for path, spec in (info.get("paths") or {}).items():
        if path == "region":
            continue
        for at, value in leaves(r.inputs, path):
            for concrete, text in strings(value, at):
                yield concrete, text, spec["kinds"]


@rule(
    "SOV-RES-002",
    "no-out-of-zone-destinations",
    "critical",
    "Every input that can name a region, availability zone, ARN or endpoint (replication, "
    "replica, copy, backup, delivery, subscription, log destination ...) stays inside the "
    "residency zone; AWS types the classification does not know are refused.",
)
def no_out_of_zone_destinations(r: Resource, ctx: Context) -> list[str]:
    if not r.type.startswith("aws:"):
        return []
    if entry(r.type) is None:
        return [
            f"type {r.type} is not classified (policies/rules/aws_types.json, generated from "
            f"pulumi-aws {pulumi_aws_version()}), so nothing proves where its inputs send data: "
            f"regenerate policies/rules/aws_types.json ({REGENERATE}) and review"
        ]
    found: list[str] = []
    judged = {"region"}
    for at, text, kinds in _classified(r):
        judged.add(at)
        problem = _judge(text, kinds, ctx)
        if problem:
            found.append(f"{at} = {text!r} {problem}")
    for at, text in strings(dict(r.inputs)):
        if at in judged:
            continue
        for m in ARN_IN_TEXT.finditer(text):
            if m[2] not in ctx.regions:
                found.append(
                    f"{at} mentions an ARN of {m[1]} in {m[2]}, outside {zone_text(ctx)}: "
                    f"refer only to resources in {_regions(ctx)}"
                )
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Declared:
    """What the program declares under an in-zone provider: the ARNs and bucket names that
    SOV-RES-004 accepts without a listing."""

    arns: frozenset[str]
    """ARNs of declared resources (and the S3 ARNs of declared buckets)."""
    buckets: frozenset[str]
    """Names of declared buckets."""


def declared(resources: Iterable[Resource], ctx: Context) -> Declared:
    """The index of resources the program declares inside the zone (record outputs, or the
    properties CrossGuard hands a stack policy: ``arn``, ``bucket``, ``id``)."""
    arns: set[str] = set()
    buckets: set[str] = set()
    for r in resources:
        region = r.inputs.get("region") or r.provider_inputs.get("region")
        if not r.type.startswith("aws:") or region not in ctx.regions:
            continue
        known = {**dict(r.inputs), **dict(r.outputs)}
        if isinstance(known.get("arn"), str):
            arns.add(known["arn"])
        if r.type in BUCKET_TYPES:
            info = region_info(str(region))
            partition = info.partition if info else "aws"
            for key in ("bucket", "id"):
                name = known.get(key)
                if isinstance(name, str) and name:
                    buckets.add(name)
                    arns.add(f"arn:{partition}:s3:::{name}")
    return Declared(frozenset(arns), frozenset(buckets))


def _unproven(text: str, kinds: Iterable[str], index: Declared, ctx: Context) -> str | None:
    """What SOV-RES-004 finds wrong with a region-less value (None: it is proven or not its)."""
    if listed(text, ctx):
        return None
    arn = parse_arn(text)
    fix = (
        f"declare it in this program, or list it in {EXTERNAL_KEY} once you have checked it "
        "is in the zone"
    )
    if arn:
        if arn.aws_owned or arn.region:
            return None
        bucket = _bucket_of(text)
        if text in index.arns or (bucket and bucket in index.buckets):
            return None
        what = f"bucket {bucket!r}" if bucket else f"a {arn.service} resource"
        return (
            f"names {what} that this program does not declare in {zone_text(ctx)}, and "
            f"{arn.service} ARNs carry no region, so nothing proves it stays in the zone: {fix}"
        )
    bucket = _bucket_of(text)
    if not bucket and "bucket" in set(kinds) and "://" not in text:
        bucket = text.split("/", 1)[0]
    if bucket and bucket not in index.buckets and bucket not in ctx.in_zone_external_resources:
        return (
            f"names bucket {bucket!r}, which this program does not declare in {zone_text(ctx)}, "
            f"and a bucket name carries no region, so nothing proves it stays in the zone: {fix}"
        )
    return None


@stack_rule(
    "SOV-RES-004",
    "destinations-declared-in-zone",
    "critical",
    "ARNs without a region (S3, IAM, global services) and bucket names in any classified input "
    "name resources the program declares inside the zone, or listed in-zone external resources.",
)
def destinations_declared_in_zone(
    resources: list[Resource], ctx: Context
) -> list[tuple[Resource | None, str]]:
    index = declared(resources, ctx)
    out: list[tuple[Resource | None, str]] = []
    for r in resources:
        if not r.type.startswith("aws:"):
            continue
        # A resource's own name (a bucket's ``bucket``) is no destination; where the resource
        # itself lives is the provider's and the region override's question (SOV-RES-001).
        known = {**dict(r.inputs), **dict(r.outputs)}
        own = {known.get(k) for k in ("arn", "id")} | (
            {known.get("bucket")} if r.type in BUCKET_TYPES else set()
        )
        for at, text, kinds in _classified(r):
            if text in own:
                continue
            problem = _unproven(text, kinds, index, ctx)
            if problem:
                out.append((r, f"{at} = {text!r} {problem}"))
    return out
