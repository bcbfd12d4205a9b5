"""The cluster's tuner: the declared search space as a Katib Experiment (``kubeflow.org/v1beta1``).

A pure function of the search space (:data:`pipelines.training.tuning.SEARCH_SPACE`) and the
budget: the same names, ranges and scales the local Optuna study samples become the
Experiment's ``parameters``, with ``algorithmName: tpe`` (Katib's TPE suggestion service runs
Optuna's TPE too). Each trial is a ``batch/v1`` Job on the train step's image that runs
``python -m pipelines.training.tuning`` and prints ``validation_auc=<value>``, which Katib's
``StdOut`` metrics collector reads as the objective.

Field names follow Katib's v1beta1 API (``ExperimentSpec``: ``objective``, ``algorithm``,
``parallelTrialCount``, ``maxTrialCount``, ``maxFailedTrialCount``, ``metricsCollectorSpec``,
``parameters`` with ``parameterType`` and ``feasibleSpace`` ``min``/``max``/``list``/
``distribution``, ``trialTemplate`` with ``primaryContainerName``, ``trialParameters`` and
``trialSpec``), as in the upstream examples ``examples/v1beta1/hp-tuning/tpe.yaml`` and
``optuna-distribution.yaml``.

The trial's image is the inventory's ``katib-trial`` (:data:`pipelines.training.images.TRIAL_IMAGE`,
built by ``pipelines/images/katib-trial/Dockerfile``: the train step's torch image with the
modules a trial imports copied in). Katib itself is ``components/katib.py``, whose KatibConfig
serves ``tpe`` with the Optuna suggestion service; nothing here applies the Experiment (no
cluster is reachable from this project's tests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pipelines.training import images
from pipelines.training.tuning import OBJECTIVE, SEARCH_SPACE, Budget, Dimension

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"
ALGORITHM = "tpe"
CONTAINER = "training"
"""The trial Job's container, named as the ``primaryContainerName`` Katib watches."""
PARAMETER_TYPES = {"float": "double", "int": "int", "categorical": "categorical"}
"""Search-space kind -> Katib ``parameterType``."""
DISTRIBUTIONS = {False: "uniform", True: "logUniform"}
"""Linear or log scale -> Katib ``feasibleSpace.distribution``."""
MAX_FAILED_TRIALS = 3
"""Failed trials after which Katib stops the Experiment (a broken image should not burn the
whole budget)."""
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _trial_parameter(dimension: Dimension) -> str:
    """The ``trialParameters`` name of ``dimension`` (camelCase, as Katib's examples spell)."""
    head, *rest = dimension.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _parameter(dimension: Dimension) -> dict[str, Any]:
    """One entry of ``spec.parameters`` (Katib wants every bound as a string)."""
    if dimension.kind == "categorical":
        space: dict[str, Any] = {"list": list(dimension.choices)}
    else:
        low, high = dimension.low, dimension.high
        if dimension.kind == "int":
            low, high = int(low), int(high)
        space = {"min": str(low), "max": str(high), "distribution": DISTRIBUTIONS[dimension.log]}
    return {
        "name": dimension.name,
        "parameterType": PARAMETER_TYPES[dimension.kind],
        "feasibleSpace": space,
    }


def _security_context() -> dict[str, Any]:
    """The restricted Pod Security profile's container settings."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def experiment(
    name: str,
    namespace: str,
    image: str | None,
    train_set: str,
    feature_spec: str,
    seed: int,
    budget: Budget,
    parallel_trials: int = 1,
    space: Sequence[Dimension] = SEARCH_SPACE,
) -> dict[str, Any]:
    """The Katib Experiment tuning ``space`` within ``budget``.

    Args:
        name: The Experiment's name (a DNS-1123 label).
        namespace: Its namespace (the pipeline's).
        image: The trial image; None: the inventory's (:data:`images.TRIAL_IMAGE`), which a
            caller prefixes with the zone's registry like every other image.
        train_set: Path of the training rows inside the trial pod (a mounted volume).
        feature_spec: Path of the feature spec inside the trial pod.
        seed: Seed of every trial's training.
        budget: ``trials`` -> ``maxTrialCount``, ``epochs`` per trial; ``timeout_s`` has no
            Experiment field and bounds each trial Job instead (``activeDeadlineSeconds``).
        parallel_trials: Trials run at once.
        space: The search space.

    Raises:
        ValueError: On a name that is not a DNS-1123 label, an empty budget or a bad count.
    """
    for label, value in (("name", name), ("namespace", namespace)):
        if not _NAME.match(value):
            raise ValueError(f"{label} {value!r} is not a DNS-1123 label")
    if budget.trials < 1:
        raise ValueError("a Katib Experiment needs at least one trial")
    if not 1 <= parallel_trials <= budget.trials:
        raise ValueError(f"parallel_trials must be in [1, {budget.trials}]")
    runtime = images.STEPS["tune"]
    command = [
        "python3",
        "-m",
        "pipelines.training.tuning",
        f"--train-set={train_set}",
        f"--feature-spec={feature_spec}",
        f"--seed={seed}",
        f"--epochs={budget.epochs}",
        *(f"--{d.name}=${{trialParameters.{_trial_parameter(d)}}}" for d in space),
    ]
    container = {
        "name": CONTAINER,
        "image": image or images.TRIAL_IMAGE,
        "command": command,
        "resources": {
            "requests": {"cpu": runtime.cpu_request, "memory": runtime.memory_request},
            "limits": {"cpu": runtime.cpu_limit, "memory": runtime.memory_limit},
        },
        "securityContext": _security_context(),
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(budget.timeout_s),
            "template": {
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "restartPolicy": "Never",
                }
            },
        },
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": OBJECTIVE},
            "algorithm": {
                "algorithmName": ALGORITHM,
                "algorithmSettings": [{"name": "random_state", "value": str(seed)}],
            },
            "parallelTrialCount": parallel_trials,
            "maxTrialCount": budget.trials,
            "maxFailedTrialCount": MAX_FAILED_TRIALS,
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "parameters": [_parameter(d) for d in space],
            "trialTemplate": {
                "primaryContainerName": CONTAINER,
                "trialParameters": [
                    {
                        "name": _trial_parameter(d),
                        "description": d.description,
                        "reference": d.name,
                    }
                    for d in space
                ],
                "trialSpec": job,
            },
        },
    }
