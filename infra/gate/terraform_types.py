"""Pulumi AWS types and inputs as Terraform's: type names, attribute names and block shapes.

pulumi-aws 7 is bridged from the Terraform AWS provider v6, so every AWS resource in a synth
record *is* a Terraform resource with renamed properties. This module undoes the renaming: type
token to Terraform type, camelCase to snake_case, Pulumi's pluralised block names back to
Terraform's singular ones, nested objects to the one-element block lists a plan shows.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

# Type tokens whose Terraform name is not ``aws_<module>_<snake kind>`` (or ``aws_<snake kind>``
# for the ec2 module). Pulumi renamed these when it first bridged the provider.
TYPE_EXCEPTIONS: dict[str, str] = {
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
    "aws:iam/samlProvider:SamlProvider": "aws_iam_saml_provider",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:rds/optionGroup:OptionGroup": "aws_db_option_group",
    "aws:rds/snapshot:Snapshot": "aws_db_snapshot",
    "aws:rds/eventSubscription:EventSubscription": "aws_db_event_subscription",
    "aws:rds/proxy:Proxy": "aws_db_proxy",
    "aws:cfg/rule:Rule": "aws_config_config_rule",
    "aws:cfg/recorder:Recorder": "aws_config_configuration_recorder",
    "aws:cfg/recorderStatus:RecorderStatus": "aws_config_configuration_recorder_status",
    "aws:cfg/deliveryChannel:DeliveryChannel": "aws_config_delivery_channel",
    "aws:cfg/aggregator:Aggregator": "aws_config_configuration_aggregator",
    "aws:cfg/conformancePack:ConformancePack": "aws_config_conformance_pack",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:cloudtrail/trail:Trail": "aws_cloudtrail",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    # pulumi-aws 6 names, kept as aliases in 7: same Terraform resources.
    "aws:s3/bucketV2:BucketV2": "aws_s3_bucket",
    "aws:apigateway/restApi:RestApi": "aws_api_gateway_rest_api",
    "aws:apigateway/stage:Stage": "aws_api_gateway_stage",
    "aws:lb/loadBalancer:LoadBalancer": "aws_lb",
    "aws:alb/loadBalancer:LoadBalancer": "aws_alb",
    "aws:elasticsearch/domain:Domain": "aws_elasticsearch_domain",
    "aws:lambda/function:Function": "aws_lambda_function",
    "aws:ecr/repository:Repository": "aws_ecr_repository",
    "aws:efs/fileSystem:FileSystem": "aws_efs_file_system",
}

# Modules whose resources Terraform names without the module (``aws_vpc``, not ``aws_ec2_vpc``).
_MODULELESS = {"ec2"}
# Module spellings that differ from Terraform's prefix.
_MODULE_PREFIX = {"lambda": "lambda", "apigateway": "api_gateway"}

# S3 lifecycle transitions, in both the bucket's inline rules and the lifecycle configuration.
_S3_TRANSITIONS = ("transitions", "noncurrentVersionTransitions")
_INSTANCE_DEVICES = ("ebsBlockDevices", "ephemeralBlockDevices")
# Pulumi pluralises Terraform's repeatable blocks and list attributes whose names are singular.
# Per Terraform type, the Pulumi camelCase keys (at any depth of that resource) that Terraform
# spells in the singular. Names Terraform already spells in the plural (ingress,
# block_device_mappings, tag_specifications, enabled_cluster_log_types ...) need no entry.
SINGULAR_BLOCKS: dict[str, tuple[str, ...]] = {
    "aws_s3_bucket": ("corsRules", "grants", "lifecycleRules", *_S3_TRANSITIONS),
    "aws_s3_bucket_server_side_encryption_configuration": ("rules",),
    "aws_s3_bucket_lifecycle_configuration": ("rules", *_S3_TRANSITIONS),
    "aws_s3_bucket_logging": ("targetGrants",),
    "aws_s3_bucket_cors_configuration": ("corsRules",),
    "aws_s3_bucket_acl": ("grants",),
    "aws_s3_bucket_replication_configuration": ("rules",),
    "aws_s3_bucket_website_configuration": ("routingRules",),
    "aws_s3_bucket_notification": ("queues", "topics", "lambdaFunctions"),
    "aws_s3_bucket_intelligent_tiering_configuration": ("tierings",),
    "aws_eks_node_group": ("taints",),
    "aws_eks_addon": ("podIdentityAssociations",),
    "aws_iam_openid_connect_provider": ("clientIdLists", "thumbprintLists"),
    "aws_iam_role": ("inlinePolicies",),
    "aws_launch_template": ("licenseSpecifications",),
    "aws_instance": (*_INSTANCE_DEVICES, "networkInterfaces"),
    "aws_launch_configuration": _INSTANCE_DEVICES,
    "aws_route_table": ("routes",),
    "aws_vpc_endpoint": ("subnetConfigurations",),
    "aws_db_parameter_group": ("parameters",),
    "aws_rds_cluster_parameter_group": ("parameters",),
    "aws_db_option_group": ("options",),
    "aws_config_config_rule": ("sourceDetails", "evaluationModes"),
    "aws_cloudwatch_metric_alarm": ("metricQueries",),
    "aws_cloudtrail": (
        "eventSelectors",
        "dataResources",
        "advancedEventSelectors",
        "fieldSelectors",
        "insightSelectors",
    ),
    "aws_lb": ("subnetMappings",),
    "aws_lb_listener": ("defaultActions",),
    "aws_ecr_repository": ("encryptionConfigurations",),
    "aws_ecr_repository_creation_template": ("appliedFors", "encryptionConfigurations"),
    "aws_ecr_registry_scanning_configuration": ("rules", "repositoryFilters"),
    "aws_dynamodb_table": (
        "attributes",
        "globalSecondaryIndexes",
        "localSecondaryIndexes",
        "replicas",
    ),
    "aws_efs_file_system": ("lifecyclePolicies",),
    "aws_elasticache_replication_group": ("logDeliveryConfigurations",),
    "aws_backup_plan": ("rules", "copyActions"),
    "aws_backup_selection": ("selectionTags",),
    "aws_guardduty_detector_feature": ("additionalConfigurations",),
    "aws_cloudfront_distribution": ("origins", "orderedCacheBehaviors", "customErrorResponses"),
}

# Map-typed attributes: their keys are data (tag keys, node labels, env var names), so they are
# neither snake_cased nor wrapped as blocks.
DATA_MAP_KEYS = frozenset(
    {
        "tags",
        "tagsAll",
        "labels",
        "variables",
        "defaultTags",
        "dimensions",
        "parameters",
        "defaultArguments",
        "nonOverridableArguments",
        "stageVariables",
        "requestParameters",
        "requestTemplates",
        "responseParameters",
        "encryptionContext",
    }
)
# Names that are a map on some types and a block on others (Lambda's ``environment`` block holds
# a ``variables`` map; a SageMaker container's ``environment`` *is* the map).
TYPE_DATA_MAP_KEYS: dict[str, frozenset[str]] = {
    "aws_sagemaker_model": frozenset({"environment"}),
    "aws_ecr_repository_creation_template": frozenset({"resourceTags"}),
}

# Attributes left out of ``values`` when empty: checkov's CKV_AWS_37 indexes
# ``enabled_cluster_log_types[0]`` and crashes on ``[]`` instead of failing; leaving it out is
# what Terraform shows for an unset attribute, and the check then fails as it should.
DROP_IF_EMPTY: dict[str, frozenset[str]] = {
    "aws_eks_cluster": frozenset({"enabled_cluster_log_types"}),
}

_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake_case(name: str) -> str:
    """``enableDnsHostnames`` -> ``enable_dns_hostnames``; ``kmsKeyID`` -> ``kms_key_id``."""
    return _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", name)).replace("-", "_").lower()


def singular(name: str) -> str:
    """Terraform's singular of a Pulumi plural: ``corsRules`` -> ``cors_rule``,
    ``inlinePolicies`` -> ``inline_policy``, ``globalSecondaryIndexes`` -> ``..._index``."""
    snake = snake_case(name)
    if snake.endswith("ies"):
        return snake[: -len("ies")] + "y"
    if snake.endswith("xes"):
        return snake[: -len("es")]
    return snake.removesuffix("s")


RENAMES: dict[str, dict[str, str]] = {
    tf_type: {name: singular(name) for name in names} for tf_type, names in SINGULAR_BLOCKS.items()
}
"""Per Terraform type, Pulumi key -> Terraform name where snake_case alone is not enough."""


def terraform_type(token: str) -> str | None:
    """Terraform resource type for a Pulumi AWS type token, or None for anything not AWS.

    ``aws:eks/nodeGroup:NodeGroup`` -> ``aws_eks_node_group``; the ec2 module is dropped
    (``aws:ec2/vpc:Vpc`` -> ``aws_vpc``); ``TYPE_EXCEPTIONS`` holds the irregular names.
    """
    if token in TYPE_EXCEPTIONS:
        return TYPE_EXCEPTIONS[token]
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != "aws" or "/" not in parts[1]:
        return None
    module, _, member = parts[1].partition("/")
    kind = snake_case(member)
    if module == "s3" and kind.endswith("_v2"):
        # pulumi-aws 6's S3 "V2" resources are the plain Terraform ones.
        kind = kind[: -len("_v2")]
    if module in _MODULELESS:
        return f"aws_{kind}"
    prefix = _MODULE_PREFIX.get(module, snake_case(module))
    if kind == prefix or kind.startswith(prefix + "_"):
        # e.g. aws:cloudtrail/cloudtrailX -> no doubled prefix
        return f"aws_{kind}"
    return f"aws_{prefix}_{kind}"


def terraform_key(key: str, tf_type: str) -> str:
    """The Terraform attribute name of Pulumi input ``key`` on a resource of ``tf_type``."""
    return RENAMES.get(tf_type, {}).get(key) or snake_case(key)


def to_terraform_values(inputs: Mapping[str, Any], tf_type: str) -> dict[str, Any]:
    """Pulumi inputs of one resource as Terraform plan ``values``.

    Keys become snake_case (after ``RENAMES`` for ``tf_type``), nested objects become one-element
    block lists as in a plan, data maps (``DATA_MAP_KEYS``) are copied untouched, and scalars
    keep their JSON type.
    """
    data_maps = DATA_MAP_KEYS | TYPE_DATA_MAP_KEYS.get(tf_type, frozenset())
    values = _convert_mapping(inputs, RENAMES.get(tf_type, {}), data_maps)
    for key in DROP_IF_EMPTY.get(tf_type, ()):
        if values.get(key) in ([], None):
            values.pop(key, None)
    return values


def _convert_mapping(
    obj: Mapping[str, Any], renames: Mapping[str, str], data_maps: frozenset[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key.startswith("__"):
            continue
        tf_key = renames.get(key) or snake_case(key)
        if key in data_maps and isinstance(value, Mapping):
            out[tf_key] = copy.deepcopy(dict(value))
        else:
            out[tf_key] = _convert_value(value, renames, data_maps)
    return out


def _convert_value(value: Any, renames: Mapping[str, str], data_maps: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        # A nested object of a Terraform resource is a block: plans show blocks as lists.
        return [_convert_mapping(value, renames, data_maps)]
    if isinstance(value, list):
        return [
            (
                _convert_mapping(v, renames, data_maps)
                if isinstance(v, Mapping)
                else _convert_value(v, renames, data_maps)
            )
            for v in value
        ]
    return value
