"""The AWS provider: where it sends requests and whose credentials it uses.

A provider decides the region, the endpoints and the account of every resource it creates, so a
provider that escapes the zone moves everything behind it. Which provider inputs matter:

- ``region`` (and the per-resource ``region`` that pulumi-aws 7 accepts): SOV-RES-001.
- ``endpoints``, ``httpProxy``/``httpsProxy``, ``stsRegion``: they send requests (and the data in
  them: object bodies, secret values, parameters) somewhere other than the region's own AWS
  endpoints. ``insecure`` turns off TLS verification, so nothing proves that the host answering
  is the in-zone AWS endpoint. ``skipRegionValidation`` is the switch for region names the
  provider does not know (alternative, AWS-like APIs); pulumi-aws defaults it to true (unset is
  judged as true), so a provider must say ``skip_region_validation=False``. SOV-RES-003.
- ``assumeRoles``/``assumeRoleWithWebIdentity`` and ``allowedAccountIds``: which account the
  resources land in. SOV-IAM-009 (in this module too: it reads the same inputs).
- Not judged: ``skipCredentialsValidation``, ``skipRequestingAccountId`` and
  ``skipMetadataApiCheck`` change how credentials are checked or found, not where requests go
  nor which account they act in (the provider's ``allowedAccountIds`` check fails closed when the
  account id cannot be determined); ``forbiddenAccountIds`` is a deny-list and proves nothing
  about where the stack lands, so it neither passes nor fails a provider; ``useFipsEndpoint`` and
  ``useDualstackEndpoint`` stay in the provider's region; ``customCaBundle`` only matters with a
  proxy or endpoint override, both refused.

Provider inputs arrive JSON-encoded from the engine (``"true"``, ``'[{"s3": ...}]'``) and decoded
in the synth record; both forms are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from policies.rules.base import Context, Resource, as_list, json_doc, rule

AWS_PROVIDER = "pulumi:providers:aws"
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/\S+")
"""An IAM role ARN; group 1 is the account the role lives in."""
PROXIES = ("httpProxy", "httpsProxy")


def _value(r: Resource, key: str) -> Any:
    """A provider input, JSON-decoded when the engine sent it as text."""
    value = r.inputs.get(key)
    decoded = json_doc(value) if isinstance(value, str) and value[:1] in "[{" else None
    return value if decoded is None else decoded


def _true(value: Any) -> bool:
    """True for ``True`` and for the engine's JSON text ``"true"``."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _host(url: str) -> str:
    """The host of a URL, or the text itself when it has no scheme (``proxy:3128``)."""
    try:
        host = urlsplit(url if "://" in url else f"//{url}").hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket: no host can be proven
        host = None
    return (host or url).lower()


def _listed(url: str, ctx: Context) -> bool:
    """True when the operator declared the URL's host to be inside the zone."""
    return _host(url) in {e.lower() for e in ctx.in_zone_external_resources}


def _endpoints(r: Resource) -> Iterator[tuple[str, str]]:
    """(service, URL) of every endpoint override, from the list or the single-object form."""
    for entry in as_list(_value(r, "endpoints")):
        if isinstance(entry, dict):
            for service, url in entry.items():
                if isinstance(url, str) and url.strip():
                    yield str(service), url.strip()


@rule(
    "SOV-RES-001",
    "provider-region-in-zone",
    "critical",
    "The AWS provider (and any per-resource region override) stays inside the residency zone.",
)
def provider_region_in_zone(r: Resource, ctx: Context) -> list[str]:
    if r.type == AWS_PROVIDER:
        region = r.inputs.get("region")
        if region not in ctx.regions:
            return [
                f"AWS provider region is {region!r}, outside residency zone '{ctx.zone}' "
                f"({', '.join(ctx.regions) or 'no regions'}): set aws:region in the stack file "
                "to a region of the zone"
            ]
        return []
    if r.type.startswith("aws:") and r.inputs.get("region") not in (None, *ctx.regions):
        return [
            f"region override {r.inputs['region']!r} is outside residency zone '{ctx.zone}': "
            "remove the per-resource region so the stack's provider region applies"
        ]
    return []


@rule(
    "SOV-RES-003",
    "provider-endpoints-in-zone",
    "critical",
    "The AWS provider talks only to its region's own AWS endpoints: no endpoint overrides, "
    "proxies, STS region elsewhere, skipped region validation or disabled TLS verification.",
    types=(AWS_PROVIDER,),
)
def provider_endpoints_in_zone(r: Resource, ctx: Context) -> list[str]:
    found = [
        f"endpoints.{service} = {url!r} overrides the AWS endpoint: remove the override (requests "
        "would go wherever that host is), or list the host in inZoneExternalResources if it is "
        "inside the zone"
        for service, url in _endpoints(r)
        if not _listed(url, ctx)
    ]
    for key in PROXIES:
        proxy = r.inputs.get(key)
        if isinstance(proxy, str) and proxy.strip() and not _listed(proxy, ctx):
            found.append(
                f"{key} = {proxy!r} routes every AWS request through a proxy: remove it, or list "
                "the proxy host in inZoneExternalResources if it is inside the zone"
            )
    sts = r.inputs.get("stsRegion")
    if sts not in (None, "", *ctx.regions):
        found.append(
            f"stsRegion = {sts!r} sends credential requests outside residency zone '{ctx.zone}': "
            "remove sts_region (STS then uses the provider's region)"
        )
    # Unset means pulumi-aws's schema default, true.
    skip = r.inputs.get("skipRegionValidation", True)
    if _true(skip):
        found.append(
            f"skipRegionValidation = {skip!r} lets the provider use region names AWS does not "
            "have (AWS-like APIs elsewhere): set skip_region_validation=False on the provider "
            "(pulumi-aws defaults it to true)"
        )
    if _true(r.inputs.get("insecure")):
        found.append(
            "insecure = true turns off TLS verification, so nothing proves the endpoint is AWS in "
            "the zone: remove insecure"
        )
    return found


def _assumed_roles(r: Resource) -> Iterator[tuple[str, Any]]:
    """(input path, role ARN) of every role the provider assumes."""
    for i, role in enumerate(as_list(_value(r, "assumeRoles"))):
        if isinstance(role, dict):
            yield f"assumeRoles[{i}].roleArn", role.get("roleArn", role.get("role_arn"))
    web = _value(r, "assumeRoleWithWebIdentity")
    if isinstance(web, dict):
        yield "assumeRoleWithWebIdentity.roleArn", web.get("roleArn", web.get("role_arn"))


@rule(
    "SOV-IAM-009",
    "provider-accounts-allowed",
    "critical",
    "The AWS provider assumes roles and deploys only in the stack's allowedAccountIds.",
    types=(AWS_PROVIDER,),
)
def provider_accounts_allowed(r: Resource, ctx: Context) -> list[str]:
    allowed = set(ctx.allowed_account_ids)
    listed = ", ".join(sorted(allowed)) or "none"
    found = []
    for path, arn in _assumed_roles(r):
        if arn is None:
            continue  # an empty assume-role block assumes nothing
        m = ROLE_ARN.fullmatch(arn) if isinstance(arn, str) else None
        if m is None:
            found.append(
                f"{path} = {arn!r} is not an IAM role ARN, so its account cannot be checked: "
                "name the role by its full ARN"
            )
        elif m[1] not in allowed:
            found.append(
                f"{path} = {arn!r} assumes a role in account {m[1]}, not in the stack's "
                f"allowedAccountIds ({listed}): add the account to allowedAccountIds in the "
                "stack file if it belongs to the zone, or remove the assume-role"
            )
    for account in as_list(_value(r, "allowedAccountIds")):
        if str(account) not in allowed:
            found.append(
                f"allowedAccountIds lists account {account!r}, not in the stack's "
                f"allowedAccountIds ({listed}): the provider must take its accounts from the "
                "stack config"
            )
    return found
