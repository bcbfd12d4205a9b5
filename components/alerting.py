"""Alert routing to incident management: the Alertmanager configuration as a Kubernetes Secret.

kube-prometheus-stack's Alertmanager reads its configuration from the Secret named by
``alertmanager.alertmanagerSpec.configSecret`` (:data:`CONFIG_SECRET`, set by
:mod:`components.monitoring`). The document comes from the pure builder
:mod:`components._alertmanager_config`; receiver credentials arrive as Pulumi secret Outputs
and the whole document is a secret Output, so no credential is ever a plain string in the
state or in the synth record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components._alertmanager_config import (
    CONFIG_KEY,
    CONFIG_SECRET,
    SECRET_KEYS,
    Receivers,
    alertmanager_config,
)
from components._aws import TYPE_PREFIX, child
from components._k8s import metadata


@dataclass(frozen=True)
class AlertingArgs:
    """Inputs of :class:`Alerting`."""

    namespace: str
    """Namespace of kube-prometheus-stack's Alertmanager."""
    receivers: Receivers
    """Which receivers the stack configured."""
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Credentials by config key (:data:`SECRET_KEYS`), Pulumi secrets (``require_secret``)."""
    recorder_url: str = ""
    """The automated-action recorder's webhook (:class:`components.audit_recorder.AuditRecorder`);
    '' for none."""
    recorder_token: pulumi.Input[str] | None = None
    """The recorder's bearer token (a secret Output); required with ``recorder_url``."""


_TOKEN = "__recorder_token"


def render(
    receivers: Receivers,
    secrets: Mapping[str, Any],
    recorder_url: str = "",
    recorder_token: str | None = None,
) -> str:
    """``alertmanager.yaml`` as text (block style, stable key order)."""
    document = alertmanager_config(receivers, secrets, recorder_url, recorder_token)
    return yaml.safe_dump(document, sort_keys=False)


class Alerting(pulumi.ComponentResource):
    """The Alertmanager configuration Secret: receivers, routes by severity and tenant, inhibition.

    Raises ValueError when a credential key is unknown or when a configured receiver's
    credential is missing (a stack that names PagerDuty without a routing key).
    """

    def __init__(
        self, name: str, args: AlertingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        unknown = sorted(set(args.secrets) - set(SECRET_KEYS))
        if unknown:
            raise ValueError(f"AlertingArgs.secrets: unknown keys {unknown}; allowed {SECRET_KEYS}")
        if bool(args.recorder_url) != (args.recorder_token is not None):
            raise ValueError("AlertingArgs: recorder_url and recorder_token go together")
        super().__init__(f"{TYPE_PREFIX}:alerting:Alerting", name, None, opts)
        try:  # fail here, with the key named, rather than inside an apply at deploy time
            alertmanager_config(args.receivers, {k: "" for k in args.secrets})
        except KeyError as exc:
            raise ValueError(f"AlertingArgs.secrets: missing {exc.args[0]}") from None
        secrets = {k: pulumi.Output.secret(v) for k, v in args.secrets.items()}
        if args.recorder_token is not None:
            secrets[_TOKEN] = pulumi.Output.secret(args.recorder_token)
        document = pulumi.Output.all(**secrets).apply(
            lambda s: render(args.receivers, s, args.recorder_url, s.get(_TOKEN))
        )
        self.secret = k8s.core.v1.Secret(
            f"{name}-config",
            metadata=metadata(CONFIG_SECRET, args.namespace),
            type="Opaque",
            string_data={CONFIG_KEY: pulumi.Output.secret(document)},
            opts=child(self),
        )
        self.register_outputs({})
