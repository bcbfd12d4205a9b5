"""Compare ``infra/gate/checkov_parsers.py`` and ``checkov_dpath.py`` with checkov's and dpath's
own code, in checkov's venv.

Run by ``.venv-checkov/bin/python`` (``tests/test_checkov_parsers.py`` starts it). Each request on
stdin is one JSON line: ``{"kind": "tfplan" | "k8s", "text": ...}`` (the content of a file) or
``{"kind": ..., "path": ...}`` (a file), or ``{"kind": "dpath", "op": "get" | "search", "obj":
..., "glob": ..., "nodes": bool, "yielded": bool}``. Each answer is one JSON line:
``{"same": bool, "fast": bool, "detail": str}``: whether the installed loader gave what checkov's
own gives (objects, types, marks and line numbers; or the same error), and whether the fast
path answered rather than handing the input back to checkov's loader.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != HERE]

from checkov.cloudformation.parser import cfn_yaml  # noqa: E402
from checkov.kubernetes.parser import k8_yaml  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "sovml_checkov_parsers", HERE.parent / "infra" / "gate" / "checkov_parsers.py"
)
assert _spec is not None and _spec.loader is not None
parsers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parsers)

_dspec = importlib.util.spec_from_file_location(
    "sovml_checkov_dpath", HERE.parent / "infra" / "gate" / "checkov_dpath.py"
)
assert _dspec is not None and _dspec.loader is not None
fast_dpath = importlib.util.module_from_spec(_dspec)
_dspec.loader.exec_module(fast_dpath)

import dpath  # noqa: E402
from checkov.common.parsers.node import DictNode, ListNode, StrNode  # noqa: E402

OWN_TFPLAN, OWN_K8S = cfn_yaml.load, k8_yaml.loads
OWN_GET, OWN_SEARCH = dpath.get, dpath.search
FAST_GET, FAST_SEARCH = fast_dpath.make_get(OWN_GET), fast_dpath.make_search(OWN_SEARCH)
PLAIN = fast_dpath._classifier()
K8S_FALLBACKS: list[str] = []


def _counted_k8s(content: str) -> Any:
    K8S_FALLBACKS.append(content)
    return OWN_K8S(content)


FAST_TFPLAN = parsers._tfplan_load(OWN_TFPLAN)
FAST_K8S = parsers._k8s_loads(_counted_k8s)


def _mark(m: Any) -> Any:
    return None if m is None else (m.name, m.index, m.line, m.column, m.buffer, m.pointer)


def difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Where ``a`` and ``b`` differ in type, value, key order or marks; None when they do not."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} != {type(b).__name__}"
    for attr in ("start_mark", "end_mark"):
        marked = attr in getattr(a, "__dict__", {}) or attr in getattr(b, "__dict__", {})
        if marked and _mark(getattr(a, attr)) != _mark(getattr(b, attr)):
            return f"{path}: {attr} {_mark(getattr(a, attr))} != {_mark(getattr(b, attr))}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)[:8]} != {list(b)[:8]}"
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            found = difference(ka, kb, f"{path}.<key {ka!r}>") or difference(va, vb, f"{path}.{ka}")
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if a != b and not (a != a and b != b):  # NaN equals NaN here
        return f"{path}: {a!r} != {b!r}"
    return None


def _outcome(load: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", load(*args)
    except Exception as exc:  # the error itself is what is compared
        return "error", f"{type(exc).__name__}: {exc}"


def _as_nodes(value: Any) -> Any:
    """JSON data as checkov's parsers build it (DictNode, ListNode, StrNode; marks left out)."""
    if isinstance(value, dict):
        return DictNode({_as_nodes(k): _as_nodes(v) for k, v in value.items()}, None, None)
    if isinstance(value, list):
        return ListNode([_as_nodes(v) for v in value], None, None)
    if isinstance(value, str):
        return StrNode(value, None, None)
    return value


def _dpath_answer(request: dict[str, Any]) -> dict[str, Any]:
    """dpath's get or search against ours, on two copies of the same object."""
    op, glob = request["op"], request["glob"]
    build = _as_nodes if request.get("nodes") else (lambda v: json.loads(json.dumps(v)))
    theirs, mine = build(request["obj"]), build(request["obj"])
    args = {"yielded": True} if request.get("yielded") else {}
    if op == "get":
        own = _outcome(OWN_GET, theirs, glob)
        ours = _outcome(FAST_GET, mine, glob)
    else:
        own = _outcome(lambda *a: _listed(OWN_SEARCH(*a, **args)), theirs, glob)
        ours = _outcome(lambda *a: _listed(FAST_SEARCH(*a, **args)), mine, glob)
    fast = fast_dpath._short(glob, "/", PLAIN, mine) is not None and not args
    if own[0] != ours[0]:
        return {"same": False, "fast": fast, "detail": f"dpath: {own}, ours: {ours}"}
    if own[0] == "error":
        detail = own[1] != ours[1] and f"{own[1]} != {ours[1]}"
    else:
        detail = difference(own[1], ours[1])
    # Neither may change the object it searched.
    detail = detail or difference(theirs, mine)
    return {"same": not detail, "fast": fast, "detail": detail or own[0]}


def _listed(value: Any) -> Any:
    return list(value) if hasattr(value, "__next__") else value


def answer(request: dict[str, Any]) -> dict[str, Any]:
    kind = request["kind"]
    if kind == "dpath":
        return _dpath_answer(request)
    if kind == "tfplan":
        if "path" in request:
            path = request["path"]
        else:
            handle, path = tempfile.mkstemp(suffix=".json")
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(request["text"])
        try:
            own = _outcome(OWN_TFPLAN, path, cfn_yaml.ContentType.TFPLAN)
            ours = _outcome(FAST_TFPLAN, path, cfn_yaml.ContentType.TFPLAN)
            text = Path(path).read_text(encoding="utf-8")
            fast = parsers.tfplan_loads(text, path) is not None
        finally:
            if "path" not in request:
                os.unlink(path)
    else:
        text = request.get("text")
        if text is None:
            text = Path(request["path"]).read_text(encoding="utf-8")
        own = _outcome(OWN_K8S, text)
        K8S_FALLBACKS.clear()
        ours = _outcome(FAST_K8S, text)
        fast = not K8S_FALLBACKS
    if own[0] != ours[0]:
        return {"same": False, "fast": fast, "detail": f"checkov: {own[0]}, ours: {ours[0]}"}
    detail = (own[1] != ours[1] and f"{own[1]} != {ours[1]}") if own[0] == "error" else None
    detail = detail or (difference(own[1], ours[1]) if own[0] == "ok" else None)
    return {"same": not detail, "fast": fast, "detail": detail or own[0]}


def main() -> int:
    for line in sys.stdin:
        sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
