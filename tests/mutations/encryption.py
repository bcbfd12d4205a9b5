"""Mutations that store data without a customer-managed KMS key (SOV-ENC-*).

Every data store the issue names, each left on AWS's default (an AWS-owned or AWS-managed key,
or no encryption at all), refused by SOV-ENC-010 or by the rule of its own (SOV-ENC-002 to 008).
"""

from __future__ import annotations

from tests.mutations import Mutation

ENCRYPTION: list[Mutation] = [
    # Every data store without a customer-managed key (SOV-ENC-010 unless a rule of its own).
    Mutation(
        "DynamoDB table on the AWS-owned default key",
        "SOV-ENC-010",
        """
        aws.dynamodb.Table("m", hash_key="id", attributes=[{"name": "id", "type": "S"}],
            billing_mode="PAY_PER_REQUEST", opts=opts)
        """,
    ),
    Mutation(
        "SQS queue with only SQS-managed encryption",
        "SOV-ENC-010",
        """
        aws.sqs.Queue("m", sqs_managed_sse_enabled=True, opts=opts)
        """,
    ),
    Mutation(
        "SQS queue on the AWS-managed aws/sqs key",
        "SOV-ENC-010",
        """
        aws.sqs.Queue("m", kms_master_key_id="alias/aws/sqs", opts=opts)
        """,
    ),
    Mutation(
        "SNS topic without a key",
        "SOV-ENC-010",
        """
        aws.sns.Topic("m", opts=opts)
        """,
    ),
    Mutation(
        "Kinesis stream without KMS",
        "SOV-ENC-010",
        """
        aws.kinesis.Stream("m", shard_count=1, opts=opts)
        """,
    ),
    Mutation(
        "Firehose on an AWS-owned key",
        "SOV-ENC-010",
        """
        aws.kinesis.FirehoseDeliveryStream("m", destination="extended_s3",
            server_side_encryption={"enabled": True, "key_type": "AWS_OWNED_CMK"},
            extended_s3_configuration={"role_arn": ROLE_ARN, "bucket_arn": BUCKET_ARN},
            opts=opts)
        """,
    ),
    Mutation(
        "Secrets Manager secret on aws/secretsmanager",
        "SOV-ENC-010",
        """
        aws.secretsmanager.Secret("m", opts=opts)
        """,
    ),
    Mutation(
        "SSM SecureString on aws/ssm",
        "SOV-ENC-010",
        """
        aws.ssm.Parameter("m", type="SecureString", value="s3cr3t", opts=opts)
        """,
    ),
    Mutation(
        "EFS file system unencrypted",
        "SOV-ENC-010",
        """
        aws.efs.FileSystem("m", opts=opts)
        """,
    ),
    Mutation(
        "FSx for Lustre on aws/fsx",
        "SOV-ENC-010",
        """
        aws.fsx.LustreFileSystem("m", storage_capacity=1200, subnet_ids=SUBNET_ID,
            deployment_type="PERSISTENT_2", per_unit_storage_throughput=125, opts=opts)
        """,
    ),
    Mutation(
        "OpenSearch domain without encryption at rest",
        "SOV-ENC-010",
        """
        aws.opensearch.Domain("m", engine_version="OpenSearch_2.13", opts=opts)
        """,
    ),
    Mutation(
        "MSK cluster on aws/kafka",
        "SOV-ENC-010",
        """
        aws.msk.Cluster("m", kafka_version="3.6.0", number_of_broker_nodes=3, opts=opts,
            broker_node_group_info={"instance_type": "kafka.m5.large",
                "client_subnets": [SUBNET_ID, SUBNET_ID, SUBNET_ID], "security_groups": []})
        """,
    ),
    Mutation(
        "ElastiCache replication group without a customer key",
        "SOV-ENC-007",
        """
        aws.elasticache.ReplicationGroup("m", description="cache", engine="valkey",
            node_type="cache.t4g.small", at_rest_encryption_enabled=True,
            transit_encryption_enabled=True, opts=opts)
        """,
    ),
    Mutation(
        "ECR repository on AES-256",
        "SOV-ENC-010",
        """
        aws.ecr.Repository("m", image_tag_mutability="IMMUTABLE", opts=opts)
        """,
    ),
    Mutation(
        "CloudWatch log group without a key",
        "SOV-ENC-006",
        """
        aws.cloudwatch.LogGroup("m", retention_in_days=365, opts=opts)
        """,
    ),
    Mutation(
        "Backup vault on aws/backup",
        "SOV-ENC-010",
        """
        aws.backup.Vault("m", opts=opts)
        """,
    ),
    Mutation(
        "SageMaker notebook on the default key",
        "SOV-ENC-010",
        """
        aws.sagemaker.NotebookInstance("m", role_arn=ROLE_ARN, instance_type="ml.t3.medium",
            opts=opts)
        """,
    ),
    Mutation(
        "Glue Data Catalog unencrypted",
        "SOV-ENC-010",
        """
        aws.glue.DataCatalogEncryptionSettings("m", opts=opts, data_catalog_encryption_settings={
            "connection_password_encryption": {"return_connection_password_encrypted": False},
            "encryption_at_rest": {"catalog_encryption_mode": "DISABLED"}})
        """,
    ),
    Mutation(
        "Athena workgroup results with SSE-S3",
        "SOV-ENC-010",
        """
        aws.athena.Workgroup("m", opts=opts, configuration={"result_configuration": {
            "output_location": f"s3://{BUCKET}/athena/",
            "encryption_configuration": {"encryption_option": "SSE_S3"}}})
        """,
    ),
    Mutation(
        "EBS volume without a customer key",
        "SOV-ENC-003",
        """
        aws.ebs.Volume("m", availability_zone=f"{REGION}a", size=100, encrypted=True,
            opts=opts)
        """,
    ),
    Mutation(
        "EC2 instance with an unencrypted root volume",
        "SOV-ENC-010",
        """
        aws.ec2.Instance("m", ami="ami-0123456789abcdef0", instance_type="t3.micro",
            subnet_id=SUBNET_ID, opts=opts)
        """,
    ),
    Mutation(
        "RDS instance on aws/rds",
        "SOV-ENC-008",
        """
        aws.rds.Instance("m", instance_class="db.t3.medium", engine="postgres",
            allocated_storage=20, storage_encrypted=True, skip_final_snapshot=True, opts=opts)
        """,
    ),
    Mutation(
        "Aurora cluster without a customer key",
        "SOV-ENC-008",
        """
        aws.rds.Cluster("m", engine="aurora-postgresql", storage_encrypted=True,
            skip_final_snapshot=True, opts=opts)
        """,
    ),
    Mutation(
        "DocumentDB cluster unencrypted",
        "SOV-ENC-010",
        """
        aws.docdb.Cluster("m", master_username="admin", master_password="x" * 16,
            skip_final_snapshot=True, opts=opts)
        """,
    ),
    Mutation(
        "Neptune cluster on the default key",
        "SOV-ENC-010",
        """
        aws.neptune.Cluster("m", storage_encrypted=True, skip_final_snapshot=True, opts=opts)
        """,
    ),
    Mutation(
        "Redshift cluster on aws/redshift",
        "SOV-ENC-010",
        """
        aws.redshift.Cluster("m", cluster_identifier="m", node_type="ra3.xlplus",
            master_username="admin", manage_master_password=True, skip_final_snapshot=True,
            opts=opts)
        """,
    ),
    Mutation(
        "Glacier vault, which cannot take a customer key",
        "SOV-ENC-010",
        """
        aws.glacier.Vault("m", opts=opts)
        """,
    ),
    Mutation(
        "S3 bucket without an encryption configuration",
        "SOV-ENC-002",
        """
        aws.s3.Bucket("m", bucket="sovml-unencrypted-extra", opts=opts)
        """,
    ),
]
"""Data at rest without a customer-managed key (SOV-ENC-*)."""
