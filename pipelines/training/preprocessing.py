"""Feature preparation: out-of-time split and the standardisation the model carries.

The statistics are fitted on the training rows only (no leakage from the test period) and are
stored in a :class:`FeatureSpec`. The model applies them inside its TorchScript graph
(:mod:`pipelines.training.model`), so Triton receives the raw feature vector and training and
serving cannot disagree on the scaling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.training import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SPEC_FORMAT = "sovml-feature-spec/1"


@dataclass(frozen=True)
class FeatureSpec:
    """The recorded feature list and the fitted preprocessing.

    Attributes:
        features: Feature names in model input order.
        transforms: Per feature, ``identity`` or ``log1p`` (applied before scaling).
        mean: Per feature, the training mean after the transform.
        std: Per feature, the training standard deviation after the transform (>= 1e-6).
        label: Label column.
        entity: Entity id column.
        timestamp: Event-time column.
        split: How the rows were split (cutoff time, row counts, positive rates).
        format: Format id of the serialised spec.
    """

    features: list[str]
    transforms: list[str]
    mean: list[float]
    std: list[float]
    label: str = schema.LABEL
    entity: str = schema.ENTITY
    timestamp: str = schema.TIMESTAMP
    split: dict[str, Any] = field(default_factory=dict)
    format: str = SPEC_FORMAT

    def to_json(self) -> str:
        """Serialise (sorted keys, stable across runs)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Parse a spec written by :meth:`to_json`."""
        raw = json.loads(text)
        if raw.get("format") != SPEC_FORMAT:
            raise ValueError(f"not a feature spec ({raw.get('format')!r} != {SPEC_FORMAT!r})")
        return cls(**raw)

    def save(self, path: str | Path) -> None:
        """Write the spec as JSON."""
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        """Read a spec saved with :meth:`save`."""
        return cls.from_json(Path(path).read_text())


def transform(matrix: np.ndarray, transforms: list[str]) -> np.ndarray:
    """Apply the per-column monotone transforms (NumPy twin of the model's preprocessing)."""
    import numpy as np

    out = matrix.astype(np.float64, copy=True)
    for i, name in enumerate(transforms):
        if name == "log1p":
            out[:, i] = np.log1p(np.clip(out[:, i], 0, None))
    return out


def split_out_of_time(
    frame: pd.DataFrame, test_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Split by event time: the latest ``test_fraction`` of rows become the test set.

    Out-of-time validation is what a credit model faces in production (it scores customers after
    the period it learned from), so it is the honest estimate for the gate.

    Returns:
        ``(train, test, cutoff)``: test rows have ``event_timestamp >= cutoff`` (ISO 8601).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ordered = frame.sort_values([schema.TIMESTAMP, schema.ENTITY], kind="stable")
    n_test = max(1, round(len(ordered) * test_fraction))
    if n_test >= len(ordered):
        raise ValueError(f"{len(ordered)} rows are too few to hold out {n_test} for testing")
    train = ordered.iloc[: len(ordered) - n_test].reset_index(drop=True)
    test = ordered.iloc[len(ordered) - n_test :].reset_index(drop=True)
    cutoff = test[schema.TIMESTAMP].iloc[0].isoformat()
    return train, test, cutoff


def fit(train: pd.DataFrame, test: pd.DataFrame, cutoff: str) -> FeatureSpec:
    """Fit the preprocessing on ``train`` and describe the split."""
    columns = [schema.BY_NAME[name] for name in schema.FEATURES]
    transforms = [c.transform for c in columns]
    matrix = transform(train[list(schema.FEATURES)].to_numpy(), transforms)
    mean = matrix.mean(axis=0)
    std = matrix.std(axis=0)
    # A constant column would divide by zero; 1e-6 keeps it at 0 after centring instead.
    std[std < 1e-6] = 1.0
    return FeatureSpec(
        features=list(schema.FEATURES),
        transforms=transforms,
        mean=[round(float(v), 10) for v in mean],
        std=[round(float(v), 10) for v in std],
        split={
            "method": "out-of-time",
            "cutoff": cutoff,
            "train_rows": len(train),
            "test_rows": len(test),
            "train_positive_rate": float(train[schema.LABEL].mean()),
            "test_positive_rate": float(test[schema.LABEL].mean()),
        },
    )


def matrices(frame: pd.DataFrame, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Raw float32 feature matrix (spec order) and float32 label vector of ``frame``."""
    import numpy as np

    features = frame[spec.features].to_numpy(dtype=np.float32)
    labels = frame[spec.label].to_numpy(dtype=np.float32)
    return features, labels
