"""What a stack file says: ``stacks/Pulumi.<stack>.yaml`` read, validated and handed to the program.

``sovml`` reads a stack file itself (``load_stack``: the file's ``config:`` map, secrets redacted,
validated into one ``PlatformConfig``) and hands that config to the Pulumi program it runs;
``pulumi up`` runs the program bare, and the program reads the same keys from the engine
(``from_engine``). ``program_config`` is the one line the program needs to tell the two apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.config.keys import KEYS, PROJECT, REQUIRED
from infra.config.model import PlatformConfig
from infra.config.parsing import from_pulumi, parse
from infra.config.problems import ConfigError, ConfigProblem, qualified

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""
STACKS = ROOT / "stacks"
"""The folder of stack files."""
REDACTED = "[secret]"
"""What a secret value reads as wherever sovml keeps it (parsed config, synth record)."""
PROGRAM_GLOBAL = "sovml_stack_config"
"""The global through which ``sovml synth`` hands the validated config to the program it runs."""


class StackFileError(Exception):
    """A stack file is missing or malformed, or its config is invalid (``problems`` then)."""

    def __init__(self, message: str, problems: list[ConfigProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else as given."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def stack_file(stack: str, stacks_dir: Path = STACKS) -> Path:
    """Path of a stack's config file."""
    return stacks_dir / f"Pulumi.{stack}.yaml"


def list_stacks(stacks_dir: Path = STACKS) -> list[str]:
    """Every stack with a file in ``stacks_dir``, sorted."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def read_stack_config(path: Path) -> tuple[dict[str, Any], set[str]]:
    """The ``config:`` map of a stack file and the keys whose values are secrets.

    Keys come back qualified (``sovereign-ml:<key>``); secret values read as ``REDACTED``.
    Raises StackFileError for a missing or malformed file.
    """
    if not path.is_file():
        raise StackFileError(f"{path}: no such stack file")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise StackFileError(f"{path}: expected a mapping with a 'config:' mapping")
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in (doc.get("config") or {}).items():
        key = qualified(str(key))
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret.add(key)
            value = REDACTED
        raw[key] = value
    return raw, secret


def load_stack(
    stack: str, stacks_dir: Path = STACKS
) -> tuple[PlatformConfig, dict[str, Any], set[str]]:
    """Read and validate a stack file: ``(config, raw config map, secret keys)``.

    Raises StackFileError for an unreadable file, or listing every config problem.
    """
    path = stack_file(stack, stacks_dir)
    raw, secret_keys = read_stack_config(path)
    source = repo_relative(path)
    result = parse(raw, stack=stack, source=source)
    if isinstance(result, list):
        raise StackFileError(f"{source}: {len(result)} config problem(s)", result)
    return result, raw, secret_keys


def engine_value(value: Any) -> str:
    """A config value as the engine passes it to programs: a string, objects and arrays as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def engine_config(raw: Mapping[str, Any]) -> dict[str, str]:
    """The config map the Pulumi CLI hands a program for this stack file's ``raw`` values.

    Stack files hold overrides only: ``Pulumi.yaml`` defaults apply as the CLI applies them.
    """
    out = {k: engine_value(v) for k, v in raw.items()}
    for key in KEYS:
        if key.default is not REQUIRED:
            out.setdefault(f"{PROJECT}:{key.name}", engine_value(key.default))
    return out


def from_engine() -> PlatformConfig:
    """The stack's config read from the Pulumi engine, as a program run by ``pulumi up`` sees it.

    Raises ``pulumi.RunError`` (printed by the CLI without a traceback) listing every problem.
    """
    import pulumi

    stack = pulumi.get_stack()
    project, aws_config = pulumi.Config(), pulumi.Config("aws")
    try:
        return from_pulumi(
            lambda key: aws_config.get(key[4:]) if key.startswith("aws:") else project.get(key),
            stack=stack,
            source=repo_relative(stack_file(stack)),
        )
    except ConfigError as exc:
        raise pulumi.RunError(str(exc)) from None


def program_config(program_globals: Mapping[str, Any]) -> PlatformConfig:
    """The config a program builds from: the one ``sovml synth`` handed it, else the engine's."""
    handed = program_globals.get(PROGRAM_GLOBAL)
    return handed if handed is not None else from_engine()
