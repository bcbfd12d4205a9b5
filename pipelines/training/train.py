"""Seeded, reproducible training of :class:`~pipelines.training.model.CreditRiskMLP`.

One code path for every place the pipeline runs:

* CPU, one process (the development machine, CI, ``kfp.local``): plain fp32, seconds.
* CUDA: mixed precision (``torch.autocast`` with bf16 where the GPU supports it, else fp16 with
  a gradient scaler) under DistributedDataParallel, one process per GPU.
* Several workers (``workers > 1``, or ``WORLD_SIZE`` set by torchrun or a PyTorchJob):
  DistributedDataParallel, NCCL on GPUs, gloo on CPUs.

Reproducibility: the same data, parameters and world size give bit-identical weights. Model
initialisation and the per-epoch shuffles come from ``seed`` alone, batches are taken in a fixed
order, and deterministic algorithms are enforced.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pipelines.training import model as model_lib
from pipelines.training.preprocessing import FeatureSpec

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainParams:
    """Training hyper-parameters (all recorded in the lineage).

    Attributes:
        seed: Seeds initialisation and shuffling.
        epochs: Passes over the training rows.
        batch_size: Global batch size (split across workers under DDP).
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        hidden_units: Hidden layer widths, comma-separated (``"64,32"``).
        precision: ``auto`` (bf16/fp16 autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16`` or
            ``fp16`` (CUDA only).
        workers: Processes to train with; 0 = automatic (``WORLD_SIZE`` if set, else one per
            GPU, else 1).
    """

    seed: int = 42
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    hidden_units: str = "64,32"
    precision: str = "auto"
    workers: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.workers < 0:
            raise ValueError("epochs and batch_size must be >= 1 and workers >= 0")
        model_lib.parse_hidden(self.hidden_units)


@dataclass(frozen=True)
class Runtime:
    """Where and how training runs, decided once from the parameters and the machine."""

    device_type: str
    world_size: int
    distributed: bool
    launched: bool
    amp_dtype: str | None

    @property
    def backend(self) -> str:
        """The torch.distributed backend for this device."""
        return "nccl" if self.device_type == "cuda" else "gloo"


@dataclass
class TrainResult:
    """Trained weights (CPU, fp32) and what happened."""

    state: dict[str, torch.Tensor]
    history: list[float]
    info: dict[str, Any] = field(default_factory=dict)


def resolve_runtime(params: TrainParams) -> Runtime:
    """Pick device, world size, DDP and autocast dtype for ``params`` on this machine."""
    cuda = torch.cuda.is_available()
    device_type = "cuda" if cuda else "cpu"
    launched = "WORLD_SIZE" in os.environ and "RANK" in os.environ
    if launched:
        world = int(os.environ["WORLD_SIZE"])
    elif params.workers:
        world = params.workers
    else:
        world = torch.cuda.device_count() if cuda else 1
    if cuda and not launched and world > torch.cuda.device_count():
        raise ValueError(f"workers={world} but only {torch.cuda.device_count()} GPUs")

    precision = params.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "fp16" and not cuda:
        raise ValueError("precision 'fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
    amp = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}[precision]
    # On CUDA, DDP even for one GPU: the same code path as a multi-GPU node, at no real cost.
    return Runtime(device_type, world, cuda or world > 1, launched, amp)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _deterministic(seed: int, cuda: bool) -> None:
    torch.manual_seed(seed)
    if cuda:
        # cuBLAS needs this before its first handle to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    # On the CPU the ops used here (linear, ReLU, BCE, AdamW) are deterministic already, and
    # use_deterministic_algorithms() would import torch._inductor: 3 s of a 5 s training step.


class AdamW:
    """AdamW (decoupled weight decay, bias-corrected moments), as ``torch.optim.AdamW`` computes it.

    Why not ``torch.optim.AdamW``: every ``torch.optim`` optimiser imports ``torch._dynamo`` on
    first use, 3-4 s per process on the 2-core development machine, longer than training itself.
    Exposes ``param_groups``, ``zero_grad`` and ``step``, which is all ``GradScaler`` uses.
    """

    def __init__(
        self,
        params: list[nn.Parameter],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param_groups = [{"params": list(params), "lr": lr}]
        self.weight_decay = weight_decay
        self.betas = betas
        self.eps = eps
        self.steps = 0
        self._exp_avg = [torch.zeros_like(p) for p in self.param_groups[0]["params"]]
        self._exp_avg_sq = [torch.zeros_like(p) for p in self.param_groups[0]["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients."""
        for p in self.param_groups[0]["params"]:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.steps += 1
        lr = self.param_groups[0]["lr"]
        beta1, beta2 = self.betas
        correction1 = 1 - beta1**self.steps
        correction2 = 1 - beta2**self.steps
        for p, m, v in zip(
            self.param_groups[0]["params"], self._exp_avg, self._exp_avg_sq, strict=True
        ):
            if p.grad is None:
                continue
            p.mul_(1 - lr * self.weight_decay)
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (v.sqrt() / math.sqrt(correction2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / correction1)


def _batches(n: int, batch_size: int, world: int, rank: int, perm: torch.Tensor):
    """This rank's index tensors for one epoch, in order; equal counts on every rank."""
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        usable = len(idx) - len(idx) % world
        if usable == 0:
            continue
        yield idx[:usable][rank::world]


def _run(
    rank: int,
    runtime: Runtime,
    features: np.ndarray,
    labels: np.ndarray,
    spec: FeatureSpec,
    params: TrainParams,
    result_path: str | None,
    port: int | None,
) -> TrainResult | None:
    """Train as ``rank`` of ``runtime.world_size``; rank 0 returns (or saves) the result."""
    started = time.perf_counter()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    local_rank = _join(rank, runtime, port)
    try:
        _deterministic(params.seed, runtime.device_type == "cuda")
        device = torch.device(
            runtime.device_type, local_rank if runtime.device_type == "cuda" else 0
        )
        if device.type == "cuda":
            torch.cuda.set_device(device)
        net = model_lib.build(spec, params.hidden_units).to(device)
        trainee: nn.Module = net
        if runtime.distributed:
            trainee = nn.parallel.DistributedDataParallel(
                net, device_ids=[local_rank] if device.type == "cuda" else None
            )
        history, steps = _fit(trainee, features, labels, params, runtime, device, rank)
        if rank != 0:
            return None
        # Float tensors as fp32 on the CPU; the boolean log mask keeps its dtype.
        state = {
            k: (v.float() if v.is_floating_point() else v).detach().cpu().clone()
            for k, v in net.state_dict().items()
        }
        info = _run_info(runtime, device, steps, started)
        result = TrainResult(state, history, info)
        if result_path is not None:
            torch.save({"state": state, "history": history, "info": info}, result_path)
        return result
    finally:
        if runtime.device_type == "cuda":
            torch.use_deterministic_algorithms(was_deterministic)
        if runtime.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _join(rank: int, runtime: Runtime, port: int | None) -> int:
    """Set this process up as ``rank`` (CPU threads, the process group); return its local rank."""
    world = runtime.world_size
    local_rank = int(os.environ.get("LOCAL_RANK", rank)) if runtime.launched else rank
    if runtime.device_type == "cpu" and world > 1 and not runtime.launched:
        # Workers share this machine's cores; more threads than cores makes gloo crawl.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if runtime.distributed:
        if not runtime.launched:
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group(runtime.backend, rank=rank, world_size=world)
    return local_rank


def _fit(
    trainee: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    params: TrainParams,
    runtime: Runtime,
    device: torch.device,
    rank: int,
) -> tuple[list[float], int]:
    """The epochs: mean loss per epoch (over every rank's rows) and the optimiser steps taken."""
    world = runtime.world_size
    optimiser = AdamW(
        list(trainee.parameters()), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    amp_dtype = getattr(torch, runtime.amp_dtype) if runtime.amp_dtype else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device)
    y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32)).to(device)
    shuffler = torch.Generator().manual_seed(params.seed)
    history: list[float] = []
    steps = 0
    for _ in range(params.epochs):
        trainee.train()
        perm = torch.randperm(len(x), generator=shuffler).to(device)
        total = torch.zeros(2, device=device, dtype=torch.float64)
        for idx in _batches(len(x), params.batch_size, world, rank, perm):
            autocast = (
                torch.autocast(device.type, dtype=amp_dtype)
                if amp_dtype is not None
                else contextlib.nullcontext()
            )
            with autocast:
                logits = trainee(x[idx]).squeeze(1)
            # The loss in fp32 whatever autocast did: BCE on bf16 logits loses resolution.
            loss_sum = loss_fn(logits.float(), y[idx])
            loss = loss_sum / len(idx)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += torch.stack([loss_sum.detach().double(), total.new_tensor(len(idx))])
            steps += 1
        if runtime.distributed:
            dist.all_reduce(total)
        history.append(float(total[0] / total[1]))
    return history, steps


def _run_info(runtime: Runtime, device: torch.device, steps: int, started: float) -> dict[str, Any]:
    """The training record's ``runtime``: device, precision, distribution, steps and time."""
    return {
        "device": str(device.type),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": runtime.amp_dtype or "float32",
        "distributed": runtime.distributed,
        "backend": runtime.backend if runtime.distributed else None,
        "world_size": runtime.world_size,
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 3),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _spawned(rank: int, *args: Any) -> None:
    _run(rank, *args)


def train(
    features: np.ndarray, labels: np.ndarray, spec: FeatureSpec, params: TrainParams
) -> TrainResult:
    """Train on raw ``features`` (spec order) and 0/1 ``labels``; see the module docstring.

    Returns:
        The weights of rank 0 on the CPU in fp32, the per-epoch mean training loss and a
        description of the run (device, precision, DDP, world size, seconds).
    """
    if len(features) != len(labels) or len(features) == 0:
        raise ValueError("features and labels must be non-empty and of equal length")
    runtime = resolve_runtime(params)
    if runtime.launched:
        result = _run(int(os.environ["RANK"]), runtime, features, labels, spec, params, None, None)
        if result is None:  # only rank 0 returns weights; the others are done
            return TrainResult({}, [], {"rank": int(os.environ["RANK"])})
        return result
    port = _free_port() if runtime.distributed else None
    if runtime.world_size == 1:
        # One process (CPU, or DDP over a single GPU): no need to spawn.
        result = _run(0, runtime, features, labels, spec, params, None, port)
        assert result is not None
        return result
    with tempfile.TemporaryDirectory(prefix="sovml-train-") as tmp:
        result_path = str(Path(tmp) / "result.pt")
        torch.multiprocessing.spawn(
            _spawned,
            args=(runtime, features, labels, spec, params, result_path, port),
            nprocs=runtime.world_size,
            join=True,
        )
        saved = torch.load(result_path, weights_only=False)
    return TrainResult(saved["state"], saved["history"], saved["info"])


def params_dict(params: TrainParams) -> dict[str, Any]:
    """Plain-dict form of ``params`` for JSON records."""
    return asdict(params)


def loss_is_finite(history: list[float]) -> bool:
    """True when every epoch loss is a finite number (a NaN means training diverged)."""
    return all(math.isfinite(v) for v in history)
