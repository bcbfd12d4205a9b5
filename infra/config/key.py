"""One config key as ``Pulumi.yaml`` declares it (split from :mod:`infra.config.keys` so that
the key tables of each area, e.g. :mod:`infra.config.sso_keys`, can be declared beside it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED: Any = object()
"""Marker for keys without a default: the stack file must set them."""


@dataclass(frozen=True)
class Key:
    """One config key as ``Pulumi.yaml`` declares it."""

    name: str
    """Key name inside the ``sovereign-ml`` namespace (``aws:region`` is the one foreign key)."""
    type: str
    """Pulumi config type: ``string``, ``integer``, ``boolean`` or ``array`` (of strings)."""
    description: str
    """What the key means and what it allows, shown by ``pulumi config``."""
    default: Any = REQUIRED
    """Default applied when the stack file omits the key; ``REQUIRED`` when there is none."""
    items: str = "string"
    """Item type of an array key (``string`` or ``integer``)."""
    secret: bool = False
    """A credential: the stack file must hold it as ``secure:`` (``pulumi config set --secret``)."""
