"""The tuning step: the declared search space, real seeded Optuna trials (reproducible), the
chosen values reaching training, and the same space compiled to a Katib Experiment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipelines.training import data, images, katib, steps, tuning
from pipelines.training import preprocessing as features_lib

pytestmark = pytest.mark.slow

GIVEN = {
    "seed": 3,
    "epochs": 3,
    "batch_size": 256,
    "learning_rate": 0.003,
    "weight_decay": 0.0001,
    "hidden_units": "64,32",
    "precision": "fp32",
    "workers": 0,
}


@pytest.fixture(scope="module")
def training_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small training set and its feature spec, written as the features step writes them."""
    out = tmp_path_factory.mktemp("tuning")
    table = out / "table.parquet"
    data.write_table(data.generate(1500, 3), table)
    train, test, spec = out / "train.parquet", out / "test.parquet", out / "spec.json"
    steps.features(str(table), str(train), str(test), str(spec), 0.2)
    return train, spec


def _study(rows: tuple[Path, Path], seed: int, trials: int = 3) -> dict[str, Any]:
    frame = data.read_table(rows[0])
    spec = features_lib.FeatureSpec.load(rows[1])
    budget = tuning.Budget(trials=trials, timeout_s=300, epochs=1)
    return tuning.run_study(frame, spec, {**GIVEN, "seed": seed}, budget)


# ----------------------------------------------------------------------------- the space


def test_search_space_is_declared_once_and_checked() -> None:
    assert [d.name for d in tuning.SEARCH_SPACE] == list(tuning.TUNABLE)
    with pytest.raises(ValueError, match="not a tunable training parameter"):
        tuning.Dimension("seed", "int", 1, 9)
    with pytest.raises(ValueError, match="low > 0 on a log scale"):
        tuning.Dimension("learning_rate", "float", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="two or more choices"):
        tuning.Dimension("hidden_units", "categorical", choices=("32",))
    with pytest.raises(ValueError, match="whole bounds"):
        tuning.Dimension("batch_size", "int", 1.5, 8)
    with pytest.raises(ValueError, match="tune_trials must be in"):
        tuning.Budget(trials=tuning.MAX_TRIALS + 1, timeout_s=1, epochs=1)
    with pytest.raises(ValueError, match="tune_timeout_s must be a positive number"):
        tuning.Budget(trials=1, timeout_s=float("nan"), epochs=1)


# ---------------------------------------------------------------------------- the study


def test_trials_are_reproducible_with_a_seed(training_rows: tuple[Path, Path]) -> None:
    first, again = _study(training_rows, seed=5), _study(training_rows, seed=5)
    assert [t["params"] for t in first["trials"]] == [t["params"] for t in again["trials"]]
    assert first["best"] == again["best"] and first["chosen"] == again["chosen"]
    assert len(first["trials"]) == 3 and all(t["state"] == "COMPLETE" for t in first["trials"])
    # Trial 0 is the pipeline's own values; the best is the highest validation AUC.
    assert first["trials"][0]["params"] == {d.name: GIVEN[d.name] for d in tuning.SEARCH_SPACE}
    assert first["best"]["value"] == max(t["value"] for t in first["trials"])
    assert first["chosen"] == first["best"]["params"]
    for trial in first["trials"]:
        for d in tuning.SEARCH_SPACE:
            assert d.contains(trial["params"][d.name]), (d.name, trial)
    other = _study(training_rows, seed=6)
    assert [t["params"] for t in other["trials"][1:]] != [t["params"] for t in first["trials"][1:]]


def test_no_trials_keeps_the_given_values(training_rows: tuple[Path, Path]) -> None:
    record = _study(training_rows, seed=5, trials=0)
    assert record["tuned"] is False and record["trials"] == [] and record["best"] is None
    assert record["chosen"] == {d.name: GIVEN[d.name] for d in tuning.SEARCH_SPACE}


def test_tune_step_feeds_the_train_step(training_rows: tuple[Path, Path], tmp_path: Path) -> None:
    train, spec = (str(p) for p in training_rows)
    out = tmp_path / "tuning.json"
    budget = {"trials": 2, "timeout_s": 300.0, "epochs": 1}
    record = steps.tune(train, spec, str(out), GIVEN, budget)
    assert record["best"] is not None and out.is_file() and record["seconds"] > 0
    model_dir = tmp_path / "model"
    fixed = {k: GIVEN[k] for k in ("seed", "epochs", "precision", "workers")}
    steps.train(train, spec, str(model_dir), fixed, tuning_path=str(out))
    trained = steps.modelling.read_json(model_dir / steps.TRAINING_FILE)
    for name, value in record["chosen"].items():
        assert trained["params"][name] == value, name
    assert trained["tuning"]["best_trial"] == record["best"]["number"]
    assert trained["tuning"]["trials"] == 2
    # A record that tries to steer anything but the search space is refused.
    out.write_text(out.read_text().replace('"chosen": {', '"chosen": {"seed": 1, ', 1))
    with pytest.raises(steps.StepError, match=r"untunable parameters \['seed'\]"):
        steps.train(train, spec, str(tmp_path / "m2"), fixed, tuning_path=str(out))
    with pytest.raises(steps.StepError, match="tune: tune_epochs must be >= 1"):
        steps.tune(train, spec, str(out), GIVEN, {**budget, "epochs": 0})


# ------------------------------------------------------------------------ Katib, the trial


def _experiment(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "name": "credit-risk-tuning",
        "namespace": "ml-pipelines",
        "image": "registry.example/sovml/train:1",
        "train_set": "/data/train.parquet",
        "feature_spec": "/data/spec.json",
        "seed": 42,
        "budget": tuning.Budget(trials=12, timeout_s=900, epochs=2),
        "parallel_trials": 3,
    }
    return katib.experiment(**{**args, **overrides})


def test_katib_experiment_is_the_same_search_space() -> None:
    manifest = _experiment()
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1beta1", "Experiment")
    spec = manifest["spec"]
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "validation_auc"}
    assert spec["algorithm"]["algorithmName"] == "tpe"
    # Katib's Optuna TPE service reads random_state as the sampler's seed.
    assert spec["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "42"}]
    assert (spec["maxTrialCount"], spec["parallelTrialCount"]) == (12, 3)
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert spec["parameters"] == [
        {
            "name": "learning_rate",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.0003", "max": "0.03", "distribution": "logUniform"},
        },
        {
            "name": "weight_decay",
            "parameterType": "double",
            "feasibleSpace": {"min": "1e-06", "max": "0.01", "distribution": "logUniform"},
        },
        {
            "name": "batch_size",
            "parameterType": "int",
            "feasibleSpace": {"min": "64", "max": "512", "distribution": "logUniform"},
        },
        {
            "name": "hidden_units",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["32", "64,32", "128,64"]},
        },
    ]
    template = spec["trialTemplate"]
    references = {p["reference"]: p["name"] for p in template["trialParameters"]}
    assert set(references) == {p["name"] for p in spec["parameters"]}
    job = template["trialSpec"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == template["primaryContainerName"]
    assert container["image"] == "registry.example/sovml/train:1"
    command = container["command"]
    assert command[:3] == ["python3", "-m", "pipelines.training.tuning"]
    for reference, name in references.items():
        assert f"--{reference}=${{trialParameters.{name}}}" in command
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["restartPolicy"] == "Never" and job["spec"]["activeDeadlineSeconds"] == 900
    assert container["resources"]["limits"]["cpu"] == images.STEPS["tune"].cpu_limit


def test_katib_experiment_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="not a DNS-1123 label"):
        _experiment(name="Credit_Risk")
    with pytest.raises(ValueError, match="at least one trial"):
        _experiment(budget=tuning.Budget(trials=0, timeout_s=60, epochs=1))
    with pytest.raises(ValueError, match=r"parallel_trials must be in \[1, 12\]"):
        _experiment(parallel_trials=13)


def test_trial_entry_point_prints_what_katib_collects(
    training_rows: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The command of the manifest's trial, run with values substituted as Katib would."""
    train, spec = training_rows
    values = {
        "learning_rate": "0.003",
        "weight_decay": "0.0001",
        "batch_size": "128",
        "hidden_units": "64,32",
    }
    argv = [f"--train-set={train}", f"--feature-spec={spec}", "--seed=3", "--epochs=1"]
    argv += [f"--{k}={v}" for k, v in values.items()]
    assert tuning.main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # Katib's StdOut collector parses "<metric>=<number>" lines.
    match = re.fullmatch(r"validation_auc=(0\.\d{6})", line)
    assert match and 0.5 < float(match.group(1)) <= 1.0
    outside = [a if "batch_size" not in a else "--batch_size=4096" for a in argv]
    assert tuning.main(outside) == 2
    assert "batch_size: '4096' is outside the search space" in capsys.readouterr().err


# ------------------------------------------------------------------- the trial's image

ROOT = Path(__file__).resolve().parents[1]
TRIAL_DOCKERFILE = ROOT / "pipelines" / "images" / "katib-trial" / "Dockerfile"


def _copied(dockerfile: str) -> list[str]:
    """Repository files the Dockerfile's ``COPY ... <dir>/`` lines put under ``/app``."""
    files = []
    for line in dockerfile.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and parts[-1].endswith("/") and not parts[1].startswith("req"):
            files += parts[1:-1]
    return files


def test_trial_image_is_built_from_its_lock_on_the_train_steps_image() -> None:
    """The torch base is the train step's image; the rest a complete lock agreeing with the
    main one; non-root; the Experiment's command is the image's entry point, and the
    Experiment names the image through the inventory by default."""
    text = TRIAL_DOCKERFILE.read_text()
    assert f"FROM {images.TORCH_IMAGE}\n" in text
    assert f"COPY {images.TRIAL_LOCK} " in text
    assert "pip install --no-cache-dir --no-deps -r" in text
    assert re.search(r"^USER 10001$", text, re.M) and re.search(r"^WORKDIR /app$", text, re.M)
    assert 'ENTRYPOINT ["python3", "-m", "pipelines.training.tuning"]' in text
    lock = {
        name: version
        for name, version in (
            line.split("==") for line in (ROOT / images.TRIAL_LOCK).read_text().splitlines()
            if "==" in line and not line.startswith("#")
        )
    }  # fmt: skip
    main = dict(
        line.split("==")
        for line in (ROOT / "requirements" / "main.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert {"numpy", "pandas", "pyarrow"} <= set(lock)
    assert {n: v for n, v in lock.items() if main.get(n) != v} == {}
    manifest = _experiment(image=None)
    (container,) = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == images.TRIAL_IMAGE == "ghcr.io/sovereign-ml/katib-trial:0.1.0"
    assert container["command"][:3] == ["python3", "-m", "pipelines.training.tuning"]


def test_trial_runs_from_the_images_files_alone(
    training_rows: tuple[Path, Path], tmp_path: Path
) -> None:
    """Only what the Dockerfile copies, as the image's /app: a module a trial imports but the
    image lacks fails here (ImportError), not in the first Katib trial on the cluster."""
    import shutil
    import subprocess
    import sys

    app = tmp_path / "app"
    for relative in _copied(TRIAL_DOCKERFILE.read_text()):
        (app / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, app / relative)
    train, spec = training_rows
    argv = [f"--train-set={train}", f"--feature-spec={spec}", "--seed=3", "--epochs=1"]
    argv += ["--learning_rate=0.003", "--weight_decay=0.0001", "--batch_size=128"]
    argv += ["--hidden_units=64,32"]
    probe = "import sys, runpy; print(__import__('pipelines').__file__, file=sys.stderr); "
    probe += "sys.argv = ['tuning', *sys.argv[1:]]; runpy.run_module('pipelines.training.tuning', "
    probe += "run_name='__main__')"
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        cwd=app,
        env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines()[0].startswith(str(app))  # not the repository's copy
    assert re.fullmatch(r"validation_auc=0\.\d{6}", done.stdout.strip().splitlines()[-1])
