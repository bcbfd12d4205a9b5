"""The digest checks' suppressions: image by image, never by glob, never for out-of-zone images.

policies/suppressions.yaml may accept an image without a digest (SOV-SUP-002, checkov's
CKV_K8S_43) only by naming its inventory id; the list must be exactly the unpinned images that
prod-uae runs, so it shrinks as ``sovml images lock`` finds digests. Also the ``imageSource``
config key that puts a stack on the zone's mirror.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import config as cfgmod
from infra.gate import findings
from infra.synth.runner import synthesize
from policies.inventory import INVENTORY, OVERLAYS, Pin, identify, load_lock
from policies.rules.record import resources_from_record
from policies.rules.supply_chain import images_of

JUSTIFY = "    justification: reviewed\n"


def _load(tmp_path: Path, entry: str) -> list[findings.Suppression]:
    path = tmp_path / "suppressions.yaml"
    path.write_text("suppressions:\n" + entry + JUSTIFY)
    return findings.load_suppressions(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # A glob that reaches the out-of-zone rule, however it is spelled.
        ("  - id: SOV-SUP-001\n    resource: '*'\n", "SOV-SUP-001 is never suppressed"),
        ("  - id: 'SOV-SUP-*'\n    resource: '*'\n", "SOV-SUP-001 is never suppressed"),
        ("  - id: 'SOV-*'\n    resource: x\n", "SOV-SUP-001 is never suppressed"),
        ("  - id: '*'\n    resource: x\n", "SOV-SUP-001 is never suppressed"),
        ("  - id: 'SOV-SUP-00?'\n    resource: x\n", "SOV-SUP-001 is never suppressed"),
        # The digest checks by exact id only, with images named one by one.
        ("  - id: 'CKV_K8S_4*'\n    resource: '*'\n", "suppressed by exact id only"),
        ("  - id: 'CKV_K8S_4[3]'\n    resource: '*'\n", "suppressed by exact id only"),
        ("  - id: CKV_K8S_43\n    resource: '*'\n", "need images: inventory image ids"),
        ("  - id: SOV-SUP-002\n    resource: '*'\n    images: []\n", "need images"),
        ("  - id: SOV-SUP-002\n    resource: '*'\n    images: triton\n", "need images"),
        ("  - id: SOV-SUP-002\n    resource: '*'\n    images: ['*']\n", "is not an image id"),
        ("  - id: SOV-SUP-002\n    resource: '*'\n    images: ['trit*']\n", "is not an image id"),
        ("  - id: SOV-SUP-002\n    resource: '*'\n    images: [nginx]\n", "is not an image id"),
        ("  - id: SOV-SUP-002\n    resource: '*'\n    images: [1]\n", "is not an image id"),
        (
            "  - id: SOV-SUP-002\n    resource: '*'\n    images: [triton, triton]\n",
            "duplicate ids",
        ),
        (
            "  - ids: [SOV-SUP-002, CKV_AWS_1]\n    resource: '*'\n    images: [triton]\n",
            "need an entry of their own",
        ),
        # images only where they mean something.
        ("  - id: CKV_AWS_1\n    resource: '*'\n    images: [triton]\n", "images only for"),
    ],
)
def test_hostile_digest_suppressions_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        _load(tmp_path, entry)
    assert "suppression #1" in str(err.value)


def test_a_chart_id_is_not_an_image(tmp_path: Path) -> None:
    chart = next(e.id for e in INVENTORY.values() if e.kind == "chart")
    with pytest.raises(ValueError, match=f"{chart!r} is not an image id"):
        _load(tmp_path, f"  - id: SOV-SUP-002\n    resource: '*'\n    images: [{chart}]\n")


def test_a_locked_image_must_leave_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the lock pins an image its suppression is stale: the file no longer loads."""
    pin = Pin("triton", "sha256:" + "0" * 64, "test: a made-up pin", "2026-12-05T00:00:00Z")
    monkeypatch.setattr(findings, "load_lock", lambda: {"triton": pin})
    with pytest.raises(ValueError, match="'triton' is locked"):
        _load(tmp_path, "  - id: SOV-SUP-002\n    resource: '*'\n    images: [triton]\n")


def test_an_image_entry_covers_only_findings_about_its_images() -> None:
    s = findings.Suppression(("SOV-SUP-002",), "*", "why", (), ("triton", "vault"))
    assert s.matches("SOV-SUP-002", "r", "prod-uae", ("triton",))
    assert s.matches("SOV-SUP-002", "r", "prod-uae", ("triton", "vault"))
    assert not s.matches("SOV-SUP-002", "r", "prod-uae", ("triton", "keda"))
    assert not s.matches("SOV-SUP-002", "r", "prod-uae", ())
    report = findings.GateReport(stack="prod-uae")
    report.add([s], "rule", "SOV-SUP-002", "r", "m", images=("triton",))
    report.add([s], "rule", "SOV-SUP-002", "r", "m", images=("nvcr.io/x/unknown:1",))
    assert [f.status for f in report.findings] == ["suppressed", "failed"]


@pytest.fixture(scope="module")
def prod_record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = synthesize("prod-uae", build_dir=tmp_path_factory.mktemp("prod")).path
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def tenant_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """A tenant stack of every template, made as ``sovml tenant new`` makes it, synthesized."""
    from infra import tenants

    stacks, build = tmp_path_factory.mktemp("stacks"), tmp_path_factory.mktemp("build")
    out = []
    for tier in tenants.TEMPLATES:
        request = tenants.TenantRequest(
            f"t-{tier}",
            template=tier,
            emails=("ops@acme.example",),
            alert_webhook="https://itsm.example.ae/alertmanager",
            oidc_issuer="https://login.example.ae/realms/ml",
            oidc_jwks_uri="https://login.example.ae/realms/ml/certs",
            account_id="111122223333",
        )
        tenants.create_tenant(request, stacks)
        path = synthesize(f"t-{tier}", stacks_dir=stacks, build_dir=build).path
        out.append(json.loads(path.read_text()))
    return out


def _overlay_images(record: dict[str, Any]) -> set[str]:
    """The inventory images of each kustomize overlay the record applies. They are not in the
    record (the provider builds the overlay at deploy), but they run: the components' transform
    rewrites every one to the stack's source, by digest only where the lock pins one."""
    overlays = {
        Path(str((r.get("inputs") or {}).get("directory"))).name
        for r in record["resources"]
        if r["type"] == "kubernetes:kustomize/v2:Directory"
    }
    assert overlays <= set(OVERLAYS), overlays
    pins = load_lock()
    return {e.id for e in INVENTORY.values() if set(e.in_overlay) & overlays and e.id not in pins}


def _unpinned(record: dict[str, Any]) -> set[str]:
    return _overlay_images(record) | {
        identify(image) or image
        for r in resources_from_record(record)
        for _, image in images_of(r)
        if "@sha256:" not in image
    }


def test_the_reviewed_list_is_exactly_the_unpinned_images_the_example_stacks_run(
    prod_record: dict[str, Any], tenant_records: list[dict[str, Any]]
) -> None:
    """No stale id and no missing one: every image the production examples (prod-uae and a
    tenant of each template) run without a digest is named, by its inventory id, and nothing
    else is. The kustomize overlays' images belong to the list too: they run unpinned in the
    same stacks, though no finding names them (the record cannot see inside an overlay)."""
    unpinned = set().union(*map(_unpinned, [prod_record, *tenant_records]))
    listed = {
        i
        for s in findings.load_suppressions()
        if "SOV-SUP-002" in s.ids and not s.stacks
        for i in s.images
    }
    assert unpinned and unpinned == listed, (unpinned - listed, listed - unpinned)
    checkov = {i for s in findings.load_suppressions() if "CKV_K8S_43" in s.ids for i in s.images}
    assert checkov == listed


def test_prod_uae_refers_only_to_the_zone_mirror(prod_record: dict[str, Any]) -> None:
    """Every image and chart of prod-uae's record is in the zone's ECR of its allowed account."""
    host = "111122223333.dkr.ecr.me-central-1.amazonaws.com/"
    resources = resources_from_record(prod_record)
    images = [image for r in resources for _, image in images_of(r)]
    charts = [
        str(r.inputs.get("chart"))
        for r in resources
        if r.type.startswith("kubernetes:helm.sh/") and r.inputs.get("chart")
    ]
    assert images and charts
    assert all(i.startswith(host) for i in images), [i for i in images if not i.startswith(host)]
    assert all(c.startswith(f"oci://{host}") for c in charts), charts
    assert not any((r.inputs.get("repositoryOpts") or {}).get("repo") for r in resources)


BASE: dict[str, Any] = {
    "aws:region": "me-central-1",
    "owner": "ml-platform",
    "costCenter": "cc-1",
    "alertWebhookUrl": "https://itsm.example.ae/alertmanager",
    "gatewayOidcIssuer": "https://login.example.ae/realms/ml",
    "gatewayOidcJwksUri": "https://login.example.ae/realms/ml/certs",
}


def _problems(**overrides: Any) -> dict[str, cfgmod.ConfigProblem]:
    result = cfgmod.parse({**BASE, **overrides}, stack="t", source="stacks/Pulumi.t.yaml")
    assert isinstance(result, list), "expected problems"
    return {p.key: p for p in result}


@pytest.mark.parametrize("value", ["docker-hub", "MIRROR", "", 1, ["mirror"]])
def test_image_source_is_a_closed_set(value: Any) -> None:
    problem = _problems(imageSource=value, allowedAccountIds=["111122223333"])[
        "sovereign-ml:imageSource"
    ]
    text = str(problem)
    assert "stacks/Pulumi.t.yaml" in text and "upstream" in text and "mirror" in text


def test_the_mirror_needs_an_account() -> None:
    problem = _problems(imageSource="mirror")["sovereign-ml:imageSource"]
    assert "allowedAccountIds" in str(problem)


def test_mirror_with_an_account_is_accepted() -> None:
    cfg = cfgmod.parse(
        {**BASE, "imageSource": "mirror", "allowedAccountIds": ["111122223333"]},
        stack="t",
        source="stacks/Pulumi.t.yaml",
    )
    assert isinstance(cfg, cfgmod.PlatformConfig)
