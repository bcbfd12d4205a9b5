"""The model steps: train the MLP, evaluate it against the gate; loading and scoring it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipelines.training import data as data_lib
from pipelines.training import schema
from pipelines.training.registry import utc_now
from pipelines.training.steps.common import StepError, read_json, reported, write_json

WEIGHTS_FILE = "weights.pt"
"""The trained state dict inside the train step's model folder."""
TRAINING_FILE = "training.json"
"""The training record (parameters, runtime, loss history, weights digest) beside the weights."""


def train(
    train_path: str,
    spec_path: str,
    model_dir: str,
    params: dict[str, Any],
    tuning_path: str = "",
) -> dict[str, Any]:
    """Train the MLP; writes ``weights.pt`` (state dict) and ``training.json`` to ``model_dir``.

    With ``tuning_path`` (the tune step's record; the pipeline always passes it) its chosen
    values complete ``params``, and the training record says which trial they came from.
    """
    import torch

    from pipelines.training import model as model_lib
    from pipelines.training import preprocessing as features_lib
    from pipelines.training import train as train_lib

    with reported("train"):
        spec = features_lib.FeatureSpec.load(spec_path)
        x, y = features_lib.matrices(data_lib.read_table(train_path), spec)
        tuned = None
        if tuning_path:
            params, tuned = tuned_params(tuning_path, params)
        tp = train_lib.TrainParams(**params)
        result = train_lib.train(x, y, spec, tp)
        if not train_lib.loss_is_finite(result.history):
            raise StepError(f"train: loss diverged (epoch losses {result.history})")
        out = Path(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(result.state, out / WEIGHTS_FILE)
        sha = model_lib.state_sha256(result.state)
        record = {
            "params": train_lib.params_dict(tp),
            "runtime": result.info,
            "history": [round(v, 6) for v in result.history],
            "weights_sha256": sha,
            "trained_at": utc_now(),
            "tuning": tuned,
        }
        write_json(out / TRAINING_FILE, record)
        return {
            "weights_sha256": sha,
            "final_loss": record["history"][-1],
            "device": result.info["device"],
            "precision": result.info["precision"],
            "world_size": result.info["world_size"],
            "distributed": result.info["distributed"],
            "seconds": result.info["seconds"],
        }


def load_model(model_dir: str | Path, spec: Any) -> Any:
    """The trained model as an eager :class:`~pipelines.training.model.Scorer` (eval mode, CPU)."""
    import torch

    from pipelines.training import model as model_lib

    record = read_json(Path(model_dir) / TRAINING_FILE)
    net = model_lib.build(spec, record["params"]["hidden_units"])
    net.load_state_dict(torch.load(Path(model_dir) / WEIGHTS_FILE, weights_only=True))
    return model_lib.Scorer(net).eval()


def predict(scorer: Any, features: Any) -> Any:
    """Probabilities (NumPy float32, shape ``[n]``) from a Scorer, eager or TorchScript."""
    import torch

    with torch.inference_mode():
        return scorer(torch.from_numpy(features)).reshape(-1).numpy()


def evaluate(
    test_path: str,
    spec_path: str,
    model_dir: str,
    report_path: str,
    registry_dir: str,
    model_name: str,
    min_auc: float,
    tolerance: float,
    limits: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Metrics and group fairness on the out-of-time test set, and the gate decision
    (:mod:`pipelines.training.gate`).

    Args:
        limits: The fairness thresholds (:class:`~pipelines.training.gate.FairnessLimits`
            fields); None measures fairness without judging it (in-process callers only: the
            pipeline always passes them).

    Returns:
        ``{"metrics": {...}, "fairness": {...}, "gate": {...}}``, also written to
        ``report_path``.
    """
    from pipelines.training import fairness as fairness_lib
    from pipelines.training import gate as gate_lib
    from pipelines.training import metrics as metrics_lib
    from pipelines.training import preprocessing as features_lib
    from pipelines.training.registry import Registry

    with reported("evaluate"):
        spec = features_lib.FeatureSpec.load(spec_path)
        test = data_lib.read_table(test_path)
        x, y = features_lib.matrices(test, spec)
        scores = predict(load_model(model_dir, spec), x)
        metrics = metrics_lib.evaluate(y, scores)
        if schema.SENSITIVE not in test.columns:
            raise StepError(
                f"evaluate: the test rows lack the sensitive attribute {schema.SENSITIVE}"
            )
        fairness = fairness_lib.evaluate(y, scores, test[schema.SENSITIVE].to_numpy())
        try:
            fairness_limits = None if limits is None else gate_lib.FairnessLimits(**limits)
        except ValueError as exc:
            raise StepError(f"evaluate: {exc}") from None

        production = Registry(registry_dir).production(model_name) if registry_dir else None
        prod_version = prod_auc = None
        comparison = "none"
        if production is not None:
            prod_version = int(production["version"])
            prod_auc, comparison = production_auc(production, test)
        decision = gate_lib.decide(
            metrics["auc"],
            min_auc,
            prod_version,
            prod_auc,
            comparison,
            tolerance,
            fairness=fairness,
            limits=fairness_limits,
        )
        report = {
            "metrics": metrics,
            "fairness": fairness,
            "gate": decision.to_dict(),
            "min_auc": min_auc,
        }
        write_json(report_path, report)
        return report


def production_auc(record: dict[str, Any], test: Any) -> tuple[float | None, str]:
    """Production's AUC on ``test`` if its model file is readable, else the recorded AUC.

    Args:
        record: The production version's registry record.
        test: The candidate's test rows (a DataFrame), or None to use the recorded AUC.

    Returns:
        The AUC (None when there is none) and how it was obtained: ``same-test-set``,
        ``recorded-metrics`` or ``none``.
    """
    from pipelines.training import metrics as metrics_lib
    from pipelines.training import model as model_lib

    path = Path(record.get("artifacts", {}).get("torchscript", ""))
    wanted = record.get("features", {}).get("list", [])
    if path.is_file() and wanted and all(c in test.columns for c in wanted):
        scorer = model_lib.load_torchscript(path)
        x = test[wanted].to_numpy(dtype="float32")
        y = test[schema.LABEL].to_numpy(dtype="float32")
        # Rounded like the candidate's AUC, so identical weights compare as equal.
        return round(metrics_lib.roc_auc(y, predict(scorer, x)), 6), "same-test-set"
    recorded = record.get("metrics", {}).get("auc")
    return (None, "none") if recorded is None else (float(recorded), "recorded-metrics")


def tune(
    train_path: str,
    spec_path: str,
    out_path: str,
    given: dict[str, Any],
    budget: dict[str, Any],
) -> dict[str, Any]:
    """Tune the search space (:mod:`pipelines.training.tuning`) on the training rows.

    Args:
        train_path: The features step's training rows.
        spec_path: The feature spec.
        out_path: The tuning record (JSON) written: every trial, the best, the chosen values.
        given: Every training parameter as the pipeline was given it (trial 0, and the values
            used as they are when the budget has no trials).
        budget: ``trials``, ``timeout_s``, ``epochs``.

    Returns:
        The record (the step's metadata, which tracking logs trial by trial).
    """
    from pipelines.training import preprocessing as features_lib
    from pipelines.training import tuning

    with reported("tune"):
        try:
            plan = tuning.Budget(**budget)
        except ValueError as exc:
            raise StepError(f"tune: {exc}") from None
        spec = features_lib.FeatureSpec.load(spec_path)
        started = time.perf_counter()
        try:
            record = tuning.run_study(data_lib.read_table(train_path), spec, given, plan)
        except ValueError as exc:
            raise StepError(f"tune: {exc}") from None
        record["seconds"] = round(time.perf_counter() - started, 3)
        write_json(out_path, record)
        return record


def tuned_params(tuning_path: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` completed with the tune step's chosen values, and a summary for the record.

    Only the names the search space may tune are taken (:data:`tuning.TUNABLE`): a record that
    names any other (the seed, the epochs) is refused rather than let it steer the training.
    """
    from pipelines.training import tuning

    record = read_json(tuning_path)
    chosen = record["chosen"]
    unknown = sorted(set(chosen) - set(tuning.TUNABLE))
    if unknown:
        raise StepError(f"train: the tuning record names untunable parameters {unknown}")
    best = record.get("best") or {}
    summary = {
        "tuned": bool(record.get("tuned")),
        "trials": len(record.get("trials", [])),
        "best_trial": best.get("number"),
        "best_value": best.get("value"),
        "objective": record.get("objective"),
        "chosen": chosen,
    }
    return {**params, **chosen}, summary
