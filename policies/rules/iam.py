"""IAM least privilege: no administrator wildcards, no PassRole on everything."""

from __future__ import annotations

from typing import Any

from policies.rules.base import Context, Resource, as_list, json_doc, rule

POLICY_FIELDS = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("inlinePolicies",),
}


def _statements(r: Resource) -> list[dict[str, Any]]:
    docs: list[Any] = []
    for field in POLICY_FIELDS.get(r.type, ()):
        value = r.inputs.get(field)
        if field == "inlinePolicies":
            docs += [json_doc(p.get("policy")) for p in as_list(value) if isinstance(p, dict)]
        else:
            docs.append(json_doc(value))
    out: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict):
            out += [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]
    return out


def _allows(s: dict[str, Any]) -> bool:
    return s.get("Effect") == "Allow" and "NotAction" not in s


def _allowed_on_everything(r: Resource, actions: set[str]) -> bool:
    """True when some Allow statement grants one of ``actions`` (lower case) on Resource '*'."""
    return any(
        _allows(s)
        and any(str(a).lower() in actions for a in as_list(s.get("Action")))
        and "*" in as_list(s.get("Resource"))
        for s in _statements(r)
    )


@rule(
    "SOV-IAM-001",
    "no-admin-wildcard",
    "critical",
    "No IAM policy allows Action '*' on Resource '*'.",
)
def no_admin_wildcard(r: Resource, ctx: Context) -> list[str]:
    if _allowed_on_everything(r, {"*", "*:*"}):
        return [
            "policy allows every action on every resource: list the actions and resources needed"
        ]
    return []


@rule(
    "SOV-IAM-002",
    "no-passrole-wildcard",
    "critical",
    "No IAM policy allows iam:PassRole on Resource '*'.",
)
def no_passrole_wildcard(r: Resource, ctx: Context) -> list[str]:
    if _allowed_on_everything(r, {"iam:passrole", "iam:*", "iam:pass*"}):
        return ["iam:PassRole on '*' lets the holder hand any role to a service: name the roles"]
    return []
