"""``dpath.get`` and ``dpath.search`` for checkov's value checks, walking only as deep as the glob.

Loaded by the checkov worker (``infra.gate.checkov_worker``) inside checkov's venv; imports dpath,
checkov and the standard library only. checkov's value checks (``BaseResourceValueCheck``, most
of the Terraform checks) look an attribute up with ``dpath.search(conf, key)`` and then
``dpath.get(conf, key)``; dpath 2.1 answers each by walking *every* node of the resource's
configuration and matching its path against the glob. That was a quarter of a tenant's plan
scan (0.15 of 0.61 s of CPU, measured).

A glob without a ``**`` segment only matches paths with as many segments as it has
(``dpath.segments.match`` compares lengths first), so the walk may stop at that depth: the paths
it yields are the original walk's, in the original order, cut at the glob's depth, and each is
matched by dpath's own ``match``, stored by dpath's own ``set``, and the answer assembled by a copy
of dpath's own code. What the cut could skip is an error the full walk raises from deeper down:
dpath refuses an empty string key anywhere in the object. So the short walk is taken only for an
object made of the types classified here (the mappings, lists and scalars checkov's parsers
build) with no empty key anywhere, checked first; anything else, a ``**`` glob, a filter or a
glob given as a list goes to dpath itself.

``tests/test_checkov_parsers.py`` compares both with dpath on generated objects and globs (the
probe in checkov's venv); the fleet's verdicts are compared with the per-stack command's in
``tests/test_fleet_gate.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Walk = Iterator[tuple[tuple[Any, ...], Any]]


def install() -> list[str]:
    """Put the short-walk ``get`` and ``search`` in place of dpath's, in this process."""
    import dpath

    dpath.get, dpath.search = make_get(dpath.get), make_search(dpath.search)
    return ["dpath"]


def _classifier() -> Callable[[Any], bool]:
    """``plain(obj)``: obj is a mapping or list made only of classified types, no empty key."""
    from checkov.common.parsers.node import DictNode, ListNode, StrNode

    mappings = {dict, DictNode}
    sequences = {list, ListNode}
    scalars = {str, StrNode, int, float, bool, type(None), bytes}
    keys = {str, StrNode}

    def plain(obj: Any) -> bool:
        if type(obj) not in mappings and type(obj) not in sequences:
            return False
        todo = [obj]
        while todo:
            node = todo.pop()
            kind = type(node)
            if kind in mappings:
                for key, value in node.items():
                    if type(key) not in keys or not key:
                        return False
                    if type(value) not in scalars:
                        todo.append(value)
            elif kind in sequences:
                todo.extend(v for v in node if type(v) not in scalars)
            elif kind not in scalars:
                return False
        return True

    return plain


def _walk(obj: Any, depth: int, location: tuple[Any, ...] = ()) -> Walk:
    """``dpath.segments.walk(obj)`` cut at ``depth`` segments (obj holds no empty key)."""
    from dpath import segments

    for key, value in segments.make_walkable(obj):
        yield (*location, key), value
    if depth > 1:
        for key, value in segments.make_walkable(obj):
            if not segments.leaf(value):
                yield from _walk(value, depth - 1, (*location, key))


def _short(glob: Any, separator: Any, plain: Callable[[Any], bool], obj: Any) -> list[Any] | None:
    """The split glob when the short walk answers as dpath does, else None."""
    if not isinstance(glob, str) or glob == "/" or not isinstance(separator, str) or not separator:
        return None
    split = glob.lstrip(separator).split(separator)  # dpath's _split_path for a str glob
    if "**" in split or not plain(obj):
        return None
    return split


def make_get(original: Callable[..., Any]) -> Callable[..., Any]:
    """dpath's ``get`` (same arguments, answers and errors), walking only to the glob's depth."""
    import dpath
    from dpath import segments

    sentinel = dpath._DEFAULT_SENTINEL
    plain = _classifier()

    def get(obj: Any, glob: Any, separator: Any = "/", default: Any = sentinel) -> Any:
        split = _short(glob, separator, plain, obj)
        if split is None:
            return original(obj, glob, separator, default)
        results: list[Any] = []
        for path, found in _walk(obj, len(split)):
            if segments.match(path, split):
                results.append(found)
            if len(results) > 1:
                break
        if len(results) == 0:
            if default is not sentinel:
                return default
            raise KeyError(glob)
        if len(results) > 1:
            raise ValueError(f"dpath.get() globs must match only one leaf: {glob}")
        return results[0]

    return get


def make_search(original: Callable[..., Any]) -> Callable[..., Any]:
    """dpath's ``search``; the folded form (not ``yielded``, no filter, ``dirs``) walks only to
    the glob's depth."""
    from dpath import segments

    plain = _classifier()

    def search(
        obj: Any,
        glob: Any,
        yielded: bool = False,
        separator: Any = "/",
        afilter: Any = None,
        dirs: bool = True,
    ) -> Any:
        split = None
        if not yielded and afilter is None and dirs is True:
            split = _short(glob, separator, plain, obj)
        if split is None:
            return original(obj, glob, yielded, separator, afilter, dirs)
        result: dict[Any, Any] = {}
        for path, found in _walk(obj, len(split)):
            if segments.match(path, split):
                segments.set(result, path, found, hints=segments.types(obj, path))
        return result

    return search
