"""The lifecycle table (policies/model_lifecycle.py) and the gate's served-version check
(policies/approvals.py): pure, no server."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.approvals import EXPORT_FORMAT, export_problem, served_version_problems
from policies.model_lifecycle import (
    TRANSITIONS,
    Action,
    State,
    TransitionError,
    may_approve,
    next_state,
)

# A step of a random walk: an action, or approving the version (a record, not a move).
_STEPS = st.lists(st.sampled_from([*Action, "approve"]), max_size=12)


@settings(max_examples=400, deadline=None)
@given(_STEPS, st.booleans())
def test_no_path_reaches_champion_without_challenger_and_approval(
    steps: list[Action | str], give_reason: bool
) -> None:
    """Whatever is tried, in whatever order, champion is reached only through challenger and
    only with an approval that was given while the version was a challenger."""
    state, approved, seen = State.CANDIDATE, False, [State.CANDIDATE]
    for step in steps:
        if step == "approve":
            if may_approve(state):
                approved = True
            continue
        assert isinstance(step, Action)
        try:
            state = next_state(state, step, approved=approved, reason="why" if give_reason else "")
        except TransitionError:
            continue
        seen.append(state)
        if state is State.CHAMPION:
            assert approved
            assert State.CHALLENGER in seen[: seen.index(State.CHAMPION)]


def test_the_table_is_closed() -> None:
    """Every pair outside the table is refused with a message naming what is allowed."""
    for state in State:
        for action in Action:
            if (state, action) in TRANSITIONS:
                continue
            with pytest.raises(TransitionError, match=f"cannot {action.value} a version in state"):
                next_state(state, action, approved=True, reason="r")
    assert set(TRANSITIONS.values()) <= set(State)


def test_promotion_needs_approval_and_rollback_needs_reason() -> None:
    """The two guards of the table, with their messages."""
    with pytest.raises(TransitionError, match=r"has no approval.*sovml model approve"):
        next_state(State.CHALLENGER, Action.PROMOTE, approved=False)
    assert next_state(State.CHALLENGER, Action.PROMOTE, approved=True) is State.CHAMPION
    with pytest.raises(TransitionError, match="rollback needs a reason"):
        next_state(State.CHAMPION, Action.ROLLBACK, approved=True, reason="  ")
    with pytest.raises(TransitionError, match="has no approval"):
        next_state(State.ARCHIVED, Action.RESTORE, approved=False)
    assert not may_approve(State.CANDIDATE) and not may_approve(State.REJECTED)


def _export(state: str = "challenger", approved: bool = True) -> dict:
    approval = {"by": "ana", "at": "2026-12-05T10:00:00.000000Z", "reason": "ok", "evidence": {}}
    return {
        "format": EXPORT_FORMAT,
        "models": {
            "credit_risk": {
                "served_name": "credit-risk",
                "versions": {"3": {"state": state, "approval": approval if approved else None}},
            }
        },
    }


def test_served_versions_pass_when_approved() -> None:
    """An approved challenger or champion is servable; non-production stacks are not judged."""
    for state in ("challenger", "champion"):
        assert (
            served_version_problems(True, ["credit-risk"], {"credit-risk": 3}, _export(state)) == []
        )
    assert served_version_problems(False, ["credit-risk"], {}, None) == []


@pytest.mark.parametrize(
    ("versions", "export", "expected"),
    [
        ({}, _export(), "production serves credit-risk without naming its version"),
        ({"credit-risk": 4}, _export(), "credit-risk version 4 is not in the registry export"),
        ({"credit-risk": 3}, None, "credit-risk version 3 is not in the registry export"),
        (
            {"credit-risk": 3},
            _export(approved=False),
            "credit-risk version 3 has no approval record (approve it: sovml model approve "
            "credit_risk 3 --by NAME --reason TEXT",
        ),
        ({"credit-risk": 3}, _export("rejected"), "credit-risk version 3 is rejected"),
        ({"credit-risk": 3}, _export("archived"), "credit-risk version 3 is archived"),
        ({"credit-risk": 3}, _export("candidate"), "credit-risk version 3 is candidate"),
    ],
)
def test_served_versions_refused(versions: dict, export: dict | None, expected: str) -> None:
    """Each way a production stack may name a version it must not serve, with its message."""
    problems = served_version_problems(True, ["credit-risk"], versions, export)
    assert len(problems) == 1
    assert problems[0].model == "credit-risk"
    assert problems[0].message.startswith(expected)


def test_export_problems() -> None:
    """A malformed export is named, never half-read."""
    assert export_problem(_export()) is None
    assert "format" in (export_problem({"format": "x", "models": {}}) or "")
    bad = copy.deepcopy(_export())
    bad["models"]["credit_risk"]["versions"]["3"]["state"] = "production"
    assert "state must be one of" in (export_problem(bad) or "")
    bad = copy.deepcopy(_export())
    bad["models"]["credit_risk"]["versions"]["3"]["approval"] = {"by": "", "at": "x"}
    assert "approval must be" in (export_problem(bad) or "")
    bad = copy.deepcopy(_export())
    bad["models"]["credit_risk"]["versions"]["0"] = bad["models"]["credit_risk"]["versions"]["3"]
    assert "not a positive integer" in (export_problem(bad) or "")
