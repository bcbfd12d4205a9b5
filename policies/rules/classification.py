"""The classification of every AWS resource type (``aws_types.json``) and walking its input paths.

``aws_types.json`` is generated from the pulumi-aws SDK by ``python -m policies.gen_classification
--write``: for each type token, whether it is regional, every input path that can name a region,
an availability zone, an ARN, an endpoint, a bucket, an account or a KMS key (``paths``), and how
its data is encrypted (``encryption``). This module loads it (standard library only: the CrossGuard
pack reads it in its own virtualenv) and walks a resource's inputs along such a path.

A path is written with wire names: ``rules[].destination.bucket`` (``[]`` a list, ``{}`` a map).
A concrete path names list indices and map keys: ``rules[0].destination.bucket``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

TABLE_FILE = Path(__file__).with_name("aws_types.json")
"""The generated table."""
REGENERATE = "python -m policies.gen_classification --write"
"""The command that regenerates the table (quoted in messages)."""

# pulumi_policy's sentinels for values unknown during preview (pulumi_policy/proxy.py); copied
# because this package must not import pulumi_policy. A value that is not known is not judged.
UNKNOWN_VALUES = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
        "030794c1-ac77-496b-92df-f27374a8bd58",
        "e48ece36-62e2-4504-bad9-02848725956a",
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
    }
)
MISSING: Any = None
"""What :func:`leaves` yields for a path whose enclosing object exists but which is not set."""

_SEGMENT = re.compile(r"^([^\[\]{}]+)(\[\]|\{\})?$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@functools.cache
def _document() -> Mapping[str, Any]:
    doc: Mapping[str, Any] = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    return doc


def table() -> Mapping[str, Mapping[str, Any]]:
    """Every classified type token -> its entry (``regional``, ``paths``, ``encryption``)."""
    types: Mapping[str, Mapping[str, Any]] = _document()["types"]
    return types


def pulumi_aws_version() -> str:
    """The pulumi-aws version the table was generated from."""
    return str(_document()["pulumiAwsVersion"])


def entry(token: str) -> Mapping[str, Any] | None:
    """The classification of ``token``, or None when the table does not know it."""
    return table().get(token)


def is_unknown(value: Any) -> bool:
    """True for a value CrossGuard does not know yet (preview): it is not judged."""
    return isinstance(value, str) and value in UNKNOWN_VALUES


def leaves(inputs: Mapping[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """(concrete path, value) at ``path`` in ``inputs``, for every enclosing object that exists.

    A list segment yields each element (``rules[0]``, ``rules[1]`` ...); a single object where a
    list is declared, or a list where an object is declared (the one-element lists of older
    records), is walked as well. When the enclosing object exists but the last name is not set,
    the value is :data:`MISSING`; when an enclosing object is absent nothing is yielded.
    """
    names = path.split(".")

    def go(node: Any, at: str, i: int) -> Iterator[tuple[str, Any]]:
        if isinstance(node, list):
            for n, item in enumerate(node):
                yield from go(item, f"{at}[{n}]", i)
            return
        if not isinstance(node, Mapping):
            return
        m = _SEGMENT.match(names[i])
        if m is None:
            return
        name, shape = m.group(1), m.group(2) or ""
        here = f"{at}.{name}" if at else name
        value = node.get(name)
        last = i == len(names) - 1
        if shape == "{}" and isinstance(value, Mapping):
            for key, item in value.items():
                yield from ([(f"{here}.{key}", item)] if last else go(item, f"{here}.{key}", i + 1))
        elif shape == "[]" and isinstance(value, list) and last:
            yield from ((f"{here}[{n}]", item) for n, item in enumerate(value))
        elif last:
            yield here, value
        elif value is not None:
            yield from go(value, here, i + 1)

    yield from go(inputs, "", 0)


def strings(value: Any, at: str = "") -> Iterator[tuple[str, str]]:
    """Every string leaf under ``value`` with its concrete path (lists ``[n]``, maps ``.key``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(item, f"{at}.{key}" if at else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from strings(item, f"{at}[{n}]")
    elif isinstance(value, str) and not is_unknown(value):
        yield at, value


def snake(path: str) -> str:
    """A wire path as the Python SDK spells its arguments: ``serverSideEncryption.kmsKeyArn`` ->
    ``server_side_encryption.kms_key_arn`` (for the fixes in messages)."""
    return _CAMEL.sub("_", path).lower()
