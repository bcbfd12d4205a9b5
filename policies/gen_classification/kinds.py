"""What an input leaf names (region, AZ, ARN, endpoint, bucket, account, KMS key), which paths are
destinations, and which services are global: the residency half of the classification."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Services whose resources are not regional. Source: AWS Fault Isolation Boundaries whitepaper,
# "Global services" (partitional services: IAM, Organizations, Account Management, Route 53 ARC,
# Network Manager, Route 53 private DNS; edge-network services: Route 53 public DNS, CloudFront,
# WAF for CloudFront (WAF Classic), Global Accelerator, Shield Advanced):
# https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/global-services.html
# plus the billing services whose only endpoint is us-east-1 (Budgets, Cost Explorer, CUR, Billing,
# Cost Optimization Hub, BCM Data Exports, Route 53 Domains; see each service's endpoints page in
# https://docs.aws.amazon.com/general/latest/gr/aws-service-information.html).
GLOBAL_SERVICES = frozenset(
    {
        "iam",
        "organizations",
        "account",
        "route53",
        "route53domains",
        "route53recoverycontrol",
        "route53recoveryreadiness",
        "networkmanager",
        "cloudfront",
        "waf",
        "globalaccelerator",
        "shield",
        "budgets",
        "costexplorer",
        "cur",
        "billing",
        "costoptimizationhub",
        "bcmdata",
        "invoicing",
        "savingsplans",
    }
)
"""Token modules (``aws:<module>/...``) of global services."""
REGIONAL_EXCEPTIONS = re.compile(r"^aws:route53/resolver")
"""Types inside a global module that are regional (Route 53 Resolver runs per VPC and region)."""

# Words that make a path a destination: data leaves the resource through it.
DESTINATION_WORDS = frozenset(
    {
        "replication",
        "replica",
        "replicas",
        "replicate",
        "destination",
        "destinations",
        "target",
        "targets",
        "copy",
        "copies",
        "backup",
        "delivery",
        "deliver",
        "subscription",
        "subscriptions",
        "subscriber",
        "subscribers",
        "export",
        "exports",
        "forward",
        "forwarding",
        "forwarder",
        "sink",
        "mirror",
        "peer",
        "failover",
        "global",
        "secondary",
        "output",
        "outputs",
        "logging",
    }
)

# Leaf names: camelCase split into lower-cased words.
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|\d+")
ARN_DOC = re.compile(r"\barns?\b|amazon resource name", re.I)
ACCOUNT_DOC = re.compile(r"^\W*(?:the |an? )*(?:aws )?account (?:id|number)", re.I)
KMS_DOC = re.compile(
    r"\bkms\b|key management service|customer master key|customer managed key", re.I
)
S3_LOCATION_DOC = re.compile(r"s3://|\bS3 (?:URI|URL|location|path|prefix)", re.I)
NOT_AN_ADDRESS_DOC = re.compile(
    r"^\W*(?:whether|the state of|matches)\b|valid values|can be [`\"]|percent-encoded|\bgrant",
    re.I,
)
"""Docstrings of ``...Endpoint``/``...Uri`` inputs that are switches (``httpEndpoint``:
"enabled"), request matchers or redirect templates (load balancer rules), or ACL grantees: they
name no place the resource's data goes."""
REGION_NEXT = frozenset({"", "name", "names", "to", "list", "lists", "order", "orders", "code"})
"""Words that may follow ``region`` in a leaf naming a region (``regionName``, ``regionToRun``);
any other (``regionConcurrencyType``, ``multiRegionClusterName``) makes it something else."""
ZONE_LAST = frozenset({"zone", "zones", "id", "ids", "name", "names", "az", "azs"})
"""Last words of a leaf naming availability zones (``availabilityZoneId``), not a setting about
them (``availabilityZoneRebalancing``)."""
# URLs that name where a browser is sent, or where AWS fetches public keys, images, templates or
# code FROM; they are not destinations of the resource's data, so they are not classified.
NOT_DESTINATION_URL = frozenset(
    {
        "image",
        "template",
        "redirect",
        "callback",
        "logout",
        "return",
        "support",
        "website",
        "web",
        "site",
        "policy",
        "feedback",
        "confirmation",
        "profile",
        "repository",
        "discovery",
        "issuer",
        "jwks",
        "authorization",
        "token",
        "userinfo",
        "auth",
        "idp",
        "metadata",
        "landing",
        "signing",
        "presigned",
        "pre",
        "seed",
        "enforced",
        "exempt",
        "dockerfile",
        "truststore",
    }
)
NOT_CLASSIFIED = frozenset({"stateOrRegion", "callingRegions"})
"""Leaf names that read like a kind but are not (a postal address's state or region, the countries
a Chime voice connector may call)."""

KINDS = ("region", "az", "arn", "endpoint", "bucket", "account", "kms")
"""What a classified leaf can name (see :func:`leaf_kinds`)."""


def words(name: str) -> list[str]:
    """``destinationBucketArn`` -> ``['destination', 'bucket', 'arn']``."""
    return [w.lower() for w in _WORDS.findall(name)]


def _after(w: list[str], word: str) -> str | None:
    """The word after the last ``word`` in ``w`` ('' at the end), None if ``word`` is absent."""
    if word not in w:
        return None
    i = len(w) - 1 - w[::-1].index(word)
    return w[i + 1] if i + 1 < len(w) else ""


def leaf_kinds(name: str, doc: str) -> list[str]:
    """What a string leaf named ``name`` (wire name) with docstring ``doc`` can name.

    The name decides (``...Region``, ``...Arn``, ``...Bucket``, ``kmsKeyId`` ...); the docstring's
    first paragraph adds ARNs ("ARN of the IAM role" on ``role``, "use the `arn` of the source DB"
    on ``replicateSourceDb``), accounts ("Account ID ..." on ``expectedBucketOwner``), KMS keys
    and S3 locations. Returns the kinds in :data:`KINDS` order.
    """
    if name in NOT_CLASSIFIED:
        return []
    w = words(name)
    last = w[-1] if w else ""
    first = doc.strip().split("\n\n", 1)[0]
    found: set[str] = set()
    if _after(w, "region") in REGION_NEXT or _after(w, "regions") in REGION_NEXT:
        found.add("region")
    if ("availability" in w and last in ZONE_LAST) or last in ("az", "azs"):
        found.add("az")
    if "arn" in w or "arns" in w or ARN_DOC.search(first):
        found.add("arn")
    url_words = {"endpoint", "endpoints", "url", "urls", "uri", "uris", "host", "hostname", "hosts"}
    if (
        last in url_words
        and not NOT_DESTINATION_URL & set(w)
        and not NOT_AN_ADDRESS_DOC.search(first)
    ):
        found.add("endpoint")
    if ({"bucket", "buckets"} & set(w)) and last in ("bucket", "buckets", "name", "arn", "id"):
        if not {"account", "owner", "role"} & set(w):
            found.add("bucket")
    elif last in ("location", "path", "uri", "url", "destination") and (
        "s3" in w or S3_LOCATION_DOC.search(first)
    ):
        found.add("bucket")
    owner = last == "owner" and "account" in first.lower()
    if ("account" in w and last in ("account", "accounts", "id", "ids", "owner")) or owner:
        found.add("account")
    elif ACCOUNT_DOC.match(first):
        found.add("account")
    if ("kms" in w and last in ("key", "id", "arn", "identifier", "keys", "alias")) or (
        "key" in w
        and last in ("key", "id", "arn", "identifier")
        and KMS_DOC.search(first)
        and "policy" not in w
    ):
        found.add("kms")
    return [k for k in KINDS if k in found]


@dataclass
class Leaf:
    """A classified input path of one type."""

    path: str
    """Wire path, e.g. ``rules[].destination.bucket``."""
    kinds: list[str]
    """What its value can name (see :data:`KINDS`); ``["flag"]`` marks an input that switches
    encryption at rest on (``storageEncrypted``), which the encryption half reads."""
    destination: bool
    """True when the path lies under a destination (replication, copy, delivery ...)."""
