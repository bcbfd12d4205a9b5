"""The images the Helm charts pull: every one is in the inventory, set in our values at the path
the chart version reads, and, in prod-uae, pulled from the zone's mirror.

No chart can be rendered offline, so the paths come from each chart's source (the table below
cites the file and the commit read). The stored copies were mostly of other chart versions than
the ones pinned, and some files were not read at all in the session that wrote this table: each
row says which. The layouts are those the charts document for their pinned series; that is a
reading, not a rendering, and `helm template` at the pinned versions is the check still owed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.synth.runner import synthesize
from policies import inventory
from policies.inventory import SHAPES, InventoryError, parse_inventory, shape_image
from policies.rules.base import Context, Resource
from policies.rules.record import resources_from_record
from policies.rules.supply_chain import (
    CHART_DEFAULT,
    image_block,
    images_from_zone_registry,
    images_of,
    values_images,
)

HOST = "111122223333.dkr.ecr.me-central-1.amazonaws.com"
"""prod-uae's zone registry."""
HELM = "kubernetes:helm.sh/v3:Release"

# fmt: off
# (chart id, values path, image id, source read). Each source is the chart file that declares
# the image block, at the commit read; "tag:" gives where the pinned tag was corroborated.
KPS = "prometheus-community/helm-charts charts/kube-prometheus-stack/values.yaml"
CHART_IMAGES: list[tuple[str, str, str, str]] = [
    ("kube-prometheus-stack", "prometheusOperator.image", "prometheus-operator",
     f"{KPS} ({{registry, repository, tag, sha}}; keys not read here); tag: the "
     "chart's appVersion v0.77.1 at 65.1.1 (helm list of 65.1.1 releases)"),
    ("kube-prometheus-stack", "prometheusOperator.prometheusConfigReloader.image",
     "prometheus-config-reloader", f"{KPS}; tag: --prometheus-config-reloader flag of 65.1.1"),
    ("kube-prometheus-stack", "prometheusOperator.admissionWebhooks.patch.image",
     "kube-webhook-certgen", f"{KPS}; tag: values.yaml patch.image.tag at 65.x"),
    ("kube-prometheus-stack", "prometheus.prometheusSpec.image", "prometheus",
     f"{KPS}; tag: a 65.1.1 Prometheus object (image quay.io/prometheus/prometheus:v2.54.1)"),
    ("kube-prometheus-stack", "alertmanager.alertmanagerSpec.image", "alertmanager",
     f"{KPS}; tag: image lists rendered from 65.1.1"),
    ("kube-prometheus-stack", "grafana.image", "grafana",
     "grafana/helm-charts charts/grafana/values.yaml (subchart 8.5.*, keys not read here; "
     "{registry, repository, tag, sha}); tag: image lists rendered from 65.1.1"),
    ("kube-prometheus-stack", "grafana.sidecar.image", "k8s-sidecar",
     "grafana/helm-charts charts/grafana/values.yaml sidecar.image (subchart 8.5.*)"),
    ("kube-prometheus-stack", "kube-state-metrics.image", "kube-state-metrics",
     "prometheus-community/helm-charts charts/kube-state-metrics/values.yaml (5.25.*, not read; "
     "{registry, repository, tag, sha}); tag: appVersion 2.13.0"),
    ("prometheus-pushgateway", "image", "pushgateway",
     "prometheus-community/helm-charts charts/prometheus-pushgateway/values.yaml "
     "({repository, tag}; Chart.yaml read at 0170cf4 is 3.2.0); tag: helm.sh/chart "
     "prometheus-pushgateway-2.15.0 objects carry app version v1.10.0"),
    ("dcgm-exporter", "image", "dcgm-exporter-image",
     "NVIDIA/dcgm-exporter deployment/values.yaml (read at 000ca0f, an old 2.x copy: "
     "{repository, tag}); tag: 3.3.9-3.6.1-ubuntu22.04, not read in the 3.6.1 chart"),
    ("argo-rollouts", "controller.image", "argo-rollouts-controller",
     "argoproj/argo-helm charts/argo-rollouts/values.yaml ({registry, repository, tag}; "
     "keys not read; Chart.yaml read at 000d8c7 is 2.31.1); tag: appVersion v1.8.0, not read"),
    ("keda", "image.keda", "keda-operator",
     "kedacore/charts keda/values.yaml (read at 023f21c, chart 2.11: {repository, tag}; "
     "2.19 adds registry); tag: appVersion = chart version 2.19.0"),
    ("keda", "image.metricsApiServer", "keda-metrics-apiserver",
     "kedacore/charts keda/values.yaml"),
    ("keda", "image.webhooks", "keda-admission-webhooks", "kedacore/charts keda/values.yaml"),
    ("fluent-bit", "image", "fluent-bit-image",
     "fluent/helm-charts charts/fluent-bit/values.yaml (read at 011820b; {repository, tag}; "
     "testFramework.image busybox:latest is switched off); tag: appVersion 2.2.0 of 0.40.0 "
     "(not read here)"),
    ("vault-chart", "server.image", "vault", "hashicorp/vault-helm values.yaml server.image "
     "(injector.enabled false: no injector or agent image)"),
    ("cluster-autoscaler", "image", "cluster-autoscaler-1.33",
     "kubernetes/autoscaler charts/cluster-autoscaler/values.yaml image.{repository, tag}"),
    ("policy-controller-chart", "webhook.image", "policy-controller",
     "sigstore/helm-charts charts/policy-controller/values.yaml + templates/_helpers.tpl "
     "(read at 0101916: {repository, version}; leasescleanup.image has no switch, hooks off)"),
    # Zero trust (#22), certificates and single sign-on: {repository, tag} blocks.
    *((("cert-manager-chart", path, ident,
        "cert-manager/cert-manager deploy/charts/cert-manager/values.yaml (controller block read "
        "at 95d6fc4, a pre-1.15 copy: {registry, repository, tag, digest}; the other components' "
        "blocks not read); tag: the chart's appVersion = chart version v1.19.1, not read"))
      for path, ident in (("image", "cert-manager-controller"),
                          ("webhook.image", "cert-manager-webhook"),
                          ("cainjector.image", "cert-manager-cainjector"),
                          ("startupapicheck.image", "cert-manager-startupapicheck"),
                          ("acmesolver.image", "cert-manager-acmesolver"))),
    ("aws-privateca-issuer-chart", "image", "aws-privateca-issuer",
     "cert-manager/aws-privateca-issuer charts/aws-pca-issuer/values.yaml (read at 88b698b: "
     "{repository, pullPolicy, tag, digest}); tag: Chart.yaml v1.7.0 read at 387cca1"),
    ("dex-chart", "image", "dex", "dexidp/helm-charts charts/dex/values.yaml (read at f20211f: "
     "{repository, pullPolicy, tag}); tag: Chart.yaml 0.22.0 appVersion 2.42.0 read at 0469c37"),
    ("oauth2-proxy-chart", "image", "oauth2-proxy",
     "oauth2-proxy/manifests helm/oauth2-proxy/values.yaml (not read here: {repository, tag}); "
     "tag: Chart.yaml 7.7.12 appVersion 7.6.0 read at 005456f"),
    # Istio's charts use a value holding a "/" verbatim as the whole reference (shape
    # reference); the templates were read on master copies, not at the pinned 1.28.10.
    ("istiod-chart", "image", "istio-pilot",
     "istio/istio manifests/charts/istio-control/istio-discovery templates/_helpers.tpl "
     "istio-image (contains \"/\" .Values.pilot.image), templates/zzy_descope_legacy.yaml "
     "(pilot.* copied to the top level) and values.yaml at 007204d (image: pilot at the top)"),
    ("istiod-chart", "global.proxy.image", "istio-proxyv2",
     "istio/istio istio-discovery files/injection-template.yaml (read at 0134e00: "
     "contains \"/\" .Values.global.proxy.image; global.proxy_init.image alike, set by "
     "components/mesh.py to the same reference)"),
    ("istio-cni-chart", "image", "istio-install-cni",
     "istio/istio manifests/charts/istio-cni/templates/daemonset.yaml (read at 00ace66: "
     "contains \"/\" .Values.image)"),
]
# fmt: on


@pytest.fixture(scope="module")
def prod_record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = synthesize("prod-uae", build_dir=tmp_path_factory.mktemp("prod")).path
    return json.loads(path.read_text())


def _releases(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """prod-uae's Helm releases by inventory chart id (read back from the mirror location)."""
    by_mirror = {e.mirror: e.id for e in inventory.INVENTORY.values() if e.kind == "chart"}
    out = {}
    for r in record["resources"]:
        if r["type"] == HELM:
            out[by_mirror[inventory.mirror_path(r["inputs"]["chart"])]] = r["inputs"]
    return out


def _at(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def test_the_table_is_the_inventory() -> None:
    """The cited table and the inventory's chart images are the same set of paths (the test
    cannot drift from the data it vouches for)."""
    listed = {
        (e.in_chart, e.values_path, e.id)
        for e in inventory.INVENTORY.values()
        if e.in_chart and not e.id.startswith("cluster-autoscaler-1.3")
    }
    table = {(c, p, i) for c, p, i, _ in CHART_IMAGES if i != "cluster-autoscaler-1.33"}
    assert listed == table and len(table) == 28


@pytest.mark.parametrize(("chart", "path", "ident", "source"), CHART_IMAGES)
def test_prod_uae_sets_each_chart_image_at_the_path_the_chart_reads(
    prod_record: dict[str, Any], chart: str, path: str, ident: str, source: str
) -> None:
    releases = _releases(prod_record)
    block = _at(releases[chart]["values"], path)
    found = inventory.INVENTORY[ident]
    if found.values_shape == "reference":
        assert isinstance(block, str), (chart, path, source)
        image = block
    else:
        assert isinstance(block, dict), (chart, path, source)
        assert set(shape_image("r/x:1", found.values_shape)) <= set(block)
        image = image_block(block)
    pin = inventory.load_lock().get(ident)
    expected = f"{HOST}/{found.mirror}@{pin.digest}" if pin else f"{HOST}/{found.mirror}:"
    assert image.startswith(expected), (image, source)
    assert inventory.identify(image) == ident


def test_every_image_in_prod_uae_is_the_mirror_host(prod_record: dict[str, Any]) -> None:
    """Every image field of every Helm release's values and of every pod spec names the
    zone's registry; and nothing is left to a chart default at a path we know of."""
    seen = []
    for r in resources_from_record(prod_record):
        for where, image in images_of(r):
            seen.append(image)
            assert image.startswith(f"{HOST}/"), (r.urn, where, image)
            assert CHART_DEFAULT not in image
    assert len(set(seen)) >= 20


def test_the_policy_controller_release_runs_no_hooks(prod_record: dict[str, Any]) -> None:
    """The chart's leases-cleanup hook pulls cgr.dev/chainguard/kubectl:latest-dev and has no
    values switch: the release is installed without hooks; the others keep theirs (the
    Prometheus operator's certificate jobs are hooks)."""
    releases = _releases(prod_record)
    assert releases["policy-controller-chart"]["disableWebhooks"] is True
    assert "disableWebhooks" not in releases["kube-prometheus-stack"]
    assert releases["fluent-bit"]["values"]["testFramework"] == {"enabled": False}


# -- the gate's reader and the shapes ------------------------------------------------------------

DIGEST = "sha256:" + "cd" * 32


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "reference",
    [
        f"{HOST}/prometheus/prometheus:v2.54.1",
        f"{HOST}/prometheus/prometheus:v2.54.1@{DIGEST}",
        "quay.io/prometheus/prometheus:v2.54.1",
    ],
)
def test_each_shape_reads_back_as_the_reference(shape: str, reference: str) -> None:
    """What the components write (shape_image) is what the gate reads (values_images), for
    every shape: the SOV-SUP rules judge the reference the chart will pull."""
    shaped = shape_image(reference, shape)
    # A reference is the string under the path's own image key; the others are a block there.
    values = {"a": shaped if shape == "reference" else {"image": shaped}}
    ((path, image),) = list(values_images(values))
    assert path == "a.image"
    if shape == "repository-version" and "@" in reference:
        # The chart joins a whole digest with @ and drops the tag: same content, by digest.
        assert image == reference.replace(":v2.54.1", "")
    else:
        assert image == reference


def test_a_digest_only_mirror_reference_keeps_its_tag_for_tag_joining_charts() -> None:
    ref = f"{HOST}/prometheus/prometheus@{DIGEST}"
    assert shape_image(ref, "repository-tag", "v2.54.1")["tag"] == f"v2.54.1@{DIGEST}"
    sha = shape_image(ref, "registry-repository-tag-sha", "v2.54.1")
    assert sha == {
        "registry": HOST,
        "repository": "prometheus/prometheus",
        "tag": "v2.54.1",
        "sha": "cd" * 32,
    }
    with pytest.raises(ValueError, match="image values shape 'helm'"):
        shape_image(ref, "helm", "v1")
    with pytest.raises(ValueError, match="neither tag nor digest"):
        shape_image(f"{HOST}/x", "repository-tag")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # A tag without a repository keeps the chart's public default: never in the zone.
        ({"image": {"tag": "v1"}}, [("image", f"{CHART_DEFAULT}:v1")]),
        ({"image": {"registry": HOST, "tag": "v1"}}, [("image", f"{HOST}/{CHART_DEFAULT}:v1")]),
        # Blocks one level inside an image mapping (keda).
        (
            {"image": {"keda": {"registry": "ghcr.io", "repository": "k/k", "tag": "2"}}},
            [("image.keda", "ghcr.io/k/k:2")],
        ),
        # Only a pull policy: nothing set, nothing reported (the path table catches it).
        ({"image": {"pullPolicy": "Always"}}, []),
        ({"image": {"repository": "r", "version": DIGEST}}, [("image", f"r@{DIGEST}")]),
        ({"image": {"repository": "r", "version": "v1"}}, [("image", "r:v1")]),
    ],
)
def test_values_images_reads_every_block_we_can_write(
    values: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert list(values_images(values)) == expected


def test_a_tag_only_block_fails_sup_001_in_production() -> None:
    """An attacker's values keep the chart's public repository and set only a tag."""
    r = Resource(
        urn="urn:x",
        type=HELM,
        name="r",
        inputs={
            "name": "r",
            "chart": f"oci://{HOST}/charts/keda",
            "values": {"image": {"keda": {"tag": "2.19.0"}}},
        },
    )
    ctx = Context(zone="uae", environment="prod", allowed_account_ids=("111122223333",))
    found = images_from_zone_registry(r, ctx)
    assert found == [
        f"Helm release r: values image.keda: image {CHART_DEFAULT}:2.19.0 is outside the zone's "
        "registry: mirror it (policies/inventory.toml) and set imageSource: mirror "
        f"(111122223333.dkr.ecr.me-central-1.amazonaws.com)"
    ]


# -- the inventory's chart-image fields ----------------------------------------------------------

GOOD = """
[[entry]]
id = "keda"
kind = "chart"
upstream = "https://kedacore.github.io/charts"
chart = "keda"
version = "2.19.0"
mirror = "charts/keda"
used_by = ["components/keda.py"]

[[entry]]
id = "keda-operator"
kind = "image"
upstream = "ghcr.io/kedacore/keda"
version = "2.19.0"
mirror = "kedacore/keda"
in_chart = "keda"
values_path = "image.keda"
values_shape = "registry-repository-tag"
used_by = ["components/keda.py"]
"""


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('in_chart = "keda"', 'in_chart = "nope"'), "entry 'keda-operator': in_chart: no chart"),
        (('in_chart = "keda"', 'in_chart = "keda-operator"'), "in_chart: no chart 'keda-op"),
        (('values_shape = "registry-repository-tag"', 'values_shape = "x"'), "values_shape: 'x'"),
        (('values_path = "image.keda"', 'values_path = "image..keda"'), "values_path: 'image..k"),
        (('values_path = "image.keda"\n', ""), "values_path: missing"),
        (
            (
                'version = "2.19.0"\nmirror = "kedacore',
                'version = "latest-dev"\nmirror = "kedacore',
            ),
            "'latest-dev' is not a pinned version",
        ),
        (
            ('mirror = "charts/keda"', 'mirror = "charts/keda"\nvalues_path = "image"'),
            "entry 'keda': values_path: only images a chart pulls have it",
        ),
    ],
)
def test_a_malformed_chart_image_is_refused(edit: tuple[str, str], message: str) -> None:
    assert edit[0] in GOOD
    parse_inventory(GOOD)
    with pytest.raises(InventoryError) as exc:
        parse_inventory(GOOD.replace(edit[0], edit[1], 1))
    assert message in str(exc.value)


def test_chart_images_sets_every_image_and_refuses_two_at_one_path() -> None:
    found = parse_inventory(GOOD)
    sources = inventory.mirror_sources(HOST, {}, found)
    values = {"image": {"pullPolicy": "Always"}, "x": 1}
    out = sources.chart_images("keda", values)
    assert out["image"]["keda"] == {
        "registry": HOST,
        "repository": "kedacore/keda",
        "tag": "2.19.0",
    }
    assert out["image"]["pullPolicy"] == "Always" and values == {
        "image": {"pullPolicy": "Always"},
        "x": 1,
    }
    image = GOOD[GOOD.index('[[entry]]\nid = "keda-operator"') :]
    twin = GOOD + image.replace('"keda-operator"', '"keda-twin"')
    sources = inventory.mirror_sources(HOST, {}, parse_inventory(twin))
    with pytest.raises(ValueError, match=r"share values path image\.keda; pick one"):
        sources.chart_images("keda", {})
    assert sources.chart_images("keda", {}, only=("keda-twin",))["image"]["keda"]["tag"] == "2.19.0"
