"""components/katib.py under the synth's mocks, and its kustomize overlay read as data: pinned
manifests whose tags equal the inventory's, a closed KatibConfig (tpe on the Optuna suggestion
service, the StdOut collector, Job trials), restricted pods, no UI, default-deny with two
explicit allows. The overlay is not rendered here (its base is a remote, pinned URL)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from components._k8s import ENCRYPTED_STORAGE_CLASS
from components.katib import (
    CONTROLLER_PODS,
    DB_MANAGER_PODS,
    INJECTION_LABEL,
    OVERLAY,
    Katib,
    KatibArgs,
)
from pipelines.training import katib as experiment_lib
from policies import inventory
from tests.component_mocks import of_type, record

KATIB_IMAGES = {
    "katib-controller": "katib-controller",
    "katib-db-manager": "katib-db-manager",
    "katib-suggestion-optuna": "suggestion-optuna",
    "katib-metrics-collector": "file-metrics-collector",
}
"""Inventory id -> the image's name under ghcr.io/kubeflow/katib."""


def _katib(**kw: Any) -> Katib:
    args: dict[str, Any] = {
        "vpc_cidr": "10.40.0.0/16",
        "trial_namespaces": ["kubeflow", "risk-analytics"],
    }
    return Katib("katib", KatibArgs(**{**args, **kw}))


def _overlay() -> dict[str, Any]:
    return yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())


def _config() -> dict[str, Any]:
    return yaml.safe_load((OVERLAY / "katib-config.yaml").read_text())


def test_the_manifests_are_pinned_to_the_inventorys_release() -> None:
    """One release everywhere: the remote base's ref, the image tags the overlay sets and the
    images its KatibConfig names are the inventory's versions, from the inventory's upstreams."""
    overlay = _overlay()
    versions = {inventory.entry(i, "image").version for i in KATIB_IMAGES}
    assert versions == {"v0.19.0"}
    (base,) = overlay["resources"]
    assert base == (
        "https://github.com/kubeflow/katib/manifests/v1beta1/installs/katib-standalone?ref=v0.19.0"
    )
    tags = {i["name"]: i["newTag"] for i in overlay["images"]}
    assert tags == {
        inventory.entry("katib-controller", "image").upstream: "v0.19.0",
        inventory.entry("katib-db-manager", "image").upstream: "v0.19.0",
        "mysql": inventory.entry("mysql", "image").version,
    }
    runtime = _config()["runtime"]
    named = [c["image"] for c in runtime["metricsCollectors"]]
    named += [s["image"] for s in runtime["suggestions"]]
    assert sorted(named) == sorted(
        inventory.image(i) for i in ("katib-metrics-collector", "katib-suggestion-optuna")
    )
    for ident, name in KATIB_IMAGES.items():
        assert inventory.entry(ident, "image").upstream == f"ghcr.io/kubeflow/katib/{name}"


def test_the_config_is_closed_to_what_the_experiment_uses() -> None:
    """Only Job trials, the StdOut collector and tpe on the Optuna service: exactly what
    pipelines/training/katib.py's Experiment asks for, and nothing it does not."""
    config = _config()
    assert config["kind"] == "KatibConfig" and config["init"]["certGenerator"]["enable"] is True
    assert config["init"]["controller"]["trialResources"] == ["Job.v1.batch"]
    runtime = config["runtime"]
    assert set(runtime) == {"metricsCollectors", "suggestions"}
    (collector,) = runtime["metricsCollectors"]
    (suggestion,) = runtime["suggestions"]
    experiment = experiment_lib.experiment(
        "t", "kubeflow", None, "/d/t", "/d/s", 1, experiment_lib.Budget(2, 60, 1)
    )["spec"]
    assert collector["kind"] == experiment["metricsCollectorSpec"]["collector"]["kind"]
    assert suggestion["algorithmName"] == experiment["algorithm"]["algorithmName"] == "tpe"
    assert "suggestion-optuna" in suggestion["image"]
    assert experiment["trialTemplate"]["trialSpec"]["kind"] == "Job"
    security = collector["securityContext"]
    assert security["runAsNonRoot"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert suggestion["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def _patches() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (body["kind"], body["metadata"]["name"]): body
        for body in (yaml.safe_load(p["patch"]) for p in _overlay()["patches"])
    }


def test_no_ui_no_namespace_and_restricted_pods() -> None:
    patches = _patches()
    for deleted in (("Namespace", "kubeflow"), ("Deployment", "katib-ui"), ("Service", "katib-ui")):
        assert patches[deleted].get("$patch") == "delete", deleted
    for name in ("katib-controller", "katib-db-manager", "katib-mysql"):
        pod = patches[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["nodeSelector"] == {"sovereign-ml/pool": "system"}
        (container,) = pod["containers"]
        limits = container["resources"]["limits"]
        assert limits["memory"] == container["resources"]["requests"]["memory"], name
        if name != "katib-mysql":  # upstream's MySQL container already drops all, non-root
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
    # Only the controller talks to the Kubernetes API.
    tokens = {
        name: patches[("Deployment", name)]["spec"]["template"]["spec"][
            "automountServiceAccountToken"
        ]
        for name in ("katib-controller", "katib-db-manager", "katib-mysql")
    }
    assert tokens == {"katib-controller": True, "katib-db-manager": False, "katib-mysql": False}
    claim = patches[("PersistentVolumeClaim", "katib-mysql")]
    assert claim["spec"]["storageClassName"] == ENCRYPTED_STORAGE_CLASS


def test_component_opens_only_the_webhooks_and_the_reports() -> None:
    res = record(_katib)
    (directory,) = of_type(res, "kubernetes:kustomize/v2:Directory")
    assert directory["inputs"]["directory"] == str(OVERLAY)
    policies = {
        (p["inputs"]["metadata"]["namespace"], p["inputs"]["metadata"]["name"]): p["inputs"]["spec"]
        for p in of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert set(policies) == {
        ("kubeflow", "allow-katib-webhooks"),
        ("risk-analytics", "allow-to-katib-db-manager"),
        ("kubeflow", "allow-katib-reports-risk-analytics"),
    }
    webhooks = policies[("kubeflow", "allow-katib-webhooks")]
    assert webhooks["podSelector"] == {"matchLabels": CONTROLLER_PODS}
    assert webhooks["ingress"] == [
        {
            "from": [{"ipBlock": {"cidr": "10.40.0.0/16"}}],
            "ports": [{"protocol": "TCP", "port": 8443}],
        }
    ]
    reports = policies[("kubeflow", "allow-katib-reports-risk-analytics")]
    assert reports["podSelector"] == {"matchLabels": DB_MANAGER_PODS}
    assert reports["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6789}]
    labelled = {
        p["inputs"]["metadata"]["name"]: p["inputs"]["metadata"]["labels"]
        for p in of_type(res, "kubernetes:core/v1:NamespacePatch")
    }
    key, value = INJECTION_LABEL
    assert labelled == {"kubeflow": {key: value}, "risk-analytics": {key: value}}
    assert not of_type(res, "kubernetes:networking.k8s.io/v1:Ingress")
    assert not of_type(res, "kubernetes:core/v1:Service")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"vpc_cidr": "10.40.0.1/16"}, "KatibArgs.vpc_cidr: '10.40.0.1/16'"),
        ({"vpc_cidr": "any"}, "KatibArgs.vpc_cidr: 'any'"),
        ({"namespace": "kube-system"}, "namespace 'kube-system'; allowed a platform namespace"),
        ({"trial_namespaces": [""]}, "namespace ''; allowed a platform namespace"),
    ],
)
def test_bad_arguments_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        record(lambda: _katib(**kw))


def test_label_patches_restate_the_namespaces_admission_label() -> None:
    """With the zone's mirror the namespaces carry the image-admission opt-in; the patch says
    it again (the gate judges every Namespace object's labels, patches included)."""
    from components.image_admission import ADMISSION_LABEL

    res = record(lambda: _katib(namespace_labels=dict([ADMISSION_LABEL])))
    for patch in of_type(res, "kubernetes:core/v1:NamespacePatch"):
        labels = patch["inputs"]["metadata"]["labels"]
        assert labels[ADMISSION_LABEL[0]] == ADMISSION_LABEL[1]
        assert labels[INJECTION_LABEL[0]] == INJECTION_LABEL[1]
