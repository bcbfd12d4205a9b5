"""Run the CrossGuard policies over a synth record without the Pulumi engine (tests use it).

    .venv-policy/bin/python -m policies.crossguard_harness [--config FILE] RECORD.json [...]

Prints JSON: a list of {"policy", "message", "urn"} as the policies reported them (for several
records, an object keyed by path). Each policy gets its config as ``--policy-pack-config`` would
hand it over: from FILE (``build/<stack>/policy-config.json``, policy name -> config) when given,
else built from the record's own ``config``, so the pack judges with the offline gate's context.
Provider inputs are handed over JSON-encoded, as the engine receives them from the SDK.
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
from policies.rules.record import policy_pack_config


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def engine_inputs(r: dict[str, Any]) -> dict[str, Any]:
    """A resource's inputs as an analyzer receives them: a provider's non-string inputs are JSON
    text (the SDK encodes them; the synth recorder decoded them)."""
    if not r["type"].startswith("pulumi:providers:"):
        return r["inputs"]
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in r["inputs"].items()}


def _view(provider: PolicyProviderResource) -> list[Any]:
    return [provider.resource_type, provider.props, provider.urn, provider.name]


Verdicts = dict[tuple[str, str, str], list[tuple[str, str | None]]]
"""Resource policies' reports by (policy, its config, the resource's analyzer view), as JSON."""


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def run(
    record: dict[str, Any],
    config: dict[str, dict[str, Any]] | None = None,
    verdicts: Verdicts | None = None,
) -> list[dict[str, Any]]:
    """Every violation the pack reports for the record's resources, each policy given its entry
    of ``config`` (policy name -> config; default: built from the record's config).

    ``verdicts``, shared between records judged one after another (``main`` with several), holds
    what each resource policy reported for a resource's view: the same view (type, inputs, URN,
    name, provider, and the policy's config: everything the engine hands a resource policy) gets
    the same reports without running the policy again, as it would from the stateless pack. Stack
    policies see every resource and always run. A mutation corpus (the base plus a few resources,
    ninety times over) is then judged in a fraction of the time.
    """
    config = policy_pack_config(record.get("config") or {}) if config is None else config
    by_urn = {r["urn"]: r for r in record["resources"]}
    custom = [r for r in record["resources"] if r["custom"]]

    def provider_of(r: dict[str, Any]) -> PolicyProviderResource | None:
        p = by_urn.get(r.get("provider") or "")
        if not p:
            return None
        return PolicyProviderResource(p["type"], engine_inputs(p), p["urn"], p["name"])

    resources: dict[str, PolicyResource] = {}
    for r in custom:
        resources[r["urn"]] = PolicyResource(
            r["type"],
            # A stack policy sees each resource's outputs: its inputs plus what AWS returned
            # (arn, id ...); the record keeps the identifying ones.
            {
                **engine_inputs(r),
                **(r.get("outputs") or {}),
                **({"id": r["id"]} if r.get("id") else {}),
            },
            r["urn"],
            r["name"],
            _options(),
            provider_of(r),
            None,
            [],
            {},
        )
    for r in custom:
        resources[r["urn"]].dependencies = [
            resources[d] for d in r["dependencies"] if d in resources
        ]
    # Each resource's analyzer view once (the engine sends every policy the same content).
    views = [(r, engine_inputs(r), provider_of(r)) for r in custom]
    view_keys = [
        _key([r["type"], inputs, r["urn"], r["name"], provider and _view(provider)])
        for r, inputs, provider in views
    ]
    found: list[dict[str, Any]] = []
    for policy in policies():

        def report(message: str, urn: str | None = None, _p: Any = policy) -> None:
            found.append({"policy": _p.name, "message": message, "urn": urn})

        policy_config = config.get(policy.name)
        if isinstance(policy, ResourceValidationPolicy):
            config_key = _key(policy_config)
            for (r, inputs, provider), view_key in zip(views, view_keys, strict=True):
                key = (policy.name, config_key, view_key)
                if verdicts is not None and key in verdicts:
                    found.extend(
                        {"policy": policy.name, "message": m, "urn": u} for m, u in verdicts[key]
                    )
                    continue
                start = len(found)
                args = ResourceValidationArgs(
                    r["type"],
                    inputs,
                    r["urn"],
                    r["name"],
                    _options(),
                    provider,
                    policy_config,
                )
                policy.validate(args, report)
                if verdicts is not None:
                    verdicts[key] = [(f["message"], f["urn"]) for f in found[start:]]
        else:
            policy.validate(StackValidationArgs(list(resources.values()), policy_config), report)
    return found


def main(argv: list[str]) -> str:
    """JSON of the violations: for one record a list, for several {path: violations}."""
    config = None
    if argv[:1] == ["--config"]:
        config, argv = json.loads(Path(argv[1]).read_text()), argv[2:]
    verdicts: Verdicts = {}
    results = {p: run(json.loads(Path(p).read_text()), config, verdicts) for p in argv}
    return json.dumps(results[argv[0]] if len(argv) == 1 else results)


if __name__ == "__main__":
    print(main(sys.argv[1:]))  # several paths: one process for many records
