"""Feast imported without typeguard's instrumentation (``pipelines.features.feast_import``), and
the type checks that instrumentation gave kept where they matter: on this repository's calls."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typeguard

from pipelines.features import feast_import

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_CODE = ("pipelines", "infra", "components", "kernels", "policies")


def _instrumented(function: Any) -> bool:
    """Whether typeguard rewrote ``function`` (its code then calls typeguard's checkers)."""
    return "typeguard._functions" in function.__code__.co_names


def _plain(x: int) -> int:
    return x


def test_inside_the_block_typechecked_leaves_its_target_unchanged_then_it_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "feast", raising=False)
    original = typeguard.typechecked
    with feast_import.uninstrumented():
        assert typeguard.typechecked(_plain) is _plain  # the decorator form
        assert typeguard.typechecked()(_plain) is _plain  # the called form, @typechecked(...)
    assert typeguard.typechecked is original
    assert _instrumented(typeguard.typechecked(_plain))  # so the check above could fail


def test_the_block_restores_typeguard_when_the_import_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "feast", raising=False)
    original = typeguard.typechecked
    with pytest.raises(ImportError), feast_import.uninstrumented():
        raise ImportError("feast is broken")
    assert typeguard.typechecked is original


def test_once_feast_is_loaded_the_block_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "feast", sys.modules[__name__])
    with feast_import.uninstrumented():
        assert _instrumented(typeguard.typechecked(_plain))


def _feast_imports(tree: ast.AST) -> list[tuple[int, bool]]:
    """``(line, inside a 'with uninstrumented()' or 'if TYPE_CHECKING' block)`` of each import
    of Feast in ``tree``."""
    found: list[tuple[int, bool]] = []

    def guarded(node: ast.AST) -> bool:
        if isinstance(node, ast.With):
            return any(
                isinstance(i.context_expr, ast.Call)
                and getattr(i.context_expr.func, "id", getattr(i.context_expr.func, "attr", ""))
                == "uninstrumented"
                for i in node.items
            )
        return isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"

    def walk(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            if any(n == "feast" or n.startswith("feast.") for n in names):
                found.append((child.lineno, inside))
            walk(child, inside or guarded(child))

    walk(tree, False)
    return found


def test_every_runtime_import_of_feast_is_inside_the_block() -> None:
    """A new ``from feast import ...`` outside ``uninstrumented()`` would make whichever code
    path imports Feast first pay the instrumentation again; this finds it."""
    unguarded, guarded = [], 0
    for folder in RUNTIME_CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, inside in _feast_imports(ast.parse(path.read_text(), str(path))):
                guarded += inside
                if not inside:
                    unguarded.append(f"{path.relative_to(ROOT)}:{line}")
    assert unguarded == []
    assert guarded >= 6  # the scan sees the guarded ones: it would see an unguarded one too


def test_the_scan_sees_an_unguarded_import() -> None:
    source = "from feast import Entity\nwith uninstrumented():\n    import feast.types\n"
    assert _feast_imports(ast.parse(source)) == [(1, False), (3, True)]


@pytest.mark.slow
def test_the_repositorys_calls_into_feast_pass_its_type_checks() -> None:
    """In a fresh process with Feast instrumented: the repository's feature definitions (module
    objects, views over another path, a versioned service) are built under typeguard's checks,
    and a call of the wrong type is refused there, so the checks could fail."""
    script = """
import feast, typeguard
assert "typeguard._functions" in feast.FeatureView.__init__.__code__.co_names, "not instrumented"
from pipelines.features.repo import definitions
from pipelines.training import schema
views = definitions.feature_views("/nonexistent/features.parquet")
service = definitions.feature_service("credit_risk", 3, list(schema.FEATURES), views)
assert service.name == "credit_risk_v3", service.name
try:
    feast.Entity(name=5, join_keys=["customer_id"])
except typeguard.TypeCheckError:
    print("checked")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["checked"]
