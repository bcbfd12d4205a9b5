"""Strict Kubernetes schema validation of the manifests the program would apply."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any


@functools.cache
def _cache_schemas() -> None:
    """Keep each schema file parsed once per process (by file name and version), and the list of
    schema versions.

    ``kubernetes_validate.validate`` reads and parses the schema and the whole
    ``_definitions.json`` again for every object: most of a stack's validation time, and the
    fleet gate validates hundreds of stacks in one process. The parsed schemas are only read.
    """
    import kubernetes_validate.utils as kvu

    kvu.schema_contents = functools.lru_cache(maxsize=1024)(kvu.schema_contents)
    # ``validate`` lists the package's schema folders and sorts them by version twice per object
    # (``all_versions``): about half of what validating a tenant's objects cost once the schemas
    # were cached. The folders are the installed package's; they do not change in a process.
    # A copy is returned: callers index the list, and must not share one they could change.
    listed = functools.cache(kvu.all_versions)
    kvu.all_versions = lambda: list(listed())


def _ident(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` when the object has no namespace)."""
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}".replace("//", "/")


def _template_probe(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Deployment around a custom resource's pod template, so the template can be validated."""
    template = (obj.get("spec") or {}).get("template")
    if not isinstance(template, dict):
        return None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": (obj.get("metadata") or {}).get("name", "x")},
        "spec": {"selector": obj["spec"].get("selector") or {}, "template": template},
    }


VALID, ERROR, SKIPPED = "valid", "error", "skipped"
_OUTCOMES: dict[tuple[str, str], tuple[str, str]] = {}
"""Verdicts by (object as canonical JSON, version): validation is a pure function of the two.
Tenants of one template share most of their objects byte for byte (the platform's namespaces),
so the fleet gate validates each distinct object once per process."""
_MAX_OUTCOMES = 20_000


def _outcome(obj: dict[str, Any], version: str) -> tuple[str, str]:
    """``(VALID, "")``, ``(ERROR, first line)``, ``(ERROR + " template", first line)`` or
    ``(SKIPPED, "apiVersion/kind")`` for one object, computed once per distinct object."""
    try:
        key: tuple[str, str] | None = (
            json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False),
            version,
        )
    except (TypeError, ValueError):  # not plain JSON: judged, never remembered
        key = None
    known = _OUTCOMES.get(key) if key is not None else None
    if known is not None:
        return known
    import kubernetes_validate as kv

    try:
        kv.validate(obj, f"{version}.0", strict=True)
        outcome = (VALID, "")
    except kv.SchemaNotFoundError:
        # Custom resources (Rollout, PrometheusRule, ...) have no built-in schema; a pod
        # template inside one is still checked, as the template of a Deployment.
        probe = _template_probe(obj)
        if probe is None:
            outcome = (SKIPPED, f"{obj.get('apiVersion')}/{obj.get('kind')}")
        else:
            try:
                kv.validate(probe, f"{version}.0", strict=True)
                outcome = (VALID, "")
            except kv.ValidationError as exc:
                outcome = (ERROR + " template", str(exc).splitlines()[0])
    except kv.ValidationError as exc:
        outcome = (ERROR, str(exc).splitlines()[0])
    if key is not None:
        if len(_OUTCOMES) >= _MAX_OUTCOMES:
            _OUTCOMES.clear()
        _OUTCOMES[key] = outcome
    return outcome


def validate_kubernetes(
    objects: list[dict[str, Any]], version: str
) -> tuple[int, list[tuple[str, str]], list[str]]:
    """Strict schema validation of each object; returns (validated, errors, skipped).

    ``errors`` holds ``(object, first line of the error)``; ``skipped`` the apiVersion/kind of
    custom resources without a built-in schema and without a pod template to check.
    """
    _cache_schemas()
    validated, errors, skipped = 0, [], []
    for obj in objects:
        verdict, detail = _outcome(obj, version)
        if verdict == VALID:
            validated += 1
        elif verdict == SKIPPED:
            skipped.append(detail)
        elif verdict == ERROR:
            errors.append((_ident(obj), detail))
        else:
            errors.append((f"{_ident(obj)} (pod template)", detail))
    return validated, errors, sorted(set(skipped))
