"""A linear drain of the Pulumi SDK's outstanding outputs, used while a synth runs.

The SDK's ``pulumi.runtime.stack.wait_for_rpcs`` (3.272.0; pulumi/pulumi#22411) drains the
program's outstanding outputs with ``asyncio.wait(pending, return_when=FIRST_COMPLETED)`` in a
loop: every turn hangs a callback on every pending task and takes them all off again, so a program
of n outputs that settle one by one costs O(n^2). A 600-resource tenant stack spent about half of
its synth there (353,000 ``add_done_callback`` calls, profiled). Under the mocks nothing waits on
the network, so that bookkeeping was the synth's cost.

``linear_wait()`` swaps in ``wait_for_rpcs`` below for the duration of one synth: the same two
phases (await every queued RPC, then every outstanding output until none is left, picking up
outputs created meanwhile) with the outputs awaited one after another. Each task is awaited once,
so the drain is O(n); every task still runs to completion before the program is considered done,
which is all the SDK's loop guarantees. Only the order in which a failure among several is
reported may differ. Records are sorted by URN, so they are byte-identical either way
(``tests/test_synth_wait.py`` compares them on a tenant stack).

The swap is made only for the SDK version whose loop this mirrors (``MIRRORS``); any other version
runs its own loop unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MIRRORS = "3.272.0"
"""The ``pulumi`` version whose ``wait_for_rpcs`` this module mirrors (requirements/main.txt)."""


async def wait_for_rpcs(await_all_outstanding_tasks: bool = True) -> None:
    """Await every queued RPC, then every outstanding output, each once, until none is left."""
    from pulumi.runtime.settings import SETTINGS, _get_rpc_manager

    rpc_manager = _get_rpc_manager()
    while True:
        while rpc_manager.rpcs:
            await asyncio.sleep(0)
            try:
                await rpc_manager.rpcs.pop()
            except Exception as exn:
                # As the SDK does: the original traceback of an unhandled RPC failure is the cause.
                if rpc_manager.unhandled_exception is not None:
                    raise exn from rpc_manager.unhandled_exception.with_traceback(
                        rpc_manager.exception_traceback
                    )
                raise
        if rpc_manager.unhandled_exception is not None:
            raise rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
        if await_all_outstanding_tasks:
            await _drain_outputs(SETTINGS)
        # Outputs may have queued more RPCs: the cycle repeats until none remain (as the SDK's).
        if not rpc_manager.rpcs:
            return


async def _drain_outputs(settings: Any) -> None:
    """Await every outstanding output once, including outputs created while draining."""
    while True:
        with settings.lock:
            if not settings.outputs:
                return
            pending = list(settings.outputs)
            settings.outputs.clear()
        for task in pending:
            # Awaiting a task that is not done lets every other task run meanwhile; outputs
            # created meanwhile land in settings.outputs and are taken on the next turn.
            await task


def applies() -> bool:
    """True when the installed SDK is the version whose loop ``wait_for_rpcs`` mirrors."""
    from importlib.metadata import version

    return version("pulumi") == MIRRORS


@contextmanager
def swapped(target: Any, name: str, replacement: Any) -> Iterator[bool]:
    """``target.<name>`` is ``replacement`` inside the block, the original restored after, when
    the installed SDK is the mirrored one (``applies``); yields whether the swap was made. Every
    SDK swap of a synth (this module's, ``sdk_trace``'s, ``sdk_unknowns``') goes through here."""
    if not applies():
        yield False
        return
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield True
    finally:
        setattr(target, name, original)


@contextmanager
def linear_wait() -> Iterator[bool]:
    """Use the linear drain inside the block (yields whether it is in use)."""
    from pulumi.runtime import stack

    with swapped(stack, "wait_for_rpcs", wait_for_rpcs) as used:
        yield used
