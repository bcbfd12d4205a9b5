"""What is wrong with a stack's config: one ``ConfigProblem`` per value, ``ConfigError`` for all.

A problem names the stack file, the key, the value and what is allowed; the value is only ever
shown through ``ConfigProblem.shown`` (bounded, literal, masked where it might be a secret), so
no caller can echo a credential by formatting a problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config.keys import PROJECT
from infra.config.redaction import shown, shown_name


def qualified(name: str) -> str:
    """The key as written in a stack file."""
    return name if ":" in name else f"{PROJECT}:{name}"


class _Omitted:
    """The value of a problem that is about a key or a line, not one value (a duplicate key)."""

    def __repr__(self) -> str:
        return "OMITTED"


OMITTED: Any = _Omitted()
"""``ConfigProblem.value`` when no single value is in question; shown as ``-``."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a stack's config."""

    source: str
    """The stack file the value came from."""
    key: str
    """Fully qualified key, e.g. ``sovereign-ml:gpuPoolMinSize``."""
    value: Any
    """The offending value as given (``None`` when missing, ``OMITTED`` when not about one)."""
    allowed: str
    """What would be accepted, and how to get there."""
    conceal: bool = False
    """Never show the value, only its length: a ``secure:`` value, a secret-named key, an unknown
    key (nobody knows what it holds), or a value that looks like a credential."""

    @property
    def shown(self) -> str:
        """The value as it may be printed: literal, bounded, masked where it might be a secret."""
        if self.value is None:
            return "(missing)"
        if self.value is OMITTED:
            return "-"
        return shown(self.value, conceal=self.conceal)

    @property
    def shown_key(self) -> str:
        """The key as it may be printed (escaped when it holds odd characters)."""
        return shown_name(self.key)

    def __str__(self) -> str:
        return f"{self.source}: {self.shown_key} = {self.shown}: {self.allowed}"


class ConfigError(Exception):
    """Raised with every problem of a stack's config at once."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED])
        more = len(problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(problems)} problem(s) in the stack config:\n{lines}{tail}")


MAX_LISTED = 50
"""Problems listed by one message or one command; the rest are counted (``... and K more``)."""


class StackFileError(Exception):
    """A stack file is missing, unreadable or malformed, or its config is invalid (``problems``).

    Its message names the file and says what to do; it never quotes the file's content.
    """

    def __init__(self, message: str, problems: list[ConfigProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []
