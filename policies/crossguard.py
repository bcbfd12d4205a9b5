"""The rules wrapped as CrossGuard policies (imported by ``__main__.py`` and by the tests).

Rule context: the stack's residency zone, environment and allow-lists (allowed accounts, in-zone
external resources, allowed ingress CIDRs) come from the per-policy pack config that ``sovml
check`` writes to ``build/<stack>/policy-config.json``, for ``pulumi preview --policy-pack policies
--policy-pack-config build/<stack>/policy-config.json``; that is the context the offline gate
builds from the record. Without it, zone and environment come from the default tags the program
puts on its AWS provider (``residency-zone``, ``environment``), else the production defaults, and
the allow-lists are empty (stricter, never looser).

Provider inputs reach an analyzer as the SDK sent them: JSON text for anything but a string
(``defaultTags``, ``endpoints``, ``assumeRoles``). :func:`to_resource` decodes them, so rules see
the same data as in the synth record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.rules import RULES, Context, Resource, Rule, StackRule
from policies.rules.base import json_doc
from policies.rules.record import context_from_config

_STRINGS = {"type": "array", "items": {"type": "string"}}
CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "zone": {"type": "string", "description": "Residency zone of the stack (e.g. uae)."},
        "environment": {"type": "string", "enum": ["dev", "staging", "prod"]},
        "allowed_account_ids": {**_STRINGS, "description": "allowedAccountIds of the stack."},
        "in_zone_external_resources": {
            **_STRINGS,
            "description": "inZoneExternalResources of the stack.",
        },
        "ingress_allowed_cidrs": {**_STRINGS, "description": "ingressAllowedCidrs of the stack."},
        "unpinned_images": {
            **_STRINGS,
            "description": "Inventory image ids policies/suppressions.yaml accepts without a "
            "digest for this stack (SOV-SUP-002).",
        },
    }
)
"""Per-policy config: ``sovml`` writes it for a stack (``build/<stack>/policy-config.json``).
Without it the pack falls back to the provider's default tags for zone and environment and to
empty allow-lists, which is stricter, never looser."""
SEVERITY = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
}


_CONTEXTS: dict[tuple[int, str | None, str | None], tuple[Any, Context]] = {}
"""(id(policy config), zone tag, environment tag) -> (that config, its context). A policy is
handed the same config object for every resource, and a stack's resources carry the same two
provider tags, so a context is built once per policy, not once per call: a third of the pack's
time over ``prod-uae``. The config is kept so its id is never reused while the entry lives."""


def _context(config: Mapping[str, Any] | None, provider_props: Mapping[str, Any]) -> Context:
    tags = (provider_props.get("defaultTags") or {}).get("tags") or {}
    tags = tags if isinstance(tags, Mapping) else {}
    zone, environment = tags.get("residency-zone"), tags.get("environment")
    # Only string (or absent) tags are keys: 1, 1.0 and True are one key but three contexts.
    memo = all(v is None or isinstance(v, str) for v in (zone, environment))
    key = (id(config), zone, environment)
    hit = _CONTEXTS.get(key) if memo else None
    if hit is not None and hit[0] is config:
        return hit[1]
    merged = dict(config or {})
    merged.setdefault("zone", zone)
    merged.setdefault("environment", environment)
    context = context_from_config(merged)
    if memo:
        if len(_CONTEXTS) > 4096:  # bounded: a long run with many configs starts over
            _CONTEXTS.clear()
        _CONTEXTS[key] = (config, context)
    return context


def _config(args: Any) -> Mapping[str, Any]:
    try:
        return args.get_config() or {}
    except Exception:
        return {}


def decode_provider_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """Provider inputs with the SDK's JSON text (objects, lists) decoded, as in the record."""
    out = dict(props)
    for key, value in out.items():
        decoded = json_doc(value) if isinstance(value, str) and value[:1] in ("{", "[") else None
        out[key] = value if decoded is None else decoded  # text that only looks like JSON stays
    return out


_DECODED: dict[int, tuple[Any, dict[str, Any]]] = {}
"""id(provider props) -> (those props, decoded): every policy of a resource gets the same
provider; the props are kept so an id is never reused while its entry lives."""


def _provider_inputs(provider: Any) -> dict[str, Any]:
    """:func:`decode_provider_inputs` of a provider's props, decoded once per props object."""
    props = getattr(provider, "props", None) or {}
    hit = _DECODED.get(id(props))
    if hit is not None and hit[0] is props:
        return hit[1]
    if len(_DECODED) > 4096:  # bounded: a long run with many providers starts over
        _DECODED.clear()
    decoded = decode_provider_inputs(props)
    _DECODED[id(props)] = (props, decoded)
    return decoded


def to_resource(
    resource_type: str,
    props: Mapping[str, Any],
    urn: str,
    name: str,
    provider: Any,
    dependencies: list[Any] | None = None,
) -> Resource:
    """The rules' view of a CrossGuard resource."""
    provider_props = _provider_inputs(provider)
    is_provider = resource_type.startswith("pulumi:providers:")
    return Resource(
        type=resource_type,
        name=name,
        inputs=decode_provider_inputs(props) if is_provider else dict(props),
        urn=urn,
        provider_inputs=provider_props,
        dependencies=tuple(d.urn for d in dependencies or []),
    )


def _policy_fields(r: Rule | StackRule) -> dict[str, Any]:
    """What every CrossGuard policy of a rule says besides its validator."""
    return {
        "name": r.name,
        "description": f"{r.id}: {r.description}",
        "enforcement_level": (
            EnforcementLevel.MANDATORY if r.mandatory else EnforcementLevel.ADVISORY
        ),
        "config_schema": CONFIG_SCHEMA,
        "severity": SEVERITY[r.severity],
    }


def resource_policy(r: Rule) -> ResourceValidationPolicy:
    """A CrossGuard resource policy running one rule."""

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        res = to_resource(args.resource_type, args.props, args.urn, args.name, args.provider)
        # A provider has no provider of its own: its own default tags say where the stack is.
        tagged = res.inputs if res.type == "pulumi:providers:aws" else res.provider_inputs
        for message in r.messages(res, _context(_config(args), tagged)):
            report(f"[{r.id}] {message}", args.urn)

    return ResourceValidationPolicy(validate=validate, **_policy_fields(r))


def stack_policy(r: StackRule) -> StackValidationPolicy:
    """A CrossGuard stack policy running one stack rule."""

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            to_resource(p.resource_type, p.props, p.urn, p.name, p.provider, p.dependencies)
            for p in args.resources
            if isinstance(p, PolicyResource)
        ]
        provider = next(
            (r.inputs for r in resources if r.type == "pulumi:providers:aws"),
            next((r.provider_inputs for r in resources if r.provider_inputs), {}),
        )
        for res, message in r.check(resources, _context(_config(args), provider)):
            report(f"[{r.id}] {message}", res.urn if res else None)

    return StackValidationPolicy(validate=validate, **_policy_fields(r))


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """Every rule as a CrossGuard policy, in rule order."""
    make: Callable[[Any], Any]
    out = []
    for r in RULES:
        make = resource_policy if isinstance(r, Rule) else stack_policy
        out.append(make(r))
    return out
