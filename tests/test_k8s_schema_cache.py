"""Schema verdicts are remembered by content, never by identity: a cached verdict is the verdict.

``infra.gate.k8s_schema`` keeps each distinct object's verdict for the process (tenants of one
template share most objects byte for byte). These tests judge objects with the cache emptied and
again from it, and change an object behind the same name to show that no stale verdict is
returned: the key is the whole object and the Kubernetes version.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.gate import k8s_schema
from infra.gate.k8s_schema import validate_kubernetes

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "apps"},
    "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
}
ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "r", "namespace": "apps"},
    "spec": {
        "selector": {"matchLabels": {"app": "r"}},
        "template": {
            "metadata": {"labels": {"app": "r"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
        },
    },
}
RULE = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "x", "namespace": "apps"}, "spec": {"groups": []}}  # fmt: skip


def _typo(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    here = out
    for key in path:
        here = here[key]
    here["hostNetwrok"] = True
    return out


CASES = [
    POD,
    _typo(POD, ("spec",)),
    ROLLOUT,
    _typo(ROLLOUT, ("spec", "template", "spec")),
    RULE,
]


def _judge(objects: list[dict[str, Any]], version: str = "1.33") -> Any:
    return validate_kubernetes(copy.deepcopy(objects), version)


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    k8s_schema._OUTCOMES.clear()


def test_a_remembered_verdict_is_the_verdict_of_every_kind_of_outcome() -> None:
    cold = _judge(CASES)
    assert k8s_schema._OUTCOMES  # remembered
    warm = _judge(CASES)
    assert warm == cold
    validated, errors, skipped = cold
    assert validated == 2 and skipped == ["monitoring.coreos.com/v1/PrometheusRule"]
    assert [e[0] for e in errors] == ["Pod/apps/p", "Rollout/apps/r (pod template)"]
    assert all("hostNetwrok" in e[1] for e in errors)


def test_the_same_name_with_other_content_is_judged_again() -> None:
    assert _judge([POD])[1] == []
    assert "hostNetwrok" in _judge([_typo(POD, ("spec",))])[1][0][1]
    assert _judge([POD])[1] == []


def test_the_version_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes_validate as kv

    asked: list[str] = []
    real = kv.validate

    def spy(obj: Any, version: str, strict: bool = False) -> Any:
        asked.append(version)
        return real(obj, version, strict)

    monkeypatch.setattr(kv, "validate", spy)
    _judge([POD], "1.33")
    _judge([POD], "1.33")
    _judge([POD], "1.32")
    assert asked == ["1.33.0", "1.32.0"]


def test_an_object_that_is_not_plain_json_is_judged_and_not_remembered() -> None:
    odd = copy.deepcopy(POD)
    odd["metadata"]["annotations"] = {"when": float("nan")}
    _judge([odd])
    assert not k8s_schema._OUTCOMES


names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(names, st.booleans()), min_size=1, max_size=6))
def test_any_sequence_of_objects_gets_the_verdicts_of_an_empty_cache(
    specs: list[tuple[str, bool]],
) -> None:
    objects = []
    for name, broken in specs:
        obj = copy.deepcopy(POD)
        obj["metadata"]["name"] = name
        objects.append(_typo(obj, ("spec",)) if broken else obj)
    warm = _judge(objects)  # the cache holds what earlier examples left in it
    k8s_schema._OUTCOMES.clear()
    assert _judge(objects) == warm
