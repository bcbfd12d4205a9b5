"""The body of every pipeline step, as plain functions of paths and parameters.

The KFP components in ``pipelines/training/tasks.py`` do ``from pipelines.training import steps``
and call ``steps.<name>(...)``, copying the returned dicts into artifact metadata; tests call them
directly. Each function reads its inputs from files and writes its outputs to files, which is all
a KFP artifact is, locally and on the cluster. By step group:

* :mod:`~pipelines.training.steps.dataset`: ingest, validate, features;
* :mod:`~pipelines.training.steps.modelling`: tune, train, evaluate (and loading/scoring the
  model);
* :mod:`~pipelines.training.steps.exporting`: export (CPU backend selection, Triton repositories);
* :mod:`~pipelines.training.steps.release`: register, materialize, encrypt, track (the cluster
  run's tracking);
* :mod:`~pipelines.training.steps.common`: the failure marker lines and :class:`StepError`.
"""

from pipelines.training.steps.common import StepError, reported
from pipelines.training.steps.dataset import features, ingest, validate
from pipelines.training.steps.exporting import CPU_DEFAULTS, export
from pipelines.training.steps.modelling import (
    TRAINING_FILE,
    WEIGHTS_FILE,
    evaluate,
    load_model,
    predict,
    production_auc,
    train,
    tune,
    tuned_params,
)
from pipelines.training.steps.release import encrypt, materialize, register, track

__all__ = [
    "CPU_DEFAULTS",
    "TRAINING_FILE",
    "WEIGHTS_FILE",
    "StepError",
    "encrypt",
    "evaluate",
    "export",
    "features",
    "ingest",
    "load_model",
    "materialize",
    "predict",
    "production_auc",
    "register",
    "reported",
    "track",
    "train",
    "tune",
    "tuned_params",
    "validate",
]
