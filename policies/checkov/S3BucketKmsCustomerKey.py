"""CKV_SOV_2: S3 default encryption must use a customer-managed KMS key."""

# ruff: noqa: N999  (checkov convention: one check class per file, named after it)

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

AWS_MANAGED_S3_KEYS = ("alias/aws/s3",)


def _one(value: Any) -> Any:
    # checkov wraps every plan value in a one-element list; a block is a list of dicts.
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def is_customer_key(key_id: Any) -> bool:
    """A key ARN, key id or customer alias; not empty and not the AWS-managed S3 key."""
    if not isinstance(key_id, str) or not key_id.strip():
        return False
    return not any(key_id == k or key_id.endswith(":" + k) for k in AWS_MANAGED_S3_KEYS)


class S3BucketKmsCustomerKey(BaseResourceCheck):
    """Data residency needs keys whose policy and region the platform owns.

    SSE-S3 (AES256) and the AWS-managed ``aws/s3`` key cannot be restricted by key policy, cannot
    be disabled to crypto-shred a bucket, and do not show who decrypted what in CloudTrail.
    """

    def __init__(self) -> None:
        super().__init__(
            name="Ensure S3 default encryption uses aws:kms with a customer-managed key",
            id="CKV_SOV_2",
            categories=(CheckCategories.ENCRYPTION,),
            supported_resources=("aws_s3_bucket_server_side_encryption_configuration",),
            guideline="Set sse_algorithm aws:kms and kms_master_key_id to the platform key ARN.",
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        """FAILED unless every rule is aws:kms (or aws:kms:dsse) with a customer key."""
        self.evaluated_keys = ["rule/[0]/apply_server_side_encryption_by_default"]
        rules = conf.get("rule") or []
        if not rules:
            return CheckResult.FAILED
        for rule in rules:
            rule = _one(rule)
            default = (
                _one(rule.get("apply_server_side_encryption_by_default"))
                if isinstance(rule, dict)
                else None
            )
            if not isinstance(default, dict):
                return CheckResult.FAILED
            if _one(default.get("sse_algorithm")) not in ("aws:kms", "aws:kms:dsse"):
                return CheckResult.FAILED
            if not is_customer_key(_one(default.get("kms_master_key_id"))):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = S3BucketKmsCustomerKey()
