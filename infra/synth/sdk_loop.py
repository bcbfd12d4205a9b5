"""The event loop a synth runs on: uvloop's, unless the program needs asyncio's own.

Under the mocks a synth is the Pulumi SDK's asyncio machinery and nothing else: every resource
is a few dozen tasks, futures and callbacks, and one executor round trip to the mock monitor. On
uvloop's loop (libuv, the scheduling written in C) a tenant stack's synth costs about 12% less
CPU (1.15 -> 1.01 s, measured over six tenants in one process) and its record is byte-identical
(``tests/test_synth_loop.py`` compares a tenant's record made on each loop).

One thing asyncio's loop can do that uvloop's cannot: the SDK's ``_sync_await`` (a synchronous
invoke such as ``aws.get_region()``, ``Output`` helpers) pumps a *running* loop by hand through
its private ``_ready`` queue and ``_run_once``. uvloop has neither. ``SynthLoop`` notes any such
attempt (``nested``) and refuses it with ``NestedWait``, a ``BaseException`` so that no
``except Exception`` in a program or the SDK swallows it; ``run_on_synth_loop`` then discards
that attempt, whatever it produced, and runs the synth again on a fresh asyncio loop. A program
that waits synchronously is therefore synthesized exactly as before, at the old cost.

uvloop is optional: where it is not installed, every synth runs on asyncio's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

try:  # uvloop is pinned in requirements/main.txt; a checkout without it runs on asyncio's loop.
    import uvloop

    class SynthLoop(uvloop.Loop):  # type: ignore[misc, name-defined]
        """uvloop's loop, refusing (and remembering) the SDK's hand-pumping of a running loop."""

        nested = False
        """Set once something tried to pump this loop from inside one of its own callbacks."""

        @property
        def _ready(self) -> Any:
            # _sync_await reads len(loop._ready) before it calls loop._run_once().
            self.nested = True
            raise NestedWait("the program waited synchronously inside the running loop")

        def _run_once(self) -> None:
            self.nested = True
            raise NestedWait("the program waited synchronously inside the running loop")

except ImportError:  # pragma: no cover - exercised only without the pinned dependency
    SynthLoop = None  # type: ignore[assignment, misc]


class NestedWait(BaseException):
    """A synchronous wait inside the running synth loop, which only asyncio's loop can serve.

    A ``BaseException``: a program's or the SDK's ``except Exception`` must not turn it into an
    ordinary failure or a silently missing resource."""


def uvloop_available() -> bool:
    """True when synths run on uvloop's loop (first try)."""
    return SynthLoop is not None


def _on_loop(loop: asyncio.AbstractEventLoop, run: Callable[[], T]) -> T:
    """``run()`` with ``loop`` as this thread's event loop, the previous one restored after."""
    policy = asyncio.get_event_loop_policy()
    try:
        previous: asyncio.AbstractEventLoop | None = policy.get_event_loop()
    except RuntimeError:  # a thread other than the main one, without a loop of its own
        previous = None
    policy.set_event_loop(loop)
    try:
        return run()
    finally:
        policy.set_event_loop(previous)


def run_on_synth_loop(run: Callable[[], T]) -> T:
    """``run()`` (one synth, which must start from fresh runtime state each call) on uvloop's loop;
    run again on asyncio's loop when the first try waited synchronously inside the loop.

    Each thread keeps its loops for later synths, as it kept asyncio's default loop before: a
    closed loop would log every task a failed synth left pending."""
    if SynthLoop is not None:
        loop = _loop("synth", _new_synth_loop)
        try:
            result = _on_loop(loop, run)
        except BaseException:
            if not loop.nested:
                raise
        else:
            if not loop.nested:
                return result
        _LOOPS.synth = None  # this loop's tasks were cut short: later synths get a new one
    return _on_loop(_loop("asyncio", asyncio.new_event_loop), run)


def _new_synth_loop() -> Any:
    from infra.synth import sdk_monitor

    assert SynthLoop is not None
    loop = SynthLoop()
    loop.set_exception_handler(_quiet_once_nested)
    if sdk_monitor.applies():
        # The recording monitor answers without an event loop: its calls run on this thread.
        loop.set_default_executor(sdk_monitor.InlineExecutor())
    return loop


def _quiet_once_nested(loop: Any, context: dict[str, Any]) -> None:
    """The loop's error reports, except those of the try it cut short: once ``NestedWait`` was
    raised, the task that waited is left mid-step (``_sync_await`` already took it off the loop)
    and reports so, and its results are discarded anyway."""
    if not getattr(loop, "nested", False):
        loop.default_exception_handler(context)


_LOOPS = threading.local()


def _loop(kind: str, make: Callable[[], Any]) -> Any:
    loop = getattr(_LOOPS, kind, None)
    if loop is None or loop.is_closed():
        loop = make()
        setattr(_LOOPS, kind, loop)
    return loop
