"""What the charts really pull: the Helm releases' values out, the rendered manifests back in.

No chart can be rendered here (no chart repository is reachable offline), so the inventory's
chart sub-images rest on the chart sources read at their pinned versions. This module closes
that loop where Helm and the registry are reachable (the images workflow, an operator's
bastion): :func:`write_values` writes each Helm release of a stack's synth record (chart,
version, namespace and the exact values the program sets) beside a ``releases.tsv`` index, the
caller runs ``helm template`` on each, and :func:`foreign_images` judges every container image
of the rendered objects: it must be in the stack's zone registry, be an inventory image there
(its ``mirror`` repository, its version's tag or a digest), and never a tag the lock does not
know where the lock pins a digest. Anything else is a chart default the inventory missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.synth.expand import load_manifests
from policies.inventory import ECR_REFERENCE, INVENTORY, Entry, identify
from policies.rules.helm_charts import HELM_TYPES
from policies.rules.kubernetes import WORKLOAD_KINDS

INDEX = "releases.tsv"
"""The index :func:`write_values` writes: one release per line, tab-separated."""
INDEX_COLUMNS = ("release", "namespace", "chart", "version", "repository", "values")
"""Its columns: ``repository`` is empty for an ``oci://`` chart (the chart names it)."""


@dataclass(frozen=True)
class Release:
    """One Helm release of a synth record, as ``helm template`` needs it."""

    name: str
    """Release name."""
    namespace: str
    """Namespace it installs into."""
    chart: str
    """Chart name, or its full ``oci://`` reference."""
    version: str
    """Pinned chart version."""
    repository: str
    """Chart repository URL (empty for an ``oci://`` chart)."""
    values: Mapping[str, Any]
    """The values the program sets, as recorded."""


def releases(record: Mapping[str, Any]) -> list[Release]:
    """Every Helm release (v3 Release, v4 Chart) of a synth record, in record order."""
    out = []
    for r in record.get("resources") or []:
        if r.get("type") not in HELM_TYPES:
            continue
        inputs = r.get("inputs") or {}
        repo = (inputs.get("repositoryOpts") or {}).get("repo") or ""
        out.append(
            Release(
                name=str(inputs.get("name") or r.get("name")),
                namespace=str(inputs.get("namespace") or "default"),
                chart=str(inputs.get("chart") or ""),
                version=str(inputs.get("version") or ""),
                repository=str(repo),
                values=inputs.get("values") or {},
            )
        )
    return out


def write_values(found: Iterable[Release], out: Path) -> Path:
    """Write ``<release>.values.yaml`` for each release and the ``releases.tsv`` index into
    ``out``; returns the index's path. Names that could escape ``out`` are refused."""
    out.mkdir(parents=True, exist_ok=True)
    rows = ["\t".join(INDEX_COLUMNS)]
    for rel in found:
        if not rel.name or "/" in rel.name or rel.name.startswith("."):
            raise ValueError(f"release name {rel.name!r} cannot name a file")
        path = out / f"{rel.name}.values.yaml"
        path.write_text(yaml.safe_dump(dict(rel.values), sort_keys=True), encoding="utf-8")
        row = (rel.name, rel.namespace, rel.chart, rel.version, rel.repository, path.name)
        if any("\t" in c or "\n" in c for c in row):
            raise ValueError(f"release {rel.name}: a field holds a tab or a newline")
        rows.append("\t".join(row))
    index = out / INDEX
    index.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return index


def _containers(doc: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(container name, image) of a workload object's pod template (any workload kind)."""
    kind = str(doc.get("kind") or "")
    if kind not in WORKLOAD_KINDS:
        return []
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if kind != "Pod":
        spec = ((spec.get("template") or {}).get("spec")) or {}
    out = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            if isinstance(c, Mapping):
                out.append((str(c.get("name") or "?"), str(c.get("image") or "")))
    return out


def rendered_images(text: str, source: str) -> list[tuple[str, str]]:
    """(``Kind namespace/name container``, image) of every container in a rendered manifest.

    Parsing is the synth's bounded loader (size, aliases, depth): ``ManifestError`` names
    ``source`` for anything it refuses. Render with ``helm template --skip-crds``: CRDs run no
    images and would only grow the text.
    """
    out = []
    for doc in load_manifests(text, source):
        if not isinstance(doc, Mapping):
            continue
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
        where = f"{doc.get('kind')} {meta.get('namespace') or '-'}/{meta.get('name') or '?'}"
        out += [(f"{where} {name}", image) for name, image in _containers(doc)]
    return out


def judge(image: str, host: str, pins: Mapping[str, Any], inventory: dict[str, Entry]) -> str:
    """Why ``image`` may not run in a stack whose zone registry is ``host`` ('' when it may)."""
    m = ECR_REFERENCE.fullmatch(image)
    if m is None or not image.startswith(f"{host}/"):
        return f"outside the zone's registry {host}"
    ident = identify(image, inventory)
    if ident is None:
        return "not an inventory image (a chart default the inventory misses: add it)"
    pin = pins.get(ident)
    digest = (m["digest"] or "")[1:]
    if pin is not None and digest != pin.digest:
        return f"the lock pins {ident} to {pin.digest}: refer to it by that digest"
    return ""


def foreign_images(
    found: Iterable[tuple[str, str]],
    host: str,
    pins: Mapping[str, Any],
    inventory: dict[str, Entry] | None = None,
) -> list[tuple[str, str, str]]:
    """(where, image, why) of every rendered image that may not run (see :func:`judge`)."""
    inv = inventory or INVENTORY
    return [(w, i, why) for w, i in found if (why := judge(i, host, pins, inv))]
