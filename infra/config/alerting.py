"""The alert receivers of a stack (``alert*`` keys), validated into a ``Receivers``.

Credentials (``Key.secret``) are only ever *present or not* here: their values are ``secure:``
in the stack file and reach the Alertmanager configuration as Pulumi secrets
(:mod:`components.alerting`); a plain one is refused by ``namespaces.check_keys``. A receiver
URL must be https (plain http only to a loopback host in dev); prod must page someone.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from components._alertmanager_config import (
    EMAIL_PASSWORD,
    OPSGENIE_KEY,
    PAGERDUTY_KEY,
    SERVICENOW_PASSWORD,
    Receivers,
)
from infra.config.keys import EMAIL
from infra.config.reader import Reader

_LOOPBACK_NAMES = ("localhost",)


def _loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, environment: str | None) -> str | None:
    """Why ``url`` cannot be a receiver URL, or None: https, or http to loopback in dev only."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not host or parts.username or parts.password or any(c.isspace() for c in url):
        return "an https:// URL with a host and no user or password in it"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(host) and environment == "dev":
        return None
    return "an https:// URL (plain http only to a loopback host, in dev)"


def _present(r: Reader, name: str) -> bool:
    """Whether a credential key holds a value (its text never leaves this function)."""
    value = r.raw.get(name)
    return value not in (None, "")


def _url(r: Reader, name: str, environment: str | None) -> str:
    """A receiver URL ('' for none), with a problem when it is not allowed."""
    url = r.string(name) or ""
    if url and (why := url_problem(url, environment)) is not None:
        r.problem(name, url, why)
    return url


def parse_receivers(r: Reader, environment: str | None) -> Receivers:
    """The ``alert*`` keys as ``Receivers``; problems are recorded on ``r``."""
    servicenow_url = _url(r, "alertServicenowUrl", environment)
    servicenow_user = r.string("alertServicenowUser") or ""
    if _present(r, SERVICENOW_PASSWORD) and not servicenow_user:
        r.problem("alertServicenowUser", "", "set when alertServicenowPassword is set")
    if servicenow_user and not servicenow_url:
        r.problem("alertServicenowUrl", "", "set when alertServicenowUser is set")
    if servicenow_user and not _present(r, SERVICENOW_PASSWORD):
        r.problem(SERVICENOW_PASSWORD, None, "a secret when alertServicenowUser is set")
    webhook_url = _url(r, "alertWebhookUrl", environment)
    email_to = r.strings("alertEmailTo") or ()
    email_from = r.string("alertEmailFrom") or ""
    smarthost = r.string("alertEmailSmarthost") or ""
    email_user = r.string("alertEmailUsername") or ""
    for address in (*email_to, *([email_from] if email_from else [])):
        if not EMAIL.fullmatch(address):
            r.problem("alertEmailTo" if address in email_to else "alertEmailFrom", address,
                      "an e-mail address")  # fmt: skip
    if email_to and (not email_from or not smarthost):
        r.problem("alertEmailSmarthost" if email_from else "alertEmailFrom", None,
                  "set when alertEmailTo is set")  # fmt: skip
    host, _, port = smarthost.rpartition(":")
    if smarthost and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        r.problem("alertEmailSmarthost", smarthost, "'host:port' of the SMTP relay")
    if email_user and not _present(r, EMAIL_PASSWORD):
        r.problem(EMAIL_PASSWORD, None, "a secret when alertEmailUsername is set")
    tenants = set(r.strings("tenants") or ())
    tenant_webhooks: list[tuple[str, str]] = []
    for item in r.strings("alertTenantWebhooks") or ():
        tenant, sep, url = item.partition("=")
        if not sep or tenant not in tenants:
            r.problem("alertTenantWebhooks", item, "'tenant=https://url' naming one of tenants")
        elif (why := url_problem(url, environment)) is not None:
            r.problem("alertTenantWebhooks", item, why)
        else:
            tenant_webhooks.append((tenant, url))
    receivers = Receivers(
        pagerduty=_present(r, PAGERDUTY_KEY),
        opsgenie=_present(r, OPSGENIE_KEY),
        servicenow_url=servicenow_url,
        servicenow_user=servicenow_user,
        webhook_url=webhook_url,
        email_to=tuple(email_to),
        email_from=email_from,
        email_smarthost=smarthost,
        email_username=email_user,
        tenant_webhooks=tuple(tenant_webhooks),
    )
    if environment == "prod" and not receivers.paging:
        r.problem(
            PAGERDUTY_KEY,
            None,
            f"a paging receiver in prod: set {PAGERDUTY_KEY} or {OPSGENIE_KEY} "
            "(`pulumi config set --secret`) or alertWebhookUrl",
        )
    return receivers
