"""Network exposure: private EKS API in production, no open ingress, IMDSv2 only."""

from __future__ import annotations

from policies.rules.base import Context, Resource, rule, stack_rule

OPEN = ("0.0.0.0/0", "::/0")


@rule(
    "SOV-NET-001",
    "eks-private-endpoint",
    "critical",
    "The EKS API endpoint is private in production; elsewhere public only to listed CIDRs.",
    types=("aws:eks/cluster:Cluster",),
)
def eks_private_endpoint(r: Resource, ctx: Context) -> list[str]:
    vpc = r.get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True) is not False  # AWS defaults to public
    cidrs = vpc.get("publicAccessCidrs") or ["0.0.0.0/0"]
    if public and ctx.production:
        return ["the API endpoint is public in production: set endpoint_public_access=false"]
    if public and any(c in OPEN for c in cidrs):
        return ["the public API endpoint is open to the internet: list specific CIDRs"]
    if vpc.get("endpointPrivateAccess") is not True:
        return ["private endpoint access is off: nodes would reach the API over the internet"]
    return []


def _open_ingress(rules: object) -> list[str]:
    out = []
    for item in rules if isinstance(rules, list) else []:
        cidrs = list(item.get("cidrBlocks") or []) + list(item.get("ipv6CidrBlocks") or [])
        if any(c in OPEN for c in cidrs):
            out.append(
                f"ingress {item.get('protocol')} {item.get('fromPort')}-{item.get('toPort')} is "
                "open to the internet: allow only the VPC, a load balancer's group or listed CIDRs"
            )
    return out


@rule(
    "SOV-NET-002",
    "no-open-ingress",
    "critical",
    "No security group admits 0.0.0.0/0 or ::/0.",
)
def no_open_ingress(r: Resource, ctx: Context) -> list[str]:
    if r.type in (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    ):
        return _open_ingress(r.inputs.get("ingress"))
    if (
        r.type == "aws:ec2/securityGroupRule:SecurityGroupRule"
        and r.inputs.get("type") == "ingress"
    ):
        return _open_ingress([r.inputs])
    if r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule" and (
        r.inputs.get("cidrIpv4") in OPEN or r.inputs.get("cidrIpv6") in OPEN
    ):
        return ["ingress rule open to the internet: narrow the CIDR"]
    return []


@rule(
    "SOV-NET-003",
    "imdsv2-required",
    "high",
    "Instances and launch templates require IMDSv2 session tokens.",
    types=("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"),
)
def imdsv2(r: Resource, ctx: Context) -> list[str]:
    if r.get("metadataOptions", "httpTokens") != "required":
        return ["IMDSv1 is allowed: set metadata_options.http_tokens='required'"]
    return []


PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")


@stack_rule(
    "SOV-NET-004",
    "s3-no-public-access",
    "critical",
    "Every bucket blocks public access (all four flags) and no ACL grants public access.",
)
def s3_no_public(resources: list[Resource], ctx: Context) -> list[tuple[Resource | None, str]]:
    blocked = {
        d
        for r in resources
        if r.type == PAB and all(r.inputs.get(f) is True for f in PAB_FLAGS)
        for d in r.dependencies
    }
    out: list[tuple[Resource | None, str]] = [
        (b, "bucket has no public-access block with all four flags: add one")
        for b in resources
        if b.type == "aws:s3/bucket:Bucket" and b.urn not in blocked
    ]
    out += [
        (r, f"ACL {r.inputs.get('acl')!r} makes objects public: remove it (ownership is enforced)")
        for r in resources
        if r.type in ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
        and r.inputs.get("acl") in PUBLIC_ACLS
    ]
    return out
