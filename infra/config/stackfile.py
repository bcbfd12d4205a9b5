"""What a stack file says: ``stacks/Pulumi.<stack>.yaml`` read, validated and handed to the program.

One validation path: ``validate_bytes`` takes a stack file's bytes through every check, in order,
and every command that reads a stack file ends there (``load_stack`` for ``synth``, ``check``,
``config validate`` and ``cost``; ``validate_bytes`` on the rendered text for ``tenant new``;
``from_engine`` for a bare ``pulumi up``):

1. the file within bounds (``infra.config.yamlfile``: size, binary, UTF-8, YAML syntax, depth,
   nodes, aliases), else ``StackFileError`` without problems (exit 2, one line);
2. the document's shape (``screen``): known top-level keys, one ``config:`` map of at most
   ``MAX_CONFIG_KEYS`` keys, no duplicate or merge keys anywhere, no empty values, ``secure:``
   values well formed (and replaced by ``REDACTED``);
3. the config (``infra.config.parsing.parse``): allowed namespaces and keys, no plain-text
   credentials, every value, the production and tier rules.

Problems of steps 2 and 3 are reported together, each naming the file, the key and the fix.
``pulumi up`` runs the program bare; it validates the stack file the same way when it finds it,
then reads the keys from the engine (``from_engine``). ``program_config`` is the one line the
program needs to tell the two apart.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.keys import KEYS, KEYS_BY_NAME, PROJECT, REQUIRED, STACK_NAME
from infra.config.model import PlatformConfig
from infra.config.parsing import from_pulumi, parse
from infra.config.problems import OMITTED, ConfigError, ConfigProblem, StackFileError, qualified
from infra.config.redaction import literal, shown_name
from infra.config.yamlfile import KeyIssue, decode, load, read_bytes

__all__ = [
    "MAX_CONFIG_KEYS",
    "PROGRAM_GLOBAL",
    "REDACTED",
    "ROOT",
    "STACKS",
    "TOP_LEVEL_KEYS",
    "ScreenedConfig",
    "StackFileError",
    "engine_config",
    "engine_value",
    "from_engine",
    "list_stacks",
    "load_stack",
    "program_config",
    "read_stack_config",
    "repo_relative",
    "screen",
    "stack_file",
    "stack_name_problem",
    "validate_bytes",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""
STACKS = ROOT / "stacks"
"""The folder of stack files."""
REDACTED = "[secret]"
"""What a secret value reads as wherever sovml keeps it (parsed config, synth record)."""
PROGRAM_GLOBAL = "sovml_stack_config"
"""The global through which ``sovml synth`` hands the validated config to the program it runs."""
MAX_CONFIG_KEYS = 500
"""Most keys in a ``config:`` map (``Pulumi.yaml`` declares about 70; a stack overrides some)."""
TOP_LEVEL_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt")
"""What a stack file may hold besides ``config:``: what ``pulumi`` writes for secrets."""


@dataclass(frozen=True)
class ScreenedConfig:
    """A stack file's ``config:`` map after the document checks."""

    raw: dict[str, Any]
    """Values by qualified key; ``secure:`` values read as ``REDACTED``, empty ones left out."""
    secret_keys: frozenset[str]
    """Keys whose values were ``secure:``."""
    problems: list[ConfigProblem]
    """What the document checks found (shape, duplicates, empty values), in file order."""


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else as given."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def stack_file(stack: str, stacks_dir: Path = STACKS) -> Path:
    """Path of a stack's config file."""
    return stacks_dir / f"Pulumi.{stack}.yaml"


def list_stacks(stacks_dir: Path = STACKS) -> list[str]:
    """Every stack with a file in ``stacks_dir``, sorted."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def stack_name_problem(stack: str) -> str | None:
    """Why ``stack`` cannot be a stack name (it also names files and folders), or None."""
    if STACK_NAME.fullmatch(stack):
        return None
    return (
        f"stack name {shown_name(stack)}: 1-100 letters, digits, '_', '.' and '-', "
        "starting with a letter or digit"
    )


def _issue_problem(issue: KeyIssue, source: str) -> ConfigProblem:
    """A duplicate, merge or non-text key as a problem, named by its path as written."""
    path = (*issue.path, issue.key)
    inside_config = path[0] == "config" and len(path) > 1
    key = ".".join(path[1:] if inside_config else path)
    return ConfigProblem(source, key, OMITTED, f"line {issue.line}: {issue.what}")


def _top_level_problem(name: str, source: str) -> ConfigProblem:
    """An unknown top-level key of a stack file."""
    if name == "environment":
        allowed = (
            "not read by sovml: Pulumi ESC environments would give the program values the gate "
            "never saw; put the values under config:"
        )
    else:
        close = difflib.get_close_matches(name, TOP_LEVEL_KEYS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "put config keys under config:"
        allowed = f"an unknown top-level key (allowed: {', '.join(TOP_LEVEL_KEYS)}); {hint}"
    return ConfigProblem(source, name, OMITTED, allowed)


def _empty_value(key: str) -> str:
    """What to do about ``key:`` with nothing after it."""
    known = KEYS_BY_NAME.get(key.removeprefix(f"{PROJECT}:"))
    default = (
        f" to take the default ({literal(known.default)})"
        if known is not None and known.default is not REQUIRED
        else ""
    )
    return f"a value; the key is empty (YAML null): give one, or delete the line{default}"


def screen(doc: Any, issues: tuple[KeyIssue, ...], source: str) -> ScreenedConfig:
    """The document checks: top-level shape, key issues, empty and ``secure:`` values.

    Raises StackFileError when the document is not a stack file at all (not a mapping, a
    ``config:`` that is not a mapping, or more than ``MAX_CONFIG_KEYS`` keys).
    """
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{source}: expected a mapping with a 'config:' mapping")
    problems = [_issue_problem(i, source) for i in issues]
    problems += [_top_level_problem(str(k), source) for k in doc if str(k) not in TOP_LEVEL_KEYS]
    config = doc.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise StackFileError(f"{source}: 'config:' must be a mapping of keys to values")
    if len(config) > MAX_CONFIG_KEYS:
        raise StackFileError(
            f"{source}: {len(config):,} config keys, more than the {MAX_CONFIG_KEYS} a stack "
            "file may have (Pulumi.yaml declares every key; a stack holds overrides only)"
        )
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    written_as: dict[str, str] = {}
    for name, value in config.items():
        key = qualified(str(name))
        if key in written_as:
            problems.append(
                ConfigProblem(
                    source,
                    key,
                    OMITTED,
                    f"one spelling: {shown_name(written_as[key])} and {shown_name(str(name))} "
                    "are the same key (the last one would silently win)",
                )
            )
            continue
        written_as[key] = str(name)
        if value is None:
            # A required key left empty is reported by the parser ("required").
            known = KEYS_BY_NAME.get(key.removeprefix(f"{PROJECT}:"))
            if key != "aws:region" and (known is None or known.default is not REQUIRED):
                problems.append(ConfigProblem(source, key, OMITTED, _empty_value(key)))
            continue
        if isinstance(value, dict) and "secure" in value:
            if set(value) != {"secure"} or not isinstance(value["secure"], str):
                problems.append(
                    ConfigProblem(
                        source,
                        key,
                        value,
                        "a secure value is `secure: <ciphertext>` alone, as "
                        f"`pulumi config set --secret {key}` writes it",
                        conceal=True,
                    )
                )
                continue
            secret.add(key)
            value = REDACTED
        raw[key] = value
    return ScreenedConfig(raw, frozenset(secret), problems)


def validate_bytes(
    data: bytes, *, stack: str, source: str
) -> tuple[PlatformConfig | list[ConfigProblem], ScreenedConfig]:
    """The one validation path over a stack file's bytes: ``(config or problems, screened)``.

    Raises StackFileError for a file that cannot be read as a stack file at all.
    """
    document = load(decode(data, source), source)
    screened = screen(document.data, document.issues, source)
    result = parse(screened.raw, stack=stack, source=source, secret_keys=screened.secret_keys)
    problems = screened.problems + (result if isinstance(result, list) else [])
    return (problems if problems else result), screened


def read_stack_config(path: Path) -> tuple[dict[str, Any], set[str]]:
    """The ``config:`` map of a stack file and the keys whose values are secrets.

    Keys come back qualified (``sovereign-ml:<key>``); secret values read as ``REDACTED``.
    Raises StackFileError for a missing, unreadable or malformed file, listing any problem of
    the document itself (duplicate keys, empty values); the values are not validated here.
    """
    source = repo_relative(path)
    document = load(decode(read_bytes(path, source), source), source)
    screened = screen(document.data, document.issues, source)
    if screened.problems:
        raise StackFileError(
            f"{source}: {len(screened.problems)} config problem(s)", screened.problems
        )
    return dict(screened.raw), set(screened.secret_keys)


def load_stack(
    stack: str, stacks_dir: Path = STACKS
) -> tuple[PlatformConfig, dict[str, Any], set[str]]:
    """Read and validate a stack file: ``(config, raw config map, secret keys)``.

    Raises StackFileError for an unreadable file, or listing every config problem.
    """
    name_problem = stack_name_problem(stack)
    if name_problem:
        raise StackFileError(name_problem)
    path = stack_file(stack, stacks_dir)
    source = repo_relative(path)
    result, screened = validate_bytes(read_bytes(path, source), stack=stack, source=source)
    if isinstance(result, list):
        raise StackFileError(f"{source}: {len(result)} config problem(s)", result)
    return result, dict(screened.raw), set(screened.secret_keys)


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

    The stack file, when the program finds it, is validated first exactly as ``sovml`` does
    (misspelled namespaces, duplicate keys and plain-text credentials never reach the engine's
    view). Raises ``pulumi.RunError`` (printed by the CLI without a traceback) listing every
    problem.
    """
    import pulumi

    stack = pulumi.get_stack()
    path = stack_file(stack)
    source = repo_relative(path)
    try:
        if path.is_file():
            load_stack(stack, path.parent)
    except StackFileError as exc:
        raise pulumi.RunError(
            str(ConfigError(exc.problems)) if exc.problems else str(exc)
        ) from None
    project, aws_config = pulumi.Config(), pulumi.Config("aws")
    try:
        return from_pulumi(
            lambda key: aws_config.get(key[4:]) if key.startswith("aws:") else project.get(key),
            stack=stack,
            source=source,
        )
    except ConfigError as exc:
        raise pulumi.RunError(str(exc)) from None


def program_config(program_globals: Mapping[str, Any]) -> PlatformConfig:
    """The config a program builds from: the one ``sovml synth`` handed it, else the engine's."""
    handed = program_globals.get(PROGRAM_GLOBAL)
    return handed if handed is not None else from_engine()
