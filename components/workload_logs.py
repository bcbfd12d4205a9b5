"""Workload logs in the zone: Fluent Bit ships every container's log to CloudWatch Logs.

Fluent Bit (the official ``fluent/fluent-bit`` chart, pinned) runs as a DaemonSet on every node,
tails ``/var/log/containers/*.log`` (read-only host mount) with the ``cri`` multiline parser,
adds Kubernetes metadata (merging JSON logs into the record), masks secrets with a Lua filter
(``fluent_bit/mask.lua``: every key the stack's ``logMaskedFields`` names, at any depth, and
credential-shaped text in non-JSON log lines) before anything leaves the node, and writes to
one KMS-encrypted log group per namespace class (``platform``, ``tenants``) in the stack's own
region, with an IRSA role that may only write log streams of those groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child, policy
from components._irsa import ClusterAccess, irsa_role
from components._k8s import (
    GPU_TOLERATION,
    chart_container_security,
    helm_release,
    role_annotation,
    runtime_default,
)
from policies import inventory

FLUENT_BIT_CHART = inventory.chart("fluent-bit")
"""The official chart (app version 2.2.0: ``cloudwatch_logs``, ``lua``, ``cri``; its
``luaScripts`` values become a ConfigMap mounted at ``/fluent-bit/scripts``)."""
NAMESPACE = "kube-system"
"""Where the node agent runs: the one namespace where host-access grants hold
(``policies/rules/allowlist.py``); every declared namespace is Pod Security ``restricted``."""
SERVICE_ACCOUNT = "fluent-bit"
LOG_CLASSES = ("platform", "tenants")
"""Namespace classes, each with its own log group."""
DEFAULT_MASKED_FIELDS = ("password", "token", "authorization", "secret", "emirates_id")
"""Keys masked in every record unless the stack's ``logMaskedFields`` says otherwise."""
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
"""A maskable key: safe unescaped in a Lua string literal (the script escapes ``.`` and ``-``
where it builds patterns from it)."""
MASK_SCRIPT = Path(__file__).with_name("fluent_bit") / "mask.lua"
"""The Lua filter, shipped to the chart as ``luaScripts``; the key list is filled in by
:func:`mask_script`."""
MASK_SCRIPT_NAME = "mask.lua"
MASK_FUNCTION = "mask_record"
KEYS_MARKER = "--[[ logMaskedFields ]]"
"""The place in the script's ``MASKED_KEYS = { ... }`` that receives the keys."""
WRITE_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")
"""All the collector may do, on its own groups only (the groups are declared here)."""


@dataclass
class WorkloadLogsArgs:
    """Inputs of :class:`WorkloadLogs`."""

    name_prefix: str
    """Prefix of the log group names (``/aws/eks/<prefix>/workloads/<class>``)."""
    region: str
    """The stack's region: the only region Fluent Bit writes to."""
    logs_key_arn: pulumi.Input[str]
    """The stack's ``logs`` KMS key (its policy lets CloudWatch Logs use it for our groups)."""
    retention_days: int
    """Retention of both groups (``logRetentionDays``)."""
    cluster_access: ClusterAccess
    """IRSA access to the cluster."""
    tenants: Sequence[str] = ()
    """Tenant namespaces: their logs go to the ``tenants`` group, everything else to
    ``platform``."""
    masked_fields: Sequence[str] = field(default_factory=lambda: DEFAULT_MASKED_FIELDS)
    """Record keys (any depth, any case) whose values are masked on the node before output."""
    protect: bool = False
    """Protect the log groups (prod)."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


def group_name(prefix: str, log_class: str) -> str:
    """The CloudWatch Logs group of one namespace class."""
    return f"/aws/eks/{prefix}/workloads/{log_class}"


def mask_script(masked_fields: Sequence[str]) -> str:
    """The Lua filter's text with ``masked_fields`` (lower-cased) as its ``MASKED_KEYS`` set.

    Keys are compared lower-cased by the script, so ``Password`` and ``PASSWORD`` are masked too.
    """
    bad = [f for f in masked_fields if not FIELD_NAME.fullmatch(f)]
    if bad:
        raise ValueError(f"masked_fields: {bad}; allowed record keys matching {FIELD_NAME.pattern}")
    text = MASK_SCRIPT.read_text(encoding="utf-8")
    if text.count(KEYS_MARKER) != 1:
        raise RuntimeError(f"{MASK_SCRIPT}: expected {KEYS_MARKER!r} exactly once")
    keys = ", ".join(f'["{f}"] = true' for f in dict.fromkeys(f.lower() for f in masked_fields))
    return text.replace(KEYS_MARKER, keys)


def fluent_bit_config(region: str, prefix: str, tenants: Sequence[str] = ()) -> dict[str, str]:
    """The chart's ``config.inputs``, ``config.filters`` and ``config.outputs`` texts.

    Order matters: the kubernetes filter merges JSON logs into the record first, so the ``lua``
    filter after it sees their fields as keys (and a non-JSON line as the ``log`` string); tenant
    records are then re-tagged (``rewrite_tag`` re-emits them through the filters, so they are
    masked again, harmlessly: the script returns 0 for a record with nothing left to mask) and
    leave through the ``tenants`` output. ``masked_fields`` reach the script through
    :func:`mask_script`, not this text.
    """
    inputs = (
        "[INPUT]\n"
        "    Name tail\n"
        "    Path /var/log/containers/*.log\n"
        "    multiline.parser cri\n"
        "    Tag kube.*\n"
        "    Mem_Buf_Limit 5MB\n"
        "    Skip_Long_Lines On\n"
    )
    filters = [
        "[FILTER]\n"
        "    Name kubernetes\n"
        "    Match kube.*\n"
        "    Merge_Log On\n"
        "    Keep_Log Off\n"
        "    K8S-Logging.Parser Off\n"
        "    K8S-Logging.Exclude Off\n",
        "[FILTER]\n"
        "    Name lua\n"
        "    Match *\n"
        f"    script /fluent-bit/scripts/{MASK_SCRIPT_NAME}\n"
        f"    call {MASK_FUNCTION}\n",
    ]
    if tenants:
        pattern = "|".join(re.escape(t) for t in tenants)
        filters.append(
            "[FILTER]\n"
            "    Name rewrite_tag\n"
            "    Match kube.*\n"
            f"    Rule $kubernetes['namespace_name'] ^({pattern})$ tenants.$TAG false\n"
        )
    outputs = "".join(
        "[OUTPUT]\n"
        "    Name cloudwatch_logs\n"
        f"    Match {match}\n"
        f"    region {region}\n"
        f"    log_group_name {group_name(prefix, log_class)}\n"
        "    log_stream_prefix node-\n"
        "    auto_create_group Off\n"
        for log_class, match in (("platform", "kube.*"), ("tenants", "tenants.*"))
    )
    return {"inputs": inputs, "filters": "\n".join(filters), "outputs": outputs}


def _validate(args: WorkloadLogsArgs) -> None:
    bad = [f for f in args.masked_fields if not FIELD_NAME.fullmatch(f)]
    if bad:
        raise ValueError(
            f"WorkloadLogsArgs.masked_fields: {bad}; allowed record keys matching "
            f"{FIELD_NAME.pattern}"
        )
    if args.retention_days <= 0:
        raise ValueError(f"WorkloadLogsArgs.retention_days: {args.retention_days}; allowed > 0")


class WorkloadLogs(pulumi.ComponentResource):
    """Fluent Bit on every node, writing container logs to encrypted in-region log groups.

    The collector reads the node's ``/var/log`` (read-only) and runs as root, because the
    kubelet writes container logs as root with mode 0640; that is an allow-listed exception in
    ``policies/rules/allowlist.py`` (``helm:fluent-bit/fluent-bit``), in ``kube-system``. It
    has no other host access, and writes nowhere but its log groups.
    """

    log_group_names: pulumi.Output[dict[str, str]]
    """Log group of each namespace class."""

    def __init__(
        self, name: str, args: WorkloadLogsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _validate(args)
        super().__init__(f"{TYPE_PREFIX}:workload_logs:WorkloadLogs", name, None, opts)
        groups = {
            c: aws.cloudwatch.LogGroup(
                f"{name}-{c}",
                name=group_name(args.name_prefix, c),
                retention_in_days=args.retention_days,
                kms_key_id=args.logs_key_arn,
                opts=child(self, protect=args.protect),
            )
            for c in LOG_CLASSES
        }
        arns = [g.arn for g in groups.values()]
        role = irsa_role(
            f"{name}-irsa",
            access=args.cluster_access,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            inline_policy=policy(
                [
                    {
                        "Sid": "WriteOwnLogGroups",
                        "Effect": "Allow",
                        "Action": list(WRITE_ACTIONS),
                        # Streams are ``<group arn>:log-stream:<name>``; the group ARN covers
                        # DescribeLogStreams.
                        "Resource": [*arns, *[pulumi.Output.concat(a, ":*") for a in arns]],
                    }
                ]
            ),
            opts=child(self),
        )
        helm_release(
            f"{name}-fluent-bit",
            args.sources.chart("fluent-bit"),
            namespace=NAMESPACE,
            values=args.sources.chart_images(
                "fluent-bit",
                {
                    # The chart's `helm test` pod pulls busybox:latest; we never run it.
                    "testFramework": {"enabled": False},
                    "serviceAccount": {
                        "create": True,
                        "name": SERVICE_ACCOUNT,
                        "annotations": role_annotation(role.arn),
                    },
                    "podSecurityContext": {"seccompProfile": runtime_default()},
                    "securityContext": chart_container_security(runAsUser=0, runAsNonRoot=False),
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    # Every node, GPU nodes included: their pods log too.
                    "tolerations": [dict(GPU_TOLERATION)],
                    "priorityClassName": "system-node-critical",
                    # Replace the chart's default host mounts (a writable /var/log, docker's folder,
                    # machine-id) with the one folder it reads, read-only.
                    "daemonSetVolumes": [{"name": "varlog", "hostPath": {"path": "/var/log"}}],
                    "daemonSetVolumeMounts": [
                        {"name": "varlog", "mountPath": "/var/log", "readOnly": True}
                    ],
                    # The chart mounts these at /fluent-bit/scripts (its ConfigMap, read-only).
                    "luaScripts": {MASK_SCRIPT_NAME: mask_script(args.masked_fields)},
                    "config": fluent_bit_config(args.region, args.name_prefix, args.tenants),
                },
            ),
            opts=child(self, depends_on=[*groups.values(), role]),
        )
        self.log_group_names = pulumi.Output.all(
            **{c: g.name for c, g in groups.items()}
        )  # type: ignore[assignment]
        self.register_outputs({"logGroupNames": self.log_group_names})
