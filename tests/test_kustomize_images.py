"""The images of the kustomize overlays (Kubeflow Pipelines, Katib) come from the stack's source.

``components/_kustomize.py`` rewrites every image of a ``kustomize.v2.Directory``'s children (a
Pulumi ``transforms`` option: the engine runs it on the children of packaged components, see
https://www.pulumi.com/docs/iac/concepts/options/transforms/) and refuses any image that is not
an inventory entry marked ``in_overlay`` for that overlay. Tested here on manifest dicts of every
workload shape, with the attacker's spellings, and through the components' own options.

The overlays are not rendered here (remote bases), so which images they run was read, not
observed: :data:`READ` says, per inventory id, what was read. `kustomize build` of each overlay
piped through ``sovml images verify-rendered`` is the check still owed.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components import katib as katib_mod
from components import kubeflow as kubeflow_mod
from components._kustomize import (
    KustomizeImageError,
    image_transform,
    rewrite_images,
    source_image,
)
from infra.config.stackfile import load_stack
from infra.images.sources import sources_for
from policies import inventory
from policies.inventory import (
    OVERLAYS,
    InventoryError,
    Pin,
    mirror_sources,
    parse_inventory,
    upstream_sources,
)
from tests.component_mocks import ACCESS, AUDIT, HMAC_KEY, KEY, record

HOST = "111122223333.dkr.ecr.me-central-1.amazonaws.com"
"""prod-uae's zone registry."""
MIRROR = mirror_sources(HOST, {})
UPSTREAM = upstream_sources()
DIGEST = "sha256:" + "ab" * 32
PINNED = mirror_sources(
    HOST,
    {
        "kfp-api-server": Pin(
            "kfp-api-server", DIGEST, "test: a made-up pin", "2026-12-05T00:00:00Z"
        )
    },
)
API = inventory.image("kfp-api-server")
"""``ghcr.io/kubeflow/kfp-api-server:2.4.0``, as the upstream manifests name it."""

# fmt: off
# Inventory id -> what was read to list it (repository, path; the version read). Not rendered.
KFP_READ = ("a public install guide's `docker pull` list for env/platform-agnostic?ref=2.4.0; "
            "kubeflow/pipelines manifests/kustomize/base/pipeline/kustomization.yaml at 2.4.1 "
            "(commit 00922b21: the same ghcr.io/kubeflow/kfp-* names, newTag 2.4.1)")
READ: dict[str, str] = {
    **{i: KFP_READ for i in (
        "kfp-api-server", "kfp-persistence-agent", "kfp-scheduled-workflow-controller",
        "kfp-frontend", "kfp-viewer-crd-controller", "kfp-visualization-server",
        "kfp-cache-server", "kfp-cache-deployer", "kfp-metadata-envoy", "kfp-metadata-writer",
        "ml-metadata-store-server", "argo-workflow-controller")},
    "argoexec": "the workflow controller's --executor-image (third-party/argo deployment patch, "
                "read at a later release, v3.7.14); the v3.4.17-license-compliance tag from "
                "public KFP 2.4 install notes. NOT read at 2.4.0",
    "kfp-driver": "V2_DRIVER_IMAGE of base/pipeline/ml-pipeline-apiserver-deployment.yaml "
                  "(read at 2.16.0) and backend/src/v2/compiler/argocompiler/container.go (the "
                  "env variable overrides the default); tag 2.4.0 NOT read at 2.4.0",
    "kfp-launcher": "V2_LAUNCHER_IMAGE, same files as kfp-driver; tag 2.4.0 NOT read at 2.4.0",
    "kubeflow-profile-controller": "kubeflow/manifests applications/profiles/upstream/base/"
                                   "kustomization.yaml (images: newTag v1.10.0)",
    "kubeflow-kfam": "kubeflow/manifests applications/profiles/upstream/overlays/kubeflow/"
                     "kustomization.yaml (images: newTag v1.10.0)",
    "kfp-metacontroller": "NOT read at 2.4.0 (the index holds no 2.4.0 copy of third-party/"
                          "metacontroller/base/stateful-set.yaml). Read instead: that file at "
                          "commit 13e1af75 (docker.io/metacontrollerio/metacontroller:v2.0.4, "
                          "2021 layout) and 0bcb4da0 (ghcr.io/metacontroller/metacontroller:"
                          "v4.11.22, kubeflow/pipelines#11656, Feb 2025, after 2.4.0); the tag "
                          "v2.6.1 from the maintainers' 2.4.0 follow-up (kubeflow/manifests#2970, "
                          "2025-01-31; kubeflow/pipelines#11608: 'upgrade metacontroller from "
                          "2.6.1 to 4.x'), the name from the v2.0.4 line (no kustomize images: "
                          "in base/kustomization.yaml)",
    "kfp-profile-controller-python": "NOT read at 2.4.0. base/installs/multi-user/pipelines-"
                                     "profile-controller/deployment.yaml read in kubeflow/"
                                     "manifests' synced copy apps/pipeline/upstream/... (commit "
                                     "1ef4bde5: python:3.9); KFP's own stored copies say "
                                     "python:3.7 (a833c3f9, older) and "
                                     "python:3.8.13-slim-bullseye (026d5d7a, undated); its "
                                     "kustomization.yaml sets no images:",
    "mysql": "components/manifests/katib/kustomization.yaml sets newTag 8.0.40 on `mysql`",
    "katib-controller": "components/manifests/katib/kustomization.yaml (newTag v0.19.0)",
    "katib-db-manager": "components/manifests/katib/kustomization.yaml (newTag v0.19.0)",
    "katib-suggestion-optuna": "components/manifests/katib/katib-config.yaml (our KatibConfig)",
    "katib-metrics-collector": "components/manifests/katib/katib-config.yaml (our KatibConfig)",
}
# fmt: on


def _pod(*images: str, init: tuple[str, ...] = (), ephemeral: tuple[str, ...] = ()) -> dict:
    return {
        "containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
        **({"initContainers": [{"name": "i", "image": im} for im in init]} if init else {}),
        **(
            {"ephemeralContainers": [{"name": "e", "image": im} for im in ephemeral]}
            if ephemeral
            else {}
        ),
    }


def _shapes(spec: dict) -> dict[str, dict[str, Any]]:
    """The real object shapes that carry a pod spec, each around ``spec``."""
    template = {"metadata": {"labels": {"app": "x"}}, "spec": spec}
    return {
        "Deployment": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"template": template},
        },
        "StatefulSet": {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "spec": {"serviceName": "x", "template": template},
        },
        "DaemonSet": {"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": {"template": template}},
        "Job": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": template}},
        "CronJob": {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}},
        },
        "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec},
    }


def _images(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "image"] + [
            i for v in node.values() for i in _images(v)
        ]
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    return []


@pytest.mark.parametrize(
    "kind", ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"]
)
def test_every_workload_shape_is_rewritten_to_the_mirror_and_the_input_kept(kind: str) -> None:
    spec = _pod(
        API,
        inventory.image("kfp-frontend"),
        init=(inventory.image("kfp-launcher"),),
        ephemeral=(inventory.image("kfp-driver"),),
    )
    manifest = _shapes(spec)[kind]
    before = copy.deepcopy(manifest)
    out = rewrite_images(manifest, MIRROR, "kfp")
    assert manifest == before
    assert _images(out) == [
        f"{HOST}/kubeflow/kfp-api-server:2.4.0",
        f"{HOST}/kubeflow/kfp-frontend:2.4.0",
        f"{HOST}/kubeflow/kfp-launcher:2.4.0",
        f"{HOST}/kubeflow/kfp-driver:2.4.0",
    ]
    # Nothing but the images moved.
    stripped = yaml.safe_dump(out).replace(f"{HOST}/kubeflow/", "ghcr.io/kubeflow/")
    assert yaml.safe_load(stripped) == before


def test_upstream_stacks_keep_the_upstream_names() -> None:
    out = rewrite_images(_shapes(_pod(API))["Deployment"], UPSTREAM, "kfp")
    assert _images(out) == [API]


@pytest.mark.parametrize(
    "spelling",
    [
        "mysql:8.0.40",
        "library/mysql:8.0.40",
        "docker.io/mysql:8.0.40",
        "docker.io/library/mysql:8.0.40",
        "index.docker.io/library/mysql:8.0.40",
    ],
)
def test_docker_hub_shorthands_are_one_image(spelling: str) -> None:
    assert source_image(spelling, MIRROR, "katib") == f"{HOST}/library/mysql:8.0.40"
    # The same image in an overlay not marked for it is refused, whatever the spelling.
    with pytest.raises(
        KustomizeImageError, match="mysql is not marked for this overlay; add 'kfp'"
    ):
        source_image(spelling, MIRROR, "kfp")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (
            "ghcr.io/evil/miner:1.0",
            "not in the inventory; add an inventory entry with upstream = "
            "'ghcr.io/evil/miner', version = '1.0' and in_overlay = ['kfp']",
        ),
        # A registry with a port is another registry, not the upstream one.
        ("registry.example:5000/kubeflow/kfp-api-server:2.4.0", "not in the inventory"),
        ("ghcr.io/kubeflow/kfp-api-server:2.5.0", "only kfp-api-server (2.4.0)"),
        ("ghcr.io/kubeflow/kfp-api-server", "neither tag nor digest"),
        ("ghcr.io/kubeflow/kfp-api-server@sha256:12", "is not sha256:<64 hex>"),
        (f"ghcr.io/kubeflow/kfp-api-server:2.4.0@{DIGEST}", "the lock pins no digest"),
        (f"{HOST}/kubeflow/kfp-api-server:2.4.0", "already a registry mirror reference"),
        (" ghcr.io/kubeflow/kfp-api-server:2.4.0", "not an image reference"),
        ("", "not an image reference"),
    ],
)
def test_hostile_references_are_refused_naming_the_image(reference: str, message: str) -> None:
    with pytest.raises(KustomizeImageError, match=re.escape(message)) as err:
        rewrite_images(_shapes(_pod(API, init=(reference,)))["Job"], MIRROR, "kfp")
    assert str(err.value).startswith("kustomize overlay 'kfp': image ")


@pytest.mark.parametrize("value", [None, 5, True])
def test_an_image_that_is_not_a_string_is_refused(value: Any) -> None:
    with pytest.raises(KustomizeImageError, match="not an image reference"):
        rewrite_images({"spec": {"containers": [{"name": "c", "image": value}]}}, MIRROR, "kfp")


def test_a_digest_is_kept_only_when_it_is_the_locked_one() -> None:
    pinned = f"{HOST}/kubeflow/kfp-api-server@{DIGEST}"
    assert source_image(API, PINNED, "kfp") == pinned
    assert source_image(f"{API}@{DIGEST}", PINNED, "kfp") == pinned
    assert source_image(f"ghcr.io/kubeflow/kfp-api-server@{DIGEST}", PINNED, "kfp") == pinned
    other = "sha256:" + "cd" * 32
    with pytest.raises(KustomizeImageError, match=f"the lock pins {DIGEST}"):
        source_image(f"{API}@{other}", PINNED, "kfp")
    # Upstream, the manifest's own digest is the stricter pull: kept as written.
    assert source_image(f"{API}@{other}", UPSTREAM, "kfp") == f"{API}@{other}"


def test_image_variables_and_executor_arguments_are_rewritten() -> None:
    container = {
        "name": "c",
        "image": API,
        "env": [
            {"name": "V2_DRIVER_IMAGE", "value": inventory.image("kfp-driver")},
            {"name": "V2_LAUNCHER_IMAGE", "value": inventory.image("kfp-launcher")},
            {"name": "LOG_LEVEL", "value": "ghcr.io/not/an-image-field:1"},
        ],
        "args": ["--configmap", "x", "--executor-image", inventory.image("argoexec")],
        "command": [f"--executor-image={inventory.image('argoexec')}"],
    }
    out = rewrite_images({"spec": {"containers": [container]}}, MIRROR, "kfp")
    (c,) = out["spec"]["containers"]
    assert [v["value"] for v in c["env"]] == [
        f"{HOST}/kubeflow/kfp-driver:2.4.0",
        f"{HOST}/kubeflow/kfp-launcher:2.4.0",
        "ghcr.io/not/an-image-field:1",
    ]
    argo = f"{HOST}/ml-pipeline/argoexec:v3.4.17-license-compliance"
    assert c["args"] == ["--configmap", "x", "--executor-image", argo]
    assert c["command"] == [f"--executor-image={argo}"]
    hostile = {**container, "args": ["--executor-image", "quay.io/argoproj/argoexec:v3.4.17"]}
    with pytest.raises(KustomizeImageError, match=re.escape("quay.io/argoproj/argoexec:v3.4.17")):
        rewrite_images({"spec": {"containers": [hostile]}}, MIRROR, "kfp")
    hidden = {
        **container,
        "env": [{"name": "V2_DRIVER_IMAGE", "valueFrom": {"configMapKeyRef": {}}}],
    }
    with pytest.raises(KustomizeImageError, match="without a literal value"):
        rewrite_images({"spec": {"containers": [hidden]}}, MIRROR, "kfp")


def test_an_image_anywhere_in_a_custom_resource_is_judged_too() -> None:
    """Deny by default: a CRD's pod template deep inside its spec is not skipped."""
    cr = {"kind": "Workflow", "spec": {"templates": [{"container": {"image": "alpine:3.20"}}]}}
    with pytest.raises(KustomizeImageError, match=re.escape("'alpine:3.20': not in the inventory")):
        rewrite_images(cr, MIRROR, "kfp")
    # A CRD's schema names `image` as a property (a mapping), which is not an image.
    crd = {
        "kind": "CustomResourceDefinition",
        "spec": {"properties": {"image": {"type": "string"}}},
    }
    assert rewrite_images(crd, MIRROR, "kfp") == crd


def _args(type_: str, props: dict) -> pulumi.ResourceTransformArgs:
    return pulumi.ResourceTransformArgs(
        custom=True, type_=type_, name="x", props=props, opts=pulumi.ResourceOptions()
    )


def test_the_pulumi_transform_rewrites_children_and_passes_the_directory() -> None:
    transform = image_transform(MIRROR, "kfp")
    deployment = _shapes(_pod(API))["Deployment"]
    result = transform(_args("kubernetes:apps/v1:Deployment", deployment))
    assert _images(result.props) == [f"{HOST}/kubeflow/kfp-api-server:2.4.0"]
    directory = {"directory": "components/manifests/kfp", "namespace": "kubeflow"}
    assert transform(_args("kubernetes:kustomize/v2:Directory", directory)) is None
    with pytest.raises(KustomizeImageError, match=re.escape("ghcr.io/evil/miner:1.0")):
        transform(_args("kubernetes:batch/v1:Job", _shapes(_pod("ghcr.io/evil/miner:1.0"))["Job"]))


@pytest.fixture
def directories(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, pulumi.ResourceOptions]]:
    """Each kustomize Directory the components declare, with its options (the real class runs)."""
    seen: list[tuple[str, pulumi.ResourceOptions]] = []
    real = k8s.kustomize.v2.Directory

    def spy(name: str, *args: Any, **kw: Any) -> Any:
        seen.append((kw["directory"], kw["opts"]))
        return real(name, *args, **kw)

    monkeypatch.setattr(k8s.kustomize.v2, "Directory", spy)
    return seen


def _kubeflow(owners: tuple[tuple[str, str], ...]) -> None:
    kubeflow_mod.Kubeflow(
        "kf",
        kubeflow_mod.KubeflowArgs(
            namespace="kubeflow",
            name_prefix="p",
            artifacts_bucket="b",
            artifacts_bucket_arn="arn:aws:s3:::b",
            storage_key_arn=KEY,
            cluster_access=ACCESS,
            db_mode="in-cluster",
            tenants=["risk"] if owners else [],
            audit=AUDIT,
            pseudonymization_key_arn=HMAC_KEY,
            sources=MIRROR,
            profile_owners=owners,
        ),
    )


@pytest.mark.parametrize(
    ("owners", "overlay"), [((), "kfp"), ((("risk", "a@b.ae"),), "kfp-multi-user")]
)
def test_kubeflow_applies_its_overlay_through_the_transform(
    directories: list, owners: tuple, overlay: str
) -> None:
    record(lambda: _kubeflow(owners))
    ((directory, opts),) = directories
    assert Path(directory).name == overlay
    (transform,) = opts.transforms
    out = transform(_args("kubernetes:apps/v1:Deployment", _shapes(_pod(API))["Deployment"]))
    assert _images(out.props) == [f"{HOST}/kubeflow/kfp-api-server:2.4.0"]
    with pytest.raises(KustomizeImageError, match=f"overlay {overlay!r}: image 'mysql:8.0.40'"):
        transform(
            _args("kubernetes:apps/v1:Deployment", _shapes(_pod("mysql:8.0.40"))["Deployment"])
        )


def test_the_profile_controller_creates_profile_pods_from_the_mirror() -> None:
    controller = _shapes(_pod("python:3.11.11-slim-bookworm"))["Deployment"]
    controller["metadata"] = {"name": kubeflow_mod.PROFILE_CONTROLLER}
    controller["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "FRONTEND_IMAGE", "value": "ghcr.io/kubeflow/kfp-frontend"},
        {"name": "KFP_VERSION", "value": "2.4.0"},
    ]
    extra = kubeflow_mod.profile_images(MIRROR)
    out = extra("kubernetes:apps/v1:Deployment", controller)
    env = {v["name"]: v["value"] for v in out["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {
        "KFP_VERSION": "2.4.0",
        "FRONTEND_IMAGE": f"{HOST}/kubeflow/kfp-frontend",
        "FRONTEND_TAG": "2.4.0",
        "VISUALIZATION_SERVER_IMAGE": f"{HOST}/kubeflow/kfp-visualization-server",
        "VISUALIZATION_SERVER_TAG": "2.4.0",
    }
    # Pinned: sync.py joins image and tag, so the mirror's tag is named, the digest cannot be.
    pinned = mirror_sources(
        HOST, {"kfp-frontend": Pin("kfp-frontend", DIGEST, "test pin", "2026-12-05T00:00:00Z")}
    )
    out = kubeflow_mod.profile_images(pinned)("kubernetes:apps/v1:Deployment", controller)
    env = {v["name"]: v["value"] for v in out["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["FRONTEND_IMAGE"], env["FRONTEND_TAG"]) == (
        f"{HOST}/kubeflow/kfp-frontend",
        "2.4.0",
    )
    other = {**controller, "metadata": {"name": "ml-pipeline"}}
    assert extra("kubernetes:apps/v1:Deployment", other) is other


def test_katib_rewrites_its_pods_and_the_images_its_config_names(directories: list) -> None:
    record(
        lambda: katib_mod.Katib(
            "katib", katib_mod.KatibArgs(vpc_cidr="10.40.0.0/16", sources=MIRROR)
        )
    )
    ((directory, opts),) = directories
    assert Path(directory).name == "katib"
    (transform,) = opts.transforms
    text = (katib_mod.OVERLAY / "katib-config.yaml").read_text()
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "katib-config", "namespace": "kubeflow"},
        "data": {"katib-config.yaml": text},
    }
    out = transform(_args("kubernetes:core/v1:ConfigMap", config)).props
    parsed = yaml.safe_load(out["data"]["katib-config.yaml"])
    assert _images(parsed) == [
        f"{HOST}/kubeflow/katib/file-metrics-collector:v0.19.0",
        f"{HOST}/kubeflow/katib/suggestion-optuna:v0.19.0",
    ]
    original = yaml.safe_load(text)
    assert (
        yaml.safe_load(out["data"]["katib-config.yaml"].replace(f"{HOST}/", "ghcr.io/")) == original
    )
    mysql = _shapes(_pod("mysql:8.0.40"))["Deployment"]
    out = transform(_args("kubernetes:apps/v1:Deployment", mysql)).props
    assert _images(out) == [f"{HOST}/library/mysql:8.0.40"]
    hostile = {**config, "data": {"katib-config.yaml": text.replace("v0.19.0", "v0.18.0", 1)}}
    with pytest.raises(KustomizeImageError, match=re.escape("file-metrics-collector:v0.18.0")):
        transform(_args("kubernetes:core/v1:ConfigMap", hostile))
    # Upstream stacks keep the reviewed file byte for byte (no re-dump, comments kept).
    upstream = katib_mod.config_images(UPSTREAM)
    assert upstream("kubernetes:core/v1:ConfigMap", config) is config
    with pytest.raises(ValueError, match=re.escape("no katib-config.yaml")):
        transform(_args("kubernetes:core/v1:ConfigMap", {**config, "data": {}}))


def test_every_overlay_image_resolves_to_the_mirror_in_prod_uae() -> None:
    cfg, _, _ = load_stack("prod-uae")
    sources = sources_for(cfg)
    marked = [e for e in inventory.INVENTORY.values() if e.in_overlay]
    assert {o for e in marked for o in e.in_overlay} == set(OVERLAYS)
    for e in marked:
        for overlay in e.in_overlay:
            assert source_image(e.reference, sources, overlay).startswith(f"{HOST}/{e.mirror}")


def test_the_overlay_names_are_the_manifest_directories_and_every_entry_says_what_was_read() -> (
    None
):
    manifests = Path(kubeflow_mod.__file__).parent / "manifests"
    assert set(OVERLAYS) == {p.name for p in manifests.iterdir() if p.is_dir()}
    assert set(READ) == {e.id for e in inventory.INVENTORY.values() if e.in_overlay}


GOOD = """
[[entry]]
id = "a"
kind = "image"
upstream = "ghcr.io/x/a"
version = "1.0"
mirror = "x/a"
used_by = ["t"]
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('in_overlay = ["nope"]', "allowed distinct names of kfp, kfp-multi-user, katib"),
        ("in_overlay = []", "allowed distinct names"),
        ('in_overlay = ["kfp", "kfp"]', "allowed distinct names"),
        ('in_overlay = "kfp"', "allowed distinct names"),
        ("in_overlay = [1]", "allowed distinct names"),
    ],
)
def test_a_malformed_overlay_mark_is_refused(extra: str, message: str) -> None:
    with pytest.raises(InventoryError, match=f"entry 'a': in_overlay: .*{message}"):
        parse_inventory(GOOD + extra + "\n")


def test_only_images_outside_a_chart_carry_an_overlay_mark() -> None:
    chart = GOOD.replace('kind = "image"', 'kind = "chart"').replace(
        'upstream = "ghcr.io/x/a"', 'upstream = "https://charts.example"\nchart = "a"'
    )
    with pytest.raises(InventoryError, match="in_overlay: only images outside a chart"):
        parse_inventory(chart + 'in_overlay = ["kfp"]\n')
    assert parse_inventory(GOOD + 'in_overlay = ["kfp"]\n')["a"].in_overlay == ("kfp",)
