"""checkov's two parsers for the gate's files, each giving what checkov's own gives, in less CPU.

Loaded by the checkov worker (``infra.gate.checkov_worker``) inside checkov's venv; it imports
checkov, PyYAML and the standard library only. Measured on a tenant stack's files, in a worker
(collector tuned as there), these were about half of a tenant's checkov CPU:

- **Kubernetes manifests** (``checkov.kubernetes.parser.k8_yaml.loads``): checkov loads each file
  with PyYAML's pure-Python ``SafeLoader``: 0.25 s for a tenant's 226 files. The same loader on
  libyaml's C parser (``CParser``, which PyYAML ships; ``CSafeLoader`` with the same
  ``construct_mapping``) takes 0.03 s. Only the scanning and parsing move to C; composing keeps
  the same resolver and constructors, so the result is the same Python data. A file libyaml
  refuses is parsed again by checkov's own loader, so a broken file fails as checkov would fail.
- **The Terraform plan** (``checkov.cloudformation.parser.cfn_yaml.load`` for ``TFPLAN``):
  checkov reads the JSON plan as YAML, keeping a mark (line, column, offset) on every string,
  mapping and list and a ``__startline__``/``__endline__`` in every mapping: 0.2-0.3 s for a
  tenant's 1 MB plan. ``tfplan_loads`` reads the plan with ``json.loads`` and writes it back
  out, the way ``infra.gate.tfplan.write_tfplan`` writes it (``json.dumps(indent=2)``),
  working out every mark from that text as it goes: 0.09 s. It answers only when that text
  equals the file byte for byte, so every mark is where YAML's parser puts it; and only for
  what JSON and YAML read alike: ASCII text, no floats (YAML 1.1 reads ``1e-05`` as a string),
  strings of printable characters, tabs and newlines, keys short enough for a YAML simple key.
  Anything else (another writer's plan, a hand edit, a float) goes to checkov's own loader.

``tests/test_checkov_parsers.py`` compares both with checkov's own loaders, object for object
and mark for mark, on every stack's files and on generated hostile input; the fleet's verdicts
are compared with the per-stack command's (which runs the ``checkov`` command itself) in
``tests/test_fleet_gate.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

MARK_NAME = "<unicode string>"
"""The stream name libyaml gives the marks of a document read from a ``str``."""
INDENT = 2
"""The indentation ``infra.gate.tfplan.write_tfplan`` writes the plan with."""
MAX_KEY = 1000
"""Longest key (as written, quotes included) taken: YAML's simple keys end at 1024 characters."""
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) | {"\n", "\t"}


class _DeclinedError(Exception):
    """The plan is not one this reader answers for: checkov's own loader reads it."""


def tfplan_loads(content: str, filename: str) -> Any | None:
    """checkov's ``cfn_yaml.loads(content, filename, TFPLAN)`` for a plan written as
    ``json.dumps(plan, indent=2) + "\\n"``; None for any other text."""
    from checkov.common.parsers.node import DictNode, ListNode, StrNode
    from yaml._yaml import Mark

    if not content.isascii():
        return None
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    if type(data) is not dict:
        return None

    parts: list[str] = []
    put = parts.append
    # pos: offset of the next character; line/line_start: its line and where that line starts.
    state = [0, 0, 0]

    def mark() -> Any:
        pos, line, start = state
        return Mark(MARK_NAME, pos, line, pos - start, None, None)

    def write(text: str) -> None:
        put(text)
        state[0] += len(text)

    def newline(level: int) -> None:
        text = "\n" + " " * (INDENT * level)
        put(text)
        state[0] += len(text)
        state[1] += 1
        state[2] = state[0] - INDENT * level

    def string(value: str, limit: int | None = None) -> Any:
        if not _PLAIN.issuperset(value):
            raise _DeclinedError
        text = encode_basestring_ascii(value)
        if limit is not None and len(text) > limit:
            raise _DeclinedError
        start = mark()
        write(text)
        return StrNode(value, start, mark())

    def node(value: Any, level: int) -> Any:
        kind = type(value)
        if kind is str:
            return string(value)
        if kind is dict:
            return mapping(value, level)
        if kind is list:
            return sequence(value, level)
        if kind is bool:
            write("true" if value else "false")
            return value
        if kind is int:
            write(int.__repr__(value))
            return value
        if value is None:
            write("null")
            return None
        raise _DeclinedError  # a float: YAML 1.1 and JSON disagree on some of them

    def mapping(value: dict[str, Any], level: int) -> Any:
        start = mark()
        out: dict[Hashable, Any] = {}
        if value:
            write("{")
            for i, (key, item) in enumerate(value.items()):
                if i:
                    write(",")
                newline(level + 1)
                name = string(key, MAX_KEY)
                write(": ")
                out[name] = node(item, level + 1)
            newline(level)
            write("}")
        else:
            write("{}")
        end = mark()
        # What checkov's MarkedLoader.construct_mapping adds to every mapping.
        out["__file__"] = filename
        out["__startline__"] = start.line + 1
        out["__endline__"] = end.line + 1
        return DictNode(out, start, end)

    def sequence(value: list[Any], level: int) -> Any:
        start = mark()
        out = []
        if value:
            write("[")
            for i, item in enumerate(value):
                if i:
                    write(",")
                newline(level + 1)
                out.append(node(item, level + 1))
            newline(level)
            write("]")
        else:
            write("[]")
        return ListNode(out, start, mark())

    try:
        root = mapping(data, 0)
    except (_DeclinedError, RecursionError):
        return None
    put("\n")
    # Duplicate keys, other spacing, escapes JSON did not need: any of them and this is not the
    # text the marks were worked out for.
    return root if "".join(parts) == content else None


def _tfplan_load(original: Callable[..., Any]) -> Callable[..., Any]:
    """``cfn_yaml.load`` answering ``TFPLAN`` JSON files with ``tfplan_loads`` where it can."""
    from checkov.cloudformation.parser import cfn_yaml
    from checkov.common.util.consts import MAX_IAC_FILE_SIZE
    from checkov.common.util.file_utils import read_file_with_any_encoding

    def load(filename: str | Path, content_type: Any) -> Any:
        path = filename if isinstance(filename, Path) else Path(filename)
        if content_type != cfn_yaml.ContentType.TFPLAN or path.suffix != ".json":
            return original(filename, content_type)
        content = read_file_with_any_encoding(file_path=path)
        if "planned_values" not in content or len(content) > MAX_IAC_FILE_SIZE:
            return original(filename, content_type)
        template = tfplan_loads(content, str(filename))
        if template is None:
            return original(filename, content_type)
        lines = [(i + 1, line) for i, line in enumerate(content.splitlines(keepends=True))]
        return template, lines

    return load


class CSafeLineLoader(yaml.CSafeLoader):  # type: ignore[misc]
    """checkov's ``k8_yaml.SafeLineLoader`` on libyaml's parser."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Hashable, Any]:
        mapping = SafeConstructor.construct_mapping(self, node, deep=deep)
        mapping["__startline__"] = node.start_mark.line + 1
        mapping["__endline__"] = node.end_mark.line + 1
        return mapping


def _k8s_loads(original: Callable[[str], Any]) -> Callable[[str], Any]:
    """``k8_yaml.loads`` on libyaml's parser; checkov's own for a file libyaml refuses."""

    def loads(content: str) -> Any:
        try:
            return list(yaml.load_all(content, Loader=CSafeLineLoader))
        except Exception:  # checkov's own loader decides what a broken file gives
            return original(content)

    return loads


def install() -> list[str]:
    """Put both parsers in place in this (checkov's) process; returns what was installed."""
    from checkov.cloudformation.parser import cfn_yaml
    from checkov.kubernetes.parser import k8_yaml

    # Both need libyaml: the manifests its parser, the plan's marks its Mark class.
    if not getattr(yaml, "__with_libyaml__", False):
        return []
    k8_yaml.loads = _k8s_loads(k8_yaml.loads)
    cfn_yaml.load = _tfplan_load(cfn_yaml.load)
    return ["kubernetes", "terraform_plan"]
