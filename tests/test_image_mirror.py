"""The zone's registry, signature admission and ``sovml images mirror`` (issue 26, part three).

Judged where it ends up: prod-uae's synth record (every mirror reference names a repository the
record creates; every namespace that runs workloads opts into admission; the policy covers the
mirror and trusts the signing key), the components under mocks (validation before any child),
and the exact commands the mirror dry run prints.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from components.image_admission import (
    ADMISSION_LABEL,
    RUN_HOOKS,
    ImageAdmission,
    ImageAdmissionArgs,
    chart_values,
)
from components.registry_mirror import RegistryMirror, RegistryMirrorArgs
from infra.cli.app import app
from infra.images.mirror import MirrorError, chart_commands, mirror_commands
from policies import inventory
from policies.rules.supply_chain import values_images
from tests.component_mocks import ACCESS, KEY, children_named_after, of_type, record

GOLDEN = Path(__file__).parent / "golden"
HOST = "111122223333.dkr.ecr.me-central-1.amazonaws.com"
"""prod-uae's zone registry."""
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Rollout"}
ADMISSION_EXEMPT = {"kube-system", "cosign-system"}
"""Namespaces that run pods without the opt-in label: kube-system (EKS add-ons come from AWS's
own registry; the program does not own the namespace) and the controller's own."""
runner = CliRunner()


def _refs(node: Any, out: list[str]) -> list[str]:
    """Every string under ``node`` that names the zone's registry."""
    if isinstance(node, dict):
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)
    elif isinstance(node, str) and HOST in node:
        out.append(node)
    return out


# -- prod-uae's record ---------------------------------------------------------------------------


def _template(res: list[dict[str, Any]]) -> dict[str, Any]:
    (template,) = of_type(res, "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate")
    return template


def test_every_mirror_reference_names_a_repository_the_mirror_pushes(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    prod = stack_records["prod-uae"]
    # Repositories are created by the push itself, from the registry's ROOT template: none is
    # declared, and every name a workload refers to is one the mirror job pushes.
    assert not of_type(prod["resources"], "aws:ecr/repository:Repository")
    template = _template(prod["resources"])["inputs"]
    assert (template["prefix"], template["appliedFors"]) == ("ROOT", ["CREATE_ON_PUSH"])
    repos = set(inventory.mirror_repositories())
    seen = set()
    for r in prod["resources"]:
        if r["type"].startswith("aws:ecr/"):
            continue
        refs = _refs(r["inputs"], [])
        if r["type"] == "kubernetes:helm.sh/v3:Release":
            # Helm values split into registry and repository: judge them joined, as the chart.
            refs += [i for _, i in values_images(r["inputs"]["values"])]
        for ref in refs:
            if ref.endswith("/**") or ref == HOST:  # the policy's glob (below); a registry key
                continue
            if ref == f"{HOST}/istio":  # istiod's global.hub: the prefix of the istio/* mirrors
                assert {"istio/pilot", "istio/proxyv2"} <= repos
                continue
            path = inventory.mirror_path(ref)
            if path is None:  # a Helm value split into repository and tag
                path = ref.split(f"{HOST}/", 1)[1]
            assert path in repos, (r["urn"], ref)
            seen.add(path)
    # The walk must see what it judges: images, charts and the admission controller's image.
    assert {"nvidia/tritonserver", "charts/vault", "sigstore/policy-controller"} <= seen
    assert {"prometheus/prometheus", "kedacore/keda", "kiwigrid/k8s-sidecar"} <= seen


def test_repositories_created_on_push_are_encrypted_immutable_scanned_and_tagged(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    res = stack_records["prod-uae"]["resources"]
    keys = {k["urn"]: k for k in of_type(res, "aws:kms/key:Key")}
    (registry_key,) = [k for k in keys.values() if k["name"] == "mirror-key"]
    assert registry_key["inputs"]["enableKeyRotation"] is True and registry_key["protect"]
    template = _template(res)
    inputs = template["inputs"]
    assert inputs["imageTagMutability"] == "IMMUTABLE"
    (enc,) = inputs["encryptionConfigurations"]
    assert enc["encryptionType"] == "KMS" and enc["kmsKey"].startswith("arn:aws:kms:")
    assert registry_key["urn"] in template["dependencies"]
    # Deleting the template would let the next push create a plain repository: protected.
    assert template["protect"] is True
    # The stack's tags, as the provider puts them on what the program declares.
    assert inputs["resourceTags"] == {
        "owner": "ml-platform", "cost-center": "cc-4100-ml", "data-classification": "restricted",
        "stack": "prod-uae", "environment": "prod", "residency-zone": "uae",
        "tier": "enterprise", "managed-by": "pulumi",
    }  # fmt: skip
    rule = json.loads(inputs["lifecyclePolicy"])
    # Only untagged images expire: the tagged ones are the pinned versions workloads run.
    assert [r["selection"]["tagStatus"] for r in rule["rules"]] == ["untagged"]
    (scanning,) = of_type(
        res, "aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration"
    )
    assert scanning["inputs"] == {
        "scanType": "BASIC",
        "rules": [
            {
                "scanFrequency": "SCAN_ON_PUSH",
                "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}],
            }
        ],
    }
    assert not of_type(res, "aws:ecr/lifecyclePolicy:LifecyclePolicy")


def test_the_template_role_is_ecr_s_alone_and_may_do_only_what_creation_needs(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    res = stack_records["prod-uae"]["resources"]
    (role,) = [r for r in of_type(res, "aws:iam/role:Role") if r["name"] == "mirror-creation-role"]
    trust = json.loads(role["inputs"]["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ecr.amazonaws.com"}]
    (grants,) = [
        r
        for r in of_type(res, "aws:iam/rolePolicy:RolePolicy")
        if r["name"] == "mirror-creation-policy"
    ]
    statements = json.loads(grants["inputs"]["policy"])["Statement"]
    key_arn = _template(res)["inputs"]["encryptionConfigurations"][0]["kmsKey"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (
            ["ecr:CreateRepository", "ecr:TagResource"],
            "arn:aws:ecr:me-central-1:123456789012:repository/*",
        ),
        (["kms:CreateGrant", "kms:RetireGrant", "kms:DescribeKey"], key_arn),
    ]
    assert _template(res)["inputs"]["customRoleArn"].endswith(":role/" + role["id"])


def test_the_signing_key_is_an_ecc_sign_verify_key_under_the_stack_alias(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    res = stack_records["prod-uae"]["resources"]
    (key,) = [k for k in of_type(res, "aws:kms/key:Key") if k["name"] == "mirror-signing-key"]
    assert key["inputs"]["keyUsage"] == "SIGN_VERIFY"
    assert key["inputs"]["customerMasterKeySpec"] == "ECC_NIST_P256"
    assert key["protect"] is True
    aliases = {a["inputs"]["name"] for a in of_type(res, "aws:kms/alias:Alias")}
    assert "alias/sovml-prod-uae-image-signing" in aliases


def _workload_namespaces(res: list[dict]) -> set[str]:
    """Namespaces where pods run: workload objects and Helm releases."""
    out = set()
    for r in res:
        kind = r["type"].rsplit(":", 1)[-1]
        if kind in WORKLOAD_KINDS or r["type"] == "kubernetes:helm.sh/v3:Release":
            ns = r["inputs"].get("namespace") or (r["inputs"].get("metadata") or {}).get(
                "namespace"
            )
            out.add(ns or "default")
    return out


def test_every_namespace_that_runs_workloads_opts_into_admission(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    res = stack_records["prod-uae"]["resources"]
    labels = {
        n["inputs"]["metadata"]["name"]: n["inputs"]["metadata"]["labels"]
        for n in of_type(res, "kubernetes:core/v1:Namespace")
    }
    running = _workload_namespaces(res)
    assert {"serving", "vault", "monitoring", "feature-store"} <= running
    key, value = ADMISSION_LABEL
    for ns in running - ADMISSION_EXEMPT:
        assert ns in labels, f"pods run in {ns}, which the program does not declare"
        assert labels[ns].get(key) == value, ns
    for tenant in stack_records["prod-uae"]["config"]["tenants"]:
        assert labels[tenant].get(key) == value, tenant
    # The controller's own namespace must not gate the controller.
    assert key not in labels["cosign-system"]


def test_the_admission_policy_covers_the_mirror_and_trusts_the_signing_key(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    res = stack_records["prod-uae"]["resources"]
    (policy,) = of_type(res, "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy")
    spec = policy["inputs"]["spec"]
    globs = [i["glob"] for i in spec["images"]]
    assert globs == [f"{HOST}/**"]
    assert fnmatch.fnmatch(f"{HOST}/nvidia/tritonserver:24.10-py3", globs[0])
    assert not fnmatch.fnmatch("nvcr.io/nvidia/tritonserver:24.10-py3", globs[0])
    (key,) = [k for k in of_type(res, "aws:kms/key:Key") if k["name"] == "mirror-signing-key"]
    authority = spec["authorities"][0]
    assert authority["name"] == "platform"
    kms = authority["key"]["kms"]
    assert kms.startswith("awskms:///arn:aws:kms:me-central-1:") and kms.endswith(
        f":key/{key['id']}"
    )
    (release,) = [
        r
        for r in of_type(res, "kubernetes:helm.sh/v3:Release")
        if r["inputs"]["name"] == "policy-controller"
    ]
    values = release["inputs"]["values"]
    assert release["inputs"]["chart"] == f"oci://{HOST}/charts/policy-controller"
    assert release["inputs"]["namespace"] == "cosign-system"
    assert values["webhook"]["configData"] == {"no-match-policy": "deny"}
    assert values["webhook"]["failurePolicy"] == "Fail"
    pin = inventory.load_lock()["policy-controller"].digest
    assert values["webhook"]["image"]["repository"] == f"{HOST}/sigstore/policy-controller"
    assert values["webhook"]["image"]["version"] == pin
    assert "digest" not in values["webhook"]["image"] and release["inputs"]["disableWebhooks"]
    # The policy needs the chart's CRD: it is declared after the release.
    assert release["urn"] in policy["dependencies"]


def test_upstream_stacks_create_no_mirror_and_no_admission(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    for stack in ("dev", "staging"):
        res = stack_records[stack]["resources"]
        assert not of_type(res, "aws:ecr/repository:Repository"), stack
        assert not of_type(res, "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy")
        for n in of_type(res, "kubernetes:core/v1:Namespace"):
            assert ADMISSION_LABEL[0] not in n["inputs"]["metadata"]["labels"], (stack, n["urn"])


# -- the components under mocks ------------------------------------------------------------------


def _mirror(**kw: Any) -> RegistryMirror:
    args = dict(name_prefix="p", account_id="123456789012", repositories=["a/b", "charts/c"])
    args.update(kw)
    return RegistryMirror("mirror", RegistryMirrorArgs(**args))


def test_registry_mirror_children_and_dev_posture() -> None:
    res = record(lambda: _mirror(protect=False))
    assert not of_type(res, "aws:ecr/repository:Repository")
    template = _template(res)
    assert not template["protect"] and "resourceTags" not in template["inputs"]
    assert not any(r["protect"] for r in res)
    children_named_after(res, "sovereign-ml:registry_mirror:RegistryMirror", "mirror")


def test_registry_mirror_names_each_repository_it_is_given() -> None:
    def build() -> None:
        mirror = _mirror(repository_tags={"owner": "o"})
        mirror.repository_urls.apply(lambda urls: seen.update(urls))

    seen: dict[str, str] = {}
    res = record(build)
    assert seen == {
        "a/b": "123456789012.dkr.ecr.me-central-1.amazonaws.com/a/b",
        "charts/c": "123456789012.dkr.ecr.me-central-1.amazonaws.com/charts/c",
    }
    assert _template(res)["inputs"]["resourceTags"] == {"owner": "o"}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"repositories": []}, "RegistryMirrorArgs.repositories: []"),
        ({"repositories": ["a", "a"]}, "RegistryMirrorArgs.repositories: ['a', 'a']"),
        ({"repositories": ["UPPER/x"]}, "RegistryMirrorArgs.repositories: ['UPPER/x']"),
        ({"repositories": ["../etc"]}, "RegistryMirrorArgs.repositories: ['../etc']"),
        ({"repositories": ["a//b"]}, "RegistryMirrorArgs.repositories: ['a//b']"),
        ({"deletion_window_days": 6}, "RegistryMirrorArgs.deletion_window_days: 6; allowed 7-30"),
        ({"untagged_expiry_days": 0}, "RegistryMirrorArgs.untagged_expiry_days: 0; allowed >= 1"),
        ({"repository_tags": {"aws:x": "v"}}, "RegistryMirrorArgs.repository_tags: {'aws:x'"),
        ({"repository_tags": {"": "v"}}, "RegistryMirrorArgs.repository_tags: {'': 'v'}"),
        ({"repository_tags": {"k": "v" * 257}}, "RegistryMirrorArgs.repository_tags: {'k'"),
        ({"repository_tags": {"k": 1}}, "RegistryMirrorArgs.repository_tags: {'k': 1}"),
    ],
)
def test_registry_mirror_refuses_bad_args_before_any_resource(
    kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as exc:
        _mirror(**kw)
    assert str(exc.value).startswith(message)


PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"


def _admission(**kw: Any) -> ImageAdmission:
    args = dict(
        namespace="cosign-system",
        registry_host=HOST,
        signing_key_arn=KEY,
        cluster_access=ACCESS,
        vpc_cidr="10.40.0.0/16",
    )
    args.update(kw)
    return ImageAdmission("admission", ImageAdmissionArgs(**args))


def test_image_admission_declares_policy_release_role_and_control_plane_path() -> None:
    res = record(lambda: _admission(vendor_keys={"nvidia": PEM}))
    (policy,) = of_type(res, "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy")
    authorities = policy["inputs"]["spec"]["authorities"]
    assert [a["name"] for a in authorities] == ["platform", "nvidia"]
    assert authorities[0]["key"]["kms"] == f"awskms:///{KEY}"
    assert authorities[1]["key"]["data"] == PEM
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(inline["inputs"]["policy"])["Statement"]
    verify = next(s for s in statements if s["Sid"] == "ReadSigningPublicKey")
    assert verify["Resource"] == KEY and "kms:Sign" not in verify["Action"]
    read = next(s for s in statements if s["Sid"] == "ReadZoneRepositories")
    assert read["Resource"] == "arn:aws:ecr:me-central-1:111122223333:repository/*"
    assert not any(a.startswith("ecr:Put") for s in statements for a in s["Action"] if a != "*")
    (netpol,) = of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert netpol["inputs"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8443}]
    children_named_after(res, "sovereign-ml:image_admission:ImageAdmission", "admission")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"namespace": "kube-system"}, "ImageAdmissionArgs.namespace: 'kube-system'"),
        ({"registry_host": "ghcr.io"}, "ImageAdmissionArgs.registry_host: 'ghcr.io'"),
        (
            {"registry_host": "111122223333.dkr.ecr.me-central-1.amazonaws.com.evil.io"},
            "ImageAdmissionArgs.registry_host",
        ),
        ({"vpc_cidr": "ten"}, "ImageAdmissionArgs.vpc_cidr: 'ten'"),
        ({"vendor_keys": {"platform": PEM}}, "ImageAdmissionArgs.vendor_keys['platform']"),
        ({"vendor_keys": {"nv": "not a key"}}, "ImageAdmissionArgs.vendor_keys['nv']"),
        ({"replicas": 1}, "ImageAdmissionArgs.replicas: 1; allowed >= 2"),
    ],
)
def test_image_admission_refuses_bad_args_before_any_resource(
    kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as exc:
        _admission(**kw)
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize("pinned", [True, False])
def test_the_policy_controller_values_are_what_the_gate_reads_back(pinned: bool) -> None:
    """The chart's ``{repository, version}`` block, with no extra key: the gate's reader builds
    the very reference the sources gave (``@`` before a digest, ``:`` before a tag)."""
    digest = "sha256:" + "ab" * 32
    pins = {"policy-controller": inventory.Pin("policy-controller", digest, "test source", "x")}
    sources = inventory.mirror_sources(HOST, pins if pinned else {})
    args = ImageAdmissionArgs(
        namespace="cosign-system",
        registry_host=HOST,
        signing_key_arn=KEY,
        cluster_access=ACCESS,
        vpc_cidr="10.40.0.0/16",
        sources=sources,
    )
    values = chart_values(args, "arn:aws:iam::123456789012:role/r")
    block = values["webhook"]["image"]
    assert set(block) == {"repository", "version", "pullPolicy"}
    assert block["version"] == (digest if pinned else "v0.8.2")
    assert dict(values_images(values)) == {"webhook.image": sources.image("policy-controller")}
    assert "leasescleanup" not in values and RUN_HOOKS is False


# -- sovml images mirror --------------------------------------------------------------------------


def test_the_mirror_dry_run_prints_the_exact_commands_for_prod_uae(update_golden: bool) -> None:
    result = runner.invoke(app, ["images", "mirror", "prod-uae", "--dry-run"])
    assert result.exit_code == 0, result.output
    path = GOLDEN / "prod-uae.mirror.txt"
    if update_golden:
        path.write_text(result.stdout)
    assert result.stdout == path.read_text(), "review, then pytest --update-golden"
    lines = result.stdout.splitlines()
    key = "awskms:///alias/sovml-prod-uae-image-signing"
    pin = inventory.load_lock()["policy-controller"].digest
    assert lines[2] == "export AWS_REGION=me-central-1"
    assert (
        f"crane copy nvcr.io/nvidia/tritonserver:24.10-py3 {HOST}/nvidia/tritonserver:24.10-py3"
        in lines
    )
    assert (
        f"cosign sign --yes --tlog-upload=false --key {key} {HOST}/nvidia/tritonserver:24.10-py3"
        in lines
    )
    # A pinned image is copied and signed by its digest.
    assert (
        "crane copy ghcr.io/sigstore/policy-controller/policy-controller@"
        f"{pin} {HOST}/sigstore/policy-controller:v0.8.2" in lines
    )
    assert (
        f"cosign sign --yes --tlog-upload=false --key {key} {HOST}/sigstore/policy-controller@{pin}"
        in lines
    )
    assert "helm pull vault --repo https://helm.releases.hashicorp.com --version 0.30.0" in lines
    assert f"helm push vault-0.30.0.tgz oci://{HOST}/charts" in lines
    images = [e for e in inventory.INVENTORY.values() if e.kind == "image"]
    charts = [e for e in inventory.INVENTORY.values() if e.kind == "chart"]
    assert sum(line.startswith("crane copy ") for line in lines) == len(images)
    assert sum(line.startswith("cosign sign ") for line in lines) == len(images)
    assert sum(line.startswith("helm push ") for line in lines) == len(charts)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prod-uae"], "error: only --dry-run is offered"),
        (["dev", "--dry-run"], "error: stack dev pulls from upstream (imageSource: upstream)"),
        (["nope", "--dry-run"], "error: stacks/Pulumi.nope.yaml: no such stack file"),
        (["../prod-uae", "--dry-run"], "error: stack name ../prod-uae:"),
    ],
)
def test_the_mirror_refuses_what_it_cannot_mirror_with_exit_2(
    argv: list[str], message: str
) -> None:
    result = runner.invoke(app, ["images", "mirror", *argv])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.output


def test_a_chart_whose_mirror_helm_cannot_push_to_is_refused() -> None:
    (entry,) = [e for e in inventory.INVENTORY.values() if e.id == "vault-chart"]
    bad = inventory.Entry(**{**entry.__dict__, "mirror": "charts/hashicorp-vault"})
    with pytest.raises(MirrorError, match="must end with the chart name 'vault'"):
        chart_commands(bad, HOST)
    with pytest.raises(MirrorError):
        mirror_commands(
            stack="s",
            name_prefix="p",
            account_id="111122223333",
            region="me-central-1",
            inventory={bad.id: bad},
            pins={},
        )


# -- the gate rule on the real record -------------------------------------------------------------


def _sup003(record: dict[str, Any]) -> list[str]:
    from policies.rules import evaluate
    from policies.rules.record import context_from_record, resources_from_record

    found = evaluate(resources_from_record(record), context_from_record(record))
    return [v.message for v in found if v.rule_id == "SOV-SUP-003"]


def test_sup_003_passes_prod_uae_and_fails_it_without_a_label_or_the_policy(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    prod = stack_records["prod-uae"]
    assert _sup003(prod) == []
    unlabelled = copy.deepcopy(prod)
    for r in unlabelled["resources"]:
        if r["type"] == "kubernetes:core/v1:Namespace" and r["name"] == "baseline-ns-serving":
            del r["inputs"]["metadata"]["labels"][ADMISSION_LABEL[0]]
    (message,) = _sup003(unlabelled)
    assert message.startswith("namespace serving runs workloads without the admission label")
    without_policy = copy.deepcopy(prod)
    without_policy["resources"] = [
        r for r in prod["resources"] if not r["type"].endswith(":ClusterImagePolicy")
    ]
    (message,) = _sup003(without_policy)
    assert message.startswith("no ClusterImagePolicy covers the zone's registry")
