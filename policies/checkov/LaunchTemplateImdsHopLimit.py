"""CKV_SOV_3: node launch templates require IMDSv2 with a hop limit of 1."""

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


class LaunchTemplateImdsHopLimit(BaseResourceCheck):
    """Pods must not borrow the node's IAM role.

    With IMDSv2 tokens required and a PUT response hop limit of 1, the token cannot cross the
    extra network hop into a pod's network namespace, so only the node itself (and host-network
    pods) can read the node role's credentials; workloads get their own roles through IRSA.
    checkov's CKV_AWS_79 and CKV_AWS_341 each check one half and pass a missing block.
    """

    def __init__(self) -> None:
        super().__init__(
            name="Ensure launch templates require IMDSv2 tokens with a PUT response hop limit of 1",
            id="CKV_SOV_3",
            categories=(CheckCategories.IAM,),
            supported_resources=("aws_launch_template",),
            guideline="metadata_options: http_tokens required, http_put_response_hop_limit 1",
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        """PASSED only when both settings are explicit (or IMDS is disabled altogether)."""
        self.evaluated_keys = [
            "metadata_options/[0]/http_tokens",
            "metadata_options/[0]/http_put_response_hop_limit",
        ]
        options = _one(conf.get("metadata_options"))
        if not isinstance(options, dict):
            return CheckResult.FAILED
        if _one(options.get("http_endpoint")) == "disabled":
            return CheckResult.PASSED
        hop = _one(options.get("http_put_response_hop_limit"))
        try:
            hop_ok = int(hop) == 1
        except (TypeError, ValueError):
            hop_ok = False
        tokens_ok = _one(options.get("http_tokens")) == "required"
        return CheckResult.PASSED if tokens_ok and hop_ok else CheckResult.FAILED


check = LaunchTemplateImdsHopLimit()
