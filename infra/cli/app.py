"""``sovml``: synthesize, check and operate the sovereign-ml platform from a terminal.

The app assembly: every command lives in its area's module of ``infra.cli`` and is registered
here, so ``sovml --help`` lists them all. Exit codes are ``infra.cli.common``'s: 0 success,
1 a check or run failed, 2 bad input (stack config, arguments), 3 an internal error.

``main`` is the last line of defence of that contract: whatever escapes a command becomes one
``error:`` line and exit 3 (traceback in a log file), Ctrl-C exit 130 with one line, and a closed
output pipe exit 141 without a word.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable
from typing import Any

import typer

from infra.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    consoles,
    error_line,
    internal_error,
)

app = typer.Typer(
    name="sovml",
    help="sovereign-ml: a data-resident ML platform on AWS, as Pulumi Python, checked offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    # Heavy libraries are imported inside the commands, not at module level. Typer lists commands
    # in registration order (groups after commands): this order is the one `sovml --help` shows.
    from infra.cli.artifact import artifact_app
    from infra.cli.audit import audit_app
    from infra.cli.cost import cost_command
    from infra.cli.drift import drift_command
    from infra.cli.evidence import evidence_command
    from infra.cli.features import features_app
    from infra.cli.gate import gate_app
    from infra.cli.images import images_app
    from infra.cli.model import model_app
    from infra.cli.pipeline import pipeline_app
    from infra.cli.serve import (
        abtest_command,
        bench_abtest_command,
        bench_serve_command,
        serve_command,
    )
    from infra.cli.stacks import check, config_app, demo, synth
    from infra.cli.tenant import tenant_app

    app.add_typer(config_app, name="config")
    app.add_typer(tenant_app, name="tenant")
    app.command("cost")(cost_command)
    app.command("drift")(drift_command)
    app.add_typer(artifact_app, name="artifact")
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(audit_app, name="audit")
    app.add_typer(images_app, name="images")
    app.add_typer(features_app, name="features")
    app.add_typer(model_app, name="model")
    app.command("serve")(serve_command)
    app.command("abtest")(abtest_command)
    bench_app = typer.Typer(help="Benchmarks against named baselines.", no_args_is_help=True)
    bench_app.command("serve")(bench_serve_command)
    bench_app.command("abtest")(bench_abtest_command)
    app.add_typer(bench_app, name="bench")
    app.command("synth")(synth)
    app.command("check")(check)
    app.add_typer(gate_app, name="gate")
    app.command("evidence")(evidence_command)
    app.command("demo")(demo)


_register_commands()


def _broken_pipe(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def _interrupted(exc: SystemExit) -> bool:
    """Whether typer ended with 130 because Ctrl-C interrupted the command.

    Typer turns ``KeyboardInterrupt`` into ``Exit(130)`` raised from it, then ``sys.exit``: the
    chain says so. A command that handled Ctrl-C itself (``serve`` stops the server) exits as
    it chooses and is left alone.
    """
    exit_exc = exc.__context__
    return exc.code == EXIT_INTERRUPTED and isinstance(
        getattr(exit_exc, "__cause__", None), KeyboardInterrupt
    )


def _quiet_streams() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail on a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real descriptor (a test harness): nothing to quiet
        pass
    finally:
        os.close(devnull)


def _say(message: str) -> None:
    """One ``error:`` line on stderr; a closed stderr leaves only the exit code to tell."""
    with contextlib.suppress(OSError, ValueError):
        error_line(consoles()[1], message)


def _ignore_loop_finalizer(previous: Callable[[Any], object]) -> Callable[[Any], object]:
    """An ``unraisablehook`` that drops one known shutdown error and passes every other on.

    The Pulumi SDK leaves event loops behind (synth runs the program through one). At interpreter
    exit the garbage collector may close a loop's self-pipe socket before the loop itself, whose
    ``__del__`` then fails with "Invalid file descriptor: -1" and Python prints "Exception
    ignored ... Traceback" after a command that already finished (seen in about one run of four
    of a refused synth). Closing the loops ourselves is not an option: in-process callers (tests)
    go on using them.
    """

    def hook(unraisable: Any) -> object:
        obj, exc = unraisable.object, unraisable.exc_value
        if getattr(obj, "__qualname__", "") == "BaseEventLoop.__del__" and isinstance(
            exc, (ValueError, OSError)
        ):
            return None
        return previous(unraisable)

    return hook


def main() -> None:
    """Console-script entry point: runs the app and keeps the exit-code contract.

    Typer's standalone mode already prints usage errors (exit 2) and ends with ``SystemExit``;
    any other exception from a command propagates to here, where it becomes
    ``infra.cli.common.internal_error``'s one line and exit 3.
    """
    sys.unraisablehook = _ignore_loop_finalizer(sys.unraisablehook)
    try:
        try:
            app()
        finally:
            # Output still buffered must reach the reader now, where a closed pipe can be
            # caught, not at interpreter exit (where it would print "Exception ignored").
            sys.stdout.flush()
    except SystemExit as exc:
        if _broken_pipe(exc.__context__):  # typer's own EPIPE handling, which exits 1
            _quiet_streams()
            sys.exit(EXIT_BROKEN_PIPE)
        if _interrupted(exc):
            _say("interrupted by SIGINT")
        raise
    except KeyboardInterrupt:  # outside the command (argument parsing, completion)
        _say("interrupted by SIGINT")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if _broken_pipe(exc):
            _quiet_streams()
            sys.exit(EXIT_BROKEN_PIPE)
        try:
            code = internal_error(consoles()[1], exc)
        except (OSError, ValueError):  # stderr itself is gone
            code = EXIT_INTERNAL
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
