"""A simple local model registry: JSON files under one folder.

Layout::

    <registry>/<model>/versions/<version>.json   lineage record of each registered version
    <registry>/<model>/production.json           {"version": N, "promoted_at": ...}
    <registry>/<model>/versions/<version>.encryption.json   written by the encrypt step

Versions are positive integers because Triton's model repository requires numeric version
folders. A version is claimed with an exclusive create, so two runs racing for the same number
cannot both win; re-registering identical weights returns the existing version.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RECORD_FORMAT = "sovml-model-version/1"


class RegistryError(RuntimeError):
    """The registry is inconsistent or a version is already taken by other weights."""


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json_atomic(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


class Registry:
    """Model versions and the production pointer, stored as JSON under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def versions_dir(self, model: str) -> Path:
        """Folder of ``model``'s version records."""
        return self.root / model / "versions"

    def record_path(self, model: str, version: int) -> Path:
        """Path of one version's lineage record."""
        return self.versions_dir(model) / f"{version}.json"

    def versions(self, model: str) -> list[int]:
        """Registered version numbers, ascending."""
        folder = self.versions_dir(model)
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def get(self, model: str, version: int) -> dict[str, Any]:
        """The lineage record of ``model`` ``version``."""
        path = self.record_path(model, version)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RegistryError(f"{model} version {version} is not registered ({path})") from None

    def find_by_fingerprint(self, model: str, fingerprint: str) -> int | None:
        """The version whose weights have SHA-256 ``fingerprint``, if any."""
        for version in self.versions(model):
            if self.get(model, version).get("model", {}).get("weights_sha256") == fingerprint:
                return version
        return None

    def next_version(self, model: str, fingerprint: str) -> int:
        """The version number the given weights get: their existing one, else the next free."""
        existing = self.find_by_fingerprint(model, fingerprint)
        if existing is not None:
            return existing
        versions = self.versions(model)
        return (versions[-1] + 1) if versions else 1

    def register(self, model: str, version: int, record: dict[str, Any]) -> Path:
        """Store ``record`` as ``version``; idempotent for the same weights.

        Raises:
            RegistryError: If ``version`` already holds different weights (a concurrent run
                claimed it first): rerun the pipeline to get a new number.
        """
        path = self.record_path(model, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"format": RECORD_FORMAT, "model_name": model, "version": version, **record}
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            current = self.get(model, version)
            mine = record.get("model", {}).get("weights_sha256")
            if current.get("model", {}).get("weights_sha256") != mine:
                raise RegistryError(
                    f"{model} version {version} is already registered with other weights "
                    f"({path}); another run claimed it; rerun to get a new version"
                ) from None
            return path
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh, indent=2, sort_keys=True)
            fh.write("\n")
        return path

    def production(self, model: str) -> dict[str, Any] | None:
        """The production version's record, or None when nothing was promoted."""
        pointer = self.root / model / "production.json"
        if not pointer.exists():
            return None
        version = int(json.loads(pointer.read_text())["version"])
        return self.get(model, version)

    def promote(self, model: str, version: int) -> Path:
        """Make ``version`` the production version (atomic pointer swap)."""
        self.get(model, version)  # must exist
        pointer = self.root / model / "production.json"
        _write_json_atomic(pointer, {"version": version, "promoted_at": utc_now()})
        return pointer

    def attach(self, model: str, version: int, name: str, body: dict[str, Any]) -> Path:
        """Store a sidecar record ``<version>.<name>.json`` (e.g. the encryption manifest)."""
        self.get(model, version)
        path = self.versions_dir(model) / f"{version}.{name}.json"
        _write_json_atomic(path, body)
        return path
