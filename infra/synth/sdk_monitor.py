"""The SDK's mock monitor, answering on the event loop's own thread instead of a worker thread's.

Under ``set_mocks`` every RPC of the Pulumi SDK (3.272.0) goes through
``loop.run_in_executor`` to a worker thread, and the mock monitor answers each registration by
serializing the mock's state with ``_sync_await(rpc.serialize_properties(state, {}))``: a nested
event loop run on that thread. Per tenant synth (about 600 registrations) that was 0.35-0.39 s
of the worker thread's CPU, plus a thread hand-off and the GIL passed back and forth for each.

``loop_free_monitor()``'s class answers ``RegisterResource``, ``ReadResource`` and
``Invoke`` as the SDK's ``MockMonitor`` does, line for line, except how the state is serialized.
State that is plain data (exact ``dict`` with ``str`` keys, ``list``, ``tuple``, ``str``,
``int``, ``float``, ``bool``, ``None``, as the mocks return) is put into the ``Struct`` directly
(``plain_struct``), which is what ``serialize_properties`` does with such data: it rebuilds the
same containers and drops the top-level ``None``\\ s. Anything else (a resource reference, an
asset, a mapping of another class) goes through the SDK's own serializer, on a helper thread
with its own loop, exactly as before.

No answer needs the running loop, so ``InlineExecutor`` runs these calls at once on the loop's
thread. A tenant synth then took 1.19-1.26 s of CPU instead of 1.52 s (one process, eight
tenants a run), and the fleet's prepare phase over 33 stacks 34.6-35.2 s instead of 37.5-40.2 s
(two alternating runs each; this machine's noise is about 15 %). Records are byte-identical
(``tests/test_synth_monitor.py``; ``tests/test_program.py``'s goldens).

Both are used only with the SDK version mirrored here (``MIRRORS``; ``applies()``); with any
other version the SDK's monitor answers on worker threads, unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from infra.synth.sdk_wait import MIRRORS, applies

__all__ = [
    "MIRRORS",
    "InlineExecutor",
    "applies",
    "loop_free_monitor",
    "plain_struct",
    "serialized",
]

T = TypeVar("T")
_SCALARS = (str, int, float, bool)


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _is_plain(value[k]) for k in value)
    if kind is list or kind is tuple:
        return all(_is_plain(v) for v in value)
    return value is None or kind in _SCALARS


def plain_struct(state: Any) -> Any | None:
    """``serialize_properties(state, {})``'s ``Struct`` for a ``state`` of plain data; None for
    any other ``state`` (the SDK's serializer must then decide).

    For plain data the SDK's serializer returns each value rebuilt in the same shape (a tuple as
    a list) and sets every top-level value that is not ``None`` on a new ``Struct``; the
    ``Struct``'s own setter turns a tuple into a list alike, so it is given the values as they
    are.
    """
    from google.protobuf import struct_pb2

    if type(state) is not dict or not _is_plain(state):
        return None
    struct = struct_pb2.Struct()
    for key in state:
        value = state[key]
        if value is not None:
            struct[key] = value
    return struct


_HELPER: ThreadPoolExecutor | None = None
_HELPER_LOCK = threading.Lock()


def _sdk_serialized(state: Any) -> Any:
    """``state`` through the SDK's own serializer, on a helper thread with its own event loop (as
    the SDK's monitor did on its worker thread): the calling thread may be the running loop's."""
    global _HELPER

    def serialize() -> Any:
        from pulumi.runtime import rpc
        from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

        _ensure_event_loop()
        return _sync_await(rpc.serialize_properties(state, {}))

    with _HELPER_LOCK:
        if _HELPER is None:
            _HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sovml-serialize")
    return _HELPER.submit(serialize).result()


def serialized(state: Any) -> Any:
    """The ``Struct`` the SDK's mock monitor answers with for ``state``."""
    struct = plain_struct(state)
    return struct if struct is not None else _sdk_serialized(state)


@functools.cache
def loop_free_monitor() -> type:
    """The class ``LoopFreeMonitor``: the SDK's ``MockMonitor`` whose answers never wait on an
    event loop (see the module). Made on first use, so that importing this module does not
    import the SDK."""
    from pulumi.runtime.mocks import MockMonitor

    class LoopFreeMonitor(MockMonitor):  # type: ignore[misc]
        """The SDK's ``MockMonitor`` answering without an event loop (``sdk_monitor``)."""

        loop_free = True
        """Read by ``InlineExecutor``: this monitor's answers may run on the loop's thread."""

        def _created(self, urn: str, request: Any, inputs: Any, **extra: Any) -> tuple[str, Any]:
            """The mocks' id for a resource and its state as a ``Struct``; the registration kept
            under ``urn``, as the SDK's monitor keeps it."""
            from pulumi.runtime.mocks import MockResourceArgs

            resource_args = MockResourceArgs(
                typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
                **extra,
            )  # fmt: skip
            id_, state = self.mocks.new_resource(resource_args)
            proto = serialized(state)
            self.resources[urn] = self.ResourceRegistration(urn, id_, state)
            return id_, proto

        def register(self, request: Any, before: Callable[[Any], T]) -> tuple[Any, T]:
            """``RegisterResource``'s answer, and what ``before`` made of the deserialized inputs
            before the mocks saw them (the recording monitor keeps them from that)."""
            from pulumi.runtime import rpc
            from pulumi.runtime.mocks import _resolve_callbacks
            from pulumi.runtime.proto import resource_pb2
            from pulumi.runtime.sync_await import _ensure_event_loop

            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type == "pulumi:pulumi:Stack":
                return resource_pb2.RegisterResourceResponse(urn=urn), before(None)
            # As the SDK: deserializing a resource reference needs an event loop on this thread.
            _ensure_event_loop()
            inputs = rpc.deserialize_properties(request.object)
            kept = before(inputs)
            id_, obj_proto = self._created(
                urn, request, inputs, resource_id=request.importId, custom=request.custom or False,
                transforms=_resolve_callbacks(request.transforms),
            )  # fmt: skip
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto), kept

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            return self.register(request, lambda _: None)[0]

        def ReadResource(self, request: Any) -> Any:  # noqa: N802
            from pulumi.runtime import rpc
            from pulumi.runtime.proto import resource_pb2
            from pulumi.runtime.sync_await import _ensure_event_loop

            _ensure_event_loop()
            state = rpc.deserialize_properties(request.properties)
            urn = self.make_urn(request.parent, request.type, request.name)
            _, props_proto = self._created(urn, request, state, resource_id=request.id)
            return resource_pb2.ReadResourceResponse(urn=urn, properties=props_proto)

        def Invoke(self, request: Any) -> Any:  # noqa: N802
            from pulumi.runtime import rpc
            from pulumi.runtime.mocks import MockCallArgs
            from pulumi.runtime.proto import provider_pb2, resource_pb2
            from pulumi.runtime.sync_await import _ensure_event_loop

            _ensure_event_loop()
            args = rpc.deserialize_properties(request.args)
            if request.tok == "pulumi:pulumi:getResource":
                registered = self.resources.get(args["urn"])
                if registered is None:
                    raise Exception(f"unknown resource {args['urn']}")
                answer = {"failures": None, "return": serialized(registered._asdict())}
                return resource_pb2.ResourceInvokeResponse(**answer)
            call = MockCallArgs(token=request.tok, args=args, provider=request.provider)
            tup = self.mocks.call(call)
            if isinstance(tup, dict):
                ret, failures = tup, None
            else:
                ret = tup[0]
                failures = [provider_pb2.CheckFailure(property=f[0], reason=f[1]) for f in tup[1]]
            answer = {"failures": failures, "return": serialized(ret)}
            return resource_pb2.ResourceInvokeResponse(**answer)

    return LoopFreeMonitor


def _monitor_is_loop_free() -> bool:
    from pulumi.runtime.settings import SETTINGS

    return getattr(type(SETTINGS.monitor), "loop_free", False) is True


class InlineExecutor(ThreadPoolExecutor):
    """The synth loop's default executor: a call is run at once, on the calling thread, while the
    runtime's monitor is a ``loop_free_monitor()``; otherwise on worker threads, as before.

    A subclass of ``ThreadPoolExecutor`` because asyncio's loop accepts no other default
    executor; its workers start only if a call is ever handed to them."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if not _monitor_is_loop_free():
            return super().submit(fn, *args, **kwargs)
        future: Future[T] = Future()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # as a worker thread hands it to the future
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future
