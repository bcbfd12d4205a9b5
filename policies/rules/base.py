"""Rule plumbing: the resource view, the context, the registry and the evaluator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.zones import ZONES

SEVERITIES = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class Context:
    """What a rule needs to know about the stack beyond one resource."""

    zone: str = "uae"
    """Residency zone of the stack."""
    environment: str = "prod"
    """dev, staging or prod; production rules are stricter."""
    platform_namespaces: tuple[str, ...] = (
        "kubeflow",
        "feature-store",
        "serving",
        "monitoring",
        "vault",
    )
    """Namespaces that must exist with a default-deny NetworkPolicy when the stack has any."""
    allowed_account_ids: tuple[str, ...] = ()
    """Accounts the stack may assume roles in (empty: none may be assumed)."""
    in_zone_external_resources: tuple[str, ...] = ()
    """ARNs, bucket names and host names outside the program that the operator declared to be
    inside the zone; any other destination the program does not declare is refused."""
    ingress_allowed_cidrs: tuple[str, ...] = ()
    """Public CIDRs security groups may admit; any other public ingress is refused."""
    unpinned_images: tuple[str, ...] = ()
    """Inventory image ids a reviewed suppression accepts without a digest for now (SOV-SUP-002).
    Never read from a stack file: the offline gate suppresses those findings one by one from
    policies/suppressions.yaml, and ``sovml`` hands the same ids to the CrossGuard pack in its
    ``--policy-pack-config`` file (infra/gate/pack_config.py)."""

    @property
    def regions(self) -> tuple[str, ...]:
        """Regions inside the zone (empty for an unknown zone: nothing is inside it)."""
        zone = ZONES.get(self.zone)
        return zone.region_names if zone else ()

    @property
    def production(self) -> bool:
        """True for prod stacks."""
        return self.environment == "prod"


@dataclass(frozen=True)
class Resource:
    """A resource as rules see it, whether it came from CrossGuard or from the synth record."""

    type: str
    """Pulumi type token, e.g. ``aws:eks/cluster:Cluster``."""
    name: str
    """Logical name (URN name part)."""
    inputs: Mapping[str, Any]
    """Inputs as the engine received them (camelCase)."""
    urn: str = ""
    """URN, for messages and linking."""
    provider_inputs: Mapping[str, Any] = field(default_factory=dict)
    """Inputs of the resource's provider (region, defaultTags)."""
    dependencies: tuple[str, ...] = ()
    """URNs this resource depends on."""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    """Identifying outputs known beyond the inputs (``arn``, ``bucket``, ``id`` ...): the synth
    record's; in CrossGuard a stack policy's properties already hold them (empty here)."""

    def get(self, *path: str | int, default: Any = None) -> Any:
        """Nested lookup that tolerates missing keys, None and one-element lists."""
        node: Any = self.inputs
        for key in path:
            if isinstance(key, int):
                node = node[key] if isinstance(node, list) and len(node) > key else None
            else:
                if isinstance(node, list) and len(node) == 1:
                    node = node[0]
                node = node.get(key) if isinstance(node, Mapping) else None
            if node is None:
                return default
        return node


@dataclass(frozen=True)
class Violation:
    """One rule failure on one resource (or the stack)."""

    rule_id: str
    rule_name: str
    severity: str
    resource: str
    resource_type: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """JSON-able form for reports."""
        return {
            "id": self.rule_id,
            "name": self.rule_name,
            "severity": self.severity,
            "resource": self.resource,
            "type": self.resource_type,
            "message": self.message,
        }


ResourceCheck = Callable[[Resource, Context], list[str]]
StackCheck = Callable[[list[Resource], Context], list[tuple[Resource | None, str]]]


@dataclass(frozen=True)
class Rule:
    """A resource rule."""

    id: str
    """Stable id, e.g. ``SOV-RES-001``."""
    name: str
    """kebab-case name; the CrossGuard policy name."""
    description: str
    """What the rule guards, for people."""
    severity: str
    """critical, high, medium or low."""
    check: ResourceCheck
    """The pure function."""
    mandatory: bool = True
    """CrossGuard enforcement: mandatory stops `pulumi up`; advisory only warns."""
    types: tuple[str, ...] = ()
    """Type tokens the rule judges; empty for every type (the check then filters itself)."""

    def applies(self, resource: Resource) -> bool:
        """True when the rule judges resources of this type."""
        return not self.types or resource.type in self.types

    def messages(self, resource: Resource, ctx: Context) -> list[str]:
        """The check's messages for one resource (none for types the rule does not judge)."""
        return self.check(resource, ctx) if self.applies(resource) else []

    def run(self, resource: Resource, ctx: Context) -> list[Violation]:
        """Violations of this rule by one resource."""
        return [
            Violation(
                self.id, self.name, self.severity, resource.urn or resource.name, resource.type, m
            )
            for m in self.messages(resource, ctx)
        ]


@dataclass(frozen=True)
class StackRule:
    """A rule that needs every resource at once (links, absences)."""

    id: str
    name: str
    description: str
    severity: str
    check: StackCheck
    mandatory: bool = True

    def run(self, resources: list[Resource], ctx: Context) -> list[Violation]:
        """Violations of this rule across the stack."""
        return [
            Violation(
                self.id,
                self.name,
                self.severity,
                (r.urn or r.name) if r else "(stack)",
                r.type if r else "pulumi:pulumi:Stack",
                m,
            )
            for r, m in self.check(resources, ctx)
        ]


RULES: list[Rule | StackRule] = []


def rule(
    id: str,
    name: str,
    severity: str,
    description: str,
    *,
    mandatory: bool = True,
    types: tuple[str, ...] = (),
) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register a resource rule (decorator); ``types`` limits it to those type tokens."""

    def wrap(fn: ResourceCheck) -> ResourceCheck:
        RULES.append(Rule(id, name, description, severity, fn, mandatory, types))
        return fn

    return wrap


def stack_rule(
    id: str, name: str, severity: str, description: str, *, mandatory: bool = True
) -> Callable[[StackCheck], StackCheck]:
    """Register a stack rule (decorator)."""

    def wrap(fn: StackCheck) -> StackCheck:
        RULES.append(StackRule(id, name, description, severity, fn, mandatory))
        return fn

    return wrap


def evaluate(resources: Iterable[Resource], ctx: Context) -> list[Violation]:
    """Every violation of every rule, resource rules first, in a stable order."""
    resources = list(resources)
    out: list[Violation] = []
    for r in RULES:
        if isinstance(r, Rule):
            # A typed rule sees only its types (``applies`` would refuse the rest one call at a
            # time: most of a tenant's 21,000 rule-resource pairs), in the stack's order.
            types = frozenset(r.types)
            for res in [x for x in resources if x.type in types] if types else resources:
                out.extend(r.run(res, ctx))
        else:
            out.extend(r.run(resources, ctx))
    return out


def json_doc(value: Any) -> Any:
    """A policy document whether it arrives as JSON text or already parsed; None if neither."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, (dict, list)) else None


def as_list(value: Any) -> list[Any]:
    """``value`` as a list (IAM allows a single string where a list is meant)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def is_aws(resource: Resource) -> bool:
    """True for AWS resources (not providers, not components)."""
    return resource.type.startswith("aws:")
