"""The exact commands that copy the inventory into a stack's zone registry, and sign it there.

``sovml images mirror <stack> --dry-run`` prints them for the operator to run where both the
upstream registries and the zone's ECR registry are reachable (the one step of an air-gapped
install that needs the internet). Images are copied with ``crane copy`` (digests are kept, so
the lock's pins stay true in the mirror) and signed with ``cosign`` through the stack's KMS
signing key, without a transparency-log upload (nothing about the zone's images leaves it).
Charts are pulled with ``helm pull`` and pushed to ECR as OCI artifacts. Nothing here runs a
command: the text is the product, and it is tested exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies.inventory import Entry, Pin, registry_host

CRANE = "crane"
COSIGN = "cosign"
HELM = "helm"


class MirrorError(ValueError):
    """The inventory cannot be mirrored as written (a chart whose mirror name helm cannot push)."""


def signing_key_ref(name_prefix: str) -> str:
    """cosign's reference to the stack's signing key by alias (``AWS_REGION`` selects the region);
    the alias is :func:`components.registry_mirror.signing_alias`'s."""
    return f"awskms:///alias/{name_prefix}-image-signing"


def image_commands(e: Entry, host: str, pin: Pin | None, key: str) -> list[str]:
    """Copy one image (by its pinned digest when the lock has one) and sign it in the mirror.

    ECR tags are immutable, so signing by tag signs the one digest the tag can ever name.
    """
    source = f"{e.upstream}@{pin.digest}" if pin else e.reference
    target = f"{host}/{e.mirror}"
    signed = f"{target}@{pin.digest}" if pin else f"{target}:{e.version}"
    return [
        f"{CRANE} copy {source} {target}:{e.version}",
        f"{COSIGN} sign --yes --tlog-upload=false --key {key} {signed}",
    ]


def chart_commands(e: Entry, host: str) -> list[str]:
    """Pull one chart from its repository and push it to the mirror as an OCI artifact."""
    folder, _, name = e.mirror.rpartition("/")
    if name != e.chart:
        # helm push names the repository after the chart: <folder>/<chart>.
        raise MirrorError(
            f"inventory chart {e.id!r}: mirror {e.mirror!r} must end with the chart name "
            f"{e.chart!r} (helm push names the repository after the chart)"
        )
    into = f"oci://{host}/{folder}" if folder else f"oci://{host}"
    return [
        f"{HELM} pull {e.chart} --repo {e.upstream} --version {e.version}",
        f"{HELM} push {e.chart}-{e.version}.tgz {into}",
    ]


def mirror_commands(
    *,
    stack: str,
    name_prefix: str,
    account_id: str,
    region: str,
    inventory: Mapping[str, Entry],
    pins: Mapping[str, Pin],
) -> list[str]:
    """Every line of the mirror script for one stack, comments included, in inventory order."""
    host = registry_host(account_id, region)
    key = signing_key_ref(name_prefix)
    login = f"aws ecr get-login-password --region {region}"
    lines = [
        f"# sovml images mirror {stack}: copy policies/inventory.toml into {host}",
        "# run where the upstream registries and the zone's registry are both reachable",
        f"export AWS_REGION={region}",
        f"{login} | {CRANE} auth login --username AWS --password-stdin {host}",
        f"{login} | {HELM} registry login --username AWS --password-stdin {host}",
    ]
    for e in inventory.values():
        if e.kind == "image":
            state = f"pinned {pins[e.id].digest}" if e.id in pins else "unpinned: by tag"
            lines.append(f"# image {e.id} ({state})")
            lines += image_commands(e, host, pins.get(e.id), key)
        else:
            lines.append(f"# chart {e.id}")
            lines += chart_commands(e, host)
    return lines
