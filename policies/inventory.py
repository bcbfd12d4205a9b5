"""The image and chart inventory, and its digest lock: one leaf module every layer reads.

``policies/inventory.toml`` lists every container image and Helm chart the platform runs;
``policies/images.lock.toml`` records each one's digest once it is known, with the source that
states it. Components, the pipelines and the gate import this module (stdlib only, so the
CrossGuard pack can load it too); nothing else spells an image or chart reference.

Both files are validated on load: a closed schema (unknown keys refused), known kinds, unique
ids, pinned versions, digests of the ``sha256:<64 hex>`` form. A malformed file raises
:class:`InventoryError` naming the file, the entry and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INVENTORY_FILE = Path(__file__).resolve().parent / "inventory.toml"
"""The reviewed inventory."""
LOCK_FILE = Path(__file__).resolve().parent / "images.lock.toml"
"""The digest lock (written by ``sovml images lock``, reviewed like code)."""

KINDS = ("image", "chart")
"""What an entry can be."""
_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
_IMAGE = re.compile(r"[a-z0-9][a-z0-9._-]*(\.[a-z0-9-]+)*(:\d+)?(/[a-z0-9][a-z0-9._-]*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_REPO = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")
_URL = re.compile(r"https://[A-Za-z0-9.-]+(/[A-Za-z0-9._~-]+)*")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
"""A content digest as registries report it."""
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_FIELDS = {
    "id",
    "kind",
    "upstream",
    "chart",
    "version",
    "mirror",
    "used_by",
    "in_chart",
    "values_path",
    "values_shape",
    "in_overlay",
}
OVERLAYS = ("kfp", "kfp-multi-user", "katib")
"""The kustomize overlays under ``components/manifests/`` whose upstream images the components
rewrite to the stack's source (``in_overlay`` names them; tests hold the set equal to the
directories there)."""
_PATH = re.compile(r"[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)*")
SHAPES = (
    "repository-tag",
    "registry-repository-tag",
    "registry-repository-tag-sha",
    "repository-version",
    "reference",
)
"""How a chart's values spell an image (the keys its templates read), a closed set:

- ``repository-tag``: ``{repository: <host>/<path>, tag}``; a digest rides in the tag
  (``1.2.3@sha256:...``) because such charts join the two with a colon;
- ``registry-repository-tag``: ``{registry: <host>, repository: <path>, tag}``, same digest rule;
- ``registry-repository-tag-sha``: the same plus ``sha`` (the digest's hex, no ``sha256:``),
  which the chart appends as ``@sha256:<sha>``;
- ``repository-version``: ``{repository, version}``, the version being a tag or a whole
  ``sha256:`` digest (sigstore's policy-controller joins the latter with ``@``);
- ``reference``: the whole reference as one string at the values path, whose last key is
  ``image`` (Istio's charts use a value holding a ``/`` verbatim, digest included).
"""
_LOCK_FIELDS = {"id", "digest", "source", "resolved_at"}


class InventoryError(ValueError):
    """The inventory or the lock file is malformed (file, entry and key in the message)."""


@dataclass(frozen=True)
class Entry:
    """One image or chart the platform runs."""

    id: str
    """Stable name components use to ask for it."""
    kind: str
    """``image`` or ``chart``."""
    upstream: str
    """Image: the reference as pulled upstream, without tag. Chart: the repository URL."""
    version: str
    """Image tag or chart version (exact; never ``latest``)."""
    mirror: str
    """Repository name in the zone's ECR registry."""
    used_by: tuple[str, ...]
    """Where it runs (files and roles, for people)."""
    chart: str = ""
    """Chart name (charts only)."""
    in_chart: str = ""
    """Images a chart pulls: the id of the inventory chart whose templates name it."""
    values_path: str = ""
    """Images a chart pulls: the dotted path of the image block in that chart's values."""
    values_shape: str = ""
    """Images a chart pulls: how the chart's values spell it (one of :data:`SHAPES`)."""
    in_overlay: tuple[str, ...] = ()
    """Images a kustomize overlay's upstream manifests run: the overlays (of :data:`OVERLAYS`)
    whose pods may name it; any other image there is refused at deploy."""

    @property
    def reference(self) -> str:
        """Image: ``upstream:tag``. Chart: ``<repo URL>/<chart>:<version>`` (for reports)."""
        if self.kind == "chart":
            return f"{self.upstream}/{self.chart}:{self.version}"
        return f"{self.upstream}:{self.version}"


@dataclass(frozen=True)
class Pin:
    """A digest the lock records for one inventory entry, and who says so."""

    id: str
    """Inventory id."""
    digest: str
    """``sha256:<64 hex>``."""
    source: str
    """Where the digest was read: the registry API URL or a citable public document."""
    resolved_at: str
    """UTC time of resolution (``YYYY-MM-DDTHH:MM:SSZ``)."""


def _problem(path: Path, where: str, key: str, why: str) -> InventoryError:
    return InventoryError(f"{path.name}: {where}: {key}: {why}")


def _text(path: Path, where: str, raw: dict, key: str, pattern: re.Pattern[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _problem(path, where, key, f"{value!r} is not allowed ({pattern.pattern})")
    return value


def parse_inventory(text: str, path: Path = INVENTORY_FILE) -> dict[str, Entry]:
    """The entries of an inventory document by id; raises :class:`InventoryError`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path.name}: not TOML: {exc}") from None
    if set(doc) - {"entry"}:
        raise _problem(path, "top level", ", ".join(sorted(set(doc) - {"entry"})), "unknown key")
    raw_entries = doc.get("entry")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise _problem(path, "top level", "entry", "an array of tables with at least one entry")
    out: dict[str, Entry] = {}
    for i, raw in enumerate(raw_entries):
        where = f"entry {i + 1}"
        unknown = set(raw) - _FIELDS
        if unknown:
            raise _problem(path, where, ", ".join(sorted(unknown)), "unknown key")
        ident = _text(path, where, raw, "id", _ID)
        where = f"entry {ident!r}"
        if ident in out:
            raise _problem(path, where, "id", "duplicate id")
        kind = raw.get("kind")
        if kind not in KINDS:
            raise _problem(path, where, "kind", f"{kind!r}; allowed: {', '.join(KINDS)}")
        version = _text(path, where, raw, "version", _TAG)
        if version == "latest" or version.startswith("latest-"):
            raise _problem(path, where, "version", f"{version!r} is not a pinned version")
        used_by = raw.get("used_by")
        if (
            not isinstance(used_by, list)
            or not used_by
            or not all(isinstance(u, str) and u for u in used_by)
        ):
            raise _problem(path, where, "used_by", "a non-empty list of strings")
        if kind == "chart":
            upstream = _text(path, where, raw, "upstream", _URL)
            chart = _text(path, where, raw, "chart", _ID)
        else:
            if "chart" in raw:
                raise _problem(path, where, "chart", "only charts have a chart name")
            upstream, chart = _text(path, where, raw, "upstream", _IMAGE), ""
        mirror = _text(path, where, raw, "mirror", _REPO)
        in_chart, values_path, shape = _chart_image(path, where, raw, kind)
        overlays = _overlays(path, where, raw, kind, in_chart)
        out[ident] = Entry(
            ident,
            kind,
            upstream,
            version,
            mirror,
            tuple(used_by),
            chart,
            in_chart,
            values_path,
            shape,
            overlays,
        )
    _check_chart_images(path, out)
    return out


def _chart_image(path: Path, where: str, raw: dict, kind: str) -> tuple[str, str, str]:
    # The three keys come together or not at all, and only on images: a chart's image without
    # its values path could not be set, and one without its chart could not be checked.
    keys = ("in_chart", "values_path", "values_shape")
    present = [k for k in keys if k in raw]
    if not present:
        return "", "", ""
    if kind != "image":
        raise _problem(path, where, present[0], "only images a chart pulls have it")
    if len(present) != len(keys):
        missing = ", ".join(k for k in keys if k not in raw)
        raise _problem(
            path, where, missing, "missing (in_chart, values_path, values_shape go together)"
        )
    in_chart = _text(path, where, raw, "in_chart", _ID)
    values_path = _text(path, where, raw, "values_path", _PATH)
    shape = raw["values_shape"]
    if shape not in SHAPES:
        raise _problem(path, where, "values_shape", f"{shape!r}; allowed: {', '.join(SHAPES)}")
    # The gate reads a whole-reference string only under an ``image`` key (values_images).
    if shape == "reference" and values_path.rsplit(".", 1)[-1] != "image":
        raise _problem(path, where, "values_path", "a reference shape's path ends in image")
    return in_chart, values_path, shape


def _overlays(path: Path, where: str, raw: dict, kind: str, in_chart: str) -> tuple[str, ...]:
    # Only images, never a chart's (a chart sets its images through values, one path), each
    # overlay once and from the closed set.
    if "in_overlay" not in raw:
        return ()
    value = raw["in_overlay"]
    if kind != "image" or in_chart:
        raise _problem(path, where, "in_overlay", "only images outside a chart have it")
    if (
        not isinstance(value, list)
        or not value
        or len(set(map(str, value))) != len(value)
        or not all(v in OVERLAYS for v in value)
    ):
        raise _problem(
            path, where, "in_overlay", f"{value!r}; allowed distinct names of {', '.join(OVERLAYS)}"
        )
    return tuple(value)


def _check_chart_images(path: Path, entries: dict[str, Entry]) -> None:
    # The chart an image names must be an inventory chart. Two images of one chart may share a
    # path (cluster-autoscaler's versions per Kubernetes release): the component picks one,
    # and Sources.chart_images refuses to set both.
    for e in entries.values():
        if not e.in_chart:
            continue
        found = entries.get(e.in_chart)
        if found is None or found.kind != "chart":
            raise _problem(path, f"entry {e.id!r}", "in_chart", f"no chart {e.in_chart!r}")


def parse_lock(text: str, inventory: dict[str, Entry], path: Path = LOCK_FILE) -> dict[str, Pin]:
    """The pins of a lock document by id (only inventory ids); raises :class:`InventoryError`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path.name}: not TOML: {exc}") from None
    if set(doc) - {"pin"}:
        raise _problem(path, "top level", ", ".join(sorted(set(doc) - {"pin"})), "unknown key")
    raw_pins = doc.get("pin", [])
    if not isinstance(raw_pins, list):
        raise _problem(path, "top level", "pin", "an array of tables")
    out: dict[str, Pin] = {}
    for i, raw in enumerate(raw_pins):
        where = f"pin {i + 1}"
        unknown = set(raw) - _LOCK_FIELDS
        missing = _LOCK_FIELDS - set(raw)
        if unknown or missing:
            keys = ", ".join(sorted(unknown or missing))
            raise _problem(path, where, keys, "unknown key" if unknown else "missing")
        ident = _text(path, where, raw, "id", _ID)
        where = f"pin {ident!r}"
        if ident not in inventory:
            raise _problem(path, where, "id", "not in the inventory")
        if ident in out:
            raise _problem(path, where, "id", "duplicate id")
        source = raw["source"]
        if not isinstance(source, str) or len(source.strip()) < 8:
            raise _problem(path, where, "source", "the URL or document that states the digest")
        out[ident] = Pin(
            ident,
            _text(path, where, raw, "digest", DIGEST),
            source,
            _text(path, where, raw, "resolved_at", _TIMESTAMP),
        )
    return out


def load_inventory(path: Path = INVENTORY_FILE) -> dict[str, Entry]:
    """The inventory file's entries by id."""
    return parse_inventory(path.read_text(encoding="utf-8"), path)


def load_lock(path: Path = LOCK_FILE, inventory: dict[str, Entry] | None = None) -> dict[str, Pin]:
    """The lock file's pins by id (empty when the file does not exist)."""
    if not path.exists():
        return {}
    return parse_lock(path.read_text(encoding="utf-8"), inventory or INVENTORY, path)


INVENTORY: dict[str, Entry] = load_inventory()
"""This repository's inventory, loaded once."""


def entry(ident: str, kind: str) -> Entry:
    """The inventory entry ``ident`` of ``kind``; KeyError names the id when it is not there."""
    found = INVENTORY.get(ident)
    if found is None or found.kind != kind:
        raise KeyError(f"no {kind} {ident!r} in policies/inventory.toml")
    return found


def image(ident: str) -> str:
    """The upstream reference (``name:tag``) of inventory image ``ident``."""
    return entry(ident, "image").reference


def chart(ident: str) -> tuple[str, str, str]:
    """``(chart name, version, repository URL)`` of inventory chart ``ident``."""
    found = entry(ident, "chart")
    return found.chart, found.version, found.upstream


ECR_REFERENCE = re.compile(
    r"(?:oci://)?(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.amazonaws\.com/(?P<path>[a-z0-9][a-z0-9._/-]*?)(?P<tag>:[^/@]+)?(?P<digest>@sha256:[0-9a-f]{64})?"
)
"""An image or ``oci://`` chart reference in an ECR registry: account, region, repository path
and the tag or digest (applied with ``fullmatch``)."""


def mirror_path(reference: str) -> str | None:
    """The repository path of an ECR ``reference`` (no tag or digest); None for any other."""
    m = ECR_REFERENCE.fullmatch(reference)
    return m["path"] if m else None


def registry_host(account_id: str, region: str) -> str:
    """The zone's ECR registry host for ``account_id`` in ``region``."""
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


def mirror_repositories(inventory: dict[str, Entry] | None = None) -> tuple[str, ...]:
    """The zone registry's repository names: each entry's ``mirror``, once, in inventory order
    (several versions of one image share a repository)."""
    return tuple(dict.fromkeys(e.mirror for e in (inventory or INVENTORY).values()))


def mirror_image(found: Entry, host: str, pin: Pin | None) -> str:
    """The in-zone reference: ``host/mirror@digest`` when pinned, else ``host/mirror:tag``."""
    if pin is not None:
        return f"{host}/{found.mirror}@{pin.digest}"
    return f"{host}/{found.mirror}:{found.version}"


def mirror_chart(found: Entry, host: str) -> str:
    """The in-zone OCI location of a chart (ECR as an OCI chart registry)."""
    return f"oci://{host}/{found.mirror}"


def split_reference(reference: str) -> tuple[str, str, str, str]:
    """``(registry, repository, tag, digest)`` of an image reference (the digest keeps
    ``sha256:``). A first path part with a dot or a port, or ``localhost``, is the registry;
    a name without one is Docker Hub's (``docker.io``), its repository kept as written."""
    name, _, digest = reference.partition("@")
    head, _, last = name.rpartition("/")
    last, _, tag = last.partition(":")
    path = f"{head}/{last}" if head else last
    first, sep, rest = path.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag, digest
    return "docker.io", path, tag, digest


def shape_image(reference: str, shape: str, version: str = "") -> dict[str, str]:
    """``reference`` as the image values of ``shape`` (see :data:`SHAPES`); ValueError on an
    unknown shape, or a reference with neither tag nor digest.

    ``version`` is the tag to show beside a digest-only reference (the mirror's pinned form):
    the tag-joining shapes need one, and ``tag@digest`` still pulls exactly the digest.

    The repository-only shapes keep the reference's name exactly as written, so the gate
    reads back the very reference the sources gave (``identify`` matches it).
    """
    registry, repository, tag, digest = split_reference(reference)
    if not tag and not digest:
        raise ValueError(f"image {reference!r} has neither tag nor digest")
    name = reference.partition("@")[0]
    if tag:
        name = name[: -len(tag) - 1]
    tag = tag or version
    joined = f"{tag}@{digest}" if tag and digest else tag or f"@{digest}"
    if shape == "repository-tag":
        return {"repository": name, "tag": joined}
    if shape == "registry-repository-tag":
        return {"registry": registry, "repository": repository, "tag": joined}
    if shape == "registry-repository-tag-sha":
        out = {"registry": registry, "repository": repository, "tag": tag}
        if digest:
            out["sha"] = digest.removeprefix("sha256:")
        return out
    if shape == "repository-version":
        return {"repository": name, "version": digest or tag}
    if shape == "reference":
        return {"image": reference}
    raise ValueError(f"image values shape {shape!r}; allowed: {', '.join(SHAPES)}")


def _deep_copy(values: Mapping[str, Any]) -> dict[str, Any]:
    # Mappings are copied so setting an image never edits the caller's dict; other values
    # (lists, Pulumi outputs) are shared, as the release only reads them.
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in values.items()}


@dataclass(frozen=True)
class Sources:
    """Where a stack pulls each inventory entry from: resolved once, handed to components.

    Components take a ``Sources`` in their Args and never read the config or the lock: the
    program builds it from the inventory, the lock and ``imageSource`` (infra/images/sources.py).
    """

    images: dict[str, str]
    """Image id -> the reference a pod spec or Helm value names."""
    charts: dict[str, tuple[str, str, str]]
    """Chart id -> ``(name, version, location)``: location is the repository URL upstream,
    or the chart's full ``oci://`` reference in the mirror."""
    inventory: dict[str, Entry] | None = None
    """The inventory the references came from (None: this repository's)."""

    def image(self, ident: str) -> str:
        """The reference of image ``ident`` (KeyError names the id)."""
        if ident not in self.images:
            raise KeyError(f"no image {ident!r} in policies/inventory.toml")
        return self.images[ident]

    def shaped(self, ident: str, shape: str) -> dict[str, str]:
        """Image ``ident`` as Helm values of ``shape`` (one of :data:`SHAPES`)."""
        found = (self.inventory or INVENTORY).get(ident)
        return shape_image(self.image(ident), shape, found.version if found else "")

    def chart_images(
        self, chart_id: str, values: Mapping[str, Any], only: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """``values`` with every image the inventory lists for chart ``chart_id`` set at its
        values path, in its shape (keys already there, e.g. ``pullPolicy``, are kept).

        ``only`` picks, by id, among images of the chart sharing one path (several versions);
        without it every image of the chart is set, and two at one path are refused.
        """
        out = _deep_copy(values)
        seen: dict[str, str] = {}
        for e in (self.inventory or INVENTORY).values():
            if e.in_chart != chart_id or (only and e.id not in only):
                continue
            if e.values_path in seen:
                raise ValueError(
                    f"chart {chart_id!r}: images {seen[e.values_path]!r} and {e.id!r} share "
                    f"values path {e.values_path}; pick one with only="
                )
            seen[e.values_path] = e.id
            node = out
            # A reference is a string at the path itself: its parent mapping takes the key.
            keys = e.values_path.split(".")
            for key in keys[:-1] if e.values_shape == "reference" else keys:
                node = node.setdefault(key, {})
            node.update(self.shaped(e.id, e.values_shape))
        return out

    def chart(self, ident: str) -> tuple[str, str, str]:
        """``(name, version, location)`` of chart ``ident`` (KeyError names the id)."""
        if ident not in self.charts:
            raise KeyError(f"no chart {ident!r} in policies/inventory.toml")
        return self.charts[ident]


def upstream_sources(inventory: dict[str, Entry] | None = None) -> Sources:
    """Every entry as pulled from its upstream registry or chart repository, by tag."""
    found = inventory or INVENTORY
    return Sources(
        images={e.id: e.reference for e in found.values() if e.kind == "image"},
        charts={
            e.id: (e.chart, e.version, e.upstream) for e in found.values() if e.kind == "chart"
        },
        inventory=inventory,
    )


def mirror_sources(
    host: str, pins: dict[str, Pin], inventory: dict[str, Entry] | None = None
) -> Sources:
    """Every entry from the zone's registry ``host``: by digest where the lock pins one."""
    found = inventory or INVENTORY
    return Sources(
        images={
            e.id: mirror_image(e, host, pins.get(e.id)) for e in found.values() if e.kind == "image"
        },
        charts={
            e.id: (e.chart, e.version, mirror_chart(e, host))
            for e in found.values()
            if e.kind == "chart"
        },
        inventory=inventory,
    )


UPSTREAM: Sources = upstream_sources()
"""The upstream sources: the default of every component's Args (dev and tests)."""


def identify(reference: str, inventory: dict[str, Entry] | None = None) -> str | None:
    """The inventory image id ``reference`` names, upstream or in a mirror (None: unknown).

    A digest reference is identified by its repository alone; a tag must be the entry's version.
    """
    found = inventory or INVENTORY
    path = mirror_path(reference)
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    repo = name[: len(name) - len(tag) - 1] if tag else name
    for e in found.values():
        if e.kind != "image" or (tag and tag != e.version):
            continue
        if (path is not None and path == e.mirror) or (path is None and repo == e.upstream):
            return e.id
    return None
