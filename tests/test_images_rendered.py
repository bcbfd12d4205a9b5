"""What the charts really pull: values out for ``helm template``, rendered images judged back in.

No chart renders here, so the rendered manifests are built in the test from the inventory (what
a complete inventory renders to) plus the images an incomplete one would miss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli.app import app
from infra.images import rendered
from infra.synth.runner import synthesize
from policies.inventory import INVENTORY, load_lock, registry_host

HOST = registry_host("111122223333", "me-central-1")
runner = CliRunner()


@pytest.fixture(scope="module")
def prod_record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = synthesize("prod-uae", build_dir=tmp_path_factory.mktemp("prod")).path
    return json.loads(path.read_text())


def _deployment(images: list[str], kind: str = "Deployment") -> dict[str, Any]:
    pod = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}
    spec: dict[str, Any] = {"template": {"spec": pod}}
    if kind == "CronJob":
        spec = {"jobTemplate": {"spec": spec}}
    if kind == "Pod":
        spec = pod
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": "w", "namespace": "n"},
        "spec": spec,
    }


def _mirror_ref(ident: str) -> str:
    """How a mirror stack refers to inventory image ``ident``: by the lock's digest or its tag."""
    e, pin = INVENTORY[ident], load_lock().get(ident)
    return f"{HOST}/{e.mirror}@{pin.digest}" if pin else f"{HOST}/{e.mirror}:{e.version}"


def test_every_release_of_prod_uae_is_written_with_its_values(
    prod_record: dict[str, Any], tmp_path: Path
) -> None:
    found = rendered.releases(prod_record)
    assert len(found) >= 9 and all(r.chart.startswith(f"oci://{HOST}/") for r in found)
    index = rendered.write_values(found, tmp_path)
    rows = [line.split("\t") for line in index.read_text().splitlines()]
    assert tuple(rows[0]) == rendered.INDEX_COLUMNS and len(rows) == len(found) + 1
    for rel, row in zip(found, rows[1:], strict=True):
        assert row[:4] == [rel.name, rel.namespace, rel.chart, rel.version]
        assert yaml.safe_load((tmp_path / row[5]).read_text()) == rel.values


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", ""])
def test_a_release_name_that_could_escape_the_folder_is_refused(name: str, tmp_path: Path) -> None:
    rel = rendered.Release(name, "ns", "c", "1", "", {})
    with pytest.raises(ValueError, match="cannot name a file"):
        rendered.write_values([rel], tmp_path / "out")
    assert not (tmp_path / "escape.values.yaml").exists()


def test_a_tab_in_a_field_cannot_forge_an_index_row(tmp_path: Path) -> None:
    rel = rendered.Release("r", "ns\tother", "c", "1", "", {})
    with pytest.raises(ValueError, match="tab or a newline"):
        rendered.write_values([rel], tmp_path)


@pytest.mark.parametrize("kind", ["Deployment", "CronJob", "Pod", "StatefulSet", "Job"])
def test_images_are_read_from_every_workload_kind(kind: str) -> None:
    text = yaml.safe_dump_all([_deployment(["a/b:1", "c/d:2"], kind), {"kind": "ConfigMap"}])
    got = rendered.rendered_images(text, "m.yaml")
    assert [i for _, i in got] == ["a/b:1", "c/d:2"]
    assert got[0][0] == f"{kind} n/w c0"


def test_init_and_ephemeral_containers_count() -> None:
    doc = _deployment(["main:1"])
    pod = doc["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "init", "image": "init:1"}]
    pod["ephemeralContainers"] = [{"name": "debug", "image": "debug:1"}]
    images = [i for _, i in rendered.rendered_images(yaml.safe_dump(doc), "m")]
    assert sorted(images) == ["debug:1", "init:1", "main:1"]


def test_every_inventory_image_rendered_from_the_mirror_passes() -> None:
    images = [_mirror_ref(i) for i, e in INVENTORY.items() if e.kind == "image"]
    found = rendered.rendered_images(yaml.safe_dump(_deployment(images)), "m")
    assert rendered.foreign_images(found, HOST, load_lock()) == []


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("quay.io/prometheus/node-exporter:v1.8.2", "outside the zone's registry"),
        ("docker.io/library/busybox:latest", "outside the zone's registry"),
        (f"{HOST}.evil.example/triton:24.10-py3", "outside the zone's registry"),
        ("999999999999.dkr.ecr.me-central-1.amazonaws.com/x:1", "outside the zone's registry"),
        (f"{HOST}/node-exporter:v1.8.2", "not an inventory image"),
        (f"{HOST}/{INVENTORY['triton'].mirror}:latest", "not an inventory image"),
    ],
)
def test_a_missed_chart_default_is_named(image: str, why: str) -> None:
    bad = rendered.foreign_images([("Deployment n/w c", image)], HOST, load_lock())
    assert len(bad) == 1 and bad[0][2].startswith(why), bad


def test_a_locked_image_must_be_referred_to_by_its_digest() -> None:
    pins = load_lock()
    assert pins, "the lock pins at least one image"
    ident, pin = next(iter(pins.items()))
    e = INVENTORY[ident]
    by_tag = [("w", f"{HOST}/{e.mirror}:{e.version}")]
    assert "refer to it by that digest" in rendered.foreign_images(by_tag, HOST, pins)[0][2]
    other = "sha256:" + ("1" if pin.digest[-1] != "1" else "2") * 64
    assert rendered.foreign_images([("w", f"{HOST}/{e.mirror}@{other}")], HOST, pins)
    assert rendered.foreign_images([("w", f"{HOST}/{e.mirror}@{pin.digest}")], HOST, pins) == []


def _write(tmp_path: Path, docs: list[Any], name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_cli_passes_a_complete_rendering_and_names_a_missed_default(tmp_path: Path) -> None:
    good = _write(tmp_path, [_deployment([_mirror_ref("triton"), _mirror_ref("vault")])])
    ok = runner.invoke(app, ["images", "verify-rendered", "prod-uae", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "2 images, each an inventory image" in ok.output
    bad = _write(tmp_path, [_deployment(["quay.io/prometheus/node-exporter:v1.8.2"])], "b.yaml")
    res = runner.invoke(app, ["images", "verify-rendered", "prod-uae", str(good), str(bad)])
    assert res.exit_code == 1, res.output
    assert "refused b.yaml: Deployment n/w c0: quay.io/prometheus/node-exporter:v1.8.2" in (
        res.output
    )
    assert "1 of 3 images may not run" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dev", "GOOD"], "pulls from upstream"),
        (["no-such-stack", "GOOD"], "no-such-stack"),
        (["prod-uae", "MISSING"], "cannot be read"),
        (["prod-uae", "BOMB"], "more than 64 YAML aliases"),
        (["prod-uae", "BINARY"], "cannot be read"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    files = {
        "GOOD": _write(tmp_path, [_deployment([_mirror_ref("triton")])]),
        "MISSING": tmp_path / "missing.yaml",
        "BOMB": tmp_path / "bomb.yaml",
        "BINARY": tmp_path / "bin.yaml",
    }
    files["BOMB"].write_text("a: &a [x]\n" + "".join(f"b{i}: *a\n" for i in range(70)))
    files["BINARY"].write_bytes(b"\xff\xfe\x00garbage")
    argv = [str(files.get(a, a)) for a in args]
    res = runner.invoke(app, ["images", "verify-rendered", *argv])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_cli_values_writes_the_index_and_refuses_a_file_as_folder(tmp_path: Path) -> None:
    out = tmp_path / "charts"
    res = runner.invoke(app, ["images", "values", "prod-uae", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / rendered.INDEX).read_text().startswith("release\tnamespace")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["images", "values", "prod-uae", "--out", str(blocker / "sub")])
    assert res.exit_code == 2 and "--out" in res.output
