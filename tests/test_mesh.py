# ruff: noqa: E501  (the refusal table keeps one case per line)
"""The service mesh: the component under mocks, and its authorization table against the
NetworkPolicies of the synthesized example stacks (each ingress peer has its ALLOW policy and
each ALLOW policy its NetworkPolicy)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from components._mesh_paths import (
    BY_ADDRESS,
    TIGHTENED,
    UNMAPPED,
    MeshPath,
    mesh_paths,
    principal,
)
from infra.mesh import GATEWAY_NAMESPACES
from infra.synth.runner import synthesize
from policies import inventory
from policies.rules import Context, evaluate
from policies.rules.record import resources_from_record
from tests.component_mocks import children_named_after, of_type, record

HELM = "kubernetes:helm.sh/v3:Release"
AP = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
PA = "kubernetes:security.istio.io/v1:PeerAuthentication"
NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NS = "kubernetes:core/v1:Namespace"
NAME_LABEL = "kubernetes.io/metadata.name"
ENROLLED = ["kubeflow", "feature-store", "serving", "monitoring", "risk-analytics"]


def _mesh(**kw: Any) -> Any:
    from components.mesh import ServiceMesh, ServiceMeshArgs

    args: dict[str, Any] = {
        "enrolled_namespaces": ENROLLED,
        "paths": mesh_paths(ENROLLED, ["risk-analytics"], keda_namespace=False, tracking=True),
        "vpc_cidr": "10.40.0.0/16",
    }
    return ServiceMesh("mesh", ServiceMeshArgs(**{**args, **kw}))


def test_the_mesh_is_pinned_strict_and_denies_by_default() -> None:
    res = record(_mesh)
    releases = {r["inputs"]["chart"]: r["inputs"] for r in of_type(res, HELM)}
    assert set(releases) == {"base", "cni", "istiod"}
    for inputs in releases.values():
        assert inputs["version"] == "1.28.10"
        assert (
            inputs["repositoryOpts"]["repo"]
            == "https://istio-release.storage.googleapis.com/charts"
        )
    assert releases["cni"]["namespace"] == "kube-system"
    assert releases["istiod"]["namespace"] == releases["base"]["namespace"] == "istio-system"
    values = releases["istiod"]["values"]
    assert values["meshConfig"]["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    assert values["meshConfig"]["accessLogFile"] == "/dev/stdout"
    assert values["image"] == inventory.image("istio-pilot")
    proxy = inventory.image("istio-proxyv2")
    assert values["global"]["proxy"]["image"] == values["global"]["proxy_init"]["image"] == proxy
    assert values["global"]["hub"] == "docker.io/istio" and values["global"]["tag"] == "1.28.10"
    # The CNI agent: no privileged istio-init container in any injected pod.
    assert values["cni"] == values["pilot"]["cni"] == {"enabled": True}
    assert values["global"]["proxy"]["privileged"] is False
    # Native sidecars: init containers (the model puller) reach the network, Jobs complete.
    assert values["env"] == {"ENABLE_NATIVE_SIDECARS": "true"}
    assert values["replicaCount"] == 2 and values["autoscaleEnabled"] is False
    assert values["global"]["defaultPodDisruptionBudget"] == {"enabled": True}
    assert releases["cni"]["values"]["image"] == inventory.image("istio-install-cni")
    (peer,) = of_type(res, PA)
    assert peer["inputs"]["metadata"]["namespace"] == "istio-system"
    assert peer["inputs"]["spec"] == {"mtls": {"mode": "STRICT"}}
    policies = {
        (r["inputs"]["metadata"]["namespace"], r["inputs"]["metadata"]["name"]): r["inputs"]["spec"]
        for r in of_type(res, AP)
    }
    assert policies[("istio-system", "allow-nothing")] == {}
    assert policies[("feature-store", "allow-feature-clients")]["rules"][0]["from"] == [
        {
            "source": {
                "principals": [
                    principal("serving", "triton"),
                    principal("kubeflow", "pipeline-runner"),
                ]
            }
        }
    ]
    assert policies[("kubeflow", "allow-tracking-clients")] == {
        "action": "ALLOW",
        "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
        "rules": [
            {
                "from": [
                    {"source": {"principals": [principal("risk-analytics", "pipeline-runner")]}}
                ],
                "to": [{"operation": {"ports": ["5000"]}}],
            }
        ],
    }
    assert policies[("serving", "allow-monitoring-scrape")]["rules"][0]["from"] == [
        {
            "source": {
                "principals": [
                    "cluster.local/ns/monitoring/sa/prometheus-kube-prometheus-prometheus"
                ]
            }
        }
    ]
    # Every enrolled namespace reaches istiod past its default deny; istiod takes only them.
    egress = {
        r["inputs"]["metadata"]["namespace"]
        for r in of_type(res, NP)
        if r["inputs"]["metadata"]["name"] == "allow-to-istiod"
    }
    assert egress == set(ENROLLED)
    children_named_after(res, "sovereign-ml:mesh:ServiceMesh", "mesh")


def test_every_row_is_one_allow_policy_and_a_single_replica_has_no_budget() -> None:
    res = record(lambda: _mesh(replicas=1))
    paths = mesh_paths(ENROLLED, ["risk-analytics"], keda_namespace=False, tracking=True)
    assert len(of_type(res, AP)) == len(paths) + 1
    istiod = next(r for r in of_type(res, HELM) if r["inputs"]["chart"] == "istiod")
    assert istiod["inputs"]["values"]["global"]["defaultPodDisruptionBudget"] == {"enabled": False}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"enrolled_namespaces": []}, r"enrolled_namespaces: \[\]; allowed a non-empty list"),
        ({"enrolled_namespaces": ["serving", "serving"]}, r"allowed a non-empty list of unique"),
        ({"enrolled_namespaces": ["serving", "istio-system"]}, r"\['istio-system'\]; allowed any namespace but istio-system, kube-system"),
        ({"enrolled_namespaces": ["kube-system"], "paths": []}, r"\['kube-system'\]; allowed any"),
        ({"vpc_cidr": "ten"}, r"vpc_cidr: 'ten'; allowed an IPv4 CIDR"),
        ({"replicas": 0}, r"replicas: 0; allowed 1-5"),
        ({"access_log": "/tmp/log"}, r"access_log: '/tmp/log'; allowed '/dev/stdout'"),
        ({"paths": [MeshPath("vault", "allow-x", namespaces=("serving",))]}, r"paths\[vault/allow-x\]: namespace 'vault'; allowed"),
        ({"paths": [MeshPath("serving", "allow-x")]}, r"paths\[serving/allow-x\]: no principals or namespaces"),
        ({"paths": [MeshPath("serving", "allow-x", principals=("*",))]}, r"sources \['\*'\]; allowed exact cluster.local/ns/<ns>/sa/<sa>"),
        ({"paths": [MeshPath("serving", "allow-x", principals=("cluster.local/ns/kubeflow/sa/*",))]}, r"sources \['cluster.local/ns/kubeflow/sa/\*'\]"),
        ({"paths": [MeshPath("serving", "allow-x", namespaces=("*",))]}, r"sources \['\*'\]"),
        ({"paths": [MeshPath("serving", "allow-x", principals=("spiffe://other/ns/a/sa/b",))]}, r"sources \['spiffe://other"),
        ({"paths": [MeshPath("serving", "a", namespaces=("kubeflow",))] * 2}, r"paths\[serving/a\]: duplicate policy name"),
        ({"paths": [MeshPath("serving", "a", namespaces=("kubeflow",), ports=(0,))]}, r"ports \[0\]; allowed 1-65535"),
    ],
)  # fmt: skip
def test_bad_args_are_refused_before_any_resource(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        record(lambda: _mesh(**kw))


# -- the table against the NetworkPolicies of the example stacks ---------------------------------


@pytest.fixture(scope="module", params=["prod-uae", "dev"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = synthesize(request.param, build_dir=tmp_path_factory.mktemp(request.param)).path
    return json.loads(path.read_text())


def _objects(rec: dict, typ: str) -> list[dict]:
    return [r["inputs"] for r in rec["resources"] if r["type"] == typ]


def _source_namespaces(peer: dict, here: str, labels: dict[str, dict]) -> list[str] | None:
    """The namespaces a NetworkPolicy peer admits (None: an ipBlock or a mesh-label peer)."""
    if "ipBlock" in peer:
        return None
    selector = (peer.get("namespaceSelector") or {}).get("matchLabels")
    if selector is None:
        return [here]
    return [n for n, lab in labels.items() if all(lab.get(k) == v for k, v in selector.items())]


def _ingress(rec: dict) -> Iterator[tuple[str, str, dict, frozenset[int], dict]]:
    """(namespace, policy, pod selector labels, ports, peer) of every NetworkPolicy ingress."""
    for np_ in _objects(rec, NP):
        meta, spec = np_["metadata"], np_["spec"]
        selector = (spec.get("podSelector") or {}).get("matchLabels") or {}
        for rule in spec.get("ingress") or []:
            ports = frozenset(p["port"] for p in rule.get("ports") or [])
            for peer in rule.get("from") or []:
                yield meta["namespace"], meta["name"], selector, ports, peer


def _allows(rec: dict) -> Iterator[tuple[str, str, dict, frozenset[int], set[str]]]:
    """(namespace, policy, selector, ports, source namespaces) of every ALLOW policy but the
    root's allow-nothing."""
    for ap in _objects(rec, AP):
        spec = ap["spec"]
        for rule in spec.get("rules") or []:
            sources: set[str] = set()
            for f in rule["from"]:
                sources |= {
                    p.split("/ns/")[1].split("/")[0] for p in f["source"].get("principals", [])
                }
                sources |= set(f["source"].get("namespaces", []))
            ports = frozenset(
                int(p) for t in rule.get("to", []) for p in t["operation"].get("ports", [])
            )
            selector = (spec.get("selector") or {}).get("matchLabels") or {}
            yield ap["metadata"]["namespace"], ap["metadata"]["name"], selector, ports, sources


def test_every_network_peer_has_an_identity_policy_and_back(stack: dict) -> None:
    # Kubernetes labels every namespace with its own name (the peers select by that label).
    labels = {
        n["metadata"]["name"]: {**n["metadata"]["labels"], NAME_LABEL: n["metadata"]["name"]}
        for n in _objects(stack, NS)
    }
    meshed = {n for n, lab in labels.items() if lab.get("istio-injection") == "enabled"}
    allows = list(_allows(stack))
    by_address = [a for a in allows if not a[4]]  # ALLOW by ipBlocks (and SNI): no principals
    unmapped, outside, checked = set(), set(), 0
    for ns, name, selector, ports, peer in _ingress(stack):
        sources = _source_namespaces(peer, ns, labels)
        if sources is None or ns not in meshed:
            assert (ns, name) in UNMAPPED or ns not in meshed, (ns, name, peer)
            unmapped.add((ns, name))
            continue
        if ns in GATEWAY_NAMESPACES and name in TIGHTENED:  # the mesh admits none of it
            continue
        if (ns, name) in BY_ADDRESS:  # passthrough TLS: admitted by address and SNI instead
            assert any(a_ns == ns and a_sel == selector for a_ns, _, a_sel, *_ in by_address)
            continue
        for src in sources:
            if src not in meshed:  # no mesh identity there: the mesh admits none of it
                outside.add((ns, name, src))
                continue
            checked += 1
            assert any(
                a_ns == ns
                and a_sel == selector
                and src in a_src
                and (a_ports == ports or (not ports and a_ports))  # equal, or the mesh tighter
                for a_ns, _, a_sel, a_ports, a_src in allows
            ), f"NetworkPolicy {ns}/{name} admits {src} on {sorted(ports)}: no ALLOW policy"
    for ns, name, selector, ports, sources in allows:
        for src in sources:
            assert any(
                n_ns == ns
                and (n_sel == selector or not n_sel)
                and (not n_ports or n_ports >= ports)
                and src in (_source_namespaces(peer, ns, labels) or [])
                for n_ns, _, n_sel, n_ports, peer in _ingress(stack)
            ), f"AuthorizationPolicy {ns}/{name} admits {src}: no NetworkPolicy lets it through"
    assert checked > 20
    # The mesh's root and the control-plane add-ons' namespaces (role platform) may reach
    # Triton by NetworkPolicy, but hold no mesh identity: the mesh admits neither.
    assert {src for *_, src in outside} <= {"istio-system", "cosign-system", "cert-manager"}
    assert {k for k in unmapped if k[0] in meshed} <= set(UNMAPPED)


def test_the_example_stacks_pass_the_zero_trust_rules(stack: dict) -> None:
    env = "prod" if stack["stack"] == "prod-uae" else stack["stack"]
    found = [
        v.message
        for v in evaluate(resources_from_record(stack), Context(environment=env))
        if v.rule_id.startswith("SOV-ZT-")
    ]
    assert found == []


def test_keda_bypasses_exactly_the_ports_the_gate_lists() -> None:
    """The component's annotations and the rule's exceptions are the same three ports."""
    from components.keda import mesh_bypass
    from policies.rules.mesh import CAPTURE_EXCEPTIONS, EXCLUDE_INBOUND

    got = {
        ("keda", f"podAnnotations.{pod}"): {notes[EXCLUDE_INBOUND]}
        for pod, notes in mesh_bypass().items()
    }
    assert got == CAPTURE_EXCEPTIONS


# -- multi-user Kubeflow Pipelines: metacontroller -> the pipelines profile controller -----------

HOOK = "allow-profile-sync-hook"
"""The row (and ALLOW policy) that admits metacontroller to the profile controller's hook."""


def test_metacontroller_reaches_the_profile_hook_by_its_identity_in_multi_user_mode() -> None:
    from components import kubeflow

    rows = {
        p.name: p
        for p in mesh_paths(
            ENROLLED, ["risk-analytics"], keda_namespace=False, tracking=True, profiles=True
        )
    }
    assert rows[HOOK] == MeshPath(
        "kubeflow",
        HOOK,
        principals=("cluster.local/ns/kubeflow/sa/meta-controller-service",),
        selector={"app": "kubeflow-pipelines-profile-controller"},
        ports=(8080,),
    )
    assert rows[HOOK].selector == kubeflow.PROFILE_CONTROLLER_PODS
    # Single-user KFP has neither metacontroller nor the hook: no row.
    single = mesh_paths(ENROLLED, ["risk-analytics"], keda_namespace=False, tracking=True)
    assert HOOK not in {p.name for p in single}


def test_the_stack_with_single_sign_on_admits_the_hook_and_the_others_do_not(stack: dict) -> None:
    hooks = [
        ap
        for ap in _objects(stack, AP)
        if (ap["metadata"]["namespace"], ap["metadata"]["name"]) == ("kubeflow", HOOK)
    ]
    if stack["stack"] != "prod-uae":  # dev: no ssoConnector, single-user KFP
        assert hooks == []
        return
    (hook,) = hooks
    assert hook["spec"]["action"] == "ALLOW"
    assert hook["spec"]["selector"]["matchLabels"] == {
        "app": "kubeflow-pipelines-profile-controller"
    }
    (rule,) = hook["spec"]["rules"]
    assert rule["from"] == [
        {"source": {"principals": ["cluster.local/ns/kubeflow/sa/meta-controller-service"]}}
    ]
    assert rule["to"] == [{"operation": {"ports": ["8080"]}}]


def test_the_overlay_puts_metacontroller_and_the_profile_controller_in_the_mesh() -> None:
    """Upstream opts both out (``sidecar.istio.io/inject: "false"``); without a sidecar each,
    the hook call would be plaintext, outside the row above, and the gate cannot see it (the
    overlay is not rendered here)."""
    from pathlib import Path

    import yaml

    from components import kubeflow
    from policies.rules.mesh import INJECT

    overlay = yaml.safe_load((Path(kubeflow.MULTI_USER_OVERLAY) / "kustomization.yaml").read_text())
    enrolled = {}
    for entry in overlay["patches"]:
        patch = yaml.safe_load(entry["patch"])
        meta = (((patch.get("spec") or {}).get("template") or {}).get("metadata")) or {}
        if meta:
            enrolled[(patch["kind"], patch["metadata"]["name"])] = meta
    for workload in (
        ("StatefulSet", "metacontroller"),
        ("Deployment", kubeflow.PROFILE_CONTROLLER),
    ):
        meta = enrolled.get(workload)
        assert meta is not None, f"{workload}: no patch takes it into the mesh"
        assert meta["labels"][INJECT] == "true" and meta["annotations"][INJECT] == "true", workload
