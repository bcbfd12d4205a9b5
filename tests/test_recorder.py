"""The recording monitor's shortcut: identifying outputs read straight from the response Struct.

``struct_identifiers`` must give what deserializing the whole registration response (as the
SDK does, ``keep_internal=False``) and keeping its plain-string identifying outputs gives: for
any state the mocks could answer with, the engine's unknown sentinel, secrets, numbers, nested
values and special values at the top included. And the record file (``record_text``) reads
back as the record.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime import rpc

from infra.synth.recorder import IDENTIFIER_OUTPUTS, SECRET_SIG, SIG_KEY, struct_identifiers
from infra.synth.runner import record_text

KEYS = st.sampled_from([*IDENTIFIER_OUTPUTS, "id", "tags", "__internal", "Arn", "names"])
SCALARS = st.one_of(
    st.text(max_size=8),
    st.just(rpc.UNKNOWN),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


def _secret(inner: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": inner}


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(KEYS, inner, max_size=3),
        inner.map(_secret),
    ),
    max_leaves=8,
)
STATES = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=6),
    VALUES.map(_secret),
    st.just({SIG_KEY: rpc._special_asset_sig, "text": "an asset", "name": "n"}),
)


def _deserialized(state: struct_pb2.Struct) -> dict[str, str]:
    out = rpc.deserialize_properties(state, keep_internal=False)
    out = out if isinstance(out, dict) else {}
    return {k: out[k] for k in IDENTIFIER_OUTPUTS if isinstance(out.get(k), str)}


@settings(max_examples=300, deadline=None)
@given(STATES)
def test_struct_identifiers_equal_the_deserialized_ones(state: dict[str, Any]) -> None:
    struct = struct_pb2.Struct()
    struct.update(state)
    assert struct_identifiers(struct) == _deserialized(struct)


def test_strings_are_kept_and_everything_else_is_not() -> None:
    struct = struct_pb2.Struct()
    struct.update(
        {
            "arn": "arn:aws:s3:::b",
            "bucket": rpc.UNKNOWN,
            "name": _secret("hidden"),
            "keyId": 7.0,
            "id": "kept-elsewhere",
        }
    )
    assert struct_identifiers(struct) == {"arn": "arn:aws:s3:::b"}


JSON = st.recursive(
    st.one_of(st.text(max_size=6), st.integers(), st.floats(allow_nan=False), st.booleans(),
              st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=5).filter(lambda k: k != "resources"), JSON, max_size=4),
    st.lists(st.dictionaries(st.text(max_size=4), JSON, max_size=4), max_size=4),
)
def test_the_record_file_reads_back_as_the_record(
    head: dict[str, Any], resources: list[dict[str, Any]]
) -> None:
    record = {**head, "resources": resources}
    text = record_text(record)
    assert json.loads(text) == record and text.endswith("}\n")
    if head and resources:  # one line a resource
        assert text.count("\n") == len(json.dumps(head, indent=2).splitlines()) + len(resources) + 2
