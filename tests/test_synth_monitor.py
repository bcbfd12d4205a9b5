"""The loop-free mock monitor answers as the SDK's, and its synths record what the SDK's record.

``infra.synth.sdk_monitor`` answers registrations and invokes on the event loop's own thread,
putting plain state straight into a ``Struct``; the recording monitor then makes the record's
inputs from the inputs the SDK deserialized for the mocks. Each test compares with the SDK's own
path: its serializer for any state, its monitor (on worker threads) for whole programs, including
secrets, internal keys, assets, resource references, ``get`` and ``getResource``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime import rpc

from infra.synth import recorder, sdk_monitor
from infra.synth.runner import run_recorded, synthesize
from tests.offboard_helpers import tenant_stacks

REGION = "me-central-1"
KEYS = st.text(max_size=6)
SCALARS = st.one_of(
    st.text(max_size=8),
    st.just(rpc.UNKNOWN),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(),
    st.booleans(),
    st.none(),
)
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(KEYS, inner, max_size=3),
    ),
    max_leaves=10,
)


def _sdk_struct(state: Any) -> bytes:
    """The SDK's own serialization (a fresh loop, as its monitor's worker thread had)."""
    loop = asyncio.new_event_loop()
    try:
        struct = loop.run_until_complete(rpc.serialize_properties(state, {}))
    finally:
        loop.close()
    return struct.SerializeToString(deterministic=True)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, PLAIN, max_size=6))
def test_a_plain_state_is_put_in_the_struct_the_sdk_serializes(state: dict[str, Any]) -> None:
    struct = sdk_monitor.plain_struct(state)
    assert struct is not None
    # Bytes, not messages: a NaN equals itself only as bytes.
    assert struct.SerializeToString(deterministic=True) == _sdk_struct(state)


class _Mapping(collections.UserDict):
    pass


NOT_PLAIN = {
    "file asset": {"a": pulumi.FileAsset(__file__)},
    "nested asset": {"a": {"b": [pulumi.StringAsset("x")]}},
    "mapping subclass": {"a": _Mapping({"b": 1})},
    "ordered dict": {"a": collections.OrderedDict(b=1)},
    "int key": {"a": {1: "int key"}},
    "set": {"a": {"b"}},
    "bytes": {"a": b"bytes"},
    "state a mapping subclass": _Mapping({"a": 1}),
    "state a list": ["not", "a", "mapping"],
}


@pytest.mark.parametrize("state", NOT_PLAIN.values(), ids=NOT_PLAIN.keys())
def test_anything_but_plain_data_is_left_to_the_sdks_serializer(state: Any) -> None:
    assert sdk_monitor.plain_struct(state) is None


def test_the_sdks_serializer_answers_from_inside_a_running_loop() -> None:
    state = {"asset": pulumi.StringAsset("text"), "n": 1, "gone": None}
    expected = _sdk_struct(state)

    async def inside() -> bytes:
        # On the loop's thread, as the inline executor runs the monitor: the SDK's serializer
        # must not pump this loop (a helper thread with its own loop serializes).
        return sdk_monitor.serialized(state).SerializeToString(deterministic=True)

    loop = asyncio.new_event_loop()  # not asyncio.run: it leaves this thread without a loop
    try:
        assert loop.run_until_complete(inside()) == expected
    finally:
        loop.close()


class _Holder(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Holder", name)
        self.register_outputs({})


def _every_kind_of_input() -> None:
    """Secrets (top level and nested), an internal key next to a secret, an asset, a resource
    reference, ``get`` (ReadResource) and an invoke, and a provider with its region."""
    provider = aws.Provider("west", region="me-south-1")
    key = aws.kms.Key("key", description="k", opts=pulumi.ResourceOptions(provider=provider))
    pulumi.CustomResource(
        "test:index:Thing",
        "thing",
        {
            "plain": {"a": [1, 2.5, True, None], "b": "text"},
            "secret": pulumi.Output.secret("s3cr3t"),
            # keep_internal=False drops ``__meta`` before the secret beside it is pushed up to
            # ``nested``: the record must not redact ``b`` (it does if the inputs are reused).
            "nested": {"__meta": pulumi.Output.secret("x"), "b": 1},
            "asset": pulumi.StringAsset("content"),
            "ref": _Holder("holder"),
            "keyArn": key.arn,
        },
    )
    aws.s3.Bucket.get("existing", "existing-bucket")
    aws.get_caller_identity_output()


def _declared(program: Any) -> str:
    recording = run_recorded(program, stack="monitor", region=REGION)
    resources = sorted(recording.resources, key=lambda r: r["urn"])
    return json.dumps([resources, recording.provider_regions, recording.invokes], sort_keys=True)


def _sdks_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_monitor, "applies", lambda: False)


def test_a_program_with_every_kind_of_input_records_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert sdk_monitor.applies(), "requirements pin the pulumi version the monitor mirrors"
    ours = _declared(_every_kind_of_input)
    _sdks_monitor(monkeypatch)
    assert _declared(_every_kind_of_input) == ours
    thing = next(r for r in json.loads(ours)[0] if r["name"] == "thing")
    assert thing["inputs"]["nested"] == {"b": 1}
    assert thing["inputs"]["secret"] == recorder.REDACTED


def test_a_tenant_stack_records_byte_for_byte_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stacks = tenant_stacks(tmp_path / "stacks", ("alike",))
    ours = synthesize("alike", stacks_dir=stacks, build_dir=tmp_path / "ours").path.read_bytes()
    _sdks_monitor(monkeypatch)
    theirs = synthesize("alike", stacks_dir=stacks, build_dir=tmp_path / "sdk").path.read_bytes()
    assert ours == theirs


class _NoMocks(pulumi.runtime.Mocks):
    def call(self, args: Any) -> dict:
        return {}

    def new_resource(self, args: Any) -> tuple[str, dict]:
        return "id", {}


def test_calls_run_inline_only_while_the_monitor_is_loop_free() -> None:
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.settings import SETTINGS

    executor = sdk_monitor.InlineExecutor()
    before = SETTINGS.monitor
    try:
        SETTINGS.monitor = sdk_monitor.loop_free_monitor()(_NoMocks())
        assert executor.submit(threading.get_ident).result() == threading.get_ident()
        SETTINGS.monitor = MockMonitor(_NoMocks())
        assert executor.submit(threading.get_ident).result() != threading.get_ident()
    finally:
        SETTINGS.monitor = before
        executor.shutdown()


def test_an_inline_call_that_raises_hands_the_exception_to_its_future() -> None:
    from pulumi.runtime.settings import SETTINGS

    before = SETTINGS.monitor
    try:
        SETTINGS.monitor = sdk_monitor.loop_free_monitor()(_NoMocks())
        future = sdk_monitor.InlineExecutor().submit(lambda: 1 / 0)
    finally:
        SETTINGS.monitor = before
    with pytest.raises(ZeroDivisionError):
        future.result()


def test_the_sdk_path_still_serves_a_program_that_waits_synchronously() -> None:
    # aws.get_region() pumps the running loop (the synth falls back to asyncio's loop, whose
    # executor is the SDK's): the loop-free monitor answers there too.
    def program() -> None:
        aws.s3.Bucket("b", bucket=f"b-{aws.get_region().region}")

    assert f"b-{REGION}" in _declared(program)


def test_internal_keys_are_found_at_any_depth() -> None:
    assert not recorder.has_internal_keys({"a": [{"b": 1}], "__provider": "p"})
    assert recorder.has_internal_keys({"a": [{"__x": 1}]})
    assert recorder.has_internal_keys({"a": {"v": {"__defaults": []}}})
    assert recorder.has_internal_keys({"__meta": 1, "b": 2})
    assert not recorder.has_internal_keys("__not_a_key")
