"""Shared helpers and fixtures of the artifact-encryption tests.

The fixtures are named ``keys``, ``model_repo`` and ``encrypted_file``; import their functions
(``fixture_<name>``) into a test module to use them there::

    from tests.artifact_helpers import fixture_keys  # noqa: F401
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from infra.cli.artifact import artifact_app
from pipelines import artifacts as art

CHUNK = 4096
"""A small chunk size, so that a few KiB span several chunks."""
REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository checkout."""


def _cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.add_typer(artifact_app, name="artifact")

    @app.callback()
    def _root() -> None:
        """Test harness for the artifact commands."""

    return app


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Invoke ``artifact ...``; returns the exit code and stdout+stderr."""
    result = CliRunner().invoke(_cli(), ["artifact", *args], env=env)
    output = result.output + (result.stderr if result.stderr not in result.output else "")
    assert "Traceback" not in output, output
    return result.exit_code, output


def write_random(path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path`` (parents created); returns them."""
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root``: relative POSIX path -> content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    """XOR the byte at ``offset`` of ``path`` with ``mask``."""
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def leftovers(folder: Path) -> list[str]:
    """Temporary files/folders a failed operation might have left behind."""
    return sorted(p.name for p in folder.iterdir() if "sovml-tmp" in p.name)


@pytest.fixture(name="keys")
def fixture_keys(tmp_path: Path) -> art.LocalKeyFile:
    """A fresh local key file (version 1)."""
    return art.LocalKeyFile.create(tmp_path / "keys" / "kek.json")


@pytest.fixture(name="model_repo")
def fixture_model_repo(tmp_path: Path) -> Path:
    """A small Triton-style model repository with awkward sizes for a 4 KiB chunk."""
    root = tmp_path / "repo"
    write_random(root / "resnet" / "1" / "model.plan", 5 * CHUNK + 123)
    write_random(root / "resnet" / "1" / "exact.bin", 2 * CHUNK)
    (root / "resnet" / "config.pbtxt").write_text('name: "resnet"\nplatform: "tensorrt_plan"\n')
    (root / "resnet" / "empty.txt").write_bytes(b"")
    script = root / "ensemble" / "1" / "model.py"
    script.parent.mkdir(parents=True)
    script.write_text("print('hello')\n")
    script.chmod(0o755)
    return root


@pytest.fixture(name="encrypted_file")
def fixture_encrypted_file(tmp_path: Path, keys: art.LocalKeyFile) -> tuple[Path, bytes]:
    """``model.bin`` (3 chunks and 17 bytes) encrypted with :func:`keys`; the plaintext removed."""
    data = write_random(tmp_path / "model.bin", 3 * CHUNK + 17)
    art.encrypt_path(tmp_path / "model.bin", keys, chunk_size=CHUNK)
    (tmp_path / "model.bin").unlink()
    return tmp_path / "model.bin.enc", data
