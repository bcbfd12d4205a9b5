"""What is wrong with a stack's config: one ``ConfigProblem`` per value, ``ConfigError`` for all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.config.keys import PROJECT


def qualified(name: str) -> str:
    """The key as written in a stack file."""
    return name if ":" in name else f"{PROJECT}:{name}"


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a stack's config."""

    source: str
    """The stack file the value came from."""
    key: str
    """Fully qualified key, e.g. ``sovereign-ml:gpuPoolMinSize``."""
    value: Any
    """The offending value as given (``None`` when missing)."""
    allowed: str
    """What would be accepted."""

    def __str__(self) -> str:
        shown = "(missing)" if self.value is None else json.dumps(self.value, default=str)
        return f"{self.source}: {self.key} = {shown}: {self.allowed}"


class ConfigError(Exception):
    """Raised with every problem of a stack's config at once."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the stack config:\n{lines}")
