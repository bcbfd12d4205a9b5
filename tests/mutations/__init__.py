"""The mutation corpus: small, deliberately bad program changes that the gate must refuse.

Each :class:`Mutation` is a snippet of Pulumi program code, as a developer might add it to a
component. The runner (``tests/test_mutations.py``) executes it for real under the synth mocks,
appends what it declares to a recorded base stack (prod-uae), evaluates the rules offline and
through the CrossGuard pack, and requires the named rule to refuse it. Evaluating the base plus
the snippet is faithful because every rule reads only the record (a full synth per mutation would
cost seconds each for the same resources).

A snippet sees these names (see :func:`namespace`): ``aws``, ``k8s``, ``pulumi``, ``json``;
``opts`` (resource options on an AWS provider like the base's: same region and default tags);
``provider`` (that provider); and values of resources the base declares: ``BUCKET`` and
``BUCKET_ARN`` (the artifacts bucket), ``KEY_ARN`` (the storage key), ``ROLE_ARN`` (an IAM role),
``VPC_ID``, ``SUBNET_ID``, ``ACCOUNT`` and ``REGION``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    """One bad change and the rule that must refuse it."""

    name: str
    """What the change does, in words (the test id)."""
    rule: str
    """Id of the rule that must refuse it (e.g. ``SOV-RES-002``)."""
    snippet: str
    """Pulumi program code declaring the change (see the module docstring for its names)."""
