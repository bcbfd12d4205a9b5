"""The Alertmanager configuration, as plain data: receivers, routes and inhibition rules.

A pure builder (no Pulumi): :func:`alertmanager_config` takes which receivers a stack configured
(:class:`Receivers`, no credential in it) and the credentials themselves (``secrets``, by config
key) and returns the ``alertmanager.yaml`` document as a dict. The component
(:mod:`components.alerting`) feeds it Pulumi secret Outputs; the tests feed it fake credentials
and hand the result to the real ``amtool`` and ``alertmanager``.

The routing tree is the same for every stack, so a route test can name the expected receiver
without knowing which integrations a stack configured:

* ``page``: PagerDuty, Opsgenie and the generic webhook (empty, a null receiver, where none);
* ``ticket``: ServiceNow, e-mail and the generic webhook (empty where none);
* ``null``: nothing (``info`` alerts and anything deliberately dropped);
* ``tenant-<name>``: a tenant's own webhook, reached first (with ``continue``) by an alert whose
  ``tenant`` or ``namespace`` label names the tenant, so the platform on-call still sees it;
* ``audit-recorder`` (where a recorder URL is given): every alert labelled
  ``audit="automated-action"`` goes first (with ``continue``) to the automated-action recorder
  (:mod:`pipelines.audit.recorder`), which writes the lifecycle log; its other receivers still
  get it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components._alerts import AUDIT_LABEL

CONFIG_SECRET = "alertmanager-sovereign-ml"
"""The Secret (namespace ``monitoring``) that kube-prometheus-stack's Alertmanager reads."""
CONFIG_KEY = "alertmanager.yaml"
"""The key inside :data:`CONFIG_SECRET` the operator reads the configuration from."""

PAGE, TICKET, NULL = "page", "ticket", "null"
"""The platform's receivers."""
RECORDER = "audit-recorder"
"""The receiver of the automated-action recorder."""
RECORDER_MAX_ALERTS = 100
"""Alerts per notification to the recorder (its own limit, ``MAX_ALERTS``, is the same)."""
SEVERITY_RECEIVER = {"page": PAGE, "warning": TICKET, "ticket": TICKET, "info": NULL}
"""Severity label -> receiver; any other severity goes to :data:`TICKET` (the root's)."""
GROUP_BY = ("alertname", "model", "tenant")
CLUSTER_DOWN = ("KubeAPIDown",)
"""Cluster-level alerts (kube-prometheus-stack's) that silence every serving alert."""
SERVING_NAMESPACE = "serving"
"""A ``TargetDown`` in this namespace silences the serving alerts (their source is gone)."""
RUNBOOK = "{{ .CommonAnnotations.runbook_url }}"
"""The runbook link of a notification's alerts (grouped by alertname, so they share it)."""

PAGERDUTY_KEY = "alertPagerdutyRoutingKey"
OPSGENIE_KEY = "alertOpsgenieApiKey"
SERVICENOW_PASSWORD = "alertServicenowPassword"
EMAIL_PASSWORD = "alertEmailPassword"
SECRET_KEYS = (PAGERDUTY_KEY, OPSGENIE_KEY, SERVICENOW_PASSWORD, EMAIL_PASSWORD)
"""Config keys that hold receiver credentials (``pulumi config set --secret`` only)."""


@dataclass(frozen=True)
class Receivers:
    """Which receivers a stack configured; credentials are only flagged as present, never held."""

    pagerduty: bool = False
    """A PagerDuty Events v2 routing key is set (``alertPagerdutyRoutingKey``)."""
    opsgenie: bool = False
    """An Opsgenie API key is set (``alertOpsgenieApiKey``)."""
    servicenow_url: str = ""
    """ServiceNow's inbound (Alertmanager/event) webhook URL; '' for none."""
    servicenow_user: str = ""
    """Basic-auth user of the ServiceNow webhook (password: ``alertServicenowPassword``)."""
    webhook_url: str = ""
    """A generic incident webhook receiving pages and tickets; '' for none."""
    email_to: tuple[str, ...] = ()
    """Ticket e-mail recipients; empty for none."""
    email_from: str = ""
    """Sender address of the e-mails."""
    email_smarthost: str = ""
    """``host:port`` of the SMTP relay (STARTTLS required)."""
    email_username: str = ""
    """SMTP user (password: ``alertEmailPassword``); '' for an unauthenticated relay."""
    tenant_webhooks: tuple[tuple[str, str], ...] = ()
    """``(tenant, https URL)``: a tenant's own receiver."""

    @property
    def paging(self) -> bool:
        """Whether anything receives pages."""
        return self.pagerduty or self.opsgenie or bool(self.webhook_url)


def _webhook(url: str) -> dict[str, Any]:
    """A webhook config; its JSON payload carries every alert's labels and annotations."""
    return {"url": url, "send_resolved": True, "max_alerts": 0}


def _page_receiver(spec: Receivers, secrets: Mapping[str, str]) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": PAGE}
    if spec.pagerduty:
        receiver["pagerduty_configs"] = [
            {
                "routing_key": secrets[PAGERDUTY_KEY],
                "send_resolved": True,
                "links": [{"href": RUNBOOK, "text": "Runbook"}],
                "details": {
                    "runbook_url": RUNBOOK,
                    "firing": '{{ template "pagerduty.default.instances" .Alerts.Firing }}',
                },
            }
        ]
    if spec.opsgenie:
        receiver["opsgenie_configs"] = [
            {
                "api_key": secrets[OPSGENIE_KEY],
                "send_resolved": True,
                "priority": "P1",
                "details": {"runbook_url": RUNBOOK},
            }
        ]
    if spec.webhook_url:
        receiver["webhook_configs"] = [_webhook(spec.webhook_url)]
    return receiver


def _ticket_receiver(spec: Receivers, secrets: Mapping[str, str]) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": TICKET}
    hooks = []
    if spec.servicenow_url:
        hook = _webhook(spec.servicenow_url)
        if spec.servicenow_user:
            hook["http_config"] = {
                "basic_auth": {
                    "username": spec.servicenow_user,
                    "password": secrets[SERVICENOW_PASSWORD],
                }
            }
        hooks.append(hook)
    if spec.webhook_url:
        hooks.append(_webhook(spec.webhook_url))
    if hooks:
        receiver["webhook_configs"] = hooks
    if spec.email_to:
        email: dict[str, Any] = {
            "to": ", ".join(spec.email_to),
            "from": spec.email_from,
            "smarthost": spec.email_smarthost,
            # Alert contents never cross the network in clear text.
            "require_tls": True,
            "send_resolved": True,
            "headers": {"X-Runbook-URL": RUNBOOK},
        }
        if spec.email_username:
            email["auth_username"] = spec.email_username
            email["auth_password"] = secrets[EMAIL_PASSWORD]
        receiver["email_configs"] = [email]
    return receiver


def tenant_receiver(tenant: str) -> str:
    """The receiver name of a tenant's own webhook."""
    return f"tenant-{tenant}"


def routes(spec: Receivers, recorder: bool = False) -> list[dict[str, Any]]:
    """Child routes: the recorder's and each tenant's (``continue``: the platform sees it too),
    then by severity."""
    out: list[dict[str, Any]] = []
    if recorder:
        name, value = AUDIT_LABEL
        # Every firing is recorded: the recorder drops repeats itself, so no repeat is delayed.
        out.append({"receiver": RECORDER, "matchers": [f'{name}="{value}"'], "continue": True})
    for tenant, _url in spec.tenant_webhooks:
        for label in ("tenant", "namespace"):
            out.append(
                {
                    "receiver": tenant_receiver(tenant),
                    "matchers": [f'{label}="{tenant}"'],
                    "continue": True,
                }
            )
    for severity, receiver in SEVERITY_RECEIVER.items():
        route: dict[str, Any] = {"receiver": receiver, "matchers": [f'severity="{severity}"']}
        if receiver == PAGE:
            # Someone is woken: tell them sooner, and again sooner while it lasts.
            route.update(group_wait="10s", repeat_interval="1h")
        out.append(route)
    return out


def inhibit_rules() -> list[dict[str, Any]]:
    """A cluster-down alert silences its children; a page silences its own warning."""
    serving_child = 'model=~".+"'
    return [
        {
            "source_matchers": [f'alertname=~"{"|".join(CLUSTER_DOWN)}"'],
            "target_matchers": [serving_child],
        },
        {
            "source_matchers": ['alertname="TargetDown"', f'namespace="{SERVING_NAMESPACE}"'],
            "target_matchers": [serving_child, 'alertname!="TargetDown"'],
        },
        {
            "source_matchers": ['severity="page"'],
            "target_matchers": ['severity=~"warning|ticket"'],
            "equal": ["alertname", "model"],
        },
    ]


def recorder_receiver(url: str, token: str | None) -> dict[str, Any]:
    """The recorder's webhook: firing notifications only, with its bearer token when given."""
    hook: dict[str, Any] = {"url": url, "send_resolved": False, "max_alerts": RECORDER_MAX_ALERTS}
    if token is not None:
        hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
    return {"name": RECORDER, "webhook_configs": [hook]}


def alertmanager_config(
    spec: Receivers,
    secrets: Mapping[str, Any],
    recorder_url: str = "",
    recorder_token: str | None = None,
) -> dict[str, Any]:
    """The ``alertmanager.yaml`` document for ``spec``; ``secrets`` by key of :data:`SECRET_KEYS`.

    ``secrets`` needs only the keys ``spec`` uses; a missing one raises KeyError. With a
    ``recorder_url`` the automated actions also go to the recorder (``recorder_token`` its
    bearer token).
    """
    receivers = [_page_receiver(spec, secrets), _ticket_receiver(spec, secrets), {"name": NULL}]
    receivers += [
        {"name": tenant_receiver(t), "webhook_configs": [_webhook(url)]}
        for t, url in spec.tenant_webhooks
    ]
    if recorder_url:
        receivers.append(recorder_receiver(recorder_url, recorder_token))
    return {
        "route": {
            "receiver": TICKET,
            "group_by": list(GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes(spec, recorder=bool(recorder_url)),
        },
        "inhibit_rules": inhibit_rules(),
        "receivers": receivers,
    }
