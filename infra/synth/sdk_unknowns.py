"""The SDK's check for unknown values, iterative, while a synth runs.

The Pulumi SDK (3.272.0) asks ``rpc.contains_unknowns`` about every value an ``Output`` is made
with (``_OutputData.__post_init__``), every value it serializes and every ``apply`` result, and a
resource's outputs are each made from parts of its whole state: the same nested inputs are walked
many times per resource. The SDK walks recursively, a closure call, a generator for ``any`` and a
set insertion per node, for values that are mostly strings. ``contains_unknowns`` below answers
the same question in one loop, returning at once for a plain scalar: a tenant synth took 1.05-1.17
s of CPU instead of 1.29-1.34 s (one process, eight tenants a run, two alternating runs each).

The same answer by construction: both say whether an ``Unknown`` is reachable from the value
through ``dict`` values and ``list`` items (subclasses included, nothing else entered), each
object entered once (so a cycle ends); the SDK returns at the first one found in its depth-first,
left-to-right order, this at the first in the same order. The only difference is for values
nested deeper than Python's recursion limit, where the SDK's raises ``RecursionError`` and this
answers. ``tests/test_synth_unknowns.py`` compares the two on generated values (shared parts,
cycles, subclasses, unknowns at any depth); ``tests/test_synth_process.py`` the records.

The swap is made only for the SDK version this mirrors (``MIRRORS``), for the duration of one
synth; any other version keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.synth.sdk_wait import MIRRORS, swapped

__all__ = ["MIRRORS", "contains_unknowns", "iterative_unknowns"]

_SCALARS = frozenset({str, int, float, bool, type(None)})


def contains_unknowns(val: Any) -> bool:
    """Whether an ``Unknown`` is reachable from ``val`` through dict values and list items."""
    if type(val) in _SCALARS:
        return False
    from pulumi.output import Unknown

    seen: set[int] = set()
    todo = [val]
    while todo:
        item = todo.pop()
        if isinstance(item, Unknown):
            return True
        key = id(item)
        if key in seen:
            continue
        seen.add(key)
        if isinstance(item, dict):
            todo.extend([item[k] for k in item][::-1])  # popped in the dict's own order
        elif isinstance(item, list):
            todo.extend(list(item)[::-1])  # through its own iterator, as the SDK's loop
    return False


@contextmanager
def iterative_unknowns() -> Iterator[bool]:
    """Use ``contains_unknowns`` inside the block (yields whether it is in use)."""
    from pulumi.runtime import rpc

    with swapped(rpc, "contains_unknowns", contains_unknowns) as used:
        yield used
