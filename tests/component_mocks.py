"""Shared pieces of the component tests: run one component under the synth's recording mocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from components._irsa import ClusterAccess
from components.audit_trail import LifecycleSink
from infra.synth.runner import run_recorded

REGION = "me-central-1"
"""The stack region the mocks answer in when no provider says otherwise."""
KEY = "arn:aws:kms:me-central-1:123456789012:key/test"
ACCESS = ClusterAccess(
    cluster_name="p",
    oidc_provider_arn="arn:aws:iam::1:oidc-provider/x",
    oidc_issuer_url="https://oidc.example/id/X",
)
"""IRSA access to a cluster that exists only in these tests."""
AUDIT = LifecycleSink(
    bucket="sovml-t-audit-trail-123456789012",
    bucket_arn="arn:aws:s3:::sovml-t-audit-trail-123456789012",
    key_arn="arn:aws:kms:me-central-1:123456789012:key/logs",
    region=REGION,
)
"""The audit bucket the cluster's pods append the lifecycle log to, in these tests."""
HMAC_KEY = "arn:aws:kms:me-central-1:123456789012:key/pseudonymization"
"""The stack's HMAC_256 pseudonymization key, in these tests."""


def record(build: Callable[[], Any]) -> list[dict[str, Any]]:
    """What ``build`` declares, as the synth record holds it."""
    return run_recorded(build, stack="unit", region=REGION).resources


def with_provider(region: str, build: Callable[[pulumi.ResourceOptions], Any]) -> Callable[[], Any]:
    """A program building its component through an AWS provider pinned to ``region``."""

    def program() -> Any:
        provider = aws.Provider("regional", region=region)
        return build(pulumi.ResourceOptions(providers={"aws": provider}))

    return program


def of_type(resources: list[dict], typ: str) -> list[dict]:
    """The recorded resources of one type token."""
    return [r for r in resources if r["type"] == typ]


def children_named_after(resources: list[dict], component: str, name: str) -> None:
    """Assert the STYLE.md naming: every child of the component is ``<name>-<role>``."""
    comp = next(r for r in resources if r["type"] == component)
    for r in resources:
        if r["parent"] == comp["urn"]:
            assert r["name"].startswith(f"{name}-"), f"{r['urn']} not named {name}-<role>"
