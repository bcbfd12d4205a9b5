"""The images of a kustomize overlay's upstream manifests, pulled from the stack's source.

Kubeflow Pipelines and Katib are applied from pinned upstream kustomize bases
(``components/manifests/<overlay>``), whose pods name their images upstream (``ghcr.io/...``,
``gcr.io/...``, ``mysql``). :func:`image_transform` is a Pulumi ``transforms`` option: the
engine calls it for the ``kustomize.v2.Directory`` and every child the kustomize provider
registers (transforms, unlike the older transformations, reach the children of packaged
components), and it rewrites each image to the reference :class:`~policies.inventory.Sources`
gives for it (the zone's mirror, by digest when the lock pins one, in mirror stacks; upstream
otherwise). An image that is not an inventory entry marked for that overlay (``in_overlay``) is
refused, with the entry to add: deny by default, so a new upstream image cannot slip past the
mirror and be refused later by signature admission.

What counts as an image, a closed set: every string under an ``image`` key anywhere in the
object (containers, init and ephemeral containers, pod templates at any depth: Deployment,
StatefulSet, DaemonSet, Job, CronJob, Pod, custom resources), the environment variables of
:data:`IMAGE_ENV` and the arguments following :data:`IMAGE_ARGS`. Images inside opaque
strings (a ConfigMap's files) are the owning component's to parse; Katib's KatibConfig is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from policies.inventory import DIGEST, INVENTORY, Entry, Sources, mirror_path, split_reference

IMAGE_ENV = ("V2_DRIVER_IMAGE", "V2_LAUNCHER_IMAGE")
"""Environment variables holding a whole image reference: the KFP API server's driver and
launcher images, which it writes into every run's pods (KFP's argocompiler reads both)."""
IMAGE_ARGS = ("--executor-image",)
"""Arguments whose value is an image: Argo's workflow controller names the executor of every
run pod this way (``--executor-image X`` or ``--executor-image=X``)."""
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


class KustomizeImageError(ValueError):
    """An overlay's manifest names an image the stack may not pull (message says what to add)."""


def _canonical(reference: str) -> tuple[str, str, str, str]:
    # Docker Hub has three spellings of one image (`mysql`, `library/mysql`,
    # `docker.io/library/mysql`); compare them as one so the shorthand cannot dodge a match.
    registry, repository, tag, digest = split_reference(reference)
    if registry in _DOCKER_HUB:
        registry = "docker.io"
        if "/" not in repository:
            repository = f"library/{repository}"
    return registry, repository, tag, digest


def _refuse(overlay: str, reference: str, why: str) -> KustomizeImageError:
    return KustomizeImageError(f"kustomize overlay {overlay!r}: image {reference!r}: {why}")


def _entry_for(reference: str, overlay: str, inventory: Mapping[str, Entry]) -> Entry:
    registry, repository, tag, digest = _canonical(reference)
    if not tag and not digest:
        raise _refuse(overlay, reference, "neither tag nor digest (a floating `latest`)")
    if digest and not DIGEST.fullmatch(digest):
        raise _refuse(overlay, reference, f"digest {digest!r} is not sha256:<64 hex>")
    same_name = [
        e
        for e in inventory.values()
        if e.kind == "image"
        and _canonical(f"{e.upstream}:{e.version}")[:2] == (registry, repository)
    ]
    fits = [e for e in same_name if not tag or tag == e.version]
    if not fits:
        known = ", ".join(f"{e.id} ({e.version})" for e in same_name)
        add = (
            f"add an inventory entry with upstream = {f'{registry}/{repository}'!r}, "
            f"version = {tag or '<tag>'!r} and in_overlay = [{overlay!r}] "
            "to policies/inventory.toml"
        )
        raise _refuse(
            overlay, reference, f"not in the inventory{f' (only {known})' if known else ''}; {add}"
        )
    in_overlay = [e for e in fits if overlay in e.in_overlay]
    if not in_overlay:
        ids = ", ".join(e.id for e in fits)
        raise _refuse(
            overlay,
            reference,
            f"inventory image {ids} is not marked for this overlay; "
            f"add {overlay!r} to its in_overlay",
        )
    return in_overlay[0]


def source_image(
    reference: str,
    sources: Sources,
    overlay: str,
    inventory: Mapping[str, Entry] | None = None,
) -> str:
    """The reference the stack pulls for upstream ``reference`` of ``overlay``'s manifests.

    Raises :class:`KustomizeImageError` for an image missing from the inventory or not marked
    ``in_overlay``, a tag other than the entry's version, a reference with neither tag nor
    digest, and a digest the stack cannot keep: in a mirror stack a manifest's digest must be
    the one the lock pins (the mirror holds that one); upstream, the reference is kept as is.
    """
    if not isinstance(reference, str) or not reference or reference != reference.strip():
        raise _refuse(overlay, str(reference), "not an image reference")
    if mirror_path(reference) is not None:
        raise _refuse(
            overlay,
            reference,
            "already a registry mirror reference; manifests name upstream images",
        )
    found = _entry_for(reference, overlay, inventory or INVENTORY)
    target = sources.image(found.id)
    digest = _canonical(reference)[3]
    if not digest:
        return target
    if mirror_path(target) is None:
        return reference  # upstream stack: the manifest's own digest is the stricter pull
    pinned = target.partition("@")[2]
    if pinned != digest:
        why = f"the lock pins {pinned}" if pinned else "the lock pins no digest"
        raise _refuse(
            overlay,
            reference,
            f"digest differs from the mirror's ({why} for {found.id!r}); run `sovml images lock`",
        )
    return target


def _rewrite_args(values: list[Any], swap: Callable[[str], str]) -> list[Any]:
    out = list(values)
    for i, value in enumerate(out):
        if not isinstance(value, str):
            continue
        for flag in IMAGE_ARGS:
            if value == flag and i + 1 < len(out):
                out[i + 1] = swap(out[i + 1])
            elif value.startswith(f"{flag}="):
                out[i] = f"{flag}={swap(value.split('=', 1)[1])}"
    return out


def _rewrite_env(env: list[Any], swap: Callable[[str], str], overlay: str) -> list[Any]:
    out = []
    for var in env:
        if isinstance(var, Mapping) and var.get("name") in IMAGE_ENV:
            if "value" not in var:
                # A value from a ConfigMap or Secret is not visible here: refuse, not guess.
                raise _refuse(
                    overlay, str(var.get("name")), "image variable without a literal value"
                )
            var = {**var, "value": swap(var["value"])}
        out.append(var)
    return out


def rewrite_images(
    manifest: Mapping[str, Any],
    sources: Sources,
    overlay: str,
    inventory: Mapping[str, Entry] | None = None,
) -> dict[str, Any]:
    """A copy of ``manifest`` (a Kubernetes object as a dict) with every image swapped for the
    stack's source (see the module's closed set); the input is not changed. Raises
    :class:`KustomizeImageError` on the first image that may not be pulled (see
    :func:`source_image`)."""

    def swap(reference: str) -> str:
        return source_image(reference, sources, overlay, inventory)

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "image" and not isinstance(value, (Mapping, list)):
                    out[key] = swap(value)
                elif key == "env" and isinstance(value, list):
                    out[key] = walk(_rewrite_env(value, swap, overlay))
                elif key in ("args", "command") and isinstance(value, list):
                    out[key] = _rewrite_args(value, swap)
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(manifest)


Extra = Callable[[str, dict[str, Any]], dict[str, Any]]
"""A component's own step after :func:`rewrite_images`: ``(type token, props) -> props``."""


def image_transform(sources: Sources, overlay: str, extra: Extra | None = None) -> Any:
    """The ``transforms`` entry that rewrites the images of a kustomize Directory's children
    (``overlay`` names the inventory's ``in_overlay`` mark); ``extra`` runs after it."""

    def transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        props = rewrite_images(args.props, sources, overlay)
        if extra is not None:
            props = extra(args.type_, props)
        if props == dict(args.props):
            return None
        return pulumi.ResourceTransformResult(props=props, opts=args.opts)

    return transform
