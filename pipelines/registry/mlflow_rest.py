"""A small typed client of MLflow's REST API (2.0): experiments, runs, artifacts, the registry.

MLflow's own client cannot live in the main virtualenv (its pins conflict with the main lock:
``requirements/mlflow.in``), so the server runs from ``.venv-mlflow`` and everything else speaks
to it over HTTP with ``requests``. Only the calls the platform makes are here; each maps one
endpoint of ``mlflow/server/handlers.py`` (MLflow 3.17). Model versions are addressed by the
registry's own version string; stages are not used (deprecated since MLflow 2.9): the lifecycle
is an alias per state plus a ``lifecycle_state`` tag (``pipelines/registry/governance.py``).

Every failure is an :class:`MlflowError`: ``unreachable`` when no answer came (the server is
down or the URI wrong: an environment problem), else MLflow's ``error_code`` and message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

TIMEOUT_S = 30.0
"""Seconds one request may take."""
MAX_TAG_VALUE = 5000
"""Longest tag value MLflow stores for a model version (its SQL schema's limit)."""


class MlflowError(RuntimeError):
    """A call to the tracking server failed.

    Attributes:
        code: MLflow's ``error_code`` (``RESOURCE_DOES_NOT_EXIST``...), or ``UNREACHABLE``.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def unreachable(self) -> bool:
        """Whether the server did not answer at all."""
        return self.code == "UNREACHABLE"


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version as the registry returns it.

    Attributes:
        name: The registered model.
        version: Its version number (MLflow's, a positive integer).
        run_id: The tracking run it came from.
        source: Where its artifacts are.
        tags: Its tags (the lifecycle state, the approval record, the lineage link).
        aliases: Aliases pointing at it (``champion``...).
    """

    name: str
    version: int
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelVersion:
        """Parse MLflow's ``model_version`` object."""
        return cls(
            name=str(body["name"]),
            version=int(body["version"]),
            run_id=str(body.get("run_id", "")),
            source=str(body.get("source", "")),
            tags={t["key"]: t.get("value", "") for t in body.get("tags", [])},
            aliases=tuple(body.get("aliases", [])),
        )


class MlflowRest:
    """The REST API of one tracking server, e.g. ``http://127.0.0.1:5000``."""

    def __init__(self, base_url: str, timeout_s: float = TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"tracking URI {base_url!r}: expected http(s)://host:port")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}/api/2.0/mlflow/{path}"
        try:
            if method == "GET":
                answer = self._session.get(url, params=body, timeout=self.timeout_s)
            else:
                answer = self._session.request(method, url, json=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise MlflowError(
                f"tracking server {self.base_url} unreachable: {type(exc).__name__}", "UNREACHABLE"
            ) from None
        return _decoded(answer, path)

    def health(self) -> bool:
        """Whether the server answers its health endpoint."""
        try:
            answer = self._session.get(f"{self.base_url}/health", timeout=2.0)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    # Tracking ----------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created when missing."""
        try:
            found = self._call("GET", "experiments/get-by-name", {"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except MlflowError as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
        return str(self._call("POST", "experiments/create", {"name": name})["experiment_id"])

    def create_run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
        """A new run in ``experiment_id``; its id."""
        body = {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        }
        return str(self._call("POST", "runs/create", body)["run"]["info"]["run_id"])

    def log_batch(
        self,
        run_id: str,
        params: dict[str, str],
        metrics: dict[str, float],
        tags: dict[str, str],
    ) -> None:
        """Parameters, metrics (step 0, now) and tags of a run, in one call."""
        now = int(time.time() * 1000)
        body = {
            "run_id": run_id,
            "params": [{"key": k, "value": v} for k, v in sorted(params.items())],
            "metrics": [
                {"key": k, "value": float(v), "timestamp": now, "step": 0}
                for k, v in sorted(metrics.items())
            ],
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        }
        self._call("POST", "runs/log-batch", body)

    def finish_run(self, run_id: str, status: str) -> None:
        """End a run as ``FINISHED`` or ``FAILED``."""
        body = {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)}
        self._call("POST", "runs/update", body)

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
        """The runs whose ``mlflow.parentRunId`` tag is ``parent_run_id`` (up to 1,000)."""
        body = {
            "experiment_ids": [experiment_id],
            "filter": f"tags.mlflow.parentRunId = '{_quoted(parent_run_id)}'",
            "max_results": 1000,
        }
        return list(self._call("POST", "runs/search", body).get("runs", []))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run's ``info`` and ``data`` (params, metrics, tags) as MLflow returns them."""
        return dict(self._call("GET", "runs/get", {"run_id": run_id})["run"])

    def upload_artifact(self, run_id: str, local: Path, artifact_path: str) -> str:
        """Upload one file to the run's artifacts through the server's artifact proxy.

        Returns:
            The artifact's path inside the run (``<artifact_path>/<file name>``).
        """
        run = self.get_run(run_id)
        root = str(run["info"]["artifact_uri"])
        prefix = "mlflow-artifacts:/"
        if not root.startswith(prefix):
            raise MlflowError(
                f"run {run_id} stores artifacts at {root}, not behind the server's artifact "
                "proxy (start the server with --serve-artifacts)",
                "INVALID_STATE",
            )
        relative = f"{artifact_path}/{local.name}"
        url = (
            f"{self.base_url}/api/2.0/mlflow-artifacts/artifacts/"
            f"{quote(root[len(prefix):].strip('/'))}/{quote(relative)}"
        )
        try:
            with local.open("rb") as body:
                answer = self._session.put(url, data=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise MlflowError(
                f"tracking server {self.base_url} unreachable: {type(exc).__name__}", "UNREACHABLE"
            ) from None
        _decoded(answer, "mlflow-artifacts/artifacts")
        return relative

    def list_artifacts(self, run_id: str, path: str = "") -> list[str]:
        """Paths of the run's artifacts directly under ``path``."""
        body = {"run_id": run_id, **({"path": path} if path else {})}
        return [f["path"] for f in self._call("GET", "artifacts/list", body).get("files", [])]

    # Registry ----------------------------------------------------------------------------

    def ensure_registered_model(self, name: str, description: str) -> None:
        """Create registered model ``name`` unless it exists."""
        try:
            self._call(
                "POST", "registered-models/create", {"name": name, "description": description}
            )
        except MlflowError as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise

    def create_model_version(
        self, name: str, source: str, run_id: str, tags: dict[str, str]
    ) -> ModelVersion:
        """A new version of ``name`` from ``run_id``'s artifacts at ``source``."""
        body = {
            "name": name,
            "source": source,
            "run_id": run_id,
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        }
        return ModelVersion.from_json(
            self._call("POST", "model-versions/create", body)["model_version"]
        )

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """One version of ``name``."""
        body = {"name": name, "version": str(version)}
        return ModelVersion.from_json(
            self._call("GET", "model-versions/get", body)["model_version"]
        )

    def model_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, ascending (empty when the model is not registered)."""
        versions: list[ModelVersion] = []
        token = ""
        while True:
            body: dict[str, Any] = {"filter": f"name='{_quoted(name)}'", "max_results": 1000}
            if token:
                body["page_token"] = token
            page = self._call("GET", "model-versions/search", body)
            versions.extend(ModelVersion.from_json(v) for v in page.get("model_versions", []))
            token = page.get("next_page_token", "")
            if not token:
                break
        # search omits aliases: read each version (few per model) to see them.
        return sorted((self.get_model_version(name, v.version) for v in versions), key=_number)

    def registered_models(self) -> list[str]:
        """Names of every registered model, sorted."""
        names: list[str] = []
        token = ""
        while True:
            body: dict[str, Any] = {"max_results": 1000}
            if token:
                body["page_token"] = token
            page = self._call("GET", "registered-models/search", body)
            names.extend(m["name"] for m in page.get("registered_models", []))
            token = page.get("next_page_token", "")
            if not token:
                return sorted(names)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Set one tag of a version (at most :data:`MAX_TAG_VALUE` characters)."""
        if len(value) > MAX_TAG_VALUE:
            raise ValueError(f"tag {key} of {name} v{version} is longer than {MAX_TAG_VALUE}")
        body = {"name": name, "version": str(version), "key": key, "value": value}
        self._call("POST", "model-versions/set-tag", body)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version`` (moving it from another version)."""
        body = {"name": name, "alias": alias, "version": str(version)}
        self._call("POST", "registered-models/alias", body)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` of ``name`` (no error when it is not set)."""
        try:
            self._call("DELETE", "registered-models/alias", {"name": name, "alias": alias})
        except MlflowError as exc:
            if exc.code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise


def _number(version: ModelVersion) -> int:
    return version.version


def _quoted(text: str) -> str:
    """``text`` inside a single-quoted MLflow filter string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _decoded(answer: requests.Response, path: str) -> dict[str, Any]:
    """The JSON body of a 2xx answer; else MLflow's error as an :class:`MlflowError`."""
    try:
        body = answer.json() if answer.content else {}
    except json.JSONDecodeError:
        body = {}
    if answer.status_code // 100 == 2:
        return body if isinstance(body, dict) else {}
    code = (
        str(body.get("error_code", f"HTTP_{answer.status_code}")) if isinstance(body, dict) else ""
    )
    message = str(body.get("message", answer.reason)) if isinstance(body, dict) else answer.reason
    raise MlflowError(f"{path}: {code}: {message}"[:1000], code or f"HTTP_{answer.status_code}")
