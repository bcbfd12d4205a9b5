"""The canary demo: a seeded labelled data set and four Triton variants of one small MLP.

``sovml abtest`` without ``--baseline``, ``sovml bench serve`` without a repository and
``sovml bench abtest`` build it; ``tests/test_abtest.py`` canaries its scenarios on the real
server.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.serving.repository import (
    INPUT_NAME,
    OUTPUT_NAME,
    ModelConfig,
    python_parameters,
    write_local_repository,
)


@dataclass(frozen=True)
class DemoData:
    """A seeded synthetic labelled data set (binary classification)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def make_dataset(
    rows: int = 6000, dim: int = 8, seed: int = 0, label_noise: float = 0.15
) -> DemoData:
    """Gaussian features, labels from a fixed linear rule plus logistic noise (seeded).

    ``label_noise`` scales the noise: 0.15 makes a well-trained model about 90% accurate.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    w /= np.linalg.norm(w)
    x = rng.normal(size=(rows, dim)).astype(np.float32)
    noise = rng.logistic(scale=label_noise, size=rows)
    y = ((x @ w + noise) > 0).astype(np.int64)
    cut = rows // 2
    return DemoData(x[:cut], y[:cut], x[cut:], y[cut:])


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    path: str | Path,
    *,
    seed: int = 0,
    shuffle_labels: bool = False,
    hidden: int = 16,
    epochs: int = 200,
) -> Path:
    """Train a small MLP (features -> probability ``[n, 1]``), save it as TorchScript.

    ``shuffle_labels`` trains on permuted labels: a deliberately useless variant (about 50%
    accurate) with the same architecture, hence the same latency.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    targets = rng.permutation(y) if shuffle_labels else y
    model = nn.Sequential(
        nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid()
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(targets.astype(np.float32)).reshape(-1, 1)
    loss_fn = nn.BCELoss()
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    model.eval()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(out))
    return out


SCENARIOS = {
    "better": ("shuffled", "trained"),
    "worse-accuracy": ("trained", "shuffled"),
    "worse-latency": ("trained", "slow"),
    "same": ("trained", "twin"),
}
"""Demo scenario -> (baseline, candidate) variant: a better candidate (the trained model against
the shuffled-label one), one worse in accuracy, one worse in latency (same model, sleeps), and
the same model under a second name (an A/A test)."""
VARIANTS = ("trained", "shuffled", "slow", "twin")
SLOW_DELAY_MS = 50.0
"""The slow variant's sleep per execution. A floor under every one of its latencies, so the
latency guard fails it while the baseline's p99 upper bound stays under 33 ms (1.5x less): with
10 ms that bar was 6.7 ms, and a loaded CI host has shown a p99 of 14.5 ms for a model that does
not sleep."""


@dataclass(frozen=True)
class DemoRepository:
    """A repository with the demo variants (``<model>-<variant>``) and labelled traffic."""

    root: Path
    model: str
    data: DemoData

    def name(self, variant: str) -> str:
        """Triton model name of a variant."""
        return f"{self.model}-{variant}"

    def pair(self, scenario: str) -> tuple[str, str]:
        """(baseline, candidate) model names of a scenario."""
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario: {scenario!r}; allowed {tuple(SCENARIOS)}")
        baseline, candidate = SCENARIOS[scenario]
        return self.name(baseline), self.name(candidate)


def build_demo_repository(
    out_dir: str | Path,
    *,
    model: str = "demo",
    seed: int = 0,
    delay_ms: float = SLOW_DELAY_MS,
    dynamic_batching: bool = True,
) -> DemoRepository:
    """Train the demo variants on a seeded data set and write them as Triton models.

    * ``<model>-trained``: a small MLP trained on the labels (about 90% accurate);
    * ``<model>-shuffled``: the same architecture trained on permuted labels (about 50%);
    * ``<model>-slow``: the trained model, sleeping ``delay_ms`` per execution;
    * ``<model>-twin``: the trained model again, under another name (A/A tests).

    Each variant has the same I/O, batching and instance group as the pipeline's export.
    """
    root = Path(out_dir)
    data = make_dataset(seed=seed)
    repo = DemoRepository(root, model, data)
    with tempfile.TemporaryDirectory(prefix="sovml-demo-") as tmp:
        trained = train_classifier(data.train_x, data.train_y, Path(tmp) / "t.pt", seed=seed)
        shuffled = train_classifier(
            data.train_x, data.train_y, Path(tmp) / "s.pt", seed=seed, shuffle_labels=True
        )
        for variant, pt, delay in (
            ("trained", trained, 0.0),
            ("shuffled", shuffled, 0.0),
            ("slow", trained, delay_ms),
            ("twin", trained, 0.0),
        ):
            config = ModelConfig(
                name=repo.name(variant),
                backend="python",
                input_name=INPUT_NAME,
                input_dim=data.train_x.shape[1],
                output_name=OUTPUT_NAME,
                output_dim=1,
                max_batch_size=64,
                dynamic_batching=dynamic_batching,
                instance_count=1,
                parameters=python_parameters(delay_ms=delay),
            )
            write_local_repository(pt, root, config)
    return repo
