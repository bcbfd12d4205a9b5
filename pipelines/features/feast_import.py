"""Import Feast without typeguard instrumenting it: 3.5 s of CPU less in every process that does.

Feast decorates its public classes (``FeatureView``, ``Entity``, ``Field``, the data sources,
``FeatureService``, ``Project`` ...) with typeguard's ``@typechecked``. typeguard 4 instruments
each method by parsing, transforming and recompiling the method's whole module: 242 times during
``import feast`` (Feast 0.67, typeguard 4.6), 3.5 s of the import's 7.5 s of CPU here (profiled:
most of it walking module ASTs). Every process that imports Feast pays it: the features and
materialize steps of each pipeline run, every ``sovml features`` command, the feature server.

What the instrumentation buys is a ``TypeCheckError`` when a caller passes Feast an argument of
the wrong type. The only such calls here are this repository's own (typed, and fixed:
``pipelines/features/repo/definitions.py`` and the services built from a lineage record).
``tests/test_feast_import.py`` keeps that check: it loads those definitions and services in a
fresh process with Feast instrumented, where a wrong type would raise, and shows that one does.

:func:`uninstrumented` makes ``typeguard.typechecked`` return what it decorates unchanged while
Feast is first imported, then restores it: only the modules imported inside it are affected
(typeguard is Feast's dependency alone in this environment). Every import of Feast in the
repository's runtime code happens inside it; once Feast is loaded it does nothing.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any


def _unchanged(target: Any = None, **_options: Any) -> Any:
    """``@typechecked`` and ``@typechecked(...)`` alike, returning the target as it is."""
    return target if target is not None else (lambda decorated: decorated)


_swapping = threading.RLock()
"""Held while typeguard's decorator is swapped: two threads importing Feast first at once must
not save each other's stand-in as the original."""


@contextlib.contextmanager
def uninstrumented() -> Iterator[None]:
    """Inside, a first import of Feast skips typeguard's instrumentation (see the module)."""
    if "feast" in sys.modules:
        yield
        return
    with _swapping:
        import typeguard

        checked = typeguard.typechecked
        typeguard.typechecked = _unchanged  # type: ignore[assignment]
        try:
            yield
        finally:
            typeguard.typechecked = checked
