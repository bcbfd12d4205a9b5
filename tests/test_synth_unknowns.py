"""The iterative ``contains_unknowns`` answers as the SDK's own, for any value.

``infra.synth.sdk_unknowns`` replaces the SDK's recursive walk while a synth runs. Generated
values mix scalars, ``Unknown``\\ s at any depth, dicts and lists (and subclasses of both), tuples
and ``Output``\\ s (which neither walks into), parts shared between branches and cycles.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.output import Unknown
from pulumi.runtime import rpc

from infra.synth import sdk_wait
from infra.synth.sdk_unknowns import contains_unknowns, iterative_unknowns

SDKS = rpc.contains_unknowns  # read at import: the SDK's own


class _Dict(dict):
    pass


class _List(list):
    pass


LEAVES = st.one_of(
    st.text(max_size=4),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.builds(Unknown),
    st.just(rpc.UNKNOWN),  # the engine's sentinel string is not an Unknown
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(_List),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=3), inner, max_size=4),
        st.dictionaries(st.text(max_size=3), inner, max_size=3).map(_Dict),
    ),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(VALUES, st.data())
def test_the_answer_is_the_sdks(value: Any, data: st.DataObject) -> None:
    assert contains_unknowns(value) == SDKS(value)
    # The same parts reachable twice, and a cycle back to the top.
    shared: Any = [value, {"again": value}]
    assert contains_unknowns(shared) == SDKS(shared)
    if isinstance(value, (dict, list)):
        looped: Any = value.copy()
        if isinstance(looped, dict):
            looped[data.draw(st.text(max_size=3))] = looped
        else:
            looped.append(looped)
        assert contains_unknowns(looped) == SDKS(looped)


def test_what_neither_walks_into() -> None:
    for value in [(Unknown(),), {Unknown()}, pulumi.Output.from_input(1)]:
        assert contains_unknowns(value) is SDKS(value) is False
    assert contains_unknowns(Unknown()) is SDKS(Unknown()) is True


def test_nesting_deeper_than_the_recursion_limit_is_answered() -> None:
    deep: Any = Unknown()
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(RecursionError):
        SDKS(deep)
    assert contains_unknowns(deep) is True


def test_the_swap_is_made_inside_the_block_and_undone() -> None:
    with iterative_unknowns() as used:
        assert used and rpc.contains_unknowns is contains_unknowns
    assert rpc.contains_unknowns is SDKS


def test_another_sdk_version_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_wait, "MIRRORS", "0.0.0")
    with iterative_unknowns() as used:
        assert not used and rpc.contains_unknowns is SDKS
