"""How an operation stops on SIGINT, SIGTERM or SIGHUP without leaving plaintext behind.

:func:`cleanup_on_signals` turns those signals into an :class:`Interrupted` exception while an
operation runs, so every ``finally`` block on the way out (temporary files and folders, open
files) runs. Once the exception has left the operation, the previous handlers are restored and the
signal is delivered again to them: with the default action the process then dies of the signal
as if nothing had intervened (exit status 128+N in a shell; ``-N`` for a parent in Python).
A second signal during the clean-up is ignored, so it cannot cut the clean-up short.

:func:`exit_on_signals` is for a program's entry point (the CLI, the init container): it says
what happened on one line and then dies of the signal.

SIGKILL cannot be caught: what it leaves (a temporary folder beside the destination) is removed
by the next run, see :func:`pipelines.artifacts.fs.remove_stale_temps`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals an operation cleans up after: Ctrl-C, the pod/CI stop signal, a closed terminal."""


class Interrupted(BaseException):
    """A handled signal arrived during an operation (a BaseException: ``except Exception`` in
    between must not swallow it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def _in_main_thread() -> bool:
    # Python runs signal handlers only in the main thread and only lets it install them.
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold back the handled signals for a few system calls that must happen together.

    A signal arriving meanwhile is delivered when the block ends (the renames of an install, the
    creation and locking of a temporary folder).
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _redeliver(signum: int, previous: Any) -> None:
    """Deliver ``signum`` again, now to ``previous`` (restored by the caller)."""
    if previous == signal.SIG_DFL:
        # The default action of the three is to terminate: die of the signal itself.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
    elif callable(previous):
        signal.raise_signal(signum)


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Run the body with SIGINT/SIGTERM/SIGHUP raising :class:`Interrupted` (main thread only).

    Signals that were ignored (``SIG_IGN``, as under ``nohup``) stay ignored. After the body has
    unwound, the previous handlers are restored and the signal is re-delivered to them; if they
    return (a Python handler that does not raise), :class:`Interrupted` propagates so the caller
    still learns that the operation did not complete.
    """
    if not _in_main_thread():
        yield
        return
    fired: list[int] = []
    active = [True]

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:
            return  # the clean-up of the first signal is running: let it finish
        fired.append(signum)
        if active[0]:
            raise Interrupted(signum)
        # The body has just finished: nothing to clean up, hand the signal on as it came.
        before = previous.get(signum, signal.SIG_DFL)
        _restore(previous)
        _redeliver(signum, before)

    previous: dict[int, Any] = {}
    with signals_blocked():
        for sig in HANDLED:
            current = signal.getsignal(sig)
            if current != signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
    try:
        yield
        active[0] = False
    except Interrupted as exc:
        before = previous.get(exc.signum, signal.SIG_DFL)
        _restore(previous)
        _redeliver(exc.signum, before)
        raise
    finally:
        _restore(previous)


def _restore(previous: dict[int, Any]) -> None:
    """Put the saved handlers back (signals held back meanwhile; a pending one goes to them)."""
    if not previous:
        return
    with signals_blocked():
        for sig, handler in list(previous.items()):
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        previous.clear()


@contextlib.contextmanager
def exit_on_signals(say: Callable[[int], None]) -> Iterator[None]:
    """For a program's entry point: on a handled signal, ``say(signum)`` and die of the signal.

    Installed around a whole command; operations inside it clean up first (they re-deliver the
    signal here). Previous handlers are restored when the body ends normally.
    """
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):
            say(signum)
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)

    previous = {
        sig: signal.signal(sig, handler)
        for sig in HANDLED
        if signal.getsignal(sig) != signal.SIG_IGN
    }
    try:
        yield
    finally:
        _restore(previous)
