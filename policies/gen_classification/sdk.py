"""Reading the pulumi-aws SDK's sources with :mod:`ast`: every CustomResource type and the
classified leaves of its input types, nested types included."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from policies.gen_classification.encryption import is_flag
from policies.gen_classification.kinds import (
    DESTINATION_WORDS,
    GLOBAL_SERVICES,
    REGIONAL_EXCEPTIONS,
    Leaf,
    leaf_kinds,
    words,
)

MAX_DEPTH = 14
"""Deepest input nesting walked (a type never nests itself: each path stops at a repeat). WAFv2's
statement types nest 10 deep; in pulumi-aws 7.51.1 a limit of 40 classifies the same leaves."""


@dataclass
class Field:
    """One property of an input type, as its getter declares it."""

    wire: str
    """The engine's name for it (camelCase)."""
    doc: str
    """The getter's docstring."""
    scalar: str | None
    """``str``, ``bool``, ``int``, ``float``, ``any`` for a leaf, else None."""
    nested: list[str] = field(default_factory=list)
    """Qualified names of nested input types (``module:ClassName``)."""
    shape: str = ""
    """``[]`` for a list, ``{}`` for a map, else empty."""


class Sdk:
    """The pulumi-aws sources: input classes parsed with :mod:`ast` on first use, one at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._chunks: dict[str, dict[str, str]] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        self._fields: dict[tuple[str, str], list[Field]] = {}

    def _module(self, module: str) -> dict[str, str]:
        if module not in self._chunks:
            path = self.root / module / "_inputs.py" if module else self.root / "_inputs.py"
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            self._chunks[module] = input_class_sources(text)
            self._aliases[module] = import_aliases(text)
        return self._chunks[module]

    def aliases(self, module: str) -> dict[str, str]:
        """Import aliases of ``module``'s ``_inputs.py`` (``_iam`` -> ``iam``)."""
        self._module(module)
        return self._aliases[module]

    def resolve(self, qualified: str) -> tuple[str, str] | None:
        """``module:Class`` -> (module, class name) when it is an input type of that module."""
        module, _, name = qualified.partition(":")
        return (module, name) if name in self._module(module) else None

    def fields(self, module: str, name: str) -> list[Field]:
        """The properties of input class ``name`` of ``module``'s ``_inputs.py``."""
        key = (module, name)
        if key not in self._fields:
            source = self._module(module)[name]
            self._fields[key] = class_fields(source, module, self.aliases(module))
        return self._fields[key]


_TOP_LEVEL = re.compile(r"^(?=\S)", re.M)
_INPUT_CLASS = re.compile(r"^@pulumi\.input_type\nclass (\w+Args)\b[^\n]*:\n", re.M)


def input_class_sources(text: str) -> dict[str, str]:
    """Source of every ``@pulumi.input_type`` class named ``*Args`` in ``text``, by name.

    Only these classes are parsed later, on first use: the files also hold TypedDicts, state
    classes and long resource docstrings that would triple the parsing time.
    """
    out = {}
    for m in _INPUT_CLASS.finditer(text):
        end = _TOP_LEVEL.search(text, m.end())
        out[m.group(1)] = text[m.start() : end.start() if end else len(text)]
    return out


_IMPORT = re.compile(r"^from \.+ import (\w+)(?: as (\w+))?$", re.M)


def import_aliases(text: str) -> dict[str, str]:
    """``from .. import iam as _iam`` -> {"_iam": "iam"}; the root ``_inputs`` is module ''."""
    out: dict[str, str] = {}
    for node in ast.parse("\n".join(m.group(0) for m in _IMPORT.finditer(text))).body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            out[alias.asname or alias.name] = "" if alias.name == "_inputs" else alias.name
    return out


def class_fields(source: str, module: str, aliases: dict[str, str]) -> list[Field]:
    """The getters of the one input class in ``source``, parsed with :mod:`ast`."""
    cls = ast.parse(source).body[0]
    assert isinstance(cls, ast.ClassDef)
    out = []
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef) or node.returns is None:
            continue
        getter = _getter_name(node)
        if getter is None:
            continue
        f = Field(getter or node.name, ast.get_docstring(node) or "", None)
        _shape(node.returns, f, module, aliases)
        out.append(f)
    return out


def _dotted(node: ast.expr) -> str:
    """``pulumi.getter`` for an Attribute/Name chain, '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _getter_name(fn: ast.FunctionDef) -> str | None:
    """'' for ``@pulumi.getter``, the name for ``@pulumi.getter(name=...)``, None if no getter."""
    for d in fn.decorator_list:
        if _dotted(d) == "pulumi.getter":
            return ""
        if isinstance(d, ast.Call) and _dotted(d.func) == "pulumi.getter":
            for kw in d.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
            return ""
    return None


_SCALARS = {"str": "str", "bool": "bool", "int": "int", "float": "float", "Any": "any"}


def _shape(node: ast.expr, f: Field, module: str, aliases: dict[str, str]) -> None:
    """Fill ``f`` from a getter's return annotation (``pulumi.Input[Optional[Sequence[...]]]``)."""
    if isinstance(node, ast.Subscript):
        head = _dotted(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head in ("pulumi.Input", "Optional", "pulumi.InputType"):
            _shape(args[0], f, module, aliases)
        elif head in ("Sequence", "List", "typing.Sequence"):
            f.shape = f.shape or "[]"
            _shape(args[0], f, module, aliases)
        elif head in ("Mapping", "Dict", "typing.Mapping"):
            f.shape = f.shape or "{}"
            _shape(args[-1], f, module, aliases)
        elif head == "Union":
            for a in args:
                _shape(a, f, module, aliases)
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        ref = node.value
        if "." in ref:
            alias, _, name = ref.rpartition(".")
            f.nested.append(f"{aliases.get(alias, alias.lstrip('_'))}:{name}")
        elif ref.endswith("Args"):
            f.nested.append(f"{module}:{ref}")
        else:
            f.scalar = f.scalar or "str"  # an enum of strings
        return
    name = _dotted(node).rpartition(".")[2]
    if name in _SCALARS and (f.scalar is None or f.scalar == "any"):
        f.scalar = _SCALARS[name] if f.scalar is None else f.scalar


def walk_leaves(sdk: Sdk, top: list[Field], type_words: set[str]) -> Iterator[Leaf]:
    """Every classified string leaf under a resource's ``Args`` fields ``top``, depth first.

    A path is a destination when the type's own name (``TopicSubscription``) or any segment
    on the way (``replicas``, ``copyActions``, ``destination`` ...) says so.
    """

    def go(fields: list[Field], prefix: str, dest: bool, seen: tuple[str, ...]) -> Iterator[Leaf]:
        for f in fields:
            path = f"{prefix}{f.wire}{f.shape}"
            here = dest or bool(DESTINATION_WORDS & set(words(f.wire)))
            if is_flag(f.wire, prefix.rstrip("."), f.scalar):
                yield Leaf(path, ["flag"], here)
            elif f.scalar in ("str", "any"):
                kinds = leaf_kinds(f.wire, f.doc)
                if kinds:
                    yield Leaf(path, kinds, here)
            if len(seen) >= MAX_DEPTH:
                continue
            for q in f.nested:
                found = sdk.resolve(q) if q not in seen else None
                if found:
                    yield from go(sdk.fields(*found), path + ".", here, (*seen, q))

    yield from go(top, "", bool(DESTINATION_WORDS & type_words), ())


TYPE_TOKEN = re.compile(r'^@pulumi\.type_token\("(aws:[^"]+)"\)\nclass (\w+)\((.*)\):', re.M)


@dataclass
class TypeInfo:
    """What the generator learned about one resource type."""

    token: str
    """``aws:<module>/<name>:<Name>``."""
    regional: bool
    """False for the services of :data:`GLOBAL_SERVICES`."""
    leaves: list[Leaf]
    """Classified input paths."""
    flags: list[str]
    """Paths of inputs that switch at-rest encryption on."""


def read_types(root: Path) -> dict[str, TypeInfo]:
    """Every pulumi-aws CustomResource type with its classified input leaves."""
    sdk = Sdk(root)
    out: dict[str, TypeInfo] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name.startswith("_") or path.name in ("outputs.py", "provider.py"):
            continue
        text = path.read_text(encoding="utf-8")
        for m in TYPE_TOKEN.finditer(text):
            # The decorated class header, checked with ast: a CustomResource with that token.
            header = ast.parse(m.group(0) + "\n    pass").body[0]
            assert isinstance(header, ast.ClassDef)
            if "pulumi.CustomResource" not in [_dotted(b) for b in header.bases]:
                continue
            token, cls_name = m.group(1), m.group(2)
            module = path.parent.relative_to(root).as_posix() if path.parent != root else ""
            # The Args class sits in the resource's own file (its nested types in _inputs.py);
            # it is ``<Name>InitArgs`` where ``<Name>Args`` names a nested type already.
            head = input_class_sources(text[: m.start()])
            args = head.get(f"{cls_name}Args") or head.get(f"{cls_name}InitArgs")
            if args is None:  # a new SDK layout: fail rather than classify a type as empty
                raise SystemExit(f"{token}: no input class {cls_name}Args in {path}")
            aliases = {**sdk.aliases(module), **import_aliases(text[: m.start()])}
            top = class_fields(args, module, aliases)
            service = token.split(":")[1].split("/")[0]
            found = list(walk_leaves(sdk, top, set(words(token.rsplit(":", 1)[1]))))
            leaves = [leaf for leaf in found if leaf.kinds != ["flag"]]
            flags = [leaf.path for leaf in found if leaf.kinds == ["flag"]]
            regional = service not in GLOBAL_SERVICES or bool(REGIONAL_EXCEPTIONS.match(token))
            out[token] = TypeInfo(token, regional, leaves, flags)
    return out
