"""Which config values might be secrets, and how any value is shown without leaking one.

Three judgements, used by validation (a credential in plain text is an error) and by every place
that shows a value (``ConfigProblem.shown``, the ``sovml`` tables):

* ``is_secret_name``: the key's own name says it holds key material (``secretKey``, ``token``,
  ``kubeconfig``, ``dbPassword``);
* ``credential_kind``: the value looks like a credential whatever its key: an AWS access key id
  (``AKIA``/``ASIA``), an AWS secret access key, a PEM private key, a JWT, a Vault token, a
  GitHub token, a URL with a password, or ``password=...`` inside a connection string;
* ``shown``: a value as one bounded, literal line (JSON-escaped, so a newline or an escape
  sequence prints as ``\\n`` / ``\\u001b``), or ``<redacted, N chars>`` when it might be a secret.

The value patterns are kept narrow on purpose: they must not fire on what our own stack files
and templates hold (region names, CIDRs, ARNs, image references with a hex digest, e-mail
addresses); ``tests/test_stack_files.py`` runs them over every stack file and template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

SECRET_NAME = re.compile(
    r"secret|passw(or)?d|passphrase|token|credential|private_?key|access_?key|api_?key"
    r"|client_?key|signing_?key|kubeconfig|auth_?key",
    re.IGNORECASE,
)
"""A key name that says it holds key material (searched in the name after the namespace)."""

_B64 = "A-Za-z0-9/+"
_SCHEME = r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://"
"""A URL scheme, matched only where a word starts (so a long run of letters costs linear time)."""
CREDENTIAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
    (
        # 40 base64 characters standing alone, with upper and lower case and a digit: a hex
        # digest (lower case only) or a word does not qualify.
        "an AWS secret access key",
        re.compile(
            rf"(?<![{_B64}])(?=[{_B64}]{{0,39}}[A-Z])(?=[{_B64}]{{0,39}}[a-z])"
            rf"(?=[{_B64}]{{0,39}}[0-9])[{_B64}]{{40}}(?![{_B64}=])"
        ),
    ),
    ("a PEM private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    (
        "a JSON Web Token",
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ),
    ("a Vault token", re.compile(r"(?<![\w.])hv[sbr]\.[A-Za-z0-9_-]{20,}")),
    (
        "a Vault token",
        re.compile(r"(?<![\w.])s\.(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]{24}(?!\w)"),
    ),
    ("a GitHub token", re.compile(r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36,}")),
    ("a URL with a password", re.compile(rf"{_SCHEME}[^/\s:@]*:[^/\s@]+@")),
    (
        "a password in a connection string",
        re.compile(
            r"(?i)(?<![a-z])(?:password|passwd|pwd|secret|token)\s{0,3}[=:]\s{0,3}[^\s;&,]+"
        ),
    ),
)
"""What a credential looks like inside a value: (what it is, where it is found)."""

URL_USERINFO = re.compile(rf"{_SCHEME}[^/\s@]+@")
"""A URL carrying a user (and maybe a password) before its host: never echoed."""

MAX_SHOWN = 80
"""Characters of a value shown in a problem line; longer values are cut and their length given."""
_MAX_WALK = 10_000
"""Strings inspected inside one value (nested lists and maps); bounded files make this ample."""


def is_secret_name(key: str) -> bool:
    """Whether ``key`` (``namespace:name`` or bare) is named like key material."""
    return bool(SECRET_NAME.search(key.rpartition(":")[2]))


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside ``value``: itself, list items, map keys and values (bounded)."""
    stack, seen = [value], 0
    while stack and seen < _MAX_WALK:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(str(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def credential_kind(value: Any) -> str | None:
    """What credential ``value`` (or a string inside it) looks like, or None."""
    for text in strings_in(value):
        for kind, pattern in CREDENTIAL_PATTERNS:
            if pattern.search(text):
                return kind
    return None


def might_be_secret(value: Any) -> bool:
    """Whether showing ``value`` could leak a secret: a credential pattern or URL userinfo."""
    return credential_kind(value) is not None or any(
        URL_USERINFO.search(text) for text in strings_in(value)
    )


def length_of(value: Any) -> int:
    """Characters of ``value`` as text (JSON for lists and maps)."""
    return len(value) if isinstance(value, str) else len(_json(value))


def masked(value: Any) -> str:
    """``<redacted, N chars>``: says that there is a value and how long it is, nothing else."""
    return f"<redacted, {length_of(value)} chars>"


def _json(value: Any) -> str:
    """``value`` as one line of ASCII JSON (control characters and non-ASCII escaped)."""
    try:
        return json.dumps(value, default=str, ensure_ascii=True)
    except (ValueError, RecursionError):
        return json.dumps(repr(value)[:MAX_SHOWN])


def literal(value: Any, limit: int = MAX_SHOWN) -> str:
    """``value`` as one literal line: JSON-escaped, cut at ``limit`` characters with its length."""
    text = _json(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({length_of(value)} chars)"


def shown(value: Any, *, conceal: bool = False, limit: int = MAX_SHOWN) -> str:
    """How a config value is shown: masked when ``conceal`` or it might be a secret."""
    if conceal or might_be_secret(value):
        return masked(value)
    return literal(value, limit)


def shown_name(name: str, limit: int = MAX_SHOWN) -> str:
    """A key or file name as shown: itself when printable and plain, else escaped or masked."""
    if might_be_secret(name):
        return masked(name)
    if name.isprintable() and len(name) <= limit and name.strip() == name and name:
        return name
    return literal(name, limit)


def scrub(text: str) -> str:
    """``text`` with every credential-looking part (and URL userinfo) replaced by its length.

    For free text that quotes values (an exception message, a server address): the rest of the
    message stays readable. ``https://user:pw@host`` becomes ``https://<redacted, 8 chars>@host``.
    """
    text = URL_USERINFO.sub(
        lambda m: m[0][: m[0].index("://") + 3] + masked(m[0][m[0].index("://") + 3 : -1]) + "@",
        text,
    )
    for _kind, pattern in CREDENTIAL_PATTERNS:
        text = pattern.sub(lambda m: masked(m[0]), text)
    return text


def quoted(text: str) -> str:
    """A name or argument inside a sentence: ``'acme'``, or escaped/masked as ``shown_name``."""
    shown = shown_name(text)
    return f"'{shown}'" if shown == text else shown
