"""The mesh's egress allow-list: every host a pod may reach outside the cluster, as data.

One leaf module (standard library only) that the egress component (``components/mesh_egress``)
and the gate rule SOV-ZT-005 (``policies/rules/egress``) both read, generated from the same
residency data the gate uses everywhere else, never typed by hand:

- the zone table (:mod:`policies.zones`): the stack's region and its partition's DNS suffix;
- the VPC endpoints the network creates (:data:`GATEWAY_ENDPOINTS`, :data:`INTERFACE_ENDPOINTS`,
  which ``components/network.py`` imports from here), each as the regional host name its private
  DNS answers for (``kms.me-central-1.amazonaws.com``, ``api.ecr.me-central-1.amazonaws.com``);
- the zone's registry (:func:`policies.inventory.registry_host`) for each allowed account;
- the stack's own buckets, as S3 virtual-hosted names on the regional endpoint;
- the host names the operator declared in ``inZoneExternalResources``.

No wildcard is ever produced: a ``*.amazonaws.com`` (or even ``*.s3.<region>...``) entry would
let a pod name any bucket or service the pattern covers, and Istio resolves a wildcard only
with ``resolution: NONE``, which forwards to whatever address the pod asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from policies.inventory import registry_host
from policies.zones import region_info

GATEWAY_ENDPOINTS = ("s3",)
"""Gateway VPC endpoints (route-table entries to the service's prefix list)."""
INTERFACE_ENDPOINTS = (
    "ecr.api",
    "ecr.dkr",
    "sts",
    "kms",
    "logs",
    "ec2",
    "elasticloadbalancing",
    "autoscaling",
)
"""Interface endpoints: image pulls, IRSA token exchange, encryption, logs, node and LB control."""
DOMAINS = {"aws": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}
"""DNS suffix of AWS service endpoints per partition."""
_SERVICE_LABELS = {"ecr.api": "api.ecr"}
"""Endpoint services whose host name is not ``<service>.<region>.<domain>``."""
_HOST = re.compile(r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
"""Bucket names usable in a virtual-hosted S3 name over TLS (no dots: the wildcard certificate
``*.s3.<region>.amazonaws.com`` covers one label only)."""
_ACCOUNT = re.compile(r"\d{12}")
PORT = 443
"""Every AWS endpoint and registry is reached over TLS on 443."""
PROTOCOL = "TLS"
"""The ServiceEntry port protocol: the mesh routes by SNI and never sees the plaintext."""


@dataclass(frozen=True)
class Destination:
    """One allowed egress destination."""

    host: str
    """Exact DNS name (never a wildcard)."""
    port: int
    """TCP port."""
    protocol: str
    """Istio port protocol (``TLS``)."""
    why: str
    """Where the entry comes from, for people (the endpoint, the registry, the declaration)."""


def domain_of(region: str) -> str:
    """The AWS DNS suffix of ``region``'s partition; ValueError for a region no zone lists."""
    info = region_info(region)
    if info is None:
        raise ValueError(f"region {region!r} is in no residency zone")
    return DOMAINS[info.partition]


def service_host(service: str, region: str) -> str:
    """The regional host name of a VPC endpoint service (``ecr.dkr`` has none of its own: the
    registry host carries the account, :func:`policies.inventory.registry_host`)."""
    if service == "ecr.dkr":
        raise ValueError("ecr.dkr is reached as <account>.dkr.ecr.<region>: use registry_host")
    return f"{_SERVICE_LABELS.get(service, service)}.{region}.{domain_of(region)}"


def bucket_host(bucket: str, region: str) -> str:
    """The virtual-hosted S3 name of ``bucket`` on ``region``'s endpoint."""
    return f"{bucket}.s3.{region}.{domain_of(region)}"


def declared_hosts(external: Iterable[str]) -> tuple[str, ...]:
    """The host names among ``inZoneExternalResources`` (ARNs, bucket names without a dot,
    wildcards and anything else that is not an exact DNS name are not hosts to route to)."""
    hosts = []
    for entry in external:
        text = entry.strip().lower()
        if "://" in text:
            text = text.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
        if not text.startswith("arn:") and _HOST.fullmatch(text):
            hosts.append(text)
    return tuple(dict.fromkeys(hosts))


def allow_list(
    region: str,
    account_ids: Sequence[str] = (),
    buckets: Sequence[str] = (),
    external: Sequence[str] = (),
) -> tuple[Destination, ...]:
    """Every destination a stack in ``region`` may reach, in a stable order, without duplicates.

    ``account_ids`` are the stack's allowed accounts (the zone registry of each), ``buckets`` the
    stack's own bucket names, ``external`` its ``inZoneExternalResources``. Raises ValueError for
    a region outside every zone, a malformed account id or bucket name.
    """
    domain_of(region)  # refuses a region no zone lists before anything is generated
    out: dict[str, Destination] = {}

    def add(host: str, why: str) -> None:
        out.setdefault(host, Destination(host, PORT, PROTOCOL, why))

    for service in GATEWAY_ENDPOINTS + INTERFACE_ENDPOINTS:
        if service != "ecr.dkr":
            add(service_host(service, region), f"VPC endpoint com.amazonaws.{region}.{service}")
    for account in account_ids:
        if not _ACCOUNT.fullmatch(account):
            raise ValueError(f"account id {account!r}; allowed 12 digits")
        add(registry_host(account, region), f"the zone's registry (ecr.dkr) of account {account}")
    for bucket in buckets:
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"bucket {bucket!r}; allowed 3-63 of a-z, 0-9 and '-', no dots")
        add(bucket_host(bucket, region), f"the stack's bucket {bucket} (S3 gateway endpoint)")
    for host in declared_hosts(external):
        add(host, "declared in inZoneExternalResources")
    return tuple(out.values())


def host_in_zone(
    host: str, regions: Sequence[str], account_ids: Sequence[str], external: Sequence[str]
) -> bool:
    """True when ``host`` is one the allow-list of some region of the zone can hold: a VPC
    endpoint service host, a registry host (of an allowed account, when the stack pins any), a
    virtual-hosted bucket name on a zone region's S3 endpoint, or a declared host. The gate
    cannot know the bucket names (they carry the account id), so any well-formed bucket label on
    an in-zone S3 endpoint passes: the request still lands on that region's S3."""
    host = host.lower()
    if host in declared_hosts(external):
        return True
    for region in regions:
        if region_info(region) is None:
            continue
        domain = domain_of(region)
        services = {
            service_host(s, region)
            for s in GATEWAY_ENDPOINTS + INTERFACE_ENDPOINTS
            if s != "ecr.dkr"
        }
        if host in services:
            return True
        registry = re.fullmatch(
            rf"(\d{{12}})\.dkr\.ecr\.{re.escape(region)}\.{re.escape(domain)}", host
        )
        if registry and (not account_ids or registry[1] in account_ids):
            return True
        suffix = f".s3.{region}.{domain}"
        if host.endswith(suffix) and _BUCKET.fullmatch(host[: -len(suffix)]):
            return True
    return False
