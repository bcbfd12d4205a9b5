"""The fleet's checkov parsers give what checkov's own loaders give, mark for mark, and its dpath
lookups what dpath gives.

``infra/gate/checkov_parsers.py`` replaces two of checkov's loaders inside the fleet's checkov
workers. Each case here goes to ``tests/checkov_parsers_probe.py`` in checkov's venv, which loads
the input with checkov's loader and with ours and compares objects, types, key order, marks and
line numbers (or the error). The real files are every stack's scan inputs; the generated ones
are what a hostile program change could put in a plan or a manifest. Where the fast path must
answer (the files ``write_tfplan`` and ``write_k8s`` write), the tests also require that it did:
a fast path that always handed back to checkov's loader would pass every comparison and save
nothing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.config.stackfile import ROOT
from infra.gate import checkov as checkov_runner
from infra.gate.checkov import write_scan_inputs
from infra.gate.k8s_manifests import _DUMPER

PROBE = ROOT / "tests" / "checkov_parsers_probe.py"

pytestmark = pytest.mark.skipif(
    not checkov_runner.CHECKOV.is_file(), reason="needs .venv-checkov (make setup)"
)


class Probe:
    """The probe process: one request, one answer."""

    def __init__(self) -> None:
        python = checkov_runner.checkov_python()
        self.proc = subprocess.Popen(
            [str(python), str(PROBE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the probe died"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def probe() -> Iterator[Probe]:
    p = Probe()
    yield p
    p.close()


@pytest.fixture(scope="module")
def scan_inputs(
    stack_records: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, list[Path]]]:
    out = tmp_path_factory.mktemp("scan-inputs")
    return {name: write_scan_inputs(rec, out / name) for name, rec in stack_records.items()}


def test_every_stacks_plan_reads_the_same_and_fast(
    probe: Probe, scan_inputs: dict[str, tuple[Path, list[Path]]]
) -> None:
    assert scan_inputs
    for name, (plan, _) in scan_inputs.items():
        got = probe.ask(kind="tfplan", path=str(plan))
        assert got["same"], (name, got["detail"])
        assert got["fast"], f"{name}: the plan write_tfplan wrote went to checkov's loader"


def test_every_stacks_manifests_read_the_same_and_fast(
    probe: Probe, scan_inputs: dict[str, tuple[Path, list[Path]]]
) -> None:
    for name, (_, manifests) in scan_inputs.items():
        assert manifests, name
        for path in manifests:
            got = probe.ask(kind="k8s", path=str(path))
            assert got["same"] and got["fast"], (name, path.name, got["detail"])


# --- generated input ---------------------------------------------------------------------------

# Characters YAML and JSON treat differently: controls, NEL and the Unicode line separators,
# BOM, quotes, escapes, YAML indicators, astral characters (surrogate pairs in JSON escapes).
_TRICKY = (
    "\x00\x07\x08\t\n\x0b\x0c\r\x1b\x7f\x85\xa0\u2028\u2029\ufeff\ufffe"
    "\"'\\/:#&*!|>%@`-?,[]{}~ \U0001f600"
)
_TEXT = st.text(alphabet=st.sampled_from(_TRICKY) | st.characters(codec="utf-8"), max_size=12)
_WORDS = st.sampled_from(
    ["yes", "no", "on", "off", "null", "~", "true", "1e5", "0x1F", "0777", ".inf", "-.nan",
     "1_000", "12:30:00", "2026-12-05", "<<", "=", "__file__", "__startline__", "- a", "a: b",
     "#c", "", " ", "x" * 1030]
)  # fmt: skip
_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _TEXT
    | _WORDS
)
_KEY = _TEXT | _WORDS


def _tree(leaves: Any) -> Any:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEY, inner, max_size=4),
        max_leaves=20,
    )


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(body=st.dictionaries(_KEY, _tree(_SCALAR), max_size=5), style=st.integers(0, 5))
def test_a_generated_plan_reads_as_checkov_reads_it(probe: Probe, body: dict, style: int) -> None:
    plan = {"planned_values": {"root_module": {"resources": []}}, **body}
    text = [
        json.dumps(plan, indent=2) + "\n",  # as write_tfplan writes it
        json.dumps(plan, indent=2),  # no final newline
        json.dumps(plan, indent=2, ensure_ascii=False) + "\n",
        json.dumps(plan, indent=4) + "\n",
        json.dumps(plan) + "\n",
        json.dumps(plan, indent=2).replace("{", '{"planned_values": 1,', 1) + "\n",  # duplicate
    ][style]
    got = probe.ask(kind="tfplan", text=text)
    assert got["same"], got["detail"]


_NO_FLOAT = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _WORDS
_PRINTABLE = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\n\t")
)


@_SETTINGS
@given(body=st.dictionaries(_KEY, _tree(_NO_FLOAT | _PRINTABLE), max_size=5))
def test_the_fast_path_answers_for_what_write_tfplan_writes(probe: Probe, body: dict) -> None:
    plan = {"planned_values": {"root_module": {"resources": []}}, **body}
    text = json.dumps(plan, indent=2) + "\n"
    got = probe.ask(kind="tfplan", text=text)
    assert got["same"], got["detail"]
    plain = all(set(s) <= set(map(chr, range(0x20, 0x7F))) | {"\n", "\t"} for s in _strings(plan))
    short_keys = all(len(json.dumps(k)) <= 1000 for k in _strings(plan, values=False))
    assert got["fast"] == (plain and short_keys), got


def _strings(value: Any, *, values: bool = True) -> Iterator[str]:
    """Every mapping key in ``value``, and every string value too unless ``values`` is false."""
    if isinstance(value, str):
        if values:
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v, values=values)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, values=values)


@_SETTINGS
@given(docs=st.lists(st.dictionaries(_KEY, _tree(_SCALAR), min_size=1, max_size=5), max_size=3))
def test_a_generated_manifest_reads_as_checkov_reads_it(probe: Probe, docs: list) -> None:
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", **doc} for doc in docs]
    text = yaml.dump_all(manifests, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)
    got = probe.ask(kind="k8s", text=text)
    assert got["same"], got["detail"]
    assert got["fast"], "a manifest as write_k8s writes it went to checkov's loader"


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a\n",  # unclosed flow mapping
        "apiVersion: v1\nkind: Pod\n\tbad: tab\n",
        "apiVersion: v1\nkind: Pod\nmetadata: &a {name: x}\nspec: *a\n",
        "apiVersion: v1\nkind: Pod\nx: !!python/object:os.system ls\n",
        "apiVersion: v1\nkind: Pod\na: 1\na: 2\n",
        "apiVersion: v1\nkind: Pod\n<<: {merged: true}\n",
        "apiVersion: v1\nkind: Pod\nx: \x07\n",
        'apiVersion: v1\nkind: Pod\nx: "\\ud83d\\ude00"\n',
        "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Service\n...\n",
        "%YAML 1.1\n---\napiVersion: v1\nkind: Pod\n",
        "apiVersion: v1\nkind: Pod\nx: " + "[" * 200 + "]" * 200 + "\n",
        "\ufeffapiVersion: v1\nkind: Pod\n",
    ],
)
def test_a_hand_written_manifest_reads_as_checkov_reads_it(probe: Probe, text: str) -> None:
    got = probe.ask(kind="k8s", text=text)
    assert got["same"], got["detail"]


# --- dpath's get and search (infra/gate/checkov_dpath.py) -------------------------------------

_SEGMENT = st.sampled_from(
    ["a", "b", "tags", "0", "1", "-1", " 1", "1_0", "", "*", "?", "[0]", "[!a]", "a*", "**", "x/y"]
)
_DKEY = st.sampled_from(["a", "b", "tags", "0", "1", "", "*", "[0]", "x/y", "a b"])
_DSCALAR = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "0"])
_DOBJ = st.recursive(
    _DSCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_DKEY, inner, max_size=4),
    max_leaves=16,
)
_GLOB = st.builds(
    lambda segs, lead: ("/" if lead else "") + "/".join(segs),
    st.lists(_SEGMENT, min_size=1, max_size=4),
    st.booleans(),
)


@_SETTINGS
@given(
    obj=st.dictionaries(_DKEY, _DOBJ, max_size=5),
    glob=_GLOB,
    op=st.sampled_from(["get", "search"]),
    nodes=st.booleans(),
    yielded=st.booleans(),
)
def test_dpath_get_and_search_answer_as_dpath_does(
    probe: Probe, obj: dict, glob: str, op: str, nodes: bool, yielded: bool
) -> None:
    got = probe.ask(kind="dpath", op=op, obj=obj, glob=glob, nodes=nodes, yielded=yielded)
    assert got["same"], got["detail"]


@pytest.mark.parametrize("nodes", [False, True])
def test_the_short_walk_answers_for_a_plain_resource(probe: Probe, nodes: bool) -> None:
    """A resource configuration as checkov's plan parser builds it takes the short walk."""
    conf = {
        "tags": [{"env": "prod", "team": "ml"}],
        "rule": [{"apply": [{"sse_algorithm": "aws:kms", "kms_key": "k"}]}],
        "policy": ["{}"],
        "count": [1],
    }
    for op in ("get", "search"):
        for glob in ("tags", "rule/[0]/apply/[0]/sse_algorithm", "rule/*/apply", "missing", "*"):
            got = probe.ask(kind="dpath", op=op, obj=conf, glob=glob, nodes=nodes)
            assert got["same"] and got["fast"], (op, glob, got["detail"])
    # What the short walk must leave to dpath: an empty key deeper than the glob reaches (dpath
    # refuses it from anywhere in the object), and a ** glob.
    deep_empty = {**conf, "rule": [{"apply": [{"": 1}]}]}
    for op, glob in (("get", "tags"), ("search", "tags"), ("get", "**/sse_algorithm")):
        got = probe.ask(kind="dpath", op=op, obj=deep_empty, glob=glob, nodes=nodes)
        assert got["same"] and not got["fast"], (op, glob, got["detail"])
