"""Triton Python-backend model that serves the exported TorchScript file with torch.

The export step copies this file to ``model_repository_local/<model>/<version>/model.py`` beside
the very ``model.pt`` the production repository serves with the native PyTorch (libtorch)
backend. It exists because the local Triton server (from the ``nvidia-pytriton`` wheel) has only
the Python backend; inputs, outputs, batching and instance group are the same, so clients cannot
tell the two apart.

Requests of one dynamic batch are concatenated and scored in a single forward pass.
"""

import json
import os
import warnings

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

MODEL_FILE = "model.pt"


class TritonPythonModel:
    """Loads ``model.pt`` from this file's version folder; one forward pass per batch."""

    def initialize(self, args: dict) -> None:
        """Read the config and load the TorchScript model on this instance's device."""
        config = json.loads(args["model_config"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        params = config.get("parameters", {})
        filename = params.get("TORCHSCRIPT_FILE", {}).get("string_value", MODEL_FILE)
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, filename)
        if not os.path.exists(path):
            path = os.path.join(args["model_repository"], args["model_version"], filename)
        gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        with warnings.catch_warnings():
            # torch >= 2.13 deprecates torch.jit; TorchScript is still what libtorch serves.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(path, map_location=self.device).eval()

    def execute(self, requests: list) -> list:
        """Score every request of the batch in one forward pass and split the result."""
        arrays = [
            pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            for request in requests
        ]
        sizes = [a.shape[0] for a in arrays]
        batch = torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays), dtype=np.float32))
        with torch.inference_mode():
            scores = self.model(batch.to(self.device)).cpu().numpy().astype(np.float32)
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
