"""Run the CrossGuard policies over a synth record without the Pulumi engine (tests use it).

    .venv-policy/bin/python -m policies.crossguard_harness build/prod-uae/resources.json [...]

Prints JSON: a list of {"policy", "message", "urn"} as the policies reported them (for several
records, an object keyed by path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from policies.crossguard import policies


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def run(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every violation the pack reports for the record's resources."""
    by_urn = {r["urn"]: r for r in record["resources"]}
    custom = [r for r in record["resources"] if r["custom"]]

    def provider_of(r: dict[str, Any]) -> PolicyProviderResource | None:
        p = by_urn.get(r.get("provider") or "")
        return PolicyProviderResource(p["type"], p["inputs"], p["urn"], p["name"]) if p else None

    resources: dict[str, PolicyResource] = {}
    for r in custom:
        resources[r["urn"]] = PolicyResource(
            r["type"], r["inputs"], r["urn"], r["name"], _options(), provider_of(r), None, [], {}
        )
    for r in custom:
        resources[r["urn"]].dependencies = [
            resources[d] for d in r["dependencies"] if d in resources
        ]
    found: list[dict[str, Any]] = []
    for policy in policies():

        def report(message: str, urn: str | None = None, _p: Any = policy) -> None:
            found.append({"policy": _p.name, "message": message, "urn": urn})

        if isinstance(policy, ResourceValidationPolicy):
            for r in custom:
                args = ResourceValidationArgs(
                    r["type"], r["inputs"], r["urn"], r["name"], _options(), provider_of(r)
                )
                policy.validate(args, report)
        else:
            policy.validate(StackValidationArgs(list(resources.values())), report)
    return found


if __name__ == "__main__":
    # One path: its violations; several paths: {path: violations} (one process for many records).
    results = {p: run(json.loads(Path(p).read_text())) for p in sys.argv[1:]}
    print(json.dumps(results[sys.argv[1]] if len(sys.argv) == 2 else results))
