"""A regional multi-AZ VPC whose platform traffic stays in the region."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._aws import (
    TYPE_PREFIX,
    child,
    policy,
    region_of,
    service_role,
    vpc_only_security_group,
)
from policies.egress import INTERFACE_ENDPOINTS


@dataclass
class NetworkArgs:
    """Inputs of :class:`Network`."""

    name_prefix: str
    """Prefix of the Name tags."""
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
    Auto Scaling (interface) endpoints keep platform traffic on the AWS network inside the region
    (the AWS provider's, which the endpoint service names are built from).
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
        public_rt = self._route_table(f"{name}-public", f"{prefix}-public", vpc, gateway_id=igw.id)
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        private_rts: list[aws.ec2.RouteTable] = []
        nat: aws.ec2.NatGateway | None = None
        for i in range(args.az_count):
            az = azs.names[i]
            public = self._subnet(name, args, vpc, "public", i, az, public_cidrs[i])
            self._associate(f"{name}-public-{i}-rta", public, public_rt)
            public_subnets.append(public)
            private = self._subnet(name, args, vpc, "private", i, az, private_cidrs[i])
            private_subnets.append(private)
            if nat is None or not args.single_nat_gateway:
                nat = self._nat_gateway(name, prefix, i, public, igw)
            private_rts.append(self._private_routes(name, prefix, i, vpc, private, nat))

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

    def _subnet(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        tier: str,
        i: int,
        az: pulumi.Input[str],
        cidr: str,
    ) -> aws.ec2.Subnet:
        """The ``public`` or ``private`` subnet of AZ ``i``, tagged for load-balancer discovery."""
        cluster_tag = (
            {f"kubernetes.io/cluster/{args.cluster_name}": "shared"} if args.cluster_name else {}
        )
        lb_role = (
            "kubernetes.io/role/elb" if tier == "public" else "kubernetes.io/role/internal-elb"
        )
        return aws.ec2.Subnet(
            f"{name}-{tier}-{i}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=az,
            # Nothing launched here gets a public IP by default; NAT and LBs bring their own.
            map_public_ip_on_launch=False,
            tags={"Name": f"{args.name_prefix}-{tier}-{i}", lb_role: "1", **cluster_tag},
            opts=child(self),
        )

    def _associate(
        self, resource_name: str, subnet: aws.ec2.Subnet, table: aws.ec2.RouteTable
    ) -> None:
        aws.ec2.RouteTableAssociation(
            resource_name, subnet_id=subnet.id, route_table_id=table.id, opts=child(self)
        )

    def _nat_gateway(
        self,
        name: str,
        prefix: str,
        i: int,
        public: aws.ec2.Subnet,
        igw: aws.ec2.InternetGateway,
    ) -> aws.ec2.NatGateway:
        eip = aws.ec2.Eip(
            f"{name}-nat-{i}-eip",
            domain="vpc",
            tags={"Name": f"{prefix}-nat-{i}"},
            opts=child(self),
        )
        return aws.ec2.NatGateway(
            f"{name}-nat-{i}",
            allocation_id=eip.id,
            subnet_id=public.id,
            tags={"Name": f"{prefix}-nat-{i}"},
            opts=child(self, depends_on=[igw]),
        )

    def _private_routes(
        self,
        name: str,
        prefix: str,
        i: int,
        vpc: aws.ec2.Vpc,
        private: aws.ec2.Subnet,
        nat: aws.ec2.NatGateway,
    ) -> aws.ec2.RouteTable:
        """AZ ``i``'s private route table: everything leaves through ``nat``."""
        rt = self._route_table(
            f"{name}-private-{i}", f"{prefix}-private-{i}", vpc, nat_gateway_id=nat.id
        )
        self._associate(f"{name}-private-{i}-rta", private, rt)
        return rt

    def _route_table(
        self,
        role: str,
        tag: str,
        vpc: aws.ec2.Vpc,
        **default_route: pulumi.Input[str],
    ) -> aws.ec2.RouteTable:
        """A route table ``<role>-rt`` whose default route ``<role>-default`` leaves through
        ``default_route`` (``gateway_id`` or ``nat_gateway_id``)."""
        rt = aws.ec2.RouteTable(f"{role}-rt", vpc_id=vpc.id, tags={"Name": tag}, opts=child(self))
        aws.ec2.Route(
            f"{role}-default",
            route_table_id=rt.id,
            destination_cidr_block="0.0.0.0/0",
            opts=child(self),
            **default_route,
        )
        return rt

    def _flow_logs(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc) -> None:
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/{args.name_prefix}/vpc/flow-logs",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            opts=child(self),
        )
        role, _ = service_role(
            f"{name}-flow-logs-role",
            service="vpc-flow-logs.amazonaws.com",
            description="Lets VPC Flow Logs write to its one log group",
            inline={
                f"{name}-flow-logs-write": policy(
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
                )
            },
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
        region = region_of(self)
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=pulumi.Output.concat("com.amazonaws.", region, ".s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags={"Name": f"{args.name_prefix}-s3"},
            opts=child(self),
        )
        sg = vpc_only_security_group(
            f"{name}-endpoints-sg",
            description="HTTPS from inside the VPC to the interface endpoints",
            vpc_id=vpc.id,
            vpc_cidr=args.cidr,
            port=443,
            ingress_description="HTTPS from the VPC",
            egress=("Replies stay inside the VPC", 443, 443),
            tags={"Name": f"{args.name_prefix}-endpoints"},
            opts=child(self),
        )
        for service in INTERFACE_ENDPOINTS:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}-endpoint",
                vpc_id=vpc.id,
                service_name=pulumi.Output.concat("com.amazonaws.", region, f".{service}"),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private_subnets],
                security_group_ids=[sg.id],
                tags={"Name": f"{args.name_prefix}-{service}"},
                opts=child(self),
            )
