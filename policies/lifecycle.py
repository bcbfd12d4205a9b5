"""Where a cluster pod's lifecycle log goes: facts the components and the pipelines share.

The components (``components/audit_trail.py``, ``kubeflow.py``, ``monitoring.py``) create the
``sovml-audit`` ConfigMap in every namespace whose pods append and scope each namespace's IAM role
to its own chain; the pipelines (``pipelines/training/images.py``) hand that ConfigMap to the
steps that append; ``pipelines/audit/sink.py`` reads the variables. One chain per namespace
(``lifecycle/<namespace>``), so a tenant's role cannot write, or even list, another tenant's
chain. Standard library only (the CrossGuard pack's virtualenv imports ``policies``).
"""

from __future__ import annotations

import re

CONFIG_MAP = "sovml-audit"
"""The ConfigMap holding a namespace's audit settings; its keys are the variable names."""
BUCKET_ENV = "SOVML_AUDIT_BUCKET"
"""The object-locked audit bucket (``pipelines.audit.sink.BUCKET_ENV``)."""
PREFIX_ENV = "SOVML_AUDIT_PREFIX"
"""The namespace's chain in the bucket (``pipelines.audit.sink.PREFIX_ENV``)."""
REGION_ENV = "AWS_REGION"
"""The stack's region: boto3 reads it, so the pod talks to the in-zone S3 endpoint."""
ENV_NAMES = (BUCKET_ENV, PREFIX_ENV, REGION_ENV)
"""Every key of the ConfigMap, in order."""
ROOT = "lifecycle"
"""Top folder of every chain in the bucket (``pipelines.audit.sink.DEFAULT_PREFIX``); the bucket
policy's conditional-put and no-delete rules cover everything under it."""

RECORDER_CHAIN = "automated-actions"
"""The chain of the automated-action recorder (Alertmanager's webhook): its own, so the
recorder's role can append to no namespace's chain."""

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def chain_prefix(namespace: str) -> str:
    """``lifecycle/<namespace>``: the chain of one namespace's pods (no trailing slash).

    Raises:
        ValueError: ``namespace`` is not a Kubernetes namespace name (DNS label), which could
            otherwise widen the prefix (``*``, ``/``) or escape it (``..``).
    """
    if not _NAMESPACE.match(namespace):
        raise ValueError(
            f"lifecycle chain namespace {namespace!r}: allowed a DNS label (lowercase letters, "
            "digits, '-', at most 63)"
        )
    return f"{ROOT}/{namespace}"
