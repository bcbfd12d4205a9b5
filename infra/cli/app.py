"""``sovml``: synthesize, check and operate the sovereign-ml platform from a terminal.

The app assembly: every command lives in its area's module of ``infra.cli`` and is registered
here, so ``sovml --help`` lists them all. Exit codes are ``infra.cli.common``'s: 0 success,
1 a check or run failed, 2 bad input (stack config, arguments), 3 an internal error.
"""

from __future__ import annotations

import typer

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
    from infra.cli.cost import cost_command
    from infra.cli.drift import drift_command
    from infra.cli.features import features_app
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
    app.add_typer(features_app, name="features")
    app.command("serve")(serve_command)
    app.command("abtest")(abtest_command)
    bench_app = typer.Typer(help="Benchmarks against named baselines.", no_args_is_help=True)
    bench_app.command("serve")(bench_serve_command)
    bench_app.command("abtest")(bench_abtest_command)
    app.add_typer(bench_app, name="bench")
    app.command("synth")(synth)
    app.command("check")(check)
    app.command("demo")(demo)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
