"""Byte encodings of the envelope: strict base64, canonical JSON and the header digest."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any


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


def canonical(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, ASCII): equal documents give equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def header_digest(header: Mapping[str, Any]) -> bytes:
    """SHA-256 of a file header's canonical JSON: the associated data of its every chunk."""
    return hashlib.sha256(canonical(header)).digest()
