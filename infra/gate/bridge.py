"""Turn a synth record (``build/<stack>/resources.json``) into what checkov can scan.

checkov has no Pulumi front end, but it reads ``terraform show -json`` plans and Kubernetes YAML.
pulumi-aws 7 is bridged from the Terraform AWS provider v6, so every AWS resource in the record
*is* a Terraform resource with renamed properties: ``to_tfplan`` undoes the renaming (type token
to Terraform type, camelCase to snake_case, Pulumi's pluralised block names back to Terraform's
singular ones) and rebuilds the cross-resource references from ``propertyDependencies`` so that
checkov's graph checks (bucket and its public access block, VPC and its flow log ...) can link
resources. Kubernetes objects are already in their native shape; ``kubernetes_objects`` only
strips what Pulumi adds. Everything here is a pure function of the record except the ``write_*``
helpers.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TERRAFORM_VERSION = "1.9.8"
PLAN_FORMAT_VERSION = "1.2"
AWS_PROVIDER_NAME = "registry.terraform.io/hashicorp/aws"

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

# Pulumi pluralises Terraform's repeatable blocks and list attributes whose names are singular.
# Per Terraform type, Pulumi camelCase key (at any depth of that resource) -> Terraform name.
# Names Terraform already spells in the plural (ingress, block_device_mappings,
# tag_specifications, enabled_cluster_log_types ...) need no entry: snake_case is enough.
RENAMES: dict[str, dict[str, str]] = {
    "aws_s3_bucket": {
        "corsRules": "cors_rule",
        "grants": "grant",
        "lifecycleRules": "lifecycle_rule",
        "transitions": "transition",
        "noncurrentVersionTransitions": "noncurrent_version_transition",
    },
    "aws_s3_bucket_server_side_encryption_configuration": {"rules": "rule"},
    "aws_s3_bucket_lifecycle_configuration": {
        "rules": "rule",
        "transitions": "transition",
        "noncurrentVersionTransitions": "noncurrent_version_transition",
    },
    "aws_s3_bucket_logging": {"targetGrants": "target_grant"},
    "aws_s3_bucket_cors_configuration": {"corsRules": "cors_rule"},
    "aws_s3_bucket_acl": {"grants": "grant"},
    "aws_s3_bucket_replication_configuration": {"rules": "rule"},
    "aws_s3_bucket_website_configuration": {"routingRules": "routing_rule"},
    "aws_s3_bucket_notification": {
        "queues": "queue",
        "topics": "topic",
        "lambdaFunctions": "lambda_function",
    },
    "aws_s3_bucket_intelligent_tiering_configuration": {"tierings": "tiering"},
    "aws_eks_node_group": {"taints": "taint"},
    "aws_eks_addon": {"podIdentityAssociations": "pod_identity_association"},
    "aws_iam_openid_connect_provider": {
        "clientIdLists": "client_id_list",
        "thumbprintLists": "thumbprint_list",
    },
    "aws_iam_role": {"inlinePolicies": "inline_policy"},
    "aws_launch_template": {"licenseSpecifications": "license_specification"},
    "aws_instance": {
        "ebsBlockDevices": "ebs_block_device",
        "ephemeralBlockDevices": "ephemeral_block_device",
        "networkInterfaces": "network_interface",
    },
    "aws_launch_configuration": {
        "ebsBlockDevices": "ebs_block_device",
        "ephemeralBlockDevices": "ephemeral_block_device",
    },
    "aws_route_table": {"routes": "route"},
    "aws_vpc_endpoint": {"subnetConfigurations": "subnet_configuration"},
    "aws_db_parameter_group": {"parameters": "parameter"},
    "aws_rds_cluster_parameter_group": {"parameters": "parameter"},
    "aws_db_option_group": {"options": "option", "optionSettings": "option_settings"},
    "aws_config_config_rule": {
        "sourceDetails": "source_detail",
        "evaluationModes": "evaluation_mode",
    },
    "aws_cloudwatch_metric_alarm": {"metricQueries": "metric_query"},
    "aws_cloudtrail": {
        "eventSelectors": "event_selector",
        "dataResources": "data_resource",
        "advancedEventSelectors": "advanced_event_selector",
        "fieldSelectors": "field_selector",
        "insightSelectors": "insight_selector",
    },
    "aws_lb": {"subnetMappings": "subnet_mapping"},
    "aws_lb_listener": {"defaultActions": "default_action"},
    "aws_ecr_repository": {"encryptionConfigurations": "encryption_configuration"},
    "aws_dynamodb_table": {
        "attributes": "attribute",
        "globalSecondaryIndexes": "global_secondary_index",
        "localSecondaryIndexes": "local_secondary_index",
        "replicas": "replica",
    },
    "aws_efs_file_system": {"lifecyclePolicies": "lifecycle_policy"},
    "aws_elasticache_replication_group": {
        "logDeliveryConfigurations": "log_delivery_configuration"
    },
    "aws_backup_plan": {"rules": "rule", "copyActions": "copy_action"},
    "aws_backup_selection": {"selectionTags": "selection_tag"},
    "aws_guardduty_detector_feature": {"additionalConfigurations": "additional_configuration"},
    "aws_cloudfront_distribution": {
        "origins": "origin",
        "orderedCacheBehaviors": "ordered_cache_behavior",
        "customErrorResponses": "custom_error_response",
    },
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
}

# Attributes left out of ``values`` when empty: checkov's CKV_AWS_37 indexes
# ``enabled_cluster_log_types[0]`` and crashes on ``[]`` instead of failing; leaving it out is
# what Terraform shows for an unset attribute, and the check then fails as it should.
DROP_IF_EMPTY: dict[str, frozenset[str]] = {
    "aws_eks_cluster": frozenset({"enabled_cluster_log_types"}),
}

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_]")
_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")


def snake_case(name: str) -> str:
    """``enableDnsHostnames`` -> ``enable_dns_hostnames``; ``kmsKeyID`` -> ``kms_key_id``."""
    return _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", name)).replace("-", "_").lower()


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


def _custom_aws(record: Mapping[str, Any]) -> list[tuple[dict[str, Any], str]]:
    out = []
    for res in record["resources"]:
        if not res.get("custom"):
            continue
        tf_type = terraform_type(res["type"])
        if tf_type:
            out.append((res, tf_type))
    return out


def addresses(record: Mapping[str, Any]) -> dict[str, str]:
    """Terraform address (``aws_s3_bucket.storage_features``) of every AWS resource, by URN.

    Names are the Pulumi resource names made into Terraform identifiers; a clash within one type
    gets ``_2``, ``_3`` ... in record order, so addresses are stable between runs.
    """
    taken: dict[str, set[str]] = {}
    out: dict[str, str] = {}
    for res, tf_type in _custom_aws(record):
        base = _SAFE_NAME.sub("_", res["name"]) or "resource"
        if not (base[0].isalpha() or base[0] == "_"):
            base = f"r_{base}"
        used = taken.setdefault(tf_type, set())
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        out[res["urn"]] = f"{tf_type}.{name}"
    return out


def _aws_providers(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["urn"]: r for r in record["resources"] if r["type"] == "pulumi:providers:aws"}


def _default_tags(provider: Mapping[str, Any] | None) -> dict[str, str]:
    if not provider:
        return {}
    tags = (provider.get("inputs", {}).get("defaultTags") or {}).get("tags") or {}
    return dict(tags) if isinstance(tags, Mapping) else {}


@cache
def _pulumi_aws_dir() -> Path | None:
    spec = importlib.util.find_spec("pulumi_aws")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _taggable(token: str) -> bool | None:
    """Whether the Pulumi resource accepts ``tags``; None when pulumi_aws cannot tell.

    Reads the resource's ``<Kind>Args`` class from pulumi_aws's source instead of importing it:
    importing the ec2 module alone takes over a second.
    """
    try:
        _, module_kind, kind = token.split(":")
        module, member = module_kind.split("/")
    except ValueError:
        return None
    root = _pulumi_aws_dir()
    # ``lambda`` is a keyword: the Python package is ``lambda_``.
    source = (root / f"{module}_" if module == "lambda" else root / module) if root else None
    path = source / f"{snake_case(member)}.py" if source else None
    if path is None or not path.is_file():
        return None
    text = path.read_text()
    # Codegen names it ``<Kind>InitArgs`` when a nested type already took ``<Kind>Args``.
    start = max(text.find(f"class {kind}Args:"), text.find(f"class {kind}InitArgs:"))
    if start < 0:
        return None
    end = text.find("\nclass ", start + 1)
    return "def tags(self)" in text[start : end if end > 0 else len(text)]


def _reference_attr(value: Any) -> str:
    # Terraform programs pass ``.arn`` where an ARN is wanted and ``.id`` elsewhere; the value
    # itself says which one the Pulumi program used.
    if isinstance(value, list) and value:
        value = value[0]
    return "arn" if isinstance(value, str) and value.startswith("arn:") else "id"


def _refs(addrs: Iterable[str], attr: str) -> list[str]:
    out: list[str] = []
    for addr in addrs:
        out += [f"{addr}.{attr}", addr]
    return out


def _leaf_matches(value: Any, rid: str) -> bool:
    # The id itself, or an ARN / path ending in it (a key's ARN ends in its key id).
    if isinstance(value, list):
        return any(_leaf_matches(v, rid) for v in value)
    if not (isinstance(value, str) and rid):
        return False
    return value == rid or value.endswith((f"/{rid}", f":{rid}"))


def _nested_expressions(
    tf_value: Any, deps: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], set[str]]:
    """References inside a block: put each dependency on the leaf whose value carries its id.

    ``deps`` is ``(address, id)`` per resource the block's input came from. Returns the block's
    expressions (a list, like the block) and the addresses that found a leaf.
    """
    placed: set[str] = set()

    def walk(block: Mapping[str, Any]) -> dict[str, Any]:
        expr: dict[str, Any] = {}
        for key, val in block.items():
            if isinstance(val, list) and val and all(isinstance(v, Mapping) for v in val):
                sub = [walk(v) for v in val]
                if any(sub):
                    expr[key] = sub
                continue
            hits = [addr for addr, rid in deps if _leaf_matches(val, rid)]
            if hits:
                placed.update(hits)
                expr[key] = {"references": _refs(hits, _reference_attr(val))}
        return expr

    blocks = tf_value if isinstance(tf_value, list) else []
    return [walk(b) if isinstance(b, Mapping) else {} for b in blocks], placed


def _expressions(
    res: Mapping[str, Any],
    values: Mapping[str, Any],
    renames: Mapping[str, str],
    addr_by_urn: Mapping[str, str],
    id_by_urn: Mapping[str, str],
) -> tuple[dict[str, Any], list[str]]:
    """Configuration expressions (references only) and ``depends_on`` for one resource."""
    expressions: dict[str, Any] = {}
    referenced: set[str] = set()
    for prop, urns in (res.get("propertyDependencies") or {}).items():
        dep_addrs = [addr_by_urn[u] for u in urns if u in addr_by_urn]
        if not dep_addrs:
            continue
        key = renames.get(prop) or snake_case(prop)
        value = values.get(key)
        is_block = isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        if is_block:
            deps = [(addr_by_urn[u], id_by_urn.get(u, "")) for u in urns if u in addr_by_urn]
            nested, placed = _nested_expressions(value, deps)
            if any(nested):
                expressions[key] = nested
            referenced.update(placed)
            continue
        expressions[key] = {"references": _refs(dep_addrs, _reference_attr(value))}
        referenced.update(dep_addrs)
    # Dependencies that no attribute carries (explicit ``depends_on`` or untraceable nesting).
    depends_on = sorted(
        {addr_by_urn[u] for u in res.get("dependencies") or [] if u in addr_by_urn} - referenced
    )
    return expressions, depends_on


def to_tfplan(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's AWS resources as a ``terraform show -json`` plan, every one being created.

    Holds ``planned_values`` (values), ``resource_changes`` (create actions) and
    ``configuration`` (provider region, and each input that came from another resource as a
    reference, which is how checkov links a bucket to its encryption, a VPC to its flow log ...).
    """
    addr_by_urn = addresses(record)
    id_by_urn = {r["urn"]: str(r.get("id") or "") for r in record["resources"]}
    providers = _aws_providers(record)
    provider_keys = _provider_keys(providers)

    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    config_resources: list[dict[str, Any]] = []
    for res, tf_type in _custom_aws(record):
        address = addr_by_urn[res["urn"]]
        name = address.split(".", 1)[1]
        renames = RENAMES.get(tf_type, {})
        values = to_terraform_values(res.get("inputs") or {}, tf_type)
        if "tags" in values or _taggable(res["type"]):
            provider = providers.get(res.get("provider") or "")
            values["tags_all"] = {**_default_tags(provider), **(values.get("tags") or {})}
        common = {
            "address": address,
            "mode": "managed",
            "type": tf_type,
            "name": name,
            "provider_name": AWS_PROVIDER_NAME,
        }
        planned.append({**common, "schema_version": 0, "values": values, "sensitive_values": {}})
        changes.append(
            {
                **common,
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": copy.deepcopy(values),
                    "after_unknown": {},
                    "before_sensitive": False,
                    "after_sensitive": {},
                },
            }
        )
        expressions, depends_on = _expressions(res, values, renames, addr_by_urn, id_by_urn)
        conf: dict[str, Any] = {
            "address": address,
            "mode": "managed",
            "type": tf_type,
            "name": name,
            "provider_config_key": provider_keys.get(res.get("provider") or "", "aws"),
            "expressions": expressions,
            "schema_version": 0,
        }
        if depends_on:
            conf["depends_on"] = depends_on
        config_resources.append(conf)

    provider_config = {}
    for urn, prov in providers.items():
        key = provider_keys[urn]
        entry: dict[str, Any] = {"name": "aws", "full_name": AWS_PROVIDER_NAME}
        if "." in key:
            entry["alias"] = key.split(".", 1)[1]
        region = prov.get("inputs", {}).get("region")
        if region:
            entry["expressions"] = {"region": {"constant_value": region}}
        provider_config[key] = entry

    return {
        "format_version": PLAN_FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": provider_config,
            "root_module": {"resources": config_resources},
        },
        # Not Terraform's: lets a report map an address back to the Pulumi resource.
        "pulumi": {"stack": record.get("stack"), "urns": {a: u for u, a in addr_by_urn.items()}},
    }


def _provider_keys(providers: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    # One provider is Terraform's default ``aws``; several become aliases ``aws.<name>``.
    if len(providers) <= 1:
        return {urn: "aws" for urn in providers}
    return {urn: f"aws.{_SAFE_NAME.sub('_', p['name'])}" for urn, p in providers.items()}


def write_tfplan(record: Mapping[str, Any], path: Path) -> Path:
    """Write ``to_tfplan(record)`` as JSON to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_tfplan(record), indent=2) + "\n")
    return path


# --- Kubernetes -----------------------------------------------------------------------------

# Kubernetes type tokens that are not one object to scan: Helm releases render elsewhere, patches
# hold partial objects, lists hold several.
_K8S_SKIP_PREFIXES = ("kubernetes:helm.sh/", "kubernetes:kustomize", "kubernetes:yaml")
# Cluster-scoped kinds get no namespace (kubectl would reject one on some of them).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "RuntimeClass",
        "IngressClass",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "PodSecurityPolicy",
        "CertificateSigningRequest",
        "FlowSchema",
        "PriorityLevelConfiguration",
        "ClusterIssuer",
        "ClusterPolicy",
    }
)
# Keys the Pulumi Kubernetes provider reads but the API server never sees.
_K8S_INTERNAL = frozenset({"status"})


def _is_k8s_object(res: Mapping[str, Any]) -> bool:
    token = res["type"]
    if not res.get("custom") or not token.startswith("kubernetes:"):
        return False
    if token.startswith(_K8S_SKIP_PREFIXES):
        return False
    kind = token.rsplit(":", 1)[-1]
    return not (kind.endswith("Patch") or kind.endswith("List"))


def _api_version(token: str) -> str:
    group_version = token.split(":")[1]
    return group_version.removeprefix("core/")


def kubernetes_objects(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One manifest per Kubernetes object in the record, as ``kubectl apply`` would send it.

    apiVersion and kind come from the inputs (else from the type token); a missing
    ``metadata.name`` is the Pulumi resource name (the prefix the provider auto-names from);
    a namespaced object without a namespace gets the one its provider defaults to, if any.
    Helm releases, patches and lists are skipped.
    """
    providers = {
        r["urn"]: r for r in record["resources"] if r["type"] == "pulumi:providers:kubernetes"
    }
    out: list[dict[str, Any]] = []
    for res in record["resources"]:
        if not _is_k8s_object(res):
            continue
        inputs = res.get("inputs") or {}
        token = res["type"]
        manifest: dict[str, Any] = {
            "apiVersion": inputs.get("apiVersion") or _api_version(token),
            "kind": inputs.get("kind") or token.rsplit(":", 1)[-1],
        }
        metadata = copy.deepcopy(inputs.get("metadata") or {})
        metadata.setdefault("name", res["name"])
        if manifest["kind"] not in CLUSTER_SCOPED and "namespace" not in metadata:
            provider = providers.get(res.get("provider") or "")
            default_ns = (provider or {}).get("inputs", {}).get("namespace")
            if default_ns:
                metadata["namespace"] = default_ns
        manifest["metadata"] = metadata
        for key, value in inputs.items():
            if key in manifest or key in _K8S_INTERNAL or key.startswith("__"):
                continue
            manifest[key] = copy.deepcopy(value)
        out.append(manifest)
    return out


def k8s_file_name(manifest: Mapping[str, Any]) -> str:
    """``<kind>-<namespace>-<name>.yaml`` in lower case; ``cluster`` as namespace if unscoped."""
    meta = manifest.get("metadata") or {}
    if manifest.get("kind") in CLUSTER_SCOPED:
        namespace = "cluster"
    else:
        namespace = meta.get("namespace") or "default"
    stem = f"{manifest.get('kind')}-{namespace}-{meta.get('name')}".lower()
    return re.sub(r"[^a-z0-9._-]", "_", stem) + ".yaml"


def write_k8s(record: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write each Kubernetes object to its own YAML file in ``out_dir`` (stale YAML removed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # The folder is generated: files of objects that no longer exist must not be scanned.
    for old in out_dir.glob("*.yaml"):
        old.unlink()
    written: list[Path] = []
    seen: set[str] = set()
    for manifest in kubernetes_objects(record):
        name = k8s_file_name(manifest)
        stem, n = name[: -len(".yaml")], 1
        while name in seen:
            n += 1
            name = f"{stem}-{n}.yaml"
        seen.add(name)
        path = out_dir / name
        path.write_text(yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False))
        written.append(path)
    return written


def write_all(record: Mapping[str, Any], build_dir: Path) -> tuple[Path, list[Path]]:
    """Write ``tfplan.json`` and ``k8s/*.yaml`` into ``build_dir`` (``build/<stack>``)."""
    plan = write_tfplan(record, build_dir / "tfplan.json")
    return plan, write_k8s(record, build_dir / "k8s")
