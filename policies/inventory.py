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
from dataclasses import dataclass
from pathlib import Path

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
_FIELDS = {"id", "kind", "upstream", "chart", "version", "mirror", "used_by"}
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
        if version == "latest":
            raise _problem(path, where, "version", "'latest' is not a pinned version")
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
        out[ident] = Entry(ident, kind, upstream, version, mirror, tuple(used_by), chart)
    return out


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

    def image(self, ident: str) -> str:
        """The reference of image ``ident`` (KeyError names the id)."""
        if ident not in self.images:
            raise KeyError(f"no image {ident!r} in policies/inventory.toml")
        return self.images[ident]

    def image_values(self, ident: str) -> dict[str, str]:
        """``{"repository", "tag"}`` Helm values for charts that template ``repository:tag``.

        A digest rides in the tag (``1.2.3@sha256:...``) because such charts join the two
        with a colon, which yields the same pinned reference.
        """
        name, at, digest = self.image(ident).partition("@")
        repo, _, tag = name.rpartition(":")
        return {"repository": repo, "tag": f"{tag}{at}{digest}"}

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
