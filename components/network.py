"""A regional multi-AZ VPC whose platform traffic stays in the region."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child, policy, service_trust

INTERFACE_ENDPOINTS = (
    "ecr.api",
    "ecr.dkr",
    "sts",
    "kms",
    "logs",
    "ec2",
    "elasticloadbalancing",
    "autoscaling",
)
"""Interface endpoints: image pulls, IRSA token exchange, encryption, logs, node and LB control."""


@dataclass
class NetworkArgs:
    """Inputs of :class:`Network`."""

    name_prefix: str
    """Prefix of the Name tags."""
    region: str
    """Region of the VPC; endpoint service names are built from it."""
    cidr: str
    """VPC IPv4 CIDR (/16 to /20)."""
    az_count: int
    """How many availability zones to span (2 or 3)."""
    single_nat_gateway: bool
    """One NAT gateway for all AZs (dev) instead of one per AZ (production)."""
    logs_key_arn: pulumi.Input[str]
    """KMS key that encrypts the flow-log group."""
    log_retention_days: int
    """Flow-log retention in days."""
    cluster_name: str = ""
    """EKS cluster name, for the subnet discovery tags of the load-balancer controller."""


def subnet_plan(cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Private and public subnet CIDRs for ``az_count`` AZs.

    Three quarters of the VPC go to private subnets (pods take VPC addresses under the VPC CNI),
    the last quarter holds the small public subnets that only NAT gateways and load balancers use.
    """
    vpc = ipaddress.ip_network(cidr)
    quarters = list(vpc.subnets(prefixlen_diff=2))
    private = [str(q) for q in quarters[:az_count]]
    public = [str(s) for s in list(quarters[3].subnets(prefixlen_diff=2))[:az_count]]
    return private, public


class Network(pulumi.ComponentResource):
    """VPC over N AZs: private node subnets, public subnets for NAT/LBs only, flow logs, endpoints.

    The default security group is emptied, every subnet route is explicit, VPC flow logs go to a
    KMS-encrypted CloudWatch log group, and S3 (gateway) plus ECR, STS, KMS, Logs, EC2, ELB and
    Auto Scaling (interface) endpoints keep platform traffic on the AWS network inside the region.
    """

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.az_count not in (2, 3):
            raise ValueError(f"NetworkArgs.az_count: {args.az_count}; allowed 2 or 3")
        net = ipaddress.ip_network(args.cidr)
        if not 16 <= net.prefixlen <= 20:
            raise ValueError(f"NetworkArgs.cidr: {args.cidr}; allowed a /16 to /20 network")
        super().__init__(f"{TYPE_PREFIX}:network:Network", name, None, opts)
        prefix = args.name_prefix

        azs = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{prefix}-vpc"},
            opts=child(self),
        )
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            tags={"Name": f"{prefix}-default-deny"},
            opts=child(self),
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{prefix}-igw"}, opts=child(self)
        )

        private_cidrs, public_cidrs = subnet_plan(args.cidr, args.az_count)
        cluster_tag = (
            {f"kubernetes.io/cluster/{args.cluster_name}": "shared"} if args.cluster_name else {}
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id, tags={"Name": f"{prefix}-public"}, opts=child(self)
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child(self),
        )
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        nats: list[aws.ec2.NatGateway] = []
        private_rts: list[aws.ec2.RouteTable] = []
        for i in range(args.az_count):
            az = azs.names[i]
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=az,
                # Nothing launched here gets a public IP by default; NAT and LBs bring their own.
                map_public_ip_on_launch=False,
                tags={"Name": f"{prefix}-public-{i}", "kubernetes.io/role/elb": "1", **cluster_tag},
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}-rta",
                subnet_id=public.id,
                route_table_id=public_rt.id,
                opts=child(self),
            )
            public_subnets.append(public)
            private = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags={
                    "Name": f"{prefix}-private-{i}",
                    "kubernetes.io/role/internal-elb": "1",
                    **cluster_tag,
                },
                opts=child(self),
            )
            private_subnets.append(private)
            if i == 0 or not args.single_nat_gateway:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{i}-eip",
                    domain="vpc",
                    tags={"Name": f"{prefix}-nat-{i}"},
                    opts=child(self),
                )
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        tags={"Name": f"{prefix}-nat-{i}"},
                        opts=child(self, depends_on=[igw]),
                    )
                )
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt",
                vpc_id=vpc.id,
                tags={"Name": f"{prefix}-private-{i}"},
                opts=child(self),
            )
            aws.ec2.Route(
                f"{name}-private-{i}-default",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nats[-1].id,
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}-rta",
                subnet_id=private.id,
                route_table_id=rt.id,
                opts=child(self),
            )
            private_rts.append(rt)

        self._flow_logs(name, args, vpc)
        self._endpoints(name, args, vpc, private_subnets, private_rts)

        self.vpc_id = vpc.id
        self.private_subnet_ids = [s.id for s in private_subnets]
        self.public_subnet_ids = [s.id for s in public_subnets]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )

    def _flow_logs(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc) -> None:
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/{args.name_prefix}/vpc/flow-logs",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            opts=child(self),
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=service_trust("vpc-flow-logs.amazonaws.com"),
            description="Lets VPC Flow Logs write to its one log group",
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-write",
            role=role.id,
            policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                            "logs:DescribeLogStreams",
                        ],
                        "Resource": [group.arn, group.arn.apply(lambda a: f"{a}:*")],
                    }
                ]
            ),
            opts=child(self),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags={"Name": f"{args.name_prefix}-flow-log"},
            opts=child(self),
        )

    def _endpoints(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        private_subnets: list[aws.ec2.Subnet],
        private_rts: list[aws.ec2.RouteTable],
    ) -> None:
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags={"Name": f"{args.name_prefix}-s3"},
            opts=child(self),
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            description="HTTPS from inside the VPC to the interface endpoints",
            vpc_id=vpc.id,
            ingress=[
                {
                    "description": "HTTPS from the VPC",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [args.cidr],
                }
            ],
            egress=[
                {
                    "description": "Replies stay inside the VPC",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [args.cidr],
                }
            ],
            tags={"Name": f"{args.name_prefix}-endpoints"},
            opts=child(self),
        )
        for service in INTERFACE_ENDPOINTS:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}-endpoint",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private_subnets],
                security_group_ids=[sg.id],
                tags={"Name": f"{args.name_prefix}-{service}"},
                opts=child(self),
            )
