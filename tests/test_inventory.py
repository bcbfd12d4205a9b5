"""The image and chart inventory (``policies/inventory.toml``): validated, complete, the only
place an image or chart is spelled.

Completeness is checked where the references end up: every image and chart in every stack's
synth record and in both compiled pipelines must be an inventory entry; and in the sources no
image-looking literal may remain outside the inventory file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies import inventory
from policies.inventory import InventoryError, parse_inventory, parse_lock

ROOT = Path(__file__).resolve().parents[1]
GOOD = """
[[entry]]
id = "triton"
kind = "image"
upstream = "nvcr.io/nvidia/tritonserver"
version = "24.10-py3"
mirror = "nvidia/tritonserver"
used_by = ["components/serving.py"]

[[entry]]
id = "keda"
kind = "chart"
upstream = "https://kedacore.github.io/charts"
chart = "keda"
version = "2.19.0"
mirror = "charts/keda"
used_by = ["components/keda.py"]
"""
DIGEST = "sha256:" + "ab" * 32


def test_a_good_document_parses_into_entries() -> None:
    entries = parse_inventory(GOOD)
    assert entries["triton"].reference == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert entries["keda"].chart == "keda" and entries["keda"].kind == "chart"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('id = "keda"', 'id = "triton"'), "entry 'triton': id: duplicate id"),
        (('kind = "chart"', 'kind = "helm"'), "entry 'keda': kind: 'helm'; allowed: image, chart"),
        (('version = "24.10-py3"', 'version = "latest"'), "'latest' is not a pinned version"),
        (('version = "24.10-py3"', 'version = ""'), "entry 'triton': version: ''"),
        (('mirror = "charts/keda"', 'mirror = "../keda"'), "entry 'keda': mirror: '../keda'"),
        (('used_by = ["components/keda.py"]', "used_by = []"), "used_by: a non-empty list"),
        (('id = "triton"', 'id = "triton"\ndigest = "x"'), "entry 1: digest: unknown key"),
        (('upstream = "https://kedacore', 'upstream = "http://kedacore'), "entry 'keda': upstream"),
        (('chart = "keda"\n', ""), "entry 'keda': chart: None"),
        (('upstream = "nvcr.io/nvidia/tritonserver"', 'upstream = "nvcr.io/x:1"'), "upstream"),
        (('[[entry]]\nid = "triton"', '[[image]]\nid = "triton"'), "image: unknown key"),
    ],
)
def test_a_malformed_inventory_is_refused_naming_entry_and_key(
    edit: tuple[str, str], message: str
) -> None:
    assert edit[0] in GOOD
    with pytest.raises(InventoryError) as exc:
        parse_inventory(GOOD.replace(edit[0], edit[1], 1))
    assert message in str(exc.value)
    assert str(exc.value).startswith("inventory.toml: ")


def test_an_image_entry_cannot_name_a_chart_and_an_empty_inventory_is_refused() -> None:
    with pytest.raises(InventoryError, match="chart: only charts have a chart name"):
        parse_inventory(GOOD.replace('mirror = "nvidia/tritonserver"', 'chart = "x"\nmirror = "n"'))
    with pytest.raises(InventoryError, match="entry: an array of tables"):
        parse_inventory("")
    with pytest.raises(InventoryError, match="not TOML"):
        parse_inventory("[[entry]\n")


def _pin(**fields: str) -> str:
    base = {"id": "triton", "digest": DIGEST, "source": "https://nvcr.io/v2/x", "resolved_at": (
        "2026-12-05T07:00:00Z")}  # fmt: skip
    base.update(fields)
    return "[[pin]]\n" + "".join(f'{k} = "{v}"\n' for k, v in base.items())


def test_the_lock_accepts_a_sourced_digest_and_refuses_anything_else() -> None:
    entries = parse_inventory(GOOD)
    assert parse_lock(_pin(), entries)["triton"].digest == DIGEST
    for text, message in [
        (_pin(digest="sha256:" + "AB" * 32), "digest"),
        (_pin(digest="sha512:" + "ab" * 32), "digest"),
        (_pin(digest="sha256:abc"), "digest"),
        (_pin(id="nginx"), "pin 'nginx': id: not in the inventory"),
        (_pin(source=""), "source: the URL or document"),
        (_pin(resolved_at="yesterday"), "resolved_at"),
        (_pin() + _pin(), "duplicate id"),
        (_pin().replace('source = "https://nvcr.io/v2/x"\n', ""), "source: missing"),
        (_pin() + 'note = "x"\n', "note: unknown key"),
    ]:
        with pytest.raises(InventoryError, match=re.escape(message)):
            parse_lock(text, entries)


def test_this_repositorys_lock_parses_and_every_pin_has_a_source() -> None:
    pins = inventory.load_lock()
    assert all(p.source and inventory.DIGEST.fullmatch(p.digest) for p in pins.values())


def test_lookups_refuse_an_unknown_id_or_the_wrong_kind() -> None:
    with pytest.raises(KeyError, match="no image 'keda'"):
        inventory.image("keda")
    with pytest.raises(KeyError, match="no chart 'nope'"):
        inventory.chart("nope")


def test_mirror_references_are_the_zones_ecr_by_digest_or_by_tag() -> None:
    triton = inventory.entry("triton", "image")
    host = inventory.registry_host("111122223333", "me-central-1")
    pin = inventory.Pin("triton", DIGEST, "test", "2026-12-05T07:00:00Z")
    assert inventory.mirror_image(triton, host, pin) == (
        f"111122223333.dkr.ecr.me-central-1.amazonaws.com/nvidia/tritonserver@{DIGEST}"
    )
    assert inventory.mirror_image(triton, host, None).endswith("/nvidia/tritonserver:24.10-py3")
    keda = inventory.entry("keda", "chart")
    assert inventory.mirror_chart(keda, host) == f"oci://{host}/charts/keda"


# -- completeness: what the records and the compiled pipelines reference -----------------------

HELM = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")


def _block(b: dict[str, Any]) -> str:
    # Helm's image maps: [registry/]repository, then :tag or the policy-controller's version
    # (a digest, joined with @), then @sha256:<sha>.
    name = b.get("repository", "?")
    if b.get("registry"):
        name = f"{b['registry']}/{name}"
    version = str(b.get("tag") or b.get("version"))
    ref = f"{name}@{version}" if version.startswith("sha256:") else f"{name}:{version}"
    return ref + (f"@sha256:{b['sha']}" if b.get("sha") else "")


def _images(node: Any, out: list[str]) -> list[str]:
    """Every ``image`` value under ``node``: strings, and Helm's image maps (a map with only a
    tag keeps the chart's repository: ``?:<tag>``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                out.append(value)
            elif key == "image" and isinstance(value, dict):
                # A block, or blocks one level in (keda's image.keda, image.webhooks...).
                blocks = [value, *[v for v in value.values() if isinstance(v, dict)]]
                out.extend(_block(b) for b in blocks if "tag" in b or "version" in b)
            else:
                _images(value, out)
    elif isinstance(node, list):
        for item in node:
            _images(item, out)
    return out


IMAGES = {e.reference for e in inventory.INVENTORY.values() if e.kind == "image"}
TAGS = {e.version for e in inventory.INVENTORY.values() if e.kind == "image"}
CHARTS = {
    (e.chart, e.version, e.upstream) for e in inventory.INVENTORY.values() if e.kind == "chart"
}

MIRRORED = {
    (e.mirror, e.version): (e.chart, e.version, e.upstream)
    for e in inventory.INVENTORY.values()
    if e.kind == "chart"
}
"""A chart's (mirror repository, version) -> its inventory (chart, version, repository)."""


def _unknown_image(ref: str) -> bool:
    if ref.startswith("?:"):
        return ref[2:] not in TAGS
    # The zone's mirror (imageSource: mirror) names the same entries by their mirror repository.
    return ref not in IMAGES and inventory.identify(ref) is None


def test_every_image_and_chart_in_every_stack_record_is_in_the_inventory(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    seen_images: set[str] = set()
    seen_charts: set[tuple[str, str, str]] = set()
    for stack, record in stack_records.items():
        for r in record["resources"]:
            found = _images(r["inputs"], [])
            seen_images.update(found)
            assert not [i for i in found if _unknown_image(i)], (stack, r["urn"], found)
            if r["type"] in HELM:
                repo = (r["inputs"].get("repositoryOpts") or {}).get("repo")
                chart = (r["inputs"]["chart"], r["inputs"]["version"], repo)
                if repo is None:  # the zone's mirror: oci://<registry>/<mirror repository>
                    chart = MIRRORED.get((inventory.mirror_path(chart[0]), chart[1]), chart)
                seen_charts.add(chart)
                assert chart in CHARTS, (stack, r["urn"], chart)
    # The scan must see what it judges (a walk that finds nothing passes vacuously).
    assert {"nvcr.io/nvidia/tritonserver:24.10-py3", "hashicorp/vault:1.19.0"} <= seen_images
    assert len(seen_charts) >= 7


def test_every_step_image_of_the_compiled_pipelines_is_in_the_inventory() -> None:
    seen = set()
    for path in sorted((ROOT / "pipelines" / "training" / "compiled").glob("*.yaml")):
        found = _images(list(yaml.safe_load_all(path.read_text())), [])
        assert found and not [i for i in found if _unknown_image(i)], (path.name, found)
        seen.update(found)
    assert {inventory.image("python"), inventory.image("pytorch")} <= seen


def test_every_dockerfile_base_is_in_the_inventory() -> None:
    bases = [
        line.split()[1]
        for path in (ROOT / "pipelines" / "images").glob("*/Dockerfile")
        for line in path.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert len(bases) >= 2 and all(b in IMAGES for b in bases), bases


# -- no image or chart string outside the inventory ----------------------------------------------

_LITERAL = re.compile(r"""(["'])([^"'\s]{3,200})\1""")
_IMAGE_REF = re.compile(
    r"(?:(?:[a-z0-9-]+(?:\.[a-z0-9-]+)+|localhost)(?::\d+)?/)?"
    r"[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*:v?\d[A-Za-z0-9._-]*"
)
"""``[registry/]name:tag`` with a version-like tag (``7.4.1``, ``v0.17.1``, ``24.10-py3``)."""
_REGISTRY = re.compile(
    r"(?:^|/)(?:nvcr\.io|quay\.io|ghcr\.io|docker\.io|registry\.k8s\.io|"
    r"(?:[a-z]+\.)?gcr\.io|public\.ecr\.aws|mcr\.microsoft\.com)/"
)
"""A public registry host, whatever the tag."""
_DIGEST_REF = re.compile(r"@sha256:[0-9a-f]{6,}")
_CHART_REPO = re.compile(r"https://[^\s\"']*(?:helm|charts?)[^\s\"']*")
SCANNED = ("components", "pipelines", "infra", "policies", "kernels")
NOT_SOURCES = {
    "pipelines/training/compiled",  # generated by `sovml pipeline compile` (goldens)
}


def _sources() -> list[Path]:
    out = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.suffix in (".py", ".yaml", ".yml", ".json") and not any(
                rel.startswith(p) for p in NOT_SOURCES
            ):
                out.append(path)
    return out


def image_literals(text: str) -> list[str]:
    """Quoted literals that look like an image (``name:tag`` with a digit in the tag, a digest)
    or a chart repository URL."""
    found = []
    for match in _LITERAL.finditer(text):
        value = match.group(2)
        if (
            _IMAGE_REF.fullmatch(value)
            or _REGISTRY.search(value)
            or _DIGEST_REF.search(value)
            or _CHART_REPO.fullmatch(value)
        ):
            found.append(value)
    return found


def test_the_literal_scan_catches_what_it_must_and_passes_what_it_must() -> None:
    caught = [
        '"nvcr.io/nvidia/tritonserver:24.10-py3"',
        "'redis:7.4.1'",
        '"python:3.11.11-slim-bookworm"',
        '"localhost:5000/x/y:1.0"',
        '"ghcr.io/a/b@sha256:0123456789abcdef"',
        '"https://kedacore.github.io/charts"',
        '"https://helm.releases.hashicorp.com"',
        '"quay.io/feastdev/feature-server"',
    ]
    passed = [
        '"aws:eks/cluster:Cluster"',
        '"kubernetes:helm.sh/v3:Release"',
        '"sovereign-ml:environment"',
        '"app.kubernetes.io/name"',
        '"http://prometheus-pushgateway.monitoring.svc:9091"',
        '"sovml:header-sha256"',
    ]
    assert [image_literals(c) for c in caught] == [[c[1:-1]] for c in caught]
    assert [image_literals(p) for p in passed] == [[] for _ in passed]


def test_no_image_or_chart_literal_outside_the_inventory() -> None:
    hits = {
        path.relative_to(ROOT).as_posix(): found
        for path in _sources()
        if (found := image_literals(path.read_text(encoding="utf-8", errors="replace")))
    }
    assert hits == {}
