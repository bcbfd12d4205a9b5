"""Byte encodings of the envelope: strict base64, bounded JSON, canonical JSON and the digests."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")
MAX_INT_DIGITS = 20
"""Longest integer literal a bounded JSON document may hold (sizes need at most 20 digits)."""


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str, size: int | None = None) -> bytes:
    """Strict base64: rejects stray characters and non-canonical padding bits.

    The lenient decoder would accept a flipped byte in a manifest (ignored characters, unused low
    bits), so a tampered value could decode to the original bytes and go unnoticed.

    Args:
        text: The value read from a manifest or a key file.
        what: Name of the value, for the error message.
        size: Expected length in bytes, or None for any.

    Raises:
        ValueError: ``text`` is not a string, not canonical base64 or not ``size`` bytes long.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
    if b64(raw) != text:
        raise ValueError(f"{what} is not canonical base64")
    if size is not None and len(raw) != size:
        raise ValueError(f"{what} has {len(raw)} bytes, expected {size}")
    return raw


def shown(value: object, limit: int = 80) -> str:
    """``repr`` of a value from untrusted input, cut to ``limit`` characters, for one-line messages.

    ``repr`` escapes newlines and control characters, so a hostile value cannot forge extra lines
    in an error message or a log.
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate field in JSON object")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _reject_float(text: str) -> Any:
    raise ValueError(f"non-integer number {shown(text, 30)} is not allowed")


def _bounded_int(text: str) -> int:
    # Python's int() is quadratic in the digits; no value of the format needs more than 20.
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"number with {len(text)} digits is out of range")
    return int(text)


def json_depth_at_most(text: str, depth: int) -> bool:
    """True when ``text`` nests arrays/objects at most ``depth`` levels (strings ignored).

    Works on the brackets alone, removing the innermost ``[]``/``{}`` pairs once per level with
    regular expressions: linear in the input per level and never recursive, so a document nested
    200,000 levels deep is refused in milliseconds instead of exhausting the parser's stack.
    Unbalanced brackets count as too deep; the JSON parser would refuse them anyway.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(depth):
        if not brackets:
            return True
        reduced = _INNERMOST.sub("", brackets)
        if reduced == brackets:
            return False
        brackets = reduced
    return not brackets


def load_bounded_json(raw: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """Parse untrusted JSON within bounds: size, nesting depth, integer size; strict otherwise.

    Duplicate keys, ``NaN``/``Infinity``, non-integer numbers and integers of more than
    :data:`MAX_INT_DIGITS` digits are refused, so equal documents have one spelling.

    Raises:
        ValueError: Any bound exceeded or the bytes are not such a JSON document.
    """
    if len(raw) > max_bytes:
        raise ValueError(f"{len(raw)} bytes is larger than the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not json_depth_at_most(text, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels (or unbalanced)")
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
            parse_int=_bounded_int,
        )
    except RecursionError:  # unreachable after the depth check; kept as a last line of defence
        raise ValueError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None


def canonical(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, ASCII): equal documents give equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def header_digest(header: Mapping[str, Any]) -> bytes:
    """SHA-256 of a file header's canonical JSON: the associated data of its every chunk."""
    return hashlib.sha256(canonical(header)).digest()


def entry_digest(header: Mapping[str, Any], plaintext_sha256: str, plaintext_size: int) -> bytes:
    """SHA-256 binding a header to its plaintext digest and size: the ciphertext file's lead."""
    body = {
        "header": header,
        "plaintext_sha256": plaintext_sha256,
        "plaintext_size": plaintext_size,
    }
    return hashlib.sha256(b"sovml-entry/2\x00" + canonical(body)).digest()
