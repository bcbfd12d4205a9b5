"""The corpus itself: one list per rule family, gathered in :data:`MUTATIONS`.

Add a mutation for every new way of getting something past the gate that you can think of.
"""

from __future__ import annotations

from tests.mutations import Mutation
from tests.mutations.encryption import ENCRYPTION  # data at rest (SOV-ENC-*), its own module
from tests.mutations.residency import RESIDENCY  # data leaving the zone (SOV-RES-*), its own module
from tests.mutations.zero_trust import ZERO_TRUST  # egress through the mesh (SOV-ZT-*)

IAM_AND_NETWORK: list[Mutation] = [
    # Administrator-equivalent managed policies, attached every way AWS allows.
    Mutation(
        "AdministratorAccess attached to a role",
        "SOV-IAM-007",
        """
        aws.iam.RolePolicyAttachment("m", role="nodes",
            policy_arn="arn:aws:iam::aws:policy/AdministratorAccess", opts=opts)
        """,
    ),
    Mutation(
        "PowerUserAccess in a role's managed_policy_arns",
        "SOV-IAM-007",
        """
        aws.iam.Role("m", assume_role_policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            managed_policy_arns=["arn:aws:iam::aws:policy/PowerUserAccess"], opts=opts)
        """,
    ),
    Mutation(
        "IAMFullAccess attached to a user",
        "SOV-IAM-007",
        """
        aws.iam.UserPolicyAttachment("m", user="ops",
            policy_arn="arn:aws:iam::aws:policy/IAMFullAccess", opts=opts)
        """,
    ),
    Mutation(
        "AmazonS3FullAccess through exclusive group attachments",
        "SOV-IAM-007",
        """
        aws.iam.GroupPolicyAttachmentsExclusive("m", group_name="ops",
            policy_arns=["arn:aws:iam::aws:policy/AmazonS3FullAccess"], opts=opts)
        """,
    ),
    Mutation(
        "AWSOrganizationsFullAccess through iam.PolicyAttachment",
        "SOV-IAM-007",
        """
        aws.iam.PolicyAttachment("m", roles=["nodes"],
            policy_arn="arn:aws:iam::aws:policy/AWSOrganizationsFullAccess", opts=opts)
        """,
    ),
    # Administrator-equivalent documents, in every identity-policy type and form.
    Mutation(
        "Allow with NotAction on * in a role policy",
        "SOV-IAM-005",
        """
        aws.iam.RolePolicy("m", role="nodes", policy=json.dumps({"Statement": [
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}), opts=opts)
        """,
    ),
    Mutation(
        "Allow with NotResource in a managed policy",
        "SOV-IAM-006",
        """
        aws.iam.Policy("m", policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Action": "s3:GetObject", "NotResource": BUCKET_ARN + "/*"}]}), opts=opts)
        """,
    ),
    Mutation(
        "s3:* on * as a single statement, not a list",
        "SOV-IAM-003",
        """
        aws.iam.Policy("m", policy=json.dumps({"Statement":
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}), opts=opts)
        """,
    ),
    Mutation(
        "kms:* on every key of the account",
        "SOV-IAM-003",
        """
        aws.iam.RolePolicy("m", role="nodes", policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Action": ["kms:*"], "Resource": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"}]}),
            opts=opts)
        """,
    ),
    Mutation(
        "iam:* in a role's inline policy",
        "SOV-IAM-003",
        """
        aws.iam.Role("m", assume_role_policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            inline_policies=[{"name": "ops", "policy": json.dumps({"Statement": [
                {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]})}], opts=opts)
        """,
    ),
    Mutation(
        "*:* on every ARN in a user policy",
        "SOV-IAM-001",
        """
        aws.iam.UserPolicy("m", user="ops", policy=json.dumps({"Statement": [
            {"Effect": "Allow", "Action": "*:*", "Resource": "arn:aws:*:*:*:*"}]}), opts=opts)
        """,
    ),
    Mutation(
        "iam:PassRole on every role in a group policy",
        "SOV-IAM-002",
        """
        aws.iam.GroupPolicy("m", group="ops", policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"}]}), opts=opts)
        """,
    ),
    Mutation(
        "iam:Create* and iam:Put* on *",
        "SOV-IAM-004",
        """
        aws.iam.RolePolicy("m", role="nodes", policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Action": ["iam:Create*", "iam:Put*"], "Resource": "*"}]}), opts=opts)
        """,
    ),
    Mutation(
        "sts:AssumeRole on *",
        "SOV-IAM-004",
        """
        aws.iam.RolePolicy("m", role="nodes", policy=json.dumps({"Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}), opts=opts)
        """,
    ),
    # Resource and trust policies open to anyone.
    Mutation(
        "bucket policy for every principal",
        "SOV-IAM-008",
        """
        aws.s3.BucketPolicy("m", bucket=BUCKET, policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Principal": "*", "Action": "s3:GetObject", "Resource": BUCKET_ARN + "/*"}]}),
            opts=opts)
        """,
    ),
    Mutation(
        "key policy for every principal",
        "SOV-IAM-008",
        """
        aws.kms.KeyPolicy("m", key_id=KEY_ARN, policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}]}), opts=opts)
        """,
    ),
    Mutation(
        "queue policy for every principal",
        "SOV-IAM-008",
        """
        aws.sqs.QueuePolicy("m", queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q",
            policy=json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]},
                "Action": "sqs:SendMessage", "Resource": "*"}]}), opts=opts)
        """,
    ),
    Mutation(
        "role that anyone may assume",
        "SOV-IAM-008",
        """
        aws.iam.Role("m", assume_role_policy=json.dumps({"Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}), opts=opts)
        """,
    ),
    # Open ingress, however it is spelled.
    Mutation(
        "open ingress written as two halves",
        "SOV-NET-002",
        """
        aws.ec2.SecurityGroup("m", vpc_id=VPC_ID, ingress=[{"protocol": "tcp", "from_port": 443,
            "to_port": 443, "cidr_blocks": ["0.0.0.0/1", "128.0.0.0/1"]}], opts=opts)
        """,
    ),
    Mutation(
        "open ingress as a rule resource",
        "SOV-NET-002",
        """
        sg = aws.ec2.SecurityGroup("m", vpc_id=VPC_ID, opts=opts)
        aws.ec2.SecurityGroupRule("m", type="ingress", security_group_id=sg.id, protocol="tcp",
            from_port=22, to_port=22, cidr_blocks=["0.0.0.0/0"], opts=opts)
        """,
    ),
    Mutation(
        "IPv6 halves as two ingress rules",
        "SOV-NET-002",
        """
        sg = aws.ec2.SecurityGroup("m", vpc_id=VPC_ID, opts=opts)
        for i, half in enumerate(("::/1", "8000::/1")):
            aws.vpc.SecurityGroupIngressRule(f"m{i}", security_group_id=sg.id, ip_protocol="-1",
                cidr_ipv6=half, opts=opts)
        """,
    ),
    Mutation(
        "a few public /8s on a group outside the program",
        "SOV-NET-002",
        """
        for i, cidr in enumerate(("3.0.0.0/8", "13.0.0.0/8", "52.0.0.0/8")):
            aws.vpc.SecurityGroupIngressRule(f"m{i}", security_group_id="sg-0123456789abcdef0",
                ip_protocol="tcp", from_port=443, to_port=443, cidr_ipv4=cidr, opts=opts)
        """,
    ),
    Mutation(
        "default security group opened",
        "SOV-NET-002",
        """
        aws.ec2.DefaultSecurityGroup("m", vpc_id=VPC_ID, ingress=[{"protocol": "-1",
            "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}], opts=opts)
        """,
    ),
    Mutation(
        "ingress from a prefix list of public ranges",
        "SOV-NET-002",
        """
        pl = aws.ec2.ManagedPrefixList("m", address_family="IPv4", max_entries=2,
            entries=[{"cidr": "0.0.0.0/1"}, {"cidr": "128.0.0.0/1"}], opts=opts)
        sg = aws.ec2.SecurityGroup("m", vpc_id=VPC_ID, opts=opts)
        aws.vpc.SecurityGroupIngressRule("m", security_group_id=sg.id, ip_protocol="-1",
            prefix_list_id=pl.id, opts=opts)
        """,
    ),
    Mutation(
        "ingress from a prefix list the program does not declare",
        "SOV-NET-002",
        """
        aws.ec2.SecurityGroup("m", vpc_id=VPC_ID, ingress=[{"protocol": "tcp", "from_port": 443,
            "to_port": 443, "prefix_list_ids": ["pl-0123456789abcdef0"]}], opts=opts)
        """,
    ),
    # Provider escapes.
    Mutation(
        "provider endpoint override to another region",
        "SOV-RES-003",
        """
        aws.Provider("m", region=REGION, skip_region_validation=False,
            endpoints=[{"s3": "https://s3.eu-west-1.amazonaws.com"}])
        """,
    ),
    Mutation(
        "provider with skip_region_validation",
        "SOV-RES-003",
        """
        aws.Provider("m", region=REGION, skip_region_validation=True)
        """,
    ),
    Mutation(
        "provider behind an HTTPS proxy",
        "SOV-RES-003",
        """
        aws.Provider("m", region=REGION, skip_region_validation=False,
            https_proxy="http://proxy.example.com:3128")
        """,
    ),
    Mutation(
        "assume-role into another account",
        "SOV-IAM-009",
        """
        aws.Provider("m", region=REGION, skip_region_validation=False,
            assume_roles=[{"role_arn": "arn:aws:iam::999999999999:role/deploy"}])
        """,
    ),
    Mutation(
        "web-identity role in another account",
        "SOV-IAM-009",
        """
        aws.Provider("m", region=REGION, skip_region_validation=False,
            assume_role_with_web_identity=aws.ProviderAssumeRoleWithWebIdentityArgs(
                role_arn="arn:aws:iam::999999999999:role/ci",
                web_identity_token_file="/var/run/token"))
        """,
    ),
    Mutation(
        "a second provider in another region",
        "SOV-RES-001",
        """
        other = aws.Provider("m", region="eu-west-1", skip_region_validation=False)
        aws.sqs.Queue("m", kms_master_key_id=KEY_ARN, opts=pulumi.ResourceOptions(provider=other))
        """,
    ),
]
"""Administrator-equivalent grants, open ingress, provider escapes (SOV-IAM-*, SOV-NET-*, ...)."""

MUTATIONS: list[Mutation] = [*RESIDENCY, *ENCRYPTION, *IAM_AND_NETWORK, *ZERO_TRUST]
