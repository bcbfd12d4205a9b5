"""Mutations that copy or send data out of the residency zone (SOV-RES-*).

Every destination field family of the classification (``policies/rules/aws_types.json``):
replication, replicas, copies, backups, delivery, subscriptions, log destinations, availability
zones, endpoints, undeclared buckets and ARNs, and a type nobody has classified yet.
"""

from __future__ import annotations

from tests.mutations import Mutation

RESIDENCY: list[Mutation] = [
    Mutation(
        "region override on a resource",
        "SOV-RES-001",
        """
        aws.sqs.Queue("m", region="us-east-1", kms_master_key_id=KEY_ARN, opts=opts)
        """,
    ),
    # Every destination field family of the classification (policies/rules/aws_types.json).
    Mutation(
        "S3 replication to a bucket ARN the program does not declare",
        "SOV-RES-004",
        """
        aws.s3.BucketReplicationConfig("m", bucket=BUCKET, role=ROLE_ARN, rules=[{
            "id": "all", "status": "Enabled",
            "destination": {"bucket": "arn:aws:s3:::partner-archive-eu"}}], opts=opts)
        """,
    ),
    Mutation(
        "S3 replication encrypting replicas with another region's key",
        "SOV-RES-002",
        """
        aws.s3.BucketReplicationConfig("m", bucket=BUCKET, role=ROLE_ARN, rules=[{
            "id": "all", "status": "Enabled", "destination": {"bucket": BUCKET_ARN,
            "encryption_configuration": {
                "replica_kms_key_id": "arn:aws:kms:eu-central-1:123456789012:key/k"}}}], opts=opts)
        """,
    ),
    Mutation(
        "Firehose in the zone delivering to a bucket elsewhere",
        "SOV-RES-004",
        """
        aws.kinesis.FirehoseDeliveryStream("m", destination="extended_s3",
            server_side_encryption={"enabled": True, "key_type": "CUSTOMER_MANAGED_CMK",
                                    "key_arn": KEY_ARN},
            extended_s3_configuration={"role_arn": ROLE_ARN,
                                       "bucket_arn": "arn:aws:s3:::analytics-us-east-1"},
            opts=opts)
        """,
    ),
    Mutation(
        "Firehose delivering to an HTTP endpoint outside AWS",
        "SOV-RES-002",
        """
        aws.kinesis.FirehoseDeliveryStream("m", destination="http_endpoint",
            server_side_encryption={"enabled": True, "key_type": "CUSTOMER_MANAGED_CMK",
                                    "key_arn": KEY_ARN},
            http_endpoint_configuration={"url": "https://intake.partner.example/v1",
                "role_arn": ROLE_ARN, "s3_configuration": {"role_arn": ROLE_ARN,
                                                           "bucket_arn": BUCKET_ARN}},
            opts=opts)
        """,
    ),
    Mutation(
        "Firehose reading a Kinesis stream of another region",
        "SOV-RES-002",
        """
        aws.kinesis.FirehoseDeliveryStream("m", destination="extended_s3",
            server_side_encryption={"enabled": True, "key_type": "CUSTOMER_MANAGED_CMK",
                                    "key_arn": KEY_ARN},
            kinesis_source_configuration={"role_arn": ROLE_ARN,
                "kinesis_stream_arn": "arn:aws:kinesis:eu-west-1:123456789012:stream/s"},
            extended_s3_configuration={"role_arn": ROLE_ARN, "bucket_arn": BUCKET_ARN},
            opts=opts)
        """,
    ),
    Mutation(
        "ECR replication whose destination region is nested",
        "SOV-RES-002",
        """
        aws.ecr.ReplicationConfiguration("m", replication_configuration={"rules": [{
            "destinations": [{"region": "eu-west-1", "registry_id": ACCOUNT}]}]}, opts=opts)
        """,
    ),
    Mutation(
        "Secrets Manager replica in another region",
        "SOV-RES-002",
        """
        aws.secretsmanager.Secret("m", kms_key_id=KEY_ARN, replicas=[{"region": "eu-central-1"}],
            opts=opts)
        """,
    ),
    Mutation(
        "DynamoDB global table replica elsewhere",
        "SOV-RES-002",
        """
        aws.dynamodb.Table("m", hash_key="id", attributes=[{"name": "id", "type": "S"}],
            billing_mode="PAY_PER_REQUEST", stream_enabled=True,
            stream_view_type="NEW_AND_OLD_IMAGES",
            server_side_encryption={"enabled": True, "kms_key_arn": KEY_ARN},
            replicas=[{"region_name": "eu-west-1"}], opts=opts)
        """,
    ),
    Mutation(
        "KMS multi-region replica of a primary key in another region",
        "SOV-RES-002",
        """
        aws.kms.ReplicaKey("m", primary_key_arn=(
            "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"),
            opts=opts)
        """,
    ),
    Mutation(
        "RDS cross-region read replica",
        "SOV-RES-002",
        """
        aws.rds.Instance("m", instance_class="db.t3.medium", storage_encrypted=True,
            kms_key_id=KEY_ARN, skip_final_snapshot=True,
            replicate_source_db="arn:aws:rds:eu-west-1:123456789012:db:primary", opts=opts)
        """,
    ),
    Mutation(
        "Aurora cluster replicating from another region",
        "SOV-RES-002",
        """
        aws.rds.Cluster("m", engine="aurora-postgresql", storage_encrypted=True,
            kms_key_id=KEY_ARN, source_region="us-east-1", skip_final_snapshot=True,
            replication_source_identifier="arn:aws:rds:us-east-1:123456789012:cluster:src",
            opts=opts)
        """,
    ),
    Mutation(
        "EBS snapshot copied across regions",
        "SOV-RES-002",
        """
        aws.ebs.SnapshotCopy("m", source_snapshot_id="snap-0123456789abcdef0",
            source_region="us-west-2", encrypted=True, kms_key_id=KEY_ARN, opts=opts)
        """,
    ),
    Mutation(
        "RDS snapshot copied to another region",
        "SOV-RES-002",
        """
        aws.rds.SnapshotCopy("m", target_db_snapshot_identifier="copy",
            source_db_snapshot_identifier="arn:aws:rds:me-central-1:123456789012:snapshot:s",
            destination_region="eu-west-1", kms_key_id=KEY_ARN, opts=opts)
        """,
    ),
    Mutation(
        "RDS automated backups replicated from another region",
        "SOV-RES-002",
        """
        aws.rds.InstanceAutomatedBackupsReplication("m", kms_key_id=KEY_ARN,
            source_db_instance_arn="arn:aws:rds:us-east-1:123456789012:db:prod", opts=opts)
        """,
    ),
    Mutation(
        "Log subscription to a destination in another region",
        "SOV-RES-002",
        """
        aws.cloudwatch.LogSubscriptionFilter("m", log_group="/sovml-prod-uae/vpc/flow-logs",
            filter_pattern="", opts=opts,
            destination_arn="arn:aws:logs:eu-west-1:123456789012:destination:central")
        """,
    ),
    Mutation(
        "SNS subscription to an HTTPS endpoint outside AWS",
        "SOV-RES-002",
        """
        aws.sns.TopicSubscription("m", protocol="https", opts=opts,
            topic=f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts",
            endpoint="https://hooks.partner.example/alerts")
        """,
    ),
    Mutation(
        "SNS subscription mailing the messages out",
        "SOV-RES-002",
        """
        aws.sns.TopicSubscription("m", protocol="email", endpoint="ops@partner.example",
            topic=f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts", opts=opts)
        """,
    ),
    Mutation(
        "EventBridge target on another region's event bus",
        "SOV-RES-002",
        """
        aws.cloudwatch.EventTarget("m", rule="artifacts", role_arn=ROLE_ARN, opts=opts,
            arn="arn:aws:events:eu-west-1:123456789012:event-bus/central")
        """,
    ),
    Mutation(
        "Lambda failure destination in another region",
        "SOV-RES-002",
        """
        aws.lambda_.FunctionEventInvokeConfig("m", function_name="f", opts=opts,
            destination_config={"on_failure": {
                "destination": "arn:aws:sqs:eu-west-1:123456789012:dlq"}})
        """,
    ),
    Mutation(
        "Backup plan copying to another region's vault",
        "SOV-RES-002",
        """
        aws.backup.Plan("m", rules=[{"rule_name": "daily", "target_vault_name": "v",
            "schedule": "cron(0 1 * * ? *)", "copy_actions": [{
                "destination_vault_arn": "arn:aws:backup:eu-central-1:123456789012:backup-vault:dr"
            }]}], opts=opts)
        """,
    ),
    Mutation(
        "SQS dead-letter queue in another region (inside the JSON redrive policy)",
        "SOV-RES-002",
        """
        aws.sqs.Queue("m", kms_master_key_id=KEY_ARN, redrive_policy=json.dumps({
            "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq",
            "maxReceiveCount": 3}), opts=opts)
        """,
    ),
    Mutation(
        "bucket access logs to a bucket name the program does not declare",
        "SOV-RES-004",
        """
        aws.s3.BucketLogging("m", bucket=BUCKET, target_bucket="central-logs-bucket",
            target_prefix="artifacts/", opts=opts)
        """,
    ),
    Mutation(
        "bucket inventory to a bucket ARN the program does not declare",
        "SOV-RES-004",
        """
        aws.s3.Inventory("m", bucket=BUCKET, included_object_versions="All",
            schedule={"frequency": "Daily"}, opts=opts, destination={"bucket": {
                "format": "CSV", "bucket_arn": "arn:aws:s3:::inventory-elsewhere"}})
        """,
    ),
    Mutation(
        "VPC flow logs to a bucket the program does not declare",
        "SOV-RES-004",
        """
        aws.ec2.FlowLog("m", vpc_id=VPC_ID, traffic_type="ALL", log_destination_type="s3",
            log_destination="arn:aws:s3:::flowlogs-central", opts=opts)
        """,
    ),
    Mutation(
        "Athena query results to an S3 location the program does not declare",
        "SOV-RES-004",
        """
        aws.athena.Workgroup("m", opts=opts, configuration={"result_configuration": {
            "output_location": "s3://query-results-elsewhere/athena/",
            "encryption_configuration": {"encryption_option": "SSE_KMS",
                                         "kms_key_arn": KEY_ARN}}})
        """,
    ),
    Mutation(
        "subnet in another region's availability zone",
        "SOV-RES-002",
        """
        aws.ec2.Subnet("m", vpc_id=VPC_ID, cidr_block="10.40.250.0/24",
            availability_zone="eu-west-1a", opts=opts)
        """,
    ),
    Mutation(
        "DataSync location on an object store outside AWS",
        "SOV-RES-002",
        """
        aws.datasync.LocationObjectStorage("m", bucket_name=BUCKET,
            server_hostname="objects.partner.example", agent_arns=[
                f"arn:aws:datasync:{REGION}:{ACCOUNT}:agent/agent-0123456789abcdef0"],
            opts=opts)
        """,
    ),
    Mutation(
        "a type the classification does not know",
        "SOV-RES-002",
        """
        pulumi.CustomResource("aws:madeup/exfiltrator:Exfiltrator", "m", {"target": "x"},
            opts=opts)
        """,
    ),
]
"""Data copied or sent out of the zone (SOV-RES-*)."""
