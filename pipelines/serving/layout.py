"""Can Triton serve this model repository? Checked before a server starts, naming what is wrong.

Triton reports a broken repository only in its log, and for some faults only after the whole
ready timeout (a Python-backend version folder without ``model.py`` is the measured case).
:func:`check_repository` looks first, for every model to load:

* the model folder exists and holds a regular ``config.pbtxt`` (UTF-8 text);
* it has version folders named by numbers (Triton ignores other names), and every version its
  ``version_policy`` serves (default: the latest one; ``all``; ``specific``) exists;
* each served version holds its backend's file: ``model.py`` (python), ``model.pt``
  (pytorch/libtorch), ``model.onnx`` (onnxruntime), or ``default_model_filename`` when the config
  sets one; for the python backend also the ``TORCHSCRIPT_FILE``/``ONNX_FILE`` parameters'
  files it declares (what ``pipelines/serving/python_model.py`` loads). Unknown backends are
  left to Triton.

The config is read with a small text-format scanner (comments and the few fields above), not a
protobuf parser: enough to name a missing file, never a judge of the whole config, which stays
Triton's job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.serving.repository import CONFIG_FILE, MODEL_FILES, MODEL_PY


class ServingInputError(ValueError):
    """A serving input (model repository, model name, log path, timeout) is unusable: one line
    naming the path or value and what is wrong."""


BACKEND_FILES = {"python": MODEL_PY, "pytorch": MODEL_FILES["pytorch"]}
BACKEND_FILES["onnxruntime"] = MODEL_FILES["onnxruntime"]
"""The file Triton loads from a version folder, per backend, unless ``default_model_filename``."""
PLATFORM_BACKENDS = {"pytorch_libtorch": "pytorch", "onnxruntime_onnx": "onnxruntime"}
"""``platform:`` values and the backend that serves them."""
PYTHON_FILE_PARAMETERS = ("TORCHSCRIPT_FILE", "ONNX_FILE")
"""Parameters naming the files ``python_model.py`` loads from the version folder."""
_STRING_OR_COMMENT = re.compile(r'("(?:\\.|[^"\\\n])*")|#[^\n]*')


@dataclass(frozen=True)
class ModelLayout:
    """One model folder as Triton will load it."""

    name: str
    directory: Path
    backend: str
    """``python``, ``pytorch``, ``onnxruntime``, or the config's own value for other backends."""
    versions: tuple[int, ...]
    """The versions its version policy serves, ascending."""

    def version_dir(self, version: int) -> Path:
        """The folder of ``version`` (as named on disk, leading zeros kept)."""
        return _version_dirs(self.directory)[version]


def check_repository(repository: Path, models: Sequence[str] | None = None) -> list[ModelLayout]:
    """The layouts of ``models`` (None: every model folder with a ``config.pbtxt``), checked.

    The one validator of a model repository (``sovml serve``, ``abtest``, ``bench serve`` and
    :class:`pipelines.serving.triton.TritonServer` all go through it).

    Raises:
        ServingInputError: The repository is missing or not a folder, holds no model, a model
            is not there, or a model's config, versions or files are missing (see the module
            docstring); the message names the model, the version and the missing file.
    """
    root = Path(repository)
    if not root.exists():
        raise ServingInputError(f"model repository not found: {root}")
    if not root.is_dir():
        raise ServingInputError(f"model repository {root} is not a folder")
    found = sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())
    if models is None:
        if not found:
            raise ServingInputError(f"{root}: no model folder with a {CONFIG_FILE}")
        models = found
    return [_check_model(root, name, found) for name in models]


def _check_model(root: Path, name: str, found: list[str]) -> ModelLayout:
    """One model's layout (see :func:`check_repository`)."""
    there = f"models there: {', '.join(found) or 'none'}"
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ServingInputError(f"model name {name!r} is not a folder name of {root}; {there}")
    directory = root / name
    if not directory.is_dir():
        raise ServingInputError(f"model {name!r} is not in {root}; {there}")
    config = directory / CONFIG_FILE
    if not config.exists():
        raise ServingInputError(f"model {name!r}: {config} not found")
    if not config.is_file():
        raise ServingInputError(f"model {name!r}: {config} is not a regular file")
    try:
        text = _STRING_OR_COMMENT.sub(lambda m: m.group(1) or "", config.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ServingInputError(f"model {name!r}: cannot read {config}: {reason}") from None
    on_disk = _version_dirs(directory)
    if not on_disk:
        raise ServingInputError(
            f"model {name!r}: no version folder in {directory} (a folder named by a number, "
            f"e.g. {directory / '1'})"
        )
    versions = _served_versions(text, sorted(on_disk), name, directory)
    backend = _backend(text)
    required = _required_files(text, backend)
    for version in versions:
        for filename, why in required:
            path = on_disk[version] / filename
            if not path.is_file():
                raise ServingInputError(
                    f"model {name!r} version {version}: {path} is missing ({why})"
                )
    return ModelLayout(name, directory, backend, tuple(versions))


def _version_dirs(directory: Path) -> dict[int, Path]:
    """Version number -> folder, for the sub-folders named by ASCII digits."""
    return {
        int(p.name): p
        for p in directory.iterdir()
        if p.is_dir() and p.name.isascii() and p.name.isdigit()
    }


def _served_versions(text: str, on_disk: list[int], name: str, directory: Path) -> list[int]:
    """The versions the config's ``version_policy`` serves among ``on_disk`` (ascending)."""
    policy = re.search(r"\bversion_policy\s*:?\s*\{(.*?)\}\s*\}", text, re.S)
    body = policy.group(1) if policy else ""
    if re.search(r"\ball\b", body):
        return on_disk
    if re.search(r"\bspecific\b", body):
        listed = re.findall(r"\bversions\s*:\s*\[([^\]]*)\]", body)
        wanted = sorted(
            {int(v) for part in listed for v in re.findall(r"\d+", part)}
            | {int(v) for v in re.findall(r"\bversions\s*:\s*(\d+)", body)}
        )
        absent = [v for v in wanted if v not in on_disk]
        if absent:
            raise ServingInputError(
                f"model {name!r}: version {absent[0]} (named by its version_policy) has no "
                f"folder {directory / str(absent[0])}"
            )
        return wanted
    latest = re.search(r"\bnum_versions\s*:\s*(\d+)", body)
    count = int(latest.group(1)) if latest else 1
    return on_disk[-max(count, 1) :]


def _string_field(text: str, field: str) -> str | None:
    match = re.search(rf'(?<![\w.]){field}\s*:\s*"([^"]*)"', text)
    return match.group(1) if match else None


def _backend(text: str) -> str:
    """The config's backend (``platform:`` mapped to its backend), ``""`` when it names none."""
    backend = _string_field(text, "backend")
    if backend:
        return backend
    return PLATFORM_BACKENDS.get(_string_field(text, "platform") or "", "")


def _required_files(text: str, backend: str) -> list[tuple[str, str]]:
    """``(file name, why)`` each served version folder must hold."""
    files: list[tuple[str, str]] = []
    default = _string_field(text, "default_model_filename")
    if default:
        files.append((default, f"the config's default_model_filename, {backend or 'its'} backend"))
    elif backend in BACKEND_FILES:
        files.append((BACKEND_FILES[backend], f"the {backend} backend's model file"))
    if backend == "python":
        for key in PYTHON_FILE_PARAMETERS:
            match = re.search(
                rf'\bkey\s*:\s*"{key}"\s*,?\s*value\s*:?\s*\{{\s*string_value\s*:\s*"([^"]*)"',
                text,
            )
            if match and match.group(1):
                files.append((match.group(1), f"named by the config's {key} parameter"))
    return files
