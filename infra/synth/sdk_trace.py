"""No source stack traces while a synth runs: nothing under the mocks reads them.

For every resource it registers, the Pulumi SDK (3.272.0) builds the stack trace of the frames
that declared it (``pulumi.runtime.resource._get_stack_trace``: ``traceback.extract_stack`` with
the source line of every frame, then a ``SourcePosition`` proto with a file URI per frame) and
sends it in the ``RegisterResource`` request, for the engine to show where a resource was
declared. Under ``set_mocks`` that request goes to the recording monitor
(``infra.synth.recorder``), which keeps neither ``sourcePosition`` nor ``stackTrace``, and the
mocks never see the request's trace. A tenant synth spent about 17% of its time building them
(profiled: 1.7 s of 9.5 s over three tenants).

``no_stack_traces()`` makes ``_get_stack_trace`` return the empty trace (the SDK's own answer
when it finds no user frame) for the duration of one synth, so the request carries no position.
The record is byte-identical either way (``tests/test_synth_process.py`` compares them on a
tenant stack). The swap is made only for the SDK version this was read in (``MIRRORS``); any
other version builds its traces unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.synth.sdk_wait import MIRRORS, swapped

__all__ = ["MIRRORS", "no_stack_traces"]


def _empty_trace() -> Any:
    from pulumi.runtime.proto import source_pb2

    return source_pb2.StackTrace()


@contextmanager
def no_stack_traces() -> Iterator[bool]:
    """Register resources without source stack traces inside the block (yields whether it
    does)."""
    from pulumi.runtime import resource

    with swapped(resource, "_get_stack_trace", _empty_trace) as used:
        yield used
