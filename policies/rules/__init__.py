"""The policy rule set: pure functions over a resource's type token and inputs.

The same functions back the CrossGuard pack (``policies/__main__.py``, run by ``pulumi preview
--policy-pack policies``) and the offline gate (``sovml check``), so a rule is written once. This
package imports nothing but the standard library: it must load in the pack's own virtualenv.

A resource rule is ``check(resource, ctx) -> list[str]`` (messages), where ``resource`` is a
:class:`Resource` (type token, name, inputs, provider inputs) and ``ctx`` a :class:`Context`
(residency zone, its regions, environment). A stack rule sees every resource at once.
"""

from __future__ import annotations

from policies.rules import (  # noqa: F401  (importing registers the rules)
    admission,
    audit,
    egress,
    encryption,
    gateway,
    gpu,
    helm_charts,
    iam,
    isolation,
    kubernetes,
    logs,
    mesh,
    network,
    providers,
    residency,
    supply_chain,
    tagging,
)
from policies.rules.base import (
    RULES,
    Context,
    Resource,
    Rule,
    StackRule,
    Violation,
    evaluate,
)

__all__ = ["RULES", "Context", "Resource", "Rule", "StackRule", "Violation", "evaluate"]
