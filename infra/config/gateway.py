"""The inference gateway's keys (``gateway*``), validated into a ``GatewayConfig``.

The issuer and its JWKS URL are https URLs without credentials, wildcards or fragments; a
production stack that serves models must name both (its models are reachable only through the
gateway, which accepts only that issuer's tokens); elsewhere an empty issuer leaves the gateway
closed (every request refused). Audiences are never empty: a token minted for another
application of the same issuer must not call a model.
"""

from __future__ import annotations

import re
import urllib.parse

from infra.config.model import GatewayConfig
from infra.config.reader import Reader

HOSTNAME = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
"""A lower-case DNS name of two or more labels (the gateway certificate's name)."""
AUDIENCE = re.compile(r"[\x21-\x7e]{1,256}")
"""An audience: printable, no spaces."""
URL_RULE = "an https:// URL with a host, no user, password, query, fragment or '*'"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the issuer or its JWKS URL, or None."""
    parts = urllib.parse.urlsplit(url)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username
        or parts.password
        or parts.query
        or parts.fragment
        or "*" in url
        or any(c.isspace() or ord(c) > 126 for c in url)
    ):
        return URL_RULE
    return None


def parse_gateway(r: Reader) -> GatewayConfig | None:
    """The gateway's config, or None with the problems recorded on ``r``."""
    issuer, jwks = r.string("gatewayOidcIssuer"), r.string("gatewayOidcJwksUri")
    audiences, hostname = r.strings("gatewayOidcAudiences"), r.string("gatewayHostname")
    size = r.integer("gatewayMaxRequestBytes", 1024, 64 * 1024 * 1024)
    rate = r.integer("gatewayRateLimitRps", 1, 100_000)
    # Production models must be callable, so production names its issuer; elsewhere an empty
    # issuer leaves the gateway closed (components.inference_gateway.closed).
    required = bool(r.peek("servedModels")) and r.peek("environment") == "prod"
    ok = True
    for key, url in (("gatewayOidcIssuer", issuer), ("gatewayOidcJwksUri", jwks)):
        if url is None:
            ok = False
        elif url == "" and (required or (issuer and not jwks)):
            r.problem(key, url, f"required in production and with an issuer: {URL_RULE}")
            ok = False
        elif url and (why := url_problem(url)) is not None:
            r.problem(key, url, why)
            ok = False
    if audiences is not None and (
        not audiences or any(not AUDIENCE.fullmatch(a) or "*" in a for a in audiences)
    ):
        r.problem("gatewayOidcAudiences", list(audiences), "one or more audiences, no '*'")
        ok = False
    if hostname is not None and not HOSTNAME.fullmatch(hostname):
        r.problem("gatewayHostname", hostname, "a lower-case DNS name, e.g. inference.example.ae")
        ok = False
    if not ok or None in (issuer, jwks, audiences, hostname, size, rate):
        return None
    return GatewayConfig(
        issuer=str(issuer),
        jwks_uri=str(jwks),
        audiences=tuple(audiences or ()),
        hostname=str(hostname),
        max_request_bytes=int(size or 0),
        rate_limit_rps=int(rate or 0),
    )
