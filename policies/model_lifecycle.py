"""The lifecycle of a registered model version: its states, the actions that move it, the table.

One closed transition table (:data:`TRANSITIONS`) and one function that applies it
(:func:`next_state`); the registry (``pipelines/registry/governance.py``) moves versions only
through it, and the gate (``policies/approvals.py``) reads the states it produced. Standard
library only (the CrossGuard pack's virtualenv imports ``policies``).

::

    candidate --gate_passed--> challenger --promote (approved)--> champion --replace--> archived
        |                          |                                 |
        +--reject--> rejected <----+                                 +--rollback--> archived
                                                     archived --restore (approved)--> champion

* **candidate**: registered from a pipeline run, not yet judged by the evaluation gate.
* **challenger**: passed the evaluation gate; may be approved (an approval is a record on the
  version, not a state) and then promoted.
* **champion**: promoted by the canary; requires an approval. At most one per model: promoting
  another archives it (``replace``).
* **archived**: replaced by a newer champion, or rolled back (a rollback requires a reason).
  An archived version that still holds its approval may be restored (a rollback's target).
* **rejected**: refused by a person (``sovml model reject``) or by the gate; terminal.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a version is in its lifecycle (the ``lifecycle_state`` tag in MLflow)."""

    CANDIDATE = "candidate"
    CHALLENGER = "challenger"
    CHAMPION = "champion"
    ARCHIVED = "archived"
    REJECTED = "rejected"


class Action(StrEnum):
    """What moves a version from one state to the next."""

    GATE_PASSED = "gate_passed"
    """The evaluation gate passed (the pipeline's evaluate step)."""
    REJECT = "reject"
    """A person or the gate refused the version."""
    PROMOTE = "promote"
    """The canary promoted the version to serve all traffic; needs an approval."""
    REPLACE = "replace"
    """Another version became champion."""
    ROLLBACK = "rollback"
    """The champion was taken out of service; needs a reason."""
    RESTORE = "restore"
    """An archived, approved version serves again (the target of a rollback)."""


TRANSITIONS: dict[tuple[State, Action], State] = {
    (State.CANDIDATE, Action.GATE_PASSED): State.CHALLENGER,
    (State.CANDIDATE, Action.REJECT): State.REJECTED,
    (State.CHALLENGER, Action.REJECT): State.REJECTED,
    (State.CHALLENGER, Action.PROMOTE): State.CHAMPION,
    (State.CHAMPION, Action.REPLACE): State.ARCHIVED,
    (State.CHAMPION, Action.ROLLBACK): State.ARCHIVED,
    (State.ARCHIVED, Action.RESTORE): State.CHAMPION,
}
"""Every allowed move; any (state, action) pair not here is refused."""

NEEDS_APPROVAL: frozenset[Action] = frozenset({Action.PROMOTE, Action.RESTORE})
"""Actions that make a version champion: only an approved version may serve production."""
NEEDS_REASON: frozenset[Action] = frozenset({Action.REJECT, Action.ROLLBACK})
"""Actions whose record must say why."""
APPROVABLE: frozenset[State] = frozenset({State.CHALLENGER})
"""States in which a version may be approved: it passed the gate and is not yet serving."""
SERVABLE: frozenset[State] = frozenset({State.CHALLENGER, State.CHAMPION})
"""States a production stack may name (an approved challenger is what a canary starts)."""


class TransitionError(ValueError):
    """A move the table does not allow, or one that lacks its approval or reason."""


def next_state(state: State, action: Action, *, approved: bool, reason: str = "") -> State:
    """The state ``action`` moves a version in ``state`` to.

    Raises:
        TransitionError: The pair is not in :data:`TRANSITIONS`, the action needs an approval
            the version lacks, or a reason that was not given. The message names the state, the
            action and what would be allowed.
    """
    target = TRANSITIONS.get((state, action))
    if target is None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        raise TransitionError(
            f"cannot {action.value} a version in state {state.value} "
            f"(allowed from {state.value}: {', '.join(allowed) or 'nothing'})"
        )
    if action in NEEDS_APPROVAL and not approved:
        raise TransitionError(
            f"cannot {action.value} to {target.value}: the version has no approval "
            "(sovml model approve MODEL VERSION --by NAME --reason TEXT)"
        )
    if action in NEEDS_REASON and not reason.strip():
        raise TransitionError(f"{action.value} needs a reason")
    return target


def may_approve(state: State) -> bool:
    """Whether a version in ``state`` may receive an approval."""
    return state in APPROVABLE
