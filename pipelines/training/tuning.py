"""Hyperparameter tuning: the one declared search space, the budget, and the Optuna study.

The search space (:data:`SEARCH_SPACE`) is the single source of the tuned names, kinds and
ranges. Locally the tune step runs it as an Optuna study (:func:`run_study`: TPE, seeded, so the
same seed proposes the same trials); on the cluster the same space compiles to a Katib
Experiment (:mod:`pipelines.training.katib`), whose trials run :func:`main` and print the
objective as ``validation_auc=<value>`` for Katib's stdout metrics collector.

Objective: the AUC on the latest :data:`VALIDATION_FRACTION` of the *training* rows (out of
time, like the test split) of a model trained on the rest for the budget's epochs. The test rows
are never seen, so the evaluate step's figures stay an honest estimate of the tuned model. The
scaling the model embeds is the feature spec's, fitted on all training rows: the validation rows
share their mean and standard deviation with the fitting rows, nothing of their labels.

The pipeline's own hyperparameters are enqueued as trial 0 when they lie inside the space, so
tuning can only pick something that scored at least as well on the validation rows.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.training.preprocessing import FeatureSpec

Kind = Literal["float", "int", "categorical"]

OBJECTIVE = "validation_auc"
"""The objective's name: maximised, printed by a Katib trial as ``validation_auc=<value>``."""
VALIDATION_FRACTION = 0.2
"""Share of the latest training rows each trial is scored on."""
SAMPLER = "TPESampler"
"""Optuna's Tree-structured Parzen Estimator (Katib's ``tpe`` is the same algorithm via Optuna)."""
MAX_TRIALS = 200
"""Largest trial budget accepted (a typo such as 10000 would run for days)."""


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter.

    Attributes:
        name: A :class:`~pipelines.training.train.TrainParams` field (and pipeline parameter).
        kind: ``float``, ``int`` or ``categorical``.
        low: Smallest value (float, int).
        high: Largest value (float, int).
        log: Sample on a log scale (float, int): for scales that span decades.
        choices: The values (categorical), as the pipeline parameter spells them.
        description: What it is, for people and the Katib trial parameter.
    """

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.name not in TUNABLE:
            raise ValueError(f"{self.name}: not a tunable training parameter {TUNABLE}")
        if self.kind == "categorical":
            if len(self.choices) < 2 or self.log or self.low or self.high:
                raise ValueError(f"{self.name}: a categorical takes two or more choices only")
        elif self.kind in ("float", "int"):
            if self.choices or not self.low < self.high or (self.log and self.low <= 0):
                raise ValueError(f"{self.name}: needs low < high (low > 0 on a log scale)")
            if self.kind == "int" and not (float(self.low).is_integer() and self.high % 1 == 0):
                raise ValueError(f"{self.name}: an int dimension needs whole bounds")
        else:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies inside this dimension."""
        if self.kind == "categorical":
            return value in self.choices
        return isinstance(value, int | float) and self.low <= value <= self.high

    def parse(self, text: str) -> Any:
        """A command-line value (a Katib trial's) as this dimension's type, checked."""
        value: Any = text if self.kind == "categorical" else float(text)
        if self.kind == "int":
            if not float(value).is_integer():
                raise ValueError(f"{self.name}: {text!r} is not a whole number")
            value = int(value)
        if not self.contains(value):
            raise ValueError(f"{self.name}: {text!r} is outside the search space")
        return value


TUNABLE = ("learning_rate", "weight_decay", "batch_size", "hidden_units")
"""The training parameters a dimension may name (the others fix the run: seed, epochs, ...)."""

SEARCH_SPACE: tuple[Dimension, ...] = (
    Dimension("learning_rate", "float", 3e-4, 3e-2, log=True, description="AdamW learning rate"),
    Dimension("weight_decay", "float", 1e-6, 1e-2, log=True, description="AdamW weight decay"),
    Dimension("batch_size", "int", 64, 512, log=True, description="Global batch size"),
    Dimension(
        "hidden_units",
        "categorical",
        choices=("32", "64,32", "128,64"),
        description="MLP hidden widths, comma-separated",
    ),
)
"""The declared search space: the tune step's trials and the Katib Experiment's parameters."""


@dataclass(frozen=True)
class Budget:
    """How much tuning a run may do (pipeline parameters).

    Attributes:
        trials: Trials to run; 0 turns tuning off (the given hyperparameters are used as is).
        timeout_s: Wall-clock seconds after which no new trial starts (a started one finishes).
        epochs: Training epochs per trial (fewer than the final training's: trials rank, they
            do not have to converge).
    """

    trials: int
    timeout_s: float
    epochs: int

    def __post_init__(self) -> None:
        if not 0 <= self.trials <= MAX_TRIALS:
            raise ValueError(f"tune_trials must be in [0, {MAX_TRIALS}], got {self.trials}")
        if not self.timeout_s > 0 or math.isinf(self.timeout_s):
            raise ValueError(f"tune_timeout_s must be a positive number, got {self.timeout_s}")
        if self.epochs < 1:
            raise ValueError(f"tune_epochs must be >= 1, got {self.epochs}")


def space_dict(space: Sequence[Dimension] = SEARCH_SPACE) -> list[dict[str, Any]]:
    """The space as plain dicts (recorded in the tune step's output)."""
    return [asdict(d) for d in space]


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame`` (time-ordered training rows) split into fitting and validation rows."""
    from pipelines.training import preprocessing as features_lib

    fitting, validation, _ = features_lib.split_out_of_time(frame, VALIDATION_FRACTION)
    return fitting, validation


def score(
    fitting: pd.DataFrame, validation: pd.DataFrame, spec: FeatureSpec, params: dict[str, Any]
) -> float:
    """Train on ``fitting`` with ``params`` (TrainParams fields); the AUC on ``validation``.

    Returns NaN when training diverged (Optuna records the trial as failed) or the validation
    rows hold one class.
    """
    import torch

    from pipelines.training import metrics as metrics_lib
    from pipelines.training import model as model_lib
    from pipelines.training import preprocessing as features_lib
    from pipelines.training import train as train_lib

    x, y = features_lib.matrices(fitting, spec)
    # One process per trial: trials are short, and DDP's start-up would dominate them.
    result = train_lib.train(x, y, spec, train_lib.TrainParams(**{**params, "workers": 1}))
    if not train_lib.loss_is_finite(result.history):
        return math.nan
    net = model_lib.build(spec, params["hidden_units"])
    net.load_state_dict(result.state)
    xv, yv = features_lib.matrices(validation, spec)
    scorer = model_lib.Scorer(net).eval()
    with torch.inference_mode():
        scores = scorer(torch.from_numpy(xv)).reshape(-1).numpy()
    return metrics_lib.roc_auc(yv, scores)


def run_study(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    given: dict[str, Any],
    budget: Budget,
    space: Sequence[Dimension] = SEARCH_SPACE,
) -> dict[str, Any]:
    """Tune ``space`` on ``frame`` (the training rows) within ``budget``.

    Args:
        frame: Training rows, time-ordered (the features step's training set).
        spec: The feature spec.
        given: Every TrainParams field (the pipeline's hyperparameters, seed, precision);
            the seed also seeds the sampler.
        budget: Trials, timeout and epochs per trial.
        space: The search space.

    Returns:
        ``tuned``, ``sampler``, ``seed``, ``objective``, ``space``, ``budget``, ``trials``
        (number, state, params, value, seconds), ``best`` (number, value, params; None when
        tuning is off) and ``chosen``: the hyperparameters the train step uses.

    Raises:
        ValueError: When no trial completed (every one failed, or the timeout came first).
    """
    record: dict[str, Any] = {
        "tuned": budget.trials > 0,
        "sampler": SAMPLER,
        "seed": int(given["seed"]),
        "objective": OBJECTIVE,
        "space": space_dict(space),
        "budget": asdict(budget),
        "trials": [],
        "best": None,
        "chosen": {d.name: given[d.name] for d in space},
    }
    if budget.trials == 0:
        return record
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fitting, validation = split(frame)
    fixed = {**given, "epochs": budget.epochs}

    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        proposed = {d.name: _suggest(trial, d) for d in space}
        value = score(fitting, validation, spec, {**fixed, **proposed})
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        return value

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=int(given["seed"]))
    )
    baseline = {d.name: given[d.name] for d in space}
    if all(d.contains(baseline[d.name]) for d in space):
        study.enqueue_trial(baseline)
    study.optimize(objective, n_trials=budget.trials, timeout=budget.timeout_s)
    record["trials"] = [
        {
            "number": t.number,
            "state": t.state.name,
            "params": dict(t.params),
            "value": None if t.value is None else round(float(t.value), 6),
            "seconds": t.user_attrs.get("seconds"),
        }
        for t in study.trials
    ]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ValueError(
            f"no trial completed ({len(study.trials)} ran; diverged or the timeout came first)"
        )
    best = study.best_trial
    record["best"] = {
        "number": best.number,
        "value": round(float(best.value), 6),
        "params": dict(best.params),
    }
    record["chosen"] = {**record["chosen"], **best.params}
    return record


def _suggest(trial: Any, dimension: Dimension) -> Any:
    """The trial's value for ``dimension`` (Optuna's suggest API)."""
    if dimension.kind == "categorical":
        return trial.suggest_categorical(dimension.name, list(dimension.choices))
    if dimension.kind == "int":
        return trial.suggest_int(
            dimension.name, int(dimension.low), int(dimension.high), log=dimension.log
        )
    return trial.suggest_float(dimension.name, dimension.low, dimension.high, log=dimension.log)


def main(argv: Sequence[str] | None = None) -> int:
    """One Katib trial: train on the fitting rows with the given values, print the objective.

    ``python -m pipelines.training.tuning --train-set T --feature-spec S --seed N --epochs E
    --learning_rate=... --weight_decay=... --batch_size=... --hidden_units=...``; exits 2 on a
    value outside the space, 1 when the trial diverged.
    """
    from pipelines.training import data as data_lib
    from pipelines.training.preprocessing import FeatureSpec

    parser = argparse.ArgumentParser(prog="pipelines.training.tuning", description=main.__doc__)
    parser.add_argument("--train-set", required=True)
    parser.add_argument("--feature-spec", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    for d in SEARCH_SPACE:
        parser.add_argument(f"--{d.name}", required=True, help=d.description)
    args = parser.parse_args(argv)
    try:
        values = {d.name: d.parse(getattr(args, d.name)) for d in SEARCH_SPACE}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = FeatureSpec.load(args.feature_spec)
    fitting, validation = split(data_lib.read_table(args.train_set))
    params = {"seed": args.seed, "epochs": args.epochs, "precision": "auto", **values}
    value = score(fitting, validation, spec, params)
    if math.isnan(value):
        print("error: the trial diverged or its validation rows hold one class", file=sys.stderr)
        return 1
    print(f"{OBJECTIVE}={value:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
