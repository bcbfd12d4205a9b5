"""Every Kubernetes object examined, and pod and network isolation: issue 19's Kubernetes cases.

Three layers: the YAML expansion (``infra/synth/expand.py``) on its own, bounded; the allow-list
and chart table held to the components they describe; and the gate end to end on the fixture
program ``tests/fixtures/k8s_isolation/`` (one case per stack name), through ``sovml check``
and through the CrossGuard pack, which must refuse the same cases.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from infra.config.stackfile import ROOT
from infra.gate import findings, pack_config
from infra.gate import run as gate
from infra.gate.k8s_manifests import kubernetes_objects
from infra.gate.k8s_schema import validate_kubernetes
from infra.gate.pack_config import write_pack_config
from infra.synth import expand
from infra.synth.runner import SynthError, run_recorded, synthesize
from policies import inventory
from policies.inventory import identify
from policies.rules import evaluate
from policies.rules.allowlist import GRANTS, SYSTEM_NAMESPACE, grant_for, normalise
from policies.rules.helm_charts import CHARTS
from policies.rules.record import context_from_record, resources_from_record
from policies.rules.supply_chain import images_of

FIXTURES = Path(__file__).parent / "fixtures"
PROGRAM = FIXTURES / "k8s_isolation" / "__main__.py"
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n"

# --- the expansion ----------------------------------------------------------------------------


def _record(program: Any) -> list[dict[str, Any]]:
    """What ``program`` registers under the synth's mocks, expanded as ``sovml synth`` does."""
    recording = run_recorded(program, stack="t", region="me-central-1")
    return expand.expand_yaml(recording.resources, program_dir=PROGRAM.parent)


def test_config_group_objects_become_record_entries() -> None:
    secret = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n"
    secret += "  metadata: {name: s, namespace: x}\n  stringData: {password: hunter2}\n"

    def program() -> None:
        provider = k8s.Provider("k", kubeconfig="x", namespace="team")
        k8s.yaml.v2.ConfigGroup(
            "cg",
            files=["manifests/*.yaml"],
            yaml=POD + "---\n" + secret,
            objs=[{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}],
            opts=pulumi.ResourceOptions(provider=provider),
        )
        k8s.yaml.v2.ConfigFile("cf", file="manifests/hostpath-rw.yaml", resource_prefix="")

    resources = _record(program)
    group = next(r for r in resources if r["type"] == "kubernetes:yaml/v2:ConfigGroup")
    children = [r for r in resources if r.get("expandedFrom") == group["urn"]]
    # files, then the yaml literal (a List split into its items), then objs: the provider's order.
    assert [(c["type"], c["name"]) for c in children] == [
        ("kubernetes:core/v1:Pod", "cg:apps/host-root"),
        ("kubernetes:core/v1:Pod", "cg:team/p"),  # the provider's default namespace
        ("kubernetes:core/v1:Secret", "cg:x/s"),
        ("kubernetes:core/v1:Namespace", "cg:x"),  # cluster-scoped: no namespace
    ]
    for c in children:
        assert c["custom"] and c["parent"] == group["urn"] and c["provider"] == group["provider"]
        assert c["urn"] == f"{group['urn'].rsplit('::', 1)[0]}${c['type']}::{c['name']}"
    # A Secret's data never reaches the record, neither in the object nor in the group's text.
    assert children[2]["inputs"]["stringData"] == {"password": "[secret]"}
    assert "hunter2" not in json.dumps(resources)
    config_file = [r for r in resources if r.get("expandedFrom", "").endswith("::cf")]
    assert [c["name"] for c in config_file] == ["apps/host-root"]  # resourcePrefix "": none


def test_expanded_objects_reach_the_manifests_and_the_schema_check() -> None:
    bad = POD.replace("containers: []", "containers: []\n  hostNetwrok: true")

    def program() -> None:
        k8s.yaml.v2.ConfigGroup("cg", yaml=bad)

    record = {"resources": _record(program)}
    manifests = kubernetes_objects(record)
    assert [m["metadata"] for m in manifests] == [{"name": "p", "namespace": "default"}]
    validated, errors, _ = validate_kubernetes(manifests, "1.33")
    assert validated == 0 and "hostNetwrok" in errors[0][1]


def test_v1_config_group_registers_through_the_decode_invoke() -> None:
    def program() -> None:
        k8s.yaml.ConfigGroup("legacy", yaml=[POD.replace("name: p", "name: p\n  namespace: a")])

    resources = _record(program)
    assert [r["name"] for r in resources if r["type"] == "kubernetes:core/v1:Pod"] == ["a/p"]
    with pytest.raises(SynthError, match=r"kubernetes:yaml:decode: .*line 1"):
        expand.decode_invoke({"text": "a: [unclosed"}, "me-central-1")


def _alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_alias_bomb(9), "more than 64 YAML aliases"),
        (_alias_bomb(6), "expands to more than 200000 values"),  # 60 aliases, 10^6 values
        ("a: " + "[" * 200 + "]" * 200, "nests"),
        ("x: " + "y" * (expand.MAX_SOURCE_BYTES + 1), "larger than 1048576 bytes"),
        ("key: [unclosed", r"line 1, column \d+"),
        ("- just\n- a list\n", "not a mapping"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {}\n", "a Pod without metadata.name"),
        ("kind: Pod\nmetadata: {name: p}\n", "without apiVersion and kind"),
    ],
    ids=["aliases", "expansion", "depth", "size", "syntax", "not-an-object", "no-name", "no-kind"],
)
def test_manifests_are_refused_within_bounds(text: str, message: str) -> None:
    group = {"urn": "urn:pulumi:t::p::kubernetes:yaml/v2:ConfigGroup::g", "name": "g",
             "type": "kubernetes:yaml/v2:ConfigGroup", "inputs": {"yaml": text}}  # fmt: skip
    started = time.perf_counter()
    with pytest.raises(expand.ManifestError, match=message):
        expand.expand_group(group, None, PROGRAM.parent)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["/etc/hostname"], "outside the repository"),
        (["../../../../../../etc/hostname"], "outside the repository"),
        (["https://example.com/x.yaml"], "a URL cannot be examined offline"),
        (["manifests/missing.yaml"], "no such file"),
        ([7], "is not a path"),
    ],
)
def test_files_are_read_inside_the_repository_only(files: list[Any], message: str) -> None:
    group = {"urn": "urn:pulumi:t::p::kubernetes:yaml/v2:ConfigGroup::g", "name": "g",
             "type": "kubernetes:yaml/v2:ConfigGroup", "inputs": {"files": files}}  # fmt: skip
    with pytest.raises(expand.ManifestError, match=f"ConfigGroup g: .*{message}"):
        expand.expand_group(group, None, PROGRAM.parent)


def test_binary_manifest_file_is_refused(tmp_path: Path) -> None:
    inside = ROOT / "build" / "k1-binary-manifest.yaml"
    inside.parent.mkdir(exist_ok=True)
    inside.write_bytes(b"\xff\xfe\x00binary")
    try:
        with pytest.raises(expand.ManifestError, match="not UTF-8 text"):
            list(expand._files([str(inside)], tmp_path))
    finally:
        inside.unlink()


# --- the allow-list and the chart table -------------------------------------------------------


def test_every_grant_holds_in_kube_system_only_and_says_why() -> None:
    for g in GRANTS:
        assert g.namespace == SYSTEM_NAMESPACE and len(g.reason) > 40, g.workload
        assert all(normalise(h.path) == h.path and h.path != "/" for h in g.host_paths)
        assert grant_for("serving", g.workload, ()) is None


def test_device_plugin_grant_matches_the_component() -> None:
    from components.gpu_device_plugin import DEVICE_PLUGIN_IMAGE, SOCKET_DIR

    grant = grant_for(SYSTEM_NAMESPACE, "DaemonSet/nvidia-device-plugin", [DEVICE_PLUGIN_IMAGE])
    assert grant is not None and [h.path for h in grant.host_paths] == [SOCKET_DIR]
    assert grant_for(SYSTEM_NAMESPACE, "DaemonSet/nvidia-device-plugin", ["evil/x:1"]) is None


def test_chart_table_describes_the_versions_the_components_pin() -> None:
    from components.cluster_autoscaler import AUTOSCALER_CHART
    from components.keda import KEDA_CHART
    from components.monitoring import DCGM_CHART, PROMETHEUS_CHART, PUSHGATEWAY_CHART
    from components.serving import ROLLOUTS_CHART
    from components.vault import CHART as VAULT_CHART

    pinned = [AUTOSCALER_CHART, KEDA_CHART, DCGM_CHART, PROMETHEUS_CHART, PUSHGATEWAY_CHART,
              ROLLOUTS_CHART, VAULT_CHART]  # fmt: skip
    # Certificates and single sign-on (#22): the components ask the inventory by id.
    pinned += [inventory.chart(i) for i in ("cert-manager-chart", "aws-privateca-issuer-chart",
                                            "dex-chart", "oauth2-proxy-chart")]  # fmt: skip
    assert {name: (CHARTS[name].version, CHARTS[name].repo) for name, _, _ in pinned} == {
        name: (version, repo) for name, version, repo in pinned
    }


# --- the gate end to end ----------------------------------------------------------------------

ISSUE_CASES = {
    # stack: (rule that must refuse it, its violations in the case)
    "k8s-privileged-yaml": ("SOV-K8S-007", 2),  # privileged, host network, root (K8S-001 too)
    "k8s-hostpath-rw": ("SOV-K8S-007", 1),
    "k8s-undeclared-namespace": ("SOV-K8S-008", 1),
    "k8s-allow-all": ("SOV-K8S-009", 2),
    "k8s-cpu-tolerates-all": ("SOV-GPU-003", 2),  # and SOV-K8S-010
}
# The Helm cases pull their charts from public repositories, which a production stack refuses
# too (SOV-SUP-001: a chart outside the zone's registry).
MORE_CASES = {
    "k8s-helm-node-exporter": {
        "SOV-K8S-007": 5,
        "SOV-K8S-010": 1,
        "SOV-GPU-003": 1,
        "SOV-SUP-001": 1,
    },
    "k8s-helm-unknown-chart": {"SOV-K8S-011": 1, "SOV-SUP-001": 1},
    "k8s-v1-configgroup": {"SOV-K8S-007": 1},
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a valid stack file for every case (the program picks the case by name)."""
    folder = tmp_path_factory.mktemp("stacks")
    text = (FIXTURES / "stacks" / "Pulumi.insecure.yaml").read_text()
    for name in ["k8s-clean", "k8s-outside-repo", "k8s-alias-bomb", *ISSUE_CASES, *MORE_CASES]:
        (folder / f"Pulumi.{name}.yaml").write_text(text)
    return folder


def _check(stack: str, stacks: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli.app", "check", stack, "--no-checkov",
         "--stacks-dir", str(stacks), "--program", str(PROGRAM)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip


def _rule_counts(record: dict[str, Any]) -> Counter[str]:
    resources = resources_from_record(record)
    return Counter(v.rule_id for v in evaluate(resources, context_from_record(record)))


@pytest.mark.parametrize("stack", list(ISSUE_CASES))
def test_issue_case_is_refused_by_sovml_check(stack: str, stacks: Path) -> None:
    rule_id, count = ISSUE_CASES[stack]
    proc = _check(stack, stacks)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert rule_id in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    record = json.loads((ROOT / "build" / stack / "resources.json").read_text())
    assert _rule_counts(record)[rule_id] == count


def test_clean_base_passes_sovml_check(stacks: Path) -> None:
    proc = _check("k8s-clean", stacks)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((ROOT / "build" / "k8s-clean" / "resources.json").read_text())
    # 6 namespaces with their default deny, the admission policy, the Deployment, and the
    # mesh's root namespace with its default deny, STRICT mTLS and allow-nothing policy.
    assert sum(1 for r in record["resources"] if r.get("expandedFrom")) == 18


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        ("k8s-outside-repo", "ConfigGroup outside: /etc/hostname: outside the repository"),
        ("k8s-alias-bomb", "ConfigGroup bomb: yaml: more than 64 YAML aliases"),
    ],
)
def test_unexaminable_manifests_exit_2(stack: str, message: str, stacks: Path) -> None:
    proc = _check(stack, stacks)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("stack", list(MORE_CASES))
def test_helm_and_v1_cases_fail_the_gate(
    stack: str, stacks: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    build = tmp_path_factory.getbasetemp() / "k8s-build"
    report = gate.run_gate(
        stack, stacks_dir=stacks, build_dir=build, checkov=False, program=PROGRAM
    )
    assert not report.ok
    record = json.loads((build / stack / "resources.json").read_text())
    assert dict(_rule_counts(record)) == MORE_CASES[stack]


def test_checkov_scans_yaml_declared_objects(
    stacks: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    build = tmp_path_factory.getbasetemp() / "k8s-build-checkov"
    report = gate.run_gate(
        "k8s-privileged-yaml", stacks_dir=stacks, build_dir=build, program=PROGRAM
    )
    pod = {
        f.id for f in report.failures if f.source == "checkov" and f.resource.endswith("root-shell")
    }
    assert {"CKV_K8S_16", "CKV_K8S_19"} <= pod, sorted(pod)  # privileged, host network


def _harness(paths: list[Path], config: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """What the CrossGuard pack (its own virtualenv) reports for each record, by path, with the
    ``--policy-pack-config`` file ``config`` when given."""
    assert POLICY_PYTHON.exists(), ".venv-policy missing: run make setup"
    options = ["--config", str(config)] if config else []
    out = subprocess.run(
        [str(POLICY_PYTHON), "-m", "policies.crossguard_harness", *options, *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    found = json.loads(out)
    return {str(paths[0]): found} if len(paths) == 1 else found


def test_crossguard_refuses_the_same_cases(stacks: Path) -> None:
    """The pack, over the same records (YAML children included, as the engine registers them),
    reports exactly what the offline gate reports: ``pulumi up`` refuses what ``check`` does."""
    paths = []
    for stack in ["k8s-clean", *ISSUE_CASES, *MORE_CASES]:
        path = ROOT / "build" / stack / "resources.json"
        if not path.exists():
            synthesize(stack, stacks_dir=stacks, program=PROGRAM)
        paths.append(path)
    results = _harness(paths)
    for path in paths:
        record = json.loads(path.read_text())
        offline = Counter(
            v.rule_name
            for v in evaluate(resources_from_record(record), context_from_record(record))
        )
        pack = Counter(v["policy"] for v in results[str(path)])
        assert pack == offline, path
        assert bool(pack) == (path.parent.name != "k8s-clean"), path


@pytest.fixture(scope="module")
def prod_uae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod-uae's record, synthesized into a folder of its own."""
    return synthesize("prod-uae", build_dir=tmp_path_factory.mktemp("prod-uae")).path


def test_crossguard_pack_accepts_prod_uae(prod_uae: Path) -> None:
    """Today's pack refused the GPU device plugin (SOV-K8S-001) while ``sovml check`` passed it
    through a suppression the pack cannot read; the grant now lives in the rules. The images
    without a digest reach the pack as the ids of the reviewed suppressions, in the pack config
    that ``sovml`` writes."""
    record = json.loads(prod_uae.read_text())
    assert any(r["name"].endswith("nvidia-device-plugin") for r in record["resources"])
    config = write_pack_config(record, prod_uae.parent / "pack", findings.load_suppressions())
    assert _harness([prod_uae], config)[str(prod_uae)] == []


def test_crossguard_pack_names_each_unpinned_image_without_the_suppressions(
    prod_uae: Path,
) -> None:
    """Without the reviewed ids the pack refuses prod-uae once per unpinned image and workload,
    naming the image and how to resolve it; nothing else fails."""
    record = json.loads(prod_uae.read_text())
    config = write_pack_config(record, prod_uae.parent / "bare")
    found = _harness([prod_uae], config)[str(prod_uae)]
    unpinned = pack_config.unpinned_images(findings.load_suppressions(), "prod-uae")
    assert unpinned and {v["policy"] for v in found} == {"images-pinned-by-digest"}
    named = {identify(m) for v in found for m in _IMAGE.findall(v["message"])}
    runs = {
        identify(image) or image
        for r in resources_from_record(record)
        for _, image in images_of(r)
        if "@sha256:" not in image
    }
    assert named == runs and runs <= set(unpinned)
    assert all("sovml images lock" in v["message"] for v in found)


def test_pack_config_hands_on_only_whole_stack_image_entries() -> None:
    """An entry narrowed to some resources, or to other stacks, is not handed to the pack."""
    entry = findings.Suppression(("SOV-SUP-002",), "*", "why", (), ("triton", "vault"))
    narrow = findings.Suppression(("SOV-SUP-002",), "*web*", "why", (), ("keda",))
    other = findings.Suppression(("SOV-SUP-002",), "*", "why", ("dev",), ("grafana",))
    checkov = findings.Suppression(("CKV_K8S_43",), "*", "why", (), ("loki",))
    got = pack_config.unpinned_images([entry, narrow, other, checkov], "prod-uae")
    assert got == ["triton", "vault"]
    assert pack_config.unpinned_images([other], "dev") == ["grafana"]


_IMAGE = re.compile(r"image (\S+) is not pinned by digest")
