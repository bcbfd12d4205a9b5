"""Run mutation snippets under the synth mocks and judge base + mutation like the gate does."""

from __future__ import annotations

import copy
import json
import textwrap
from typing import Any

from infra.synth.runner import run_recorded
from policies.rules import evaluate
from policies.rules.record import context_from_record, resources_from_record
from tests.mutations import Mutation

BASE_STACK = "prod-uae"


def _first(record: dict[str, Any], typ: str, name_part: str = "") -> dict[str, Any]:
    for r in record["resources"]:
        if r["type"] == typ and name_part in r["name"]:
            return r
    raise LookupError(f"base record has no {typ} named *{name_part}*")


def base_values(record: dict[str, Any]) -> dict[str, str]:
    """Identifiers of resources the base declares, for snippets to refer to."""
    bucket = _first(record, "aws:s3/bucket:Bucket", "artifacts")["outputs"]
    return {
        "BUCKET": bucket["bucket"],
        "BUCKET_ARN": bucket["arn"],
        "KEY_ARN": _first(record, "aws:kms/key:Key", "storage")["outputs"]["arn"],
        "ROLE_ARN": _first(record, "aws:iam/role:Role")["outputs"]["arn"],
        "VPC_ID": _first(record, "aws:ec2/vpc:Vpc")["id"],
        "SUBNET_ID": _first(record, "aws:ec2/subnet:Subnet", "private")["id"],
        "ACCOUNT": "123456789012",
        "REGION": record["config"]["region"],
    }


def namespace(record: dict[str, Any]) -> dict[str, Any]:
    """What a snippet may use (see :mod:`tests.mutations`); the provider is created per run."""
    import pulumi
    import pulumi_aws as aws
    import pulumi_kubernetes as k8s

    return {"aws": aws, "k8s": k8s, "pulumi": pulumi, "json": json, **base_values(record)}


def _base_provider_inputs(record: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in record["resources"] if r["type"] == "pulumi:providers:aws")["inputs"]


def declare(mutation: Mutation, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record entries ``mutation`` declares, run for real under the synth mocks."""
    import pulumi
    import pulumi_aws as aws

    provider_inputs = _base_provider_inputs(record)
    names = namespace(record)

    def program() -> None:
        provider = aws.Provider(
            "mutation-aws",
            region=provider_inputs["region"],
            default_tags=provider_inputs.get("defaultTags"),
            skip_region_validation=False,  # as the base's provider (SOV-RES-003)
        )
        scope = {**names, "provider": provider, "opts": pulumi.ResourceOptions(provider=provider)}
        exec(textwrap.dedent(mutation.snippet), scope)

    recording = run_recorded(program, stack=BASE_STACK, region=record["config"]["region"])
    return recording.resources


def violations(record: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(rule id, resource, message) of every violation in ``record`` (offline evaluation)."""
    found = evaluate(resources_from_record(record), context_from_record(record))
    return {(v.rule_id, v.resource, v.message) for v in found}


class Corpus:
    """The mutations judged against one base record, each piece computed once per base: what a
    mutation declares (the offline and the pack tests judge the same declarations) and the base's
    own violations (every mutation's refusals are counted beyond them)."""

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self._declared: dict[str, list[dict[str, Any]]] = {}
        self._base_violations: set[tuple[str, str, str]] | None = None

    def mutated(self, mutation: Mutation) -> dict[str, Any]:
        """A copy of the base record with the mutation's resources appended (copies of both:
        nothing a judge does to one record reaches the next)."""
        if mutation.name not in self._declared:
            self._declared[mutation.name] = declare(mutation, self.base)
        out = copy.deepcopy(self.base)
        out["resources"] += copy.deepcopy(self._declared[mutation.name])
        return out

    def added_refusals(self, mutation: Mutation) -> set[str]:
        """Ids of the rules that refuse what ``mutation`` adds to the base (offline)."""
        if self._base_violations is None:
            self._base_violations = violations(self.base)
        return {rule for rule, _, _ in violations(self.mutated(mutation)) - self._base_violations}


def pack_refusals(reports: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(rule id, urn, message) of the CrossGuard harness's reports (``[ID] message``)."""
    out = set()
    for v in reports:
        rule, _, message = v["message"].partition("] ")
        out.add((rule.lstrip("["), v.get("urn") or "", message))
    return out
