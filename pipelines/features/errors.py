"""The feature store's errors: each says, in one line, what a person can do about it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class FeatureStoreError(RuntimeError):
    """A feature-store request failed for a reason a person can act on (one-line message)."""


class UnknownEntityError(FeatureStoreError):
    """The online store has no features for the requested entity id."""


class UnknownFeatureViewError(FeatureStoreError):
    """A requested feature view (or feature) is not registered."""


class UnknownFeatureServiceError(FeatureStoreError):
    """A requested feature service is not registered."""


class UnknownModelError(FeatureStoreError):
    """A model has no feature service and is not the model the views serve."""


class NotMaterializedError(FeatureStoreError):
    """The requested feature views have never been materialized into the online store."""


class BadInputError(FeatureStoreError):
    """An input (entity id, ``--repo`` config, table, date) is malformed or out of range."""


@contextlib.contextmanager
def not_registered(
    missing: type[Exception],
    error: type[FeatureStoreError],
    kind: str,
    name: str,
    known: Callable[[], list[str]],
    none: str = "none",
) -> Iterator[None]:
    """Turn Feast's ``missing`` exception for ``name`` into ``error``, listing the known names.

    Args:
        missing: Feast's not-found exception of the lookup in the ``with`` block.
        error: The error raised instead: ``unknown <kind> '<name>'; known <kind>s: ...``.
        kind: What is looked up (``feature view``, ``feature service``).
        name: The name looked up.
        known: The registered names, called only when the lookup failed.
        none: Shown instead of the list when nothing is registered.
    """
    try:
        yield
    except missing:
        raise error(
            f"unknown {kind} {name!r}; known {kind}s: {', '.join(known()) or none}"
        ) from None
