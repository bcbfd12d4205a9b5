"""Strict Kubernetes schema validation of the manifests the program would apply."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any


@functools.cache
def _cache_schemas() -> None:
    """Keep each schema file parsed once per process (by file name and version).

    ``kubernetes_validate.validate`` reads and parses the schema and the whole
    ``_definitions.json`` again for every object: most of a stack's validation time, and the
    fleet gate validates hundreds of stacks in one process. The parsed schemas are only read.
    """
    import kubernetes_validate.utils as kvu

    kvu.schema_contents = functools.lru_cache(maxsize=1024)(kvu.schema_contents)


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


def validate_kubernetes(
    objects: list[dict[str, Any]], version: str
) -> tuple[int, list[tuple[str, str]], list[str]]:
    """Strict schema validation of each object; returns (validated, errors, skipped).

    ``errors`` holds ``(object, first line of the error)``; ``skipped`` the apiVersion/kind of
    custom resources without a built-in schema and without a pod template to check.
    """
    import kubernetes_validate as kv

    _cache_schemas()
    validated, errors, skipped = 0, [], []
    for obj in objects:
        ident = _ident(obj)
        try:
            kv.validate(obj, f"{version}.0", strict=True)
            validated += 1
        except kv.SchemaNotFoundError:
            # Custom resources (Rollout, PrometheusRule, ...) have no built-in schema; a pod
            # template inside one is still checked, as the template of a Deployment.
            probe = _template_probe(obj)
            if probe is None:
                skipped.append(f"{obj.get('apiVersion')}/{obj.get('kind')}")
                continue
            try:
                kv.validate(probe, f"{version}.0", strict=True)
                validated += 1
            except kv.ValidationError as exc:
                errors.append((f"{ident} (pod template)", str(exc).splitlines()[0]))
        except kv.ValidationError as exc:
            errors.append((ident, str(exc).splitlines()[0]))
    return validated, errors, sorted(set(skipped))
