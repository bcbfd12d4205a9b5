"""Triton Python-backend model that serves the exported model (TorchScript or ONNX) locally.

The export step copies this file to ``model_repository_local/<model>/<version>/model.py`` beside
the very file the production repository serves with a native backend: ``model.pt`` (PyTorch /
libtorch backend) or ``model.onnx`` (ONNX Runtime backend, chosen on the CPU profile by
measurement). It exists because the local Triton server (from the ``nvidia-pytriton`` wheel) has
only the Python backend; inputs, outputs, batching and instance group are the same, so clients
cannot tell the two apart.

Which runtime, from the config's parameters:

* ``ONNX_FILE`` set (an ONNX model): ``model.onnx`` with onnxruntime, ``INTRA_OP_THREAD_COUNT``
  intra-op threads, when the Triton Python environment can import onnxruntime; otherwise the
  ``TORCHSCRIPT_FILE`` beside it (fp32 TorchScript of the same weights) with torch. The choice and
  its reason are logged and kept as ``self.runtime`` / ``self.fallback_reason``.
* otherwise ``TORCHSCRIPT_FILE`` (default ``model.pt``) with torch, on one intra-op thread
  unless ``INTRA_OP_THREAD_COUNT`` says otherwise (instances are the unit of parallelism; several
  instances each spawning a thread per core would oversubscribe a small CPU host).
* ``DELAY_MS`` (default 0) sleeps that long per execution: a deliberate latency regression for
  the canary demos and tests (``write_local_repository`` in ``pipelines/serving/repository.py``),
  never set by the training export.

Requests of one dynamic batch are concatenated and scored in a single forward pass. The model is
warmed up in ``initialize``, before Triton reports it READY, so TorchScript's profiling runs (the
first calls are tens of milliseconds slower) do not reach the latency metrics a canary reads.

This one file is the local twin of every model: the training export and the demo repositories of
``sovml abtest`` / ``sovml bench serve`` copy it alike.
"""

import json
import os
import sys
import time
import warnings

import numpy as np
import triton_python_backend_utils as pb_utils

MODEL_FILE = "model.pt"
WARMUP_RUNS = 5


def _log(message: str) -> None:
    """Triton's model log when the backend offers it (Triton >= 23.04), else stderr."""
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None and hasattr(logger, "log_info"):
        logger.log_info(message)
    else:
        print(message, file=sys.stderr, flush=True)


class TritonPythonModel:
    """Loads the model file from this file's version folder; one forward pass per batch."""

    def initialize(self, args: dict) -> None:
        """Read the config and load the model (ONNX Runtime, or TorchScript on this device)."""
        config = json.loads(args["model_config"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        params = config.get("parameters", {})

        def param(key: str, default: str = "") -> str:
            return params.get(key, {}).get("string_value", default) or default

        self.threads = int(param("INTRA_OP_THREAD_COUNT", "0"))
        self.delay_s = float(param("DELAY_MS", "0")) / 1000.0
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.runtime = "torchscript"
        self.fallback_reason = ""
        self.session = None
        self.model = None
        onnx_file = param("ONNX_FILE")
        if onnx_file:
            try:
                import onnxruntime as ort
            except ImportError as exc:
                self.fallback_reason = f"onnxruntime is not importable here ({exc})"
            else:
                self.session = self._onnx_session(ort, self._path(args, onnx_file))
                self.runtime = "onnxruntime"
                _log(
                    f"{config.get('name')}: serving {onnx_file} with onnxruntime {ort.__version__}"
                )
        if self.session is None:
            filename = param("TORCHSCRIPT_FILE", MODEL_FILE)
            self._load_torchscript(args, self._path(args, filename))
            why = f" ({self.fallback_reason}; TorchScript fallback)" if self.fallback_reason else ""
            _log(f"{config.get('name')}: serving {filename} with torch{why}")
        self._warm_up(config)

    def _warm_up(self, config: dict) -> None:
        dims = [int(d) for d in config["input"][0]["dims"]]
        width = [d if d > 0 else 1 for d in (dims if self.batching else dims[1:])]
        max_batch = max(1, int(config.get("max_batch_size", 0)))
        for rows in sorted({1, min(2, max_batch), max_batch}):
            sample = np.zeros([rows, *width], dtype=np.float32)
            for _ in range(WARMUP_RUNS):
                self._score(sample)

    @staticmethod
    def _path(args: dict, filename: str) -> str:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, filename)
        if not os.path.exists(path):
            path = os.path.join(args["model_repository"], args["model_version"], filename)
        return path

    def _onnx_session(self, ort, path: str):
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def _load_torchscript(self, args: dict, path: str) -> None:
        # torch only when needed: importing it costs seconds per model instance.
        import torch

        torch.set_num_threads(self.threads or 1)
        gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        with warnings.catch_warnings():
            # torch >= 2.13 deprecates torch.jit; TorchScript is still what libtorch serves.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(path, map_location=self.device).eval()

    def _score(self, batch: np.ndarray) -> np.ndarray:
        if self.session is not None:
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(batch).to(self.device)).cpu().numpy()

    def execute(self, requests: list) -> list:
        """Score every request of the batch in one forward pass and split the result."""
        arrays = [
            pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            for request in requests
        ]
        sizes = [a.shape[0] for a in arrays]
        batch = np.ascontiguousarray(np.concatenate(arrays), dtype=np.float32)
        scores = self._score(batch).astype(np.float32)
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        responses = []
        start = 0
        for size in sizes:
            tensor = pb_utils.Tensor(self.output_name, scores[start : start + size])
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start += size
        return responses

    def finalize(self) -> None:
        """Release the model."""
        self.model = None
        self.session = None
