"""Synths run on uvloop's loop, and a program that waits synchronously still synthesizes.

The SDK's ``_sync_await`` (a synchronous invoke, here ``aws.get_region()``) pumps a running
asyncio loop by hand, which uvloop's loop cannot do: ``infra.synth.sdk_loop`` then runs the synth
again on asyncio's loop. Each test below compares what the program declared with what the same
program declares on asyncio's loop alone (the behaviour before uvloop), so a fallback that lost,
doubled or changed a resource fails. The byte-for-byte comparison on a tenant stack is in
``tests/test_synth_process.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from infra.synth import runner, sdk_loop
from infra.synth.runner import SynthError, run_recorded

REGION = "me-central-1"


def _declared(program: Any) -> str:
    resources = run_recorded(program, stack="loop", region=REGION).resources
    return json.dumps(sorted(resources, key=lambda r: r["urn"]), sort_keys=True)


def _on_asyncio_only(program: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(sdk_loop, "SynthLoop", None)
        return _declared(program)


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The loop each attempt of a synth ran on, in order."""
    seen: list[str] = []
    original = runner._run_recorded_once

    def counted(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        seen.append("uvloop" if type(loop).__name__ == "SynthLoop" else "asyncio")
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "_run_recorded_once", counted)
    return seen


def _bucket_in_region() -> None:
    region = aws.get_region()  # a synchronous invoke: _sync_await inside the running loop
    aws.s3.Bucket("data", bucket=f"data-{region.region}")


def _bucket_in_region_inside_apply() -> None:
    pulumi.Output.from_input("x").apply(lambda _: _bucket_in_region())


def _swallowing_program() -> None:
    with contextlib.suppress(BaseException):  # a program that hides every failure
        aws.get_region()
    aws.s3.Bucket("hidden", bucket="hidden")


def _plain_program() -> None:
    aws.s3.Bucket("plain", bucket="plain")


def test_uvloop_is_installed_and_used(tries: list[str]) -> None:
    assert sdk_loop.uvloop_available(), "uvloop is pinned in requirements/main.txt"
    assert "plain" in _declared(_plain_program)
    assert tries == ["uvloop"]


@pytest.mark.parametrize(
    "program", [_bucket_in_region, _bucket_in_region_inside_apply, _swallowing_program]
)
def test_a_synchronous_wait_is_synthesized_again_on_asyncios_loop(
    program: Any,
    tries: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    declared = _declared(program)
    assert tries == ["uvloop", "asyncio"]
    # The try that was cut short reports nothing (its task is left mid-step on purpose).
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert declared == _on_asyncio_only(program, monkeypatch)
    assert f"-{REGION}" in declared or "hidden" in declared


def test_a_failing_program_fails_once_without_a_second_try(tries: list[str]) -> None:
    def program() -> None:
        raise ValueError("broken program")

    with pytest.raises((SynthError, ValueError), match="broken program"):
        run_recorded(program, stack="loop", region=REGION)
    assert tries == ["uvloop"]


def test_the_callers_event_loop_is_restored() -> None:
    policy = asyncio.get_event_loop_policy()
    before, mine = policy.get_event_loop(), asyncio.new_event_loop()
    policy.set_event_loop(mine)
    try:
        run_recorded(_plain_program, stack="loop", region=REGION)
        assert policy.get_event_loop() is mine
    finally:
        policy.set_event_loop(before)
        mine.close()


def test_a_later_synth_after_a_fallback_runs_on_uvloop_again(tries: list[str]) -> None:
    _declared(_bucket_in_region)
    _declared(_plain_program)
    assert tries == ["uvloop", "asyncio", "uvloop"]


def test_an_output_made_outside_any_synth_is_not_the_next_synths_to_await(
    tries: list[str],
) -> None:
    # A component helper called directly (no synth running) makes an Output on the caller's own
    # event loop, and the SDK files its task with the last synth's outputs; the next synth, on
    # another loop, must neither await it nor fail on it.
    assert "plain" in _declared(_plain_program)
    stray = pulumi.Output.from_input("arn:aws:s3:::b").apply(lambda a: f"{a}/*")
    assert "plain" in _declared(_plain_program)
    assert tries == ["uvloop", "uvloop"]
    del stray
