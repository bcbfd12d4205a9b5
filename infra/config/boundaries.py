"""What lies outside the program but may be trusted: AWS accounts, in-zone external resources
(ARNs, bucket and host names) and the public CIDRs ingress may admit.

The gate's rules read these from the config (``policies.rules``): a resource or grant outside
the program is accepted only when a stack names it here.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from infra.config.reader import Reader

ACCOUNT_ID = re.compile(r"[0-9]{12}")
EXTERNAL_RESOURCE = re.compile(
    r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(?:[0-9]{12}|aws)?:[\x21-\x7e]+"
    r"|[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
)
"""An ARN, or an S3 bucket / host name (lower case, digits, dots and hyphens)."""


def is_specific_cidr(text: str) -> bool:
    """``text`` is a network in CIDR form (host bits zero) narrower than the whole address space."""
    try:
        return ipaddress.ip_network(text, strict=True).prefixlen > 0
    except ValueError:
        return False


def parse_boundaries(r: Reader) -> dict[str, Any]:
    """The boundary keys as ``PlatformConfig`` fields; problems are recorded on ``r``."""
    accounts = r.strings("allowedAccountIds")
    for a in accounts or ():
        if not ACCOUNT_ID.fullmatch(a):
            r.problem("allowedAccountIds", a, "a 12-digit AWS account id")
    external = r.strings("inZoneExternalResources")
    for e in external or ():
        if not EXTERNAL_RESOURCE.fullmatch(e):
            r.problem("inZoneExternalResources", e, "an ARN, an S3 bucket name or a host name")
    cidrs = r.strings("ingressAllowedCidrs")
    for c in cidrs or ():
        if not is_specific_cidr(c):
            r.problem(
                "ingressAllowedCidrs",
                c,
                "a specific public CIDR such as 203.0.113.0/24 (never 0.0.0.0/0)",
            )
    return {
        "allowed_account_ids": accounts or (),
        "in_zone_external_resources": external or (),
        "ingress_allowed_cidrs": cidrs or (),
    }
