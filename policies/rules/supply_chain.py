"""Supply chain: in production every image and chart comes from the zone's registry, by digest.

``SOV-SUP-001`` refuses, in a production stack, any container image (pod specs' ``containers``
and ``initContainers``, and the ``image`` fields of Helm values) or Helm chart (``oci://``
reference or chart repository) that is not in an ECR registry of a region inside the residency
zone, and of an allowed account where the stack pins its accounts. It is never suppressed.
``SOV-SUP-002`` asks, in the same stacks, for every such image to be pinned by digest; the
images whose digest is not yet known are named one by one in policies/suppressions.yaml (the
offline gate suppresses those findings; the CrossGuard pack gets the same ids as
``unpinned_images`` in its config).
``SOV-SUP-004`` keeps what a digest pin relies on: every ECR repository and repository creation
template has IMMUTABLE tags, and every lifecycle policy of one expires untagged images only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policies.inventory import ECR_REFERENCE, identify
from policies.rules.base import Context, Resource, json_doc, rule
from policies.rules.helm_charts import HELM_TYPES
from policies.rules.kubernetes import kind_of, pod_spec

RESOLVE = (
    "run `sovml images lock` where the registry is reachable and commit policies/images.lock.toml"
)
"""How an unpinned image gets its digest."""


def pod_images(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(container name, image) of every container and init container of a pod spec."""
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or []:
            if isinstance(c, Mapping):
                yield str(c.get("name") or "?"), str(c.get("image") or "")


IMAGE_KEYS = ("registry", "repository", "tag", "sha", "digest", "version")
"""The keys charts spell an image block with (policies/inventory.py SHAPES)."""
CHART_DEFAULT = "<chart default>"
"""Stands for the part of an image block that the values leave to the chart: never a zone
registry, so SOV-SUP-001 reports a block that sets a tag but not where it is pulled from."""


def image_block(block: Mapping[str, Any]) -> str:
    """The reference a chart builds from an image block: ``[registry/]repository``, then
    ``:tag`` (which may carry ``@digest``), ``@sha256:<sha>``, ``@digest``, and ``version``
    (``@`` before a ``sha256:`` version, ``:`` before a tag). A missing repository is the
    chart's default, shown as :data:`CHART_DEFAULT`."""
    ref = str(block.get("repository") or CHART_DEFAULT)
    if block.get("registry"):
        ref = f"{block['registry']}/{ref}"
    if block.get("tag"):
        ref += f":{block['tag']}"
    if block.get("sha"):
        ref += f"@sha256:{block['sha']}"
    if block.get("digest"):
        ref += f"@{block['digest']}"
    version = str(block.get("version") or "")
    if version:
        ref += f"@{version}" if version.startswith("sha256:") else f":{version}"
    return ref


def values_images(values: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(values path, image) of every image we set in Helm values: an ``image`` string, an
    ``image`` block of :data:`IMAGE_KEYS`, or such blocks one level inside an ``image``
    mapping (keda's ``image.keda``, ``image.metricsApiServer``...)."""
    if isinstance(values, Mapping):
        for k, v in values.items():
            here = f"{path}.{k}" if path else str(k)
            if k == "image" and isinstance(v, str):
                yield here, v
            elif k == "image" and isinstance(v, Mapping):
                yield from _image_mapping(v, here)
            else:
                yield from values_images(v, here)
    elif isinstance(values, list):
        for i, v in enumerate(values):
            yield from values_images(v, f"{path}[{i}]")


def _image_mapping(block: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    if any(block.get(k) for k in IMAGE_KEYS):
        yield path, image_block(block)
    for k, v in block.items():
        if isinstance(v, Mapping) and any(v.get(key) for key in IMAGE_KEYS):
            yield f"{path}.{k}", image_block(v)


def images_of(r: Resource) -> list[tuple[str, str]]:
    """(where, image) of a workload's pod or a Helm release's values."""
    if r.type in HELM_TYPES:
        return [(f"values {p}", i) for p, i in values_images(r.inputs.get("values"))]
    spec = pod_spec(r)
    return [(f"container {n}", i) for n, i in pod_images(spec)] if spec is not None else []


def in_zone_registry(reference: str, ctx: Context) -> bool:
    """``reference`` is in the ECR registry of a zone region (and an allowed account, if any)."""
    m = ECR_REFERENCE.fullmatch(reference)
    return (
        m is not None
        and m["region"] in ctx.regions
        and (not ctx.allowed_account_ids or m["account"] in ctx.allowed_account_ids)
    )


def _label(r: Resource) -> str:
    if r.type in HELM_TYPES:
        return f"Helm release {r.inputs.get('name') or r.name}"
    return f"{kind_of(r)} {r.name}"


def _registry(ctx: Context) -> str:
    accounts = "|".join(ctx.allowed_account_ids) or "<account>"
    return f"{accounts}.dkr.ecr.{'|'.join(ctx.regions) or '<zone region>'}.amazonaws.com"


@rule(
    "SOV-SUP-001",
    "images-from-zone-registry",
    "critical",
    "In production every image and Helm chart comes from the zone's ECR registry (never a "
    "public registry or chart repository).",
)
def images_from_zone_registry(r: Resource, ctx: Context) -> list[str]:
    if not ctx.production:
        return []
    out = []
    fix = f"mirror it (policies/inventory.toml) and set imageSource: mirror ({_registry(ctx)})"
    for where, image in images_of(r):
        if not in_zone_registry(image, ctx):
            out.append(f"{_label(r)}: {where}: image {image} is outside the zone's registry: {fix}")
    if r.type in HELM_TYPES:
        chart = str(r.inputs.get("chart") or "")
        repo = str((r.inputs.get("repositoryOpts") or {}).get("repo") or "")
        source = repo or chart
        if repo or not chart.startswith("oci://") or not in_zone_registry(chart, ctx):
            out.append(
                f"{_label(r)}: chart {chart} from {source} is outside the zone's registry: {fix}"
            )
    return out


@rule(
    "SOV-SUP-002",
    "images-pinned-by-digest",
    "high",
    "In production every image is pinned by digest (``@sha256:...``), never by a mutable tag.",
)
def images_pinned_by_digest(r: Resource, ctx: Context) -> list[str]:
    if not ctx.production:
        return []
    return [
        f"{_label(r)}: {where}: image {image} is not pinned by digest: {RESOLVE}"
        for where, image in images_of(r)
        if "@sha256:" not in image and not _accepted_unpinned(image, ctx)
    ]


def _accepted_unpinned(image: str, ctx: Context) -> bool:
    # Only an image the inventory knows can be accepted, and only by its exact id; the ids reach
    # the context from the reviewed suppressions (the pack config), never from a stack file.
    found = identify(image) if ctx.unpinned_images else None
    return found is not None and found in ctx.unpinned_images


REGISTRY_TYPES = (
    "aws:ecr/repository:Repository",
    "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
)
"""What decides whether a pushed tag can change or a tagged image can expire."""


def _expiring_tagged(document: Any) -> list[str]:
    """Why a lifecycle policy document may expire a tagged image (empty when it cannot)."""
    doc = json_doc(document)
    rules = doc.get("rules") if isinstance(doc, Mapping) else None
    if not isinstance(rules, list) or not rules:
        return ["its lifecycle policy is not a JSON document with a list of rules"]
    out = []
    for i, r in enumerate(rules):
        selection = r.get("selection") if isinstance(r, Mapping) else None
        status = selection.get("tagStatus") if isinstance(selection, Mapping) else None
        if status != "untagged":
            out.append(
                f"lifecycle rule {i + 1} selects tagStatus {status!r}: only 'untagged' images "
                "may expire (a tagged image is a pinned version a workload runs)"
            )
    return out


@rule(
    "SOV-SUP-004",
    "registry-pins-hold",
    "high",
    "Every ECR repository and repository creation template keeps tags IMMUTABLE, and its "
    "lifecycle policy expires untagged images only: a tag and its digest stay one fact, and "
    "a pinned version never disappears.",
    types=REGISTRY_TYPES,
)
def registry_pins_hold(r: Resource, ctx: Context) -> list[str]:
    out = []
    if r.type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
        mutability = r.inputs.get("imageTagMutability") or "MUTABLE"
        if mutability != "IMMUTABLE":
            out.append(f"imageTagMutability is {mutability}: set IMMUTABLE")
    field = "policy" if r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy" else "lifecyclePolicy"
    if field in r.inputs or r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy":
        out += _expiring_tagged(r.inputs.get(field))
    return out
