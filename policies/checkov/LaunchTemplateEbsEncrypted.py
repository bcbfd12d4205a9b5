"""CKV_SOV_5: every EBS volume a launch template defines is encrypted."""

# ruff: noqa: N999  (checkov convention: one check class per file, named after it)

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck


def _one(value: Any) -> Any:
    # checkov wraps every plan value in a one-element list; a block is a list of dicts.
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


class LaunchTemplateEbsEncrypted(BaseResourceCheck):
    """checkov has no launch-template volume check (CKV_AWS_8 covers launch configurations and
    instances, CKV_AWS_3 ``aws_ebs_volume``), yet EKS managed node groups take their volumes from
    launch templates. ``encrypted`` is a string there (``"true"``), as the provider declares it.
    """

    def __init__(self) -> None:
        super().__init__(
            name="Ensure launch template EBS block devices are encrypted",
            id="CKV_SOV_5",
            categories=(CheckCategories.ENCRYPTION,),
            supported_resources=("aws_launch_template",),
            guideline="block_device_mappings { ebs { encrypted = true, kms_key_id = <key> } }",
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        """FAILED if any ebs block is not encrypted; PASSED when none or all are."""
        self.evaluated_keys = ["block_device_mappings"]
        for mapping in conf.get("block_device_mappings") or []:
            mapping = _one(mapping)
            ebs = _one(mapping.get("ebs")) if isinstance(mapping, dict) else None
            if not isinstance(ebs, dict):
                continue
            if ebs.get("snapshot_id") and "encrypted" not in ebs:
                continue  # inherits the snapshot's encryption
            if str(_one(ebs.get("encrypted"))).lower() != "true":
                return CheckResult.FAILED
        return CheckResult.PASSED


check = LaunchTemplateEbsEncrypted()
