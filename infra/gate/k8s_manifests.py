"""The synth record's Kubernetes objects as the manifests ``kubectl apply`` would send.

Kubernetes objects are already in their native shape in the record (objects declared as YAML
too: the synth expands ConfigGroup/ConfigFile into one entry per object); ``kubernetes_objects``
only strips what Pulumi adds and fills in what the provider would (name, default namespace).
Cluster-scoped kinds (``CLUSTER_SCOPED``) come from the rules, which need the same list.
``write_k8s`` writes one YAML file per object for checkov's ``kubernetes`` framework.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from policies.rules.kubernetes import CLUSTER_SCOPED

# Kubernetes type tokens that are not one object to scan: Helm releases render elsewhere, patches
# hold partial objects, lists hold several.
_K8S_SKIP_PREFIXES = ("kubernetes:helm.sh/", "kubernetes:kustomize", "kubernetes:yaml")
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


def _manifest(res: Mapping[str, Any], providers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One object's manifest: apiVersion, kind, metadata (name and namespace filled in), body."""
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
    return manifest


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
    return [_manifest(res, providers) for res in record["resources"] if _is_k8s_object(res)]


def k8s_file_name(manifest: Mapping[str, Any]) -> str:
    """``<kind>-<namespace>-<name>.yaml`` in lower case; ``cluster`` as namespace if unscoped."""
    meta = manifest.get("metadata") or {}
    if manifest.get("kind") in CLUSTER_SCOPED:
        namespace = "cluster"
    else:
        namespace = meta.get("namespace") or "default"
    stem = f"{manifest.get('kind')}-{namespace}-{meta.get('name')}".lower()
    return re.sub(r"[^a-z0-9._-]", "_", stem) + ".yaml"


# libyaml's emitter where PyYAML has it: five times faster on a tenant's 226 objects (0.5 s ->
# 0.1 s), the same data when read back (it folds long strings at other places than the Python one).
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_k8s(
    record: Mapping[str, Any], out_dir: Path, objects: list[dict[str, Any]] | None = None
) -> list[Path]:
    """Write each Kubernetes object to its own YAML file in ``out_dir`` (stale YAML removed).

    ``objects``: ``kubernetes_objects(record)`` when the caller has it already."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # The folder is generated: files of objects that no longer exist must not be scanned.
    for old in out_dir.glob("*.yaml"):
        old.unlink()
    written: list[Path] = []
    seen: set[str] = set()
    for manifest in kubernetes_objects(record) if objects is None else objects:
        name = k8s_file_name(manifest)
        stem, n = name[: -len(".yaml")], 1
        while name in seen:
            n += 1
            name = f"{stem}-{n}.yaml"
        seen.add(name)
        path = out_dir / name
        path.write_text(
            yaml.dump(manifest, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)
        )
        written.append(path)
    return written
