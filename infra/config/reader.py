"""Reading raw stack values as typed values, recording a problem instead of raising."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from infra.config.keys import KEYS_BY_NAME, REQUIRED
from infra.config.problems import ConfigProblem, qualified
from infra.config.redaction import is_secret_name


class Reader:
    """Reads typed values from raw stack config, recording problems instead of raising.

    Every read returns ``None`` exactly when it recorded a problem, so a parse that ends without
    problems has every value it read.
    """

    def __init__(
        self, raw: Mapping[str, Any], source: str, secret_keys: Collection[str] = ()
    ) -> None:
        self.raw = raw
        self.source = source
        self.secret_keys = frozenset(qualified(k) for k in secret_keys)
        """Keys whose values were ``secure:`` in the stack file (qualified)."""
        self.problems: list[ConfigProblem] = []

    def problem(self, name: str, value: Any, allowed: str, *, conceal: bool = False) -> None:
        """Record that ``name`` has ``value`` (``None``: missing) and what ``allowed`` is.

        The value is concealed (only its length shown) when asked, when it was a ``secure:``
        value, or when the key is named like key material.
        """
        key = qualified(name)
        conceal = conceal or key in self.secret_keys or is_secret_name(key)
        self.problems.append(ConfigProblem(self.source, key, value, allowed, conceal))

    def peek(self, name: str) -> Any:
        """The raw value of ``name`` (else its default), recording nothing; None if neither."""
        return self._value(name)[0]

    def _value(self, name: str) -> tuple[Any, bool]:
        """The raw value (else the key's default) and whether there is one."""
        if name in self.raw and self.raw[name] is not None:
            return self.raw[name], True
        key = KEYS_BY_NAME.get(name)
        if key is None or key.default is REQUIRED:
            return None, False
        return key.default, True

    def string(self, name: str, choices: tuple[str, ...] | None = None) -> str | None:
        """A string (numbers read as text), one of ``choices`` when given."""
        value, present = self._value(name)
        if not present:
            self.problem(
                name, None, "required" + (f"; one of {', '.join(choices)}" if choices else "")
            )
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(
                name, value, "a string" + (f": one of {', '.join(choices)}" if choices else "")
            )
            return None
        text = str(value)
        if choices is not None and text not in choices:
            self.problem(name, value, f"one of {', '.join(choices)}")
            return None
        return text

    def integer(self, name: str, low: int, high: int) -> int | None:
        """An integer from ``low`` to ``high`` (native, integral float, or decimal text)."""
        value, present = self._value(name)
        if not present:
            self.problem(name, None, f"required: an integer from {low} to {high}")
            return None
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,12}", value):
            number = int(value)
        if number is None or not low <= number <= high:
            self.problem(name, value, f"an integer from {low} to {high}")
            return None
        return number

    def boolean(self, name: str) -> bool | None:
        """A boolean (native, or ``"true"``/``"false"`` from the engine)."""
        value, present = self._value(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        self.problem(name, value if present else None, "true or false")
        return None

    def integers(self, name: str) -> tuple[int, ...] | None:
        """A list of integers (native, or JSON text from the engine)."""
        value, present = self._value(name)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            self.problem(name, value if present else None, "a list of integers")
            return None
        return tuple(value)

    def strings(self, name: str) -> tuple[str, ...] | None:
        """A list of strings (native, or JSON text from the engine)."""
        value, present = self._value(name)
        if isinstance(value, str):
            # The Pulumi engine hands arrays to the program as JSON text.
            try:
                value = json.loads(value)
            except ValueError:
                self.problem(name, value, "a list of strings")
                return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(name, value if present else None, "a list of strings")
            return None
        return tuple(value)
