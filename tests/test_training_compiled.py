"""The training pipeline's compiled IR: golden files, the cluster variant (images, pins,
resources, GPU scheduling, feature-store settings) and the code embedded in each component."""

from __future__ import annotations

import base64
import difflib
import gzip
import io
import json
import re
import tarfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.training import compilation, data, golden, images, local_run, packaging, provenance

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """IR text of both targets, compiled once, and the warnings the compilation raised."""
    out = tmp_path_factory.mktemp("ir")
    result: dict[str, Any] = {}
    for target in packaging.TARGETS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result[target] = compilation.compile_pipeline(
                target, out / f"{target}.yaml"
            ).read_text()
        result[f"{target}-warnings"] = [str(w.message) for w in caught]
    return result


@pytest.mark.parametrize("target", packaging.TARGETS)
def test_golden_ir(target: str, compiled: dict[str, Any], update_golden: bool) -> None:
    fresh = golden.golden_text(compiled[target], target)
    golden_path = golden.GOLDEN[target]
    if update_golden:
        golden_path.write_text(fresh)
    expected = golden_path.read_text()
    if golden.normalise_ir(fresh) != golden.normalise_ir(expected):
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True), fresh.splitlines(True), "golden", "compiled", n=2
            )
        )
        pytest.fail(
            f"{golden_path.relative_to(ROOT)} is stale; rerun "
            "`.venv/bin/python -m pipelines.training.pipeline --write-golden` if intended:\n"
            f"{diff[:4000]}"
        )


def _executors(ir_text: str) -> dict[str, Any]:
    docs = list(yaml.safe_load_all(ir_text))
    return docs[0]["deploymentSpec"]["executors"]


# ---------------------------------------------------------------------------------- cluster variant


def test_cluster_variant_pins_images_and_requests_resources(compiled: dict[str, Any]) -> None:
    executors = _executors(compiled["cluster"])
    # track runs on both branches of the gate: one executor per task.
    tracks = ("track", "track-2")
    assert set(executors) == {
        f"exec-{name}" for name in (*local_run.STEPS, images.EXIT_TASK, *tracks)
    }
    for name, executor in executors.items():
        container = executor["container"]
        image = container["image"]
        assert re.fullmatch(r"[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})", image), image
        assert not image.endswith(":latest"), image
        resources = container["resources"]
        for key in ("resourceCpuRequest", "resourceCpuLimit"):
            assert resources[key], (name, key)
        for key in ("resourceMemoryRequest", "resourceMemoryLimit"):
            assert resources[key].endswith("Gi") or resources[key].endswith("Mi"), (name, key)
        # Every runtime package is pinned exactly.
        script = container["command"][2]
        for requirement in re.findall(r"'([A-Za-z0-9_.-]+[=<>!~][^']*)'", script):
            if "python_version" not in requirement:
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.+]+", requirement), requirement
    train_resources = executors["exec-train"]["container"]["resources"]
    assert train_resources["accelerator"] == {
        "count": "1",
        "resourceCount": "1",
        "resourceType": "nvidia.com/gpu",
        "type": "nvidia.com/gpu",
    }
    for name in ("exec-ingest", "exec-evaluate"):
        assert "accelerator" not in executors[name]["container"]["resources"]


def test_cluster_variant_defaults(compiled: dict[str, Any]) -> None:
    spec = next(yaml.safe_load_all(compiled["cluster"]))  # pipeline spec, then platform spec
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["serving_profile"]["defaultValue"] == "gpu"
    assert params["encryption_backend"]["defaultValue"] == "vault"
    assert params["feature_repo"]["defaultValue"] == (
        "pipelines/features/repo/feature_store.prod.yaml"
    )
    local = yaml.safe_load(compiled["local"])["root"]["inputDefinitions"]["parameters"]
    assert local["serving_profile"]["defaultValue"] == "cpu"
    assert local["feature_repo"]["defaultValue"] == "build/feature_store"


def test_cluster_run_pushes_its_outcome_from_an_exit_handler(compiled: dict[str, Any]) -> None:
    """Every step runs inside the exit handler; the exit task gets the body's final status and
    the pushgateway; the local IR keeps its outputs and has no exit task."""
    spec = next(yaml.safe_load_all(compiled["cluster"]))
    root = spec["root"]
    assert "outputDefinitions" not in root, "KFP refuses outputs from inside an exit handler"
    exit_task = root["dag"]["tasks"][images.EXIT_TASK]
    assert exit_task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert exit_task["dependentTasks"] == ["exit-handler-1"]
    params = exit_task["inputs"]["parameters"]
    assert params["status"] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}
    assert params["pushgateway"] == {"componentInputParameter": "pushgateway"}
    assert params["pipeline_name"]["runtimeValue"]["constant"] == "credit-risk-training"
    pushgateway = root["inputDefinitions"]["parameters"]["pushgateway"]["defaultValue"]
    assert pushgateway == "http://prometheus-pushgateway.monitoring.svc:9091"
    assert set(root["dag"]["tasks"]) == {"exit-handler-1", images.EXIT_TASK}
    body = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    ungated = set(local_run.STEPS) - set(local_run.GATED)
    assert ungated <= set(body), body.keys()
    local = next(yaml.safe_load_all(compiled["local"]))
    assert "comp-exit-handler-1" not in local["components"]
    assert f"exec-{images.EXIT_TASK}" not in local["deploymentSpec"]["executors"]
    assert set(local["root"]["outputDefinitions"]["artifacts"]) == {"metrics", "evaluation"}
    assert local["root"]["inputDefinitions"]["parameters"]["pushgateway"]["defaultValue"] == ""


def test_cluster_feature_steps_get_feast_and_the_store_settings(compiled: dict[str, Any]) -> None:
    executors = _executors(compiled["cluster"])
    lock = _lock(ROOT / images.FEATURE_LOCK)
    assert lock["feast"] == "0.67.0" and "s3fs" in lock and "redis" in lock
    for name in ("features", "materialize"):
        assert executors[f"exec-{name}"]["container"]["image"] == images.FEATURE_IMAGE, name
    assert "feast==" not in executors["exec-train"]["container"]["command"][2]
    docs = list(yaml.safe_load_all(compiled["cluster"]))
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in images.FEATURE_STORE_STEPS:
        env = platform[f"exec-{name}"]
        assert env["configMapAsEnv"][0]["configMapName"] == images.FEAST_CLIENT_CONFIG_MAP
        assert env["secretAsEnv"][0]["secretName"] == images.FEAST_CLIENT_SECRET
        assert env["secretAsEnv"][0]["optional"] is True
    assert "secretAsEnv" not in platform.get("exec-train", {})


def test_train_tolerates_the_gpu_taint_and_selects_the_gpu_pool(compiled: dict[str, Any]) -> None:
    # kfp-kubernetes is pinned in requirements/main.txt: its absence is a failure, not a skip.
    assert packaging.kubernetes_extension() is not None
    docs = list(yaml.safe_load_all(compiled["cluster"]))
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert platform["nodeSelector"]["labels"] == {"sovereign-ml/pool": "gpu"}
    assert platform["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in images.REGISTRY_STEPS:
        assert images.REGISTRY_PVC in json.dumps(executors[f"exec-{name}"]), name


def test_missing_kfp_kubernetes_is_reported(
    compiled: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without kfp-kubernetes the train step's GPU scheduling is warned about, and the cluster
    IR is refused: its register and encrypt pods could not get their audit settings and would
    write the lifecycle log to files that die with them."""
    assert not any("kfp-kubernetes" in w for w in compiled["cluster-warnings"])
    monkeypatch.setattr(packaging, "kubernetes_extension", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="the register step cannot get the 'sovml-audit'"):
            compilation.compile_pipeline("cluster", tmp_path / "bare.yaml")
    assert any("kfp-kubernetes is not installed" in str(w.message) for w in caught)
    assert not (tmp_path / "bare.yaml").exists()


# ------------------------------------------------------------------------------------ embedded code


def _embedded_files(command_source: str) -> dict[str, bytes]:
    match = re.search(r"__KFP_EMBEDDED_ARCHIVE_B64 = '([A-Za-z0-9+/=]+)'", command_source)
    assert match, "no embedded archive"
    raw = gzip.decompress(base64.b64decode(match.group(1)))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_cluster_components_embed_the_current_library(compiled: dict[str, Any]) -> None:
    executors = _executors(compiled["cluster"])

    def shipped(relative: str) -> bytes:
        data = (ROOT / relative).read_bytes()
        return provenance.slim_source(data.decode()).encode() if relative.endswith(".py") else data

    lib = {p: shipped(p) for p in provenance.STEP_LIBRARY}
    for name, executor in executors.items():
        files = _embedded_files(executor["container"]["command"][-1])
        expected = dict(lib)
        step = re.sub(r"-\d+$", "", name.removeprefix("exec-"))  # exec-track-2: track
        for extra in packaging.EXTRA_EMBEDDED.get(step, ()):
            expected[extra] = shipped(extra)
        assert files == expected, name
    assert set(packaging.EXTRA_EMBEDDED) == {
        "ingest",
        "encrypt",
        "export",
        "features",
        "register",
        "materialize",
        "outcome",
        "tune",
        "evaluate",
        "track",
    }


def test_every_cluster_command_argument_fits_the_kernel_limit() -> None:
    """Linux refuses to exec an argument over MAX_ARG_STRLEN (32 pages, 128 KiB): the pod of a
    step whose embedded code outgrew it would never start."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        components = packaging.build_components("cluster")
    sizes = {
        name: max(len(a.encode()) for a in c.component_spec.implementation.container.command)
        for name, c in components.items()
    }
    assert {name: size for name, size in sizes.items() if size >= 128 * 1024} == {}


def test_step_library_holds_every_module_it_imports_at_module_level() -> None:
    """A module the steps import at load time but the pods lack would fail every cluster step."""
    import ast

    embedded = set(provenance.STEP_LIBRARY)
    for relative in provenance.STEP_LIBRARY:
        tree = ast.parse((ROOT / relative).read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] not in ("pipelines", "kernels", "components", "infra"):
                    continue
                as_module = name.replace(".", "/") + ".py"
                as_package = name.replace(".", "/") + "/__init__.py"
                if (ROOT / as_module).exists():
                    assert as_module in embedded, f"{relative} imports {name}"
                elif (ROOT / as_package).exists():
                    assert as_package in embedded, f"{relative} imports {name}"


def _pins_installed() -> bool:
    wanted = {**images.PINS, "kfp": "2.17.0"}
    try:
        return all(metadata.version(name) == version for name, version in wanted.items())
    except metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _pins_installed(), reason="would pip-install: pins differ from this venv")
def test_cluster_component_runs_unchanged_under_kfp_local(tmp_path: Path) -> None:
    """The cluster build of ``ingest`` (embedded code, pip pins already satisfied) runs here."""
    import kfp.local

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        components = packaging.build_components("cluster")
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root")
    )
    task = components["ingest"](
        rows=300,
        seed=3,
        source_uri="",
        source_sha256="",
        encryption_backend="local",
        encryption_key=str(tmp_path / "key.json"),
        pseudonymization_key="",
        biased_data=False,
    )
    produced = Path(task.outputs["dataset"].path)
    assert data.sha256_file(produced) == task.outputs["dataset"].metadata["sha256"]
    table = data.read_table(produced)
    assert len(table) == 300
    # The embedded pseudonymization ran: tokens, not the generated raw identifiers.
    assert "national_id" not in table and table["national_id_token"].str.startswith("pz_").all()


# ---------------------------------------------------------------------------------- pins and images


def test_pins_match_the_main_requirements() -> None:
    locked = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements" / "main.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for name, version in images.PINS.items():
        assert locked.get(name, "").split(" ")[0] == version, name


def _lock(path: Path) -> dict[str, str]:
    return {
        line.split("==", 1)[0].lower().replace("_", "-"): line.split("==", 1)[1].strip()
        for line in path.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }


def test_feature_steps_image_lock_is_complete_and_agrees_with_the_main_lock() -> None:
    """The cluster's feature steps get Feast's S3 and Redis dependencies from their own lock."""
    lock = _lock(ROOT / images.FEATURE_LOCK)
    for name in ("feast", "s3fs", "boto3", "redis", "hiredis", "kfp", "pyarrow", "pandas"):
        assert name in lock, name
    main = _lock(ROOT / "requirements" / "main.txt")
    # boto3/botocore/s3transfer are the one deliberate difference (s3fs's aiobotocore pin).
    differ = {n for n in lock.keys() & main.keys() if lock[n] != main[n]}
    assert differ <= {"boto3", "botocore", "s3transfer"}, differ
    dockerfile = (ROOT / "pipelines" / "images" / "feature-steps" / "Dockerfile").read_text()
    assert f"FROM {images.PYTHON_IMAGE}" in dockerfile
    assert f"COPY {images.FEATURE_LOCK} " in dockerfile
    assert "pip install --no-cache-dir --no-deps -r" in dockerfile
    assert re.search(r"^USER 10001$", dockerfile, re.M)


def test_feature_steps_run_on_their_image_and_install_nothing(compiled: dict[str, Any]) -> None:
    executors = _executors(compiled["cluster"])
    for name in images.FEATURE_STORE_STEPS:
        container = executors[f"exec-{name}"]["container"]
        assert container["image"] == images.FEATURE_IMAGE, name
        assert "pip install" not in container["command"][2], name
    # The other steps still bring their pins (and kfp) at pod start.
    assert "'kfp==2.17.0'" in executors["exec-ingest"]["container"]["command"][2]


def test_slim_source_keeps_every_line_and_the_code() -> None:
    """What the pods run is the repository's code: same lines, same syntax tree without the
    docstrings, and slimming twice changes nothing (the pods' lib digest equals ours)."""
    import ast

    files = set(provenance.STEP_LIBRARY).union(*packaging.EXTRA_EMBEDDED.values())
    for relative in sorted(f for f in files if f.endswith(".py")):
        text = (ROOT / relative).read_text()
        slim = provenance.slim_source(text)
        # The memo answers what the function computes afresh (it is keyed by the text alone).
        assert slim == provenance.slim_source.__wrapped__(text), relative
        assert slim.count("\n") == text.count("\n"), relative
        assert provenance.slim_source(slim) == slim, relative
        assert "#" not in "".join(
            line for line in slim.splitlines() if line.lstrip().startswith("#")
        ), relative
        assert _without_docstrings(ast.parse(slim)) == _without_docstrings(ast.parse(text))
    sample = 'def f():\n    """Doc.\n\n    More."""\n    return 1  # why\n'
    assert provenance.slim_source(sample) == 'def f():\n    """\n\n"""\n    return 1  \n'


def _without_docstrings(tree: Any) -> str:
    """The tree's dump with every string statement's text blanked (what slimming may change)."""
    import ast

    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if is_text and isinstance(node.value.value, str):
            node.value.value = ""
    return ast.dump(tree)
