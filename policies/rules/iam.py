"""IAM least privilege: no administrator-equivalent grant, however it is written.

Every policy document the program declares is read, whether it arrives as JSON text or as data,
with one statement or a list, ``Action``/``Resource`` as a string or a list:

- identity policies (what a role, user, group or permission set may do): SOV-IAM-001 full
  wildcard, SOV-IAM-003 a whole service, SOV-IAM-002 ``iam:PassRole``, SOV-IAM-004 the other
  privilege-escalation actions, each on every resource;
- every document (identity, resource and trust policies): SOV-IAM-005 ``Allow`` with
  ``NotAction``, SOV-IAM-006 ``Allow`` with ``NotResource``;
- resource and trust policies (who may use a key, bucket, queue, topic, secret, registry, file
  system, vault, domain, stream, table or role): SOV-IAM-008 ``Allow`` to any principal;
- managed policies attached by any means: SOV-IAM-007 the AWS managed admin-equivalents.

A statement is reported once, by its widest grant: ``*`` (001) covers a service wildcard (003),
which covers ``iam:PassRole`` (002) and the escalation actions (004). ``Resource '*'`` in a
resource policy means the resource itself, so the wildcard rules judge identity policies only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from policies.rules.base import Context, Resource, as_list, json_doc, rule

IDENTITY_POLICIES: dict[str, tuple[str, ...]] = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("inlinePolicies[].policy",),
    "aws:ssoadmin/permissionSetInlinePolicy:PermissionSetInlinePolicy": ("inlinePolicy",),
}
"""Types carrying identity policies, and the input path of each document."""

RESOURCE_POLICIES: dict[str, tuple[str, ...]] = {
    "aws:iam/role:Role": ("assumeRolePolicy",),
    "aws:kms/key:Key": ("policy",),
    "aws:kms/keyPolicy:KeyPolicy": ("policy",),
    "aws:kms/replicaKey:ReplicaKey": ("policy",),
    "aws:kms/externalKey:ExternalKey": ("policy",),
    "aws:kms/replicaExternalKey:ReplicaExternalKey": ("policy",),
    "aws:s3/bucket:Bucket": ("policy",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy",),
    "aws:s3/accessPoint:AccessPoint": ("policy",),
    "aws:s3control/bucketPolicy:BucketPolicy": ("policy",),
    "aws:s3control/accessPointPolicy:AccessPointPolicy": ("policy",),
    "aws:sqs/queue:Queue": ("policy",),
    "aws:sqs/queuePolicy:QueuePolicy": ("policy",),
    "aws:sns/topic:Topic": ("policy",),
    "aws:sns/topicPolicy:TopicPolicy": ("policy",),
    "aws:secretsmanager/secret:Secret": ("policy",),
    "aws:secretsmanager/secretPolicy:SecretPolicy": ("policy",),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": ("policy",),
    "aws:ecr/registryPolicy:RegistryPolicy": ("policy",),
    "aws:efs/fileSystemPolicy:FileSystemPolicy": ("policy",),
    "aws:backup/vaultPolicy:VaultPolicy": ("policy",),
    "aws:glacier/vault:Vault": ("accessPolicy",),
    "aws:opensearch/domain:Domain": ("accessPolicies",),
    "aws:opensearch/domainPolicy:DomainPolicy": ("accessPolicies",),
    "aws:elasticsearch/domain:Domain": ("accessPolicies",),
    "aws:elasticsearch/domainPolicy:DomainPolicy": ("accessPolicies",),
    "aws:dynamodb/resourcePolicy:ResourcePolicy": ("policy",),
    "aws:kinesis/resourcePolicy:ResourcePolicy": ("policy",),
    "aws:glue/resourcePolicy:ResourcePolicy": ("policy",),
    "aws:lambda/resourcePolicy:ResourcePolicy": ("policy",),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": ("policyDocument",),
}
"""Types carrying resource-based or trust policies (``Principal`` says who), and where."""

ATTACHMENTS: dict[str, tuple[str, ...]] = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("policyArn",),
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": ("policyArn",),
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": ("policyArn",),
    "aws:iam/policyAttachment:PolicyAttachment": ("policyArn",),
    "aws:iam/role:Role": ("managedPolicyArns",),
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": ("policyArns",),
    "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive": ("policyArns",),
    "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive": ("policyArns",),
    "aws:ssoadmin/managedPolicyAttachment:ManagedPolicyAttachment": ("managedPolicyArn",),
    "aws:ssoadmin/managedPolicyAttachmentsExclusive:ManagedPolicyAttachmentsExclusive": (
        "managedPolicyArns",
    ),
}
"""Every way of attaching a managed policy by ARN, and the input naming the ARN(s)."""

# AWS managed policies that grant administrator or administrator-equivalent access
# (docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_job-functions.html and the AWS managed
# policy reference, docs.aws.amazon.com/aws-managed-policy/latest/reference/): everything, IAM
# itself (a holder of iam:* makes itself administrator), the organization, IAM Identity Center
# (assigns any permission set in any account), and service-wide read-write sets.
ADMIN_MANAGED_POLICIES = frozenset(
    {
        "AdministratorAccess",
        "AdministratorAccess-Amplify",
        "AdministratorAccess-AWSElasticBeanstalk",
        "PowerUserAccess",
        "IAMFullAccess",
        "AWSOrganizationsFullAccess",
        "AWSSSOMasterAccountAdministrator",
        "AWSSSOMemberAccountAdministrator",
        "AWSSSODirectoryAdministrator",
        "SystemAdministrator",
        "SecretsManagerReadWrite",
    }
)
"""Curated by name; see :func:`admin_equivalent` for the naming patterns also refused."""
MANAGED_POLICY = re.compile(r"arn:aws[a-z-]*:iam::aws:policy/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)")

# Actions that let the holder give itself more than it was granted, from Rhino Security Labs'
# "AWS IAM Privilege Escalation - Methods and Mitigation" (rhinosecuritylabs.com/aws/
# aws-privilege-escalation-methods-mitigation/): new policy versions, access keys and console
# passwords for others, attaching or writing policies, joining groups, rewriting trust policies,
# dropping permissions boundaries, and running code or commands as another role. sts:AssumeRole on
# '*' reaches every role whose trust policy trusts the account. iam:PassRole is SOV-IAM-002.
ESCALATION_ACTIONS = (
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AttachUserPolicy",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:PutUserPolicy",
    "iam:PutGroupPolicy",
    "iam:PutRolePolicy",
    "iam:AddUserToGroup",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:PutUserPermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "sts:AssumeRole",
    "lambda:UpdateFunctionCode",
    "glue:UpdateDevEndpoint",
    "ssm:SendCommand",
    "ssm:StartSession",
    "ec2-instance-connect:SendSSHPublicKey",
)

# Condition keys that pin who may call (account, organization, calling resource, network path):
# with one of them, Principal '*' means "these callers", as AWS's service-integration examples use.
PINNING_KEYS = frozenset(
    {
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceowner",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "kms:calleraccount",
    }
)
PINNING_OPERATORS = frozenset(
    {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike"}
)


@dataclass(frozen=True)
class Statement:
    """One statement of one policy document, with where it was found."""

    where: str
    """Input path and position, e.g. ``inlinePolicies[0].policy Statement[1] (Sid 'X')``."""
    body: dict[str, Any]
    """The statement as written."""

    @property
    def allows(self) -> bool:
        """True for ``Effect: Allow`` (any case: AWS would reject anything else)."""
        return str(self.body.get("Effect", "")).lower() == "allow"

    def strings(self, key: str) -> list[str]:
        """A statement element as a list of strings (IAM allows one string for a list)."""
        return [str(v) for v in as_list(self.body.get(key)) if isinstance(v, (str, int))]


def _paths(r: Resource, path: str) -> Iterator[tuple[str, Any]]:
    """(concrete path, value) for an input path such as ``inlinePolicies[].policy``."""
    head, _, rest = path.partition("[].")
    if not rest:
        yield path, r.inputs.get(path)
        return
    for i, item in enumerate(as_list(r.inputs.get(head))):
        if isinstance(item, dict):
            yield f"{head}[{i}].{rest}", item.get(rest)


def statements(r: Resource, fields: dict[str, tuple[str, ...]]) -> list[Statement]:
    """Every statement of the documents ``fields`` names for this resource's type."""
    out = []
    for field in fields.get(r.type, ()):
        for path, value in _paths(r, field):
            doc = json_doc(value)
            if not isinstance(doc, dict):
                continue
            for i, s in enumerate(as_list(doc.get("Statement"))):
                if isinstance(s, dict):
                    sid = f" (Sid {s['Sid']!r})" if s.get("Sid") else ""
                    out.append(Statement(f"{path} Statement[{i}]{sid}", s))
    return out


def _wild_only(text: str, extra: str = "") -> bool:
    """True for a non-empty text made only of IAM wildcards (and ``extra`` separators)."""
    return "*" in text and all(c in "*?" + extra for c in text)


def _glob(pattern: str) -> re.Pattern[str]:
    """An IAM wildcard pattern (``*`` any run, ``?`` one character; case-insensitive)."""
    body = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(body)


def unbounded(resource: str) -> bool:
    """True when a ``Resource`` element covers every resource of a service (or of all).

    ``*``, ``arn:aws:*``, ``arn:aws:kms:*:*:*``, and ``type/*`` or ``type:*`` (``role/*``,
    ``key/*``, ``table/*``, ``log-group:*``): the first part of an ARN's resource names its type,
    except in S3, where it names a bucket (``arn:aws:s3:::b/*`` is one bucket's objects).
    """
    if _wild_only(resource):
        return True
    if not resource.startswith("arn:"):
        return False
    parts = resource.split(":", 5)
    if len(parts) < 6:
        # "arn:*", "arn:aws:*": the last segment's wildcard swallows the rest of the ARN.
        return parts[-1].endswith("*")
    service, rest = parts[2], parts[5]
    if _wild_only(service) or _wild_only(rest, "/:"):
        return True
    kind, _, name = _type_and_name(rest)
    return service != "s3" and bool(kind) and _wild_only(name, "/:")


def _type_and_name(rest: str) -> tuple[str, str, str]:
    m = re.match(r"([^/:]*)([/:])(.*)", rest)
    return (m[1], m[2], m[3]) if m else (rest, "", "")


def _is_full(action: str) -> bool:
    service, sep, name = action.partition(":")
    return _wild_only(service) and (not sep or _wild_only(name))


def _is_service_wide(action: str) -> bool:
    service, sep, name = action.partition(":")
    return bool(sep) and (_wild_only(name) or "*" in service or "?" in service)


def _matches(action: str, targets: tuple[str, ...]) -> list[str]:
    pattern = _glob(action)
    return [t for t in targets if pattern.fullmatch(t.lower())]


def _wildcard_findings(s: Statement) -> Iterator[tuple[str, str]]:
    """(rule id, message) for an identity statement, by its widest grant on every resource."""
    everything = [res for res in s.strings("Resource") if unbounded(res)]
    if not s.allows or not everything:
        return
    on = f"on {everything[0]!r}"
    actions = s.strings("Action")
    full = [a for a in actions if _is_full(a)]
    if full:
        yield "SOV-IAM-001", (
            f"{s.where} allows every action ({full[0]!r}) {on}: list the actions and the "
            "resources (ARNs) the holder needs"
        )
        return
    wide = [a for a in actions if _is_service_wide(a)]
    if wide:
        service = wide[0].partition(":")[0].lower()
        why = (
            ": with it the holder can make itself administrator"
            if service in ("iam", "sts", "organizations")
            else ""
        )
        anywhere = "*" in service or "?" in service
        what = "actions of every service" if anywhere else f"every {service} action"
        yield "SOV-IAM-003", (
            f"{s.where} allows {what} ({wide[0]!r}) {on}{why}: list the actions needed and the "
            "resources (ARNs) they apply to"
        )
        return
    if any(_matches(a, ("iam:PassRole",)) for a in actions):
        yield "SOV-IAM-002", (
            f"{s.where}: iam:PassRole {on} lets the holder hand any role to a service: name the "
            "roles it may pass"
        )
    escalating = sorted({t for a in actions for t in _matches(a, ESCALATION_ACTIONS)})
    if escalating:
        shown = ", ".join(escalating[:4]) + (" ..." if len(escalating) > 4 else "")
        yield "SOV-IAM-004", (
            f"{s.where} grants {shown} {on}, which lets the holder raise its own privileges: "
            "scope these actions to named ARNs, or remove them"
        )


def _identity(r: Resource, rule_id: str) -> list[str]:
    return [
        m
        for s in statements(r, IDENTITY_POLICIES)
        for i, m in _wildcard_findings(s)
        if i == rule_id
    ]


@rule(
    "SOV-IAM-001",
    "no-admin-wildcard",
    "critical",
    "No identity policy allows every action ('*') on every resource.",
    types=tuple(IDENTITY_POLICIES),
)
def no_admin_wildcard(r: Resource, ctx: Context) -> list[str]:
    return _identity(r, "SOV-IAM-001")


@rule(
    "SOV-IAM-002",
    "no-passrole-wildcard",
    "critical",
    "No identity policy allows iam:PassRole on every role.",
    types=tuple(IDENTITY_POLICIES),
)
def no_passrole_wildcard(r: Resource, ctx: Context) -> list[str]:
    return _identity(r, "SOV-IAM-002")


@rule(
    "SOV-IAM-003",
    "no-service-wildcard",
    "critical",
    "No identity policy allows a whole service ('s3:*', 'kms:*', 'iam:*', '*:Get*') on every "
    "resource.",
    types=tuple(IDENTITY_POLICIES),
)
def no_service_wildcard(r: Resource, ctx: Context) -> list[str]:
    return _identity(r, "SOV-IAM-003")


@rule(
    "SOV-IAM-004",
    "no-privilege-escalation",
    "critical",
    "No identity policy grants privilege-escalation actions (new policy versions, access keys, "
    "attaching or writing policies, rewriting trust, sts:AssumeRole ...) on every resource.",
    types=tuple(IDENTITY_POLICIES),
)
def no_privilege_escalation(r: Resource, ctx: Context) -> list[str]:
    return _identity(r, "SOV-IAM-004")


def _every_document(r: Resource) -> list[Statement]:
    return statements(r, IDENTITY_POLICIES) + statements(r, RESOURCE_POLICIES)


ALL_POLICY_TYPES = tuple(sorted({*IDENTITY_POLICIES, *RESOURCE_POLICIES}))


@rule(
    "SOV-IAM-005",
    "no-allow-not-action",
    "critical",
    "No policy statement combines Allow with NotAction (it grants every other action).",
    types=ALL_POLICY_TYPES,
)
def no_allow_not_action(r: Resource, ctx: Context) -> list[str]:
    return [
        f"{s.where} is an Allow with NotAction {s.strings('NotAction')}: it grants every other "
        "action, including those AWS adds later; list the allowed actions under Action instead"
        for s in _every_document(r)
        if s.allows and "NotAction" in s.body
    ]


@rule(
    "SOV-IAM-006",
    "no-allow-not-resource",
    "critical",
    "No policy statement combines Allow with NotResource (it grants on every other resource).",
    types=ALL_POLICY_TYPES,
)
def no_allow_not_resource(r: Resource, ctx: Context) -> list[str]:
    return [
        f"{s.where} is an Allow with NotResource {s.strings('NotResource')}: it grants on every "
        "other resource, including ones created later; list the resources under Resource instead"
        for s in _every_document(r)
        if s.allows and "NotResource" in s.body
    ]


def admin_equivalent(arn: str) -> str | None:
    """The policy's name when ``arn`` is an AWS managed admin-equivalent policy, else None.

    Besides the curated names, AWS's naming says what a managed policy grants: ``*FullAccess``
    is a whole service on every resource (the managed form of ``s3:*`` on ``*``, refused inline by
    SOV-IAM-003), ``*PowerUser*`` everything but a few administrative actions, ``*AdminAccess``
    administration of the service.
    """
    m = MANAGED_POLICY.fullmatch(arn)
    if m is None:
        return None
    name = m[1]
    if name in ADMIN_MANAGED_POLICIES or name.startswith("AdministratorAccess"):
        return name
    if name.endswith(("FullAccess", "AdminAccess")) or "PowerUser" in name:
        return name
    return None


@rule(
    "SOV-IAM-007",
    "no-admin-managed-policy",
    "critical",
    "No AWS managed administrator-equivalent policy (AdministratorAccess, PowerUserAccess, "
    "IAMFullAccess, *FullAccess ...) is attached to a role, user, group or permission set.",
    types=tuple(ATTACHMENTS),
)
def no_admin_managed_policy(r: Resource, ctx: Context) -> list[str]:
    found = []
    for field in ATTACHMENTS.get(r.type, ()):
        value = r.inputs.get(field)
        arns = enumerate(value) if isinstance(value, list) else [(None, value)]
        for i, arn in arns:
            name = admin_equivalent(arn) if isinstance(arn, str) else None
            if name:
                path = field if i is None else f"{field}[{i}]"
                found.append(
                    f"{path} = {arn!r} attaches the AWS managed policy {name}, which is "
                    "administrator-equivalent: attach a customer-managed policy with only the "
                    "actions and resources needed"
                )
    return found


def _public(principal: Any) -> bool:
    """True when a Principal admits anyone: ``*`` or an AWS principal pattern with a wildcard."""
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in str(p) for p in as_list(principal.get("AWS")))
    return False


def _pinned(condition: Any) -> bool:
    """True when the Condition names the caller's account, organization, source or VPC."""
    if not isinstance(condition, dict):
        return False
    for operator, tests in condition.items():
        op = str(operator).lower().removeprefix("foranyvalue:")
        if op not in PINNING_OPERATORS or not isinstance(tests, dict):
            continue  # negated, IfExists and Null tests pin nothing
        for key, values in tests.items():
            specific = [v for v in as_list(values) if isinstance(v, str) and not _wild_only(v)]
            if str(key).lower() in PINNING_KEYS and specific:
                return True
    return False


@rule(
    "SOV-IAM-008",
    "no-public-resource-policy",
    "critical",
    "No resource or trust policy allows any principal ('*', or NotPrincipal) without a condition "
    "pinning the caller's account, organization, source or VPC.",
    types=(*RESOURCE_POLICIES, "aws:lambda/permission:Permission"),
)
def no_public_resource_policy(r: Resource, ctx: Context) -> list[str]:
    fix = (
        "name the principals, or add a condition on aws:PrincipalOrgID, aws:SourceAccount, "
        "aws:SourceArn or aws:SourceVpce"
    )
    if r.type == "aws:lambda/permission:Permission":
        pins = ("sourceAccount", "sourceArn", "principalOrgId")
        if r.inputs.get("principal") == "*" and not any(r.inputs.get(k) for k in pins):
            return [f"principal = '*' lets anyone invoke the function: {fix}"]
        return []
    found = []
    for s in statements(r, RESOURCE_POLICIES):
        if not s.allows or _pinned(s.body.get("Condition")):
            continue
        if "NotPrincipal" in s.body:
            found.append(f"{s.where} is an Allow with NotPrincipal (everyone else): {fix}")
        elif _public(s.body.get("Principal")):
            found.append(
                f"{s.where} allows {s.strings('Action') or s.strings('NotAction')} to any "
                f"principal ({s.body.get('Principal')!r}): {fix}"
            )
    return found
