"""Signature admission: a production stack that pulls from its zone's registry verifies it.

``SOV-SUP-003`` asks a production stack whose workloads pull from the zone's ECR registry (the
stacks SOV-SUP-001 lets through) to declare a sigstore ``ClusterImagePolicy`` that covers that
registry with at least one key authority, and to put the policy-controller opt-in label on every
namespace it declares that runs workloads (the controller's own namespace aside). A production
stack still on public registries is refused by SOV-SUP-001 image by image; this rule does not
pile onto it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.base import Context, Resource, stack_rule
from policies.rules.helm_charts import HELM_TYPES
from policies.rules.kubernetes import kind_of, pod_spec
from policies.rules.supply_chain import images_of, in_zone_registry

POLICY_KIND = "ClusterImagePolicy"
POLICY_TYPES = (
    "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy",
    "kubernetes:policy.sigstore.dev/v1alpha1:ClusterImagePolicy",
)
OPT_IN = ("policy.sigstore.dev/include", "true")
"""The namespace label policy-controller's webhooks select."""
CONTROLLER_CHART = "policy-controller"
Findings = list[tuple[Resource | None, str]]


def _namespace_of(r: Resource) -> str:
    if r.type in HELM_TYPES:
        return str(r.inputs.get("namespace") or "default")
    meta = r.inputs.get("metadata")
    return str((meta or {}).get("namespace") or "default") if isinstance(meta, Mapping) else ""


def _covers_zone(policy: Resource, ctx: Context) -> bool:
    """The policy has a key authority and a glob ``<zone registry>[/<path>]/**`` (a glob such as
    ``**`` names no registry, so no zone). The glob's prefix is judged as a repository in it."""
    spec = policy.inputs.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    keys = [
        a
        for a in spec.get("authorities") or []
        if isinstance(a, Mapping)
        and isinstance(a.get("key"), Mapping)
        and (a["key"].get("kms") or a["key"].get("data"))
    ]
    globs = [str(i.get("glob") or "") for i in spec.get("images") or [] if isinstance(i, Mapping)]
    return bool(keys) and any(
        g.endswith("/**") and in_zone_registry(g[: -len("**")] + "x", ctx) for g in globs
    )


@stack_rule(
    "SOV-SUP-003",
    "signature-admission-declared",
    "high",
    "A production stack that pulls from its zone's registry declares a ClusterImagePolicy for "
    "that registry with a key authority, and labels every workload namespace for admission.",
)
def signature_admission(resources: list[Resource], ctx: Context) -> Findings:
    if not ctx.production:
        return []
    running: dict[str, Resource] = {}
    mirrored = False
    for r in resources:
        if r.type in HELM_TYPES or pod_spec(r) is not None:
            running.setdefault(_namespace_of(r), r)
            mirrored = mirrored or any(in_zone_registry(i, ctx) for _, i in images_of(r))
    if not mirrored:
        return []
    out: Findings = []
    policies = [r for r in resources if r.type in POLICY_TYPES or kind_of(r) == POLICY_KIND]
    if not any(_covers_zone(p, ctx) for p in policies):
        out.append(
            (
                None,
                "no ClusterImagePolicy covers the zone's registry with a key authority: declare "
                "one (components/image_admission.py) whose glob is <registry host>/** and whose "
                "authority is the platform's KMS signing key",
            )
        )
    exempt = {
        _namespace_of(r)
        for r in resources
        if r.type in HELM_TYPES
        and str(r.inputs.get("chart") or "").rstrip("/").rsplit("/", 1)[-1] == CONTROLLER_CHART
    }
    key, value = OPT_IN
    for ns in (r for r in resources if kind_of(r) == "Namespace"):
        meta: Any = ns.inputs.get("metadata") or {}
        name = str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        if name in running and name not in exempt and labels.get(key) != value:
            out.append(
                (
                    ns,
                    f"namespace {name} runs workloads without the admission label {key}={value}: "
                    "add it (components/k8s_baseline.py workload_labels)",
                )
            )
    return out
