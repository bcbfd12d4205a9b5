"""The layout rules of the tree, checked on the source: layers, package boundaries, file sizes.

* Layers: ``policies`` (standard library only: the CrossGuard pack imports it in its own
  virtualenv) <- ``kernels`` <- ``components`` and ``pipelines`` <- ``infra``. Components never
  import workloads or the program; workloads never import the program or the components.
* No module imports a name from its own package's ``__init__`` (sibling modules are imported as
  modules): re-exporting ``__init__`` files would otherwise make import cycles.
* Every package's ``__init__`` opens with a docstring whose first line says what it holds.
* No hand-written module is longer than 600 lines; generated modules say so in their first lines.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("infra", "components", "pipelines", "policies", "kernels")
ALLOWED: dict[str, set[str]] = {
    "policies": {"policies"},
    "kernels": {"kernels", "policies"},
    "components": {"components", "policies"},
    "pipelines": {"pipelines", "kernels", "policies"},
    "infra": set(PACKAGES),
}
SHARED_FACTS = (ROOT / "policies" / "zones.py", ROOT / "policies" / "promotion.py")
"""Leaf modules of facts that lower and upper layers share (zone table, promotion criteria)."""
MAX_LINES = 600
GENERATED_MARK = "GENERATED"


def _sources(*tops: str, root: Path = ROOT) -> list[Path]:
    return sorted(p for top in tops for p in (root / top).rglob("*.py"))


def _module(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import in the file, also inside functions."""
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def layer_violations(root: Path = ROOT) -> list[str]:
    """Imports that reach a higher layer."""
    bad = []
    for top in PACKAGES:
        for path in _sources(top, root=root):
            for target, _ in _imports(path):
                first = target.split(".")[0]
                if first in PACKAGES and first not in ALLOWED[top]:
                    bad.append(f"{_module(path, root)} imports {target}")
    return bad


def parent_imports() -> list[str]:
    """``from <own package> import <name>`` where the name is not a submodule."""
    bad = []
    for path in _sources(*PACKAGES):
        if path.name == "__init__.py":
            continue
        package = _module(path).rpartition(".")[0]
        for target, names in _imports(path):
            if package != target and not package.startswith(target + "."):
                continue
            bad += [
                f"{_module(path)} imports {n} from its package {target}"
                for n in names
                if not _is_module(f"{target}.{n}")
            ]
    return bad


def test_layers_import_only_downwards() -> None:
    assert layer_violations() == []


def test_policies_import_only_the_standard_library() -> None:
    stdlib = set(sys.stdlib_module_names)
    bad = [
        f"{_module(p)} imports {t}"
        for p in [*_sources("policies/rules"), *SHARED_FACTS]
        for t, _ in _imports(p)
        if t.split(".")[0] not in stdlib | {"policies", "__future__"}
    ]
    assert bad == []


def test_no_module_imports_names_from_its_own_package() -> None:
    assert parent_imports() == []


@pytest.mark.parametrize(
    "init",
    [p for p in _sources(*PACKAGES) if p.name == "__init__.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_packages_say_what_they_hold(init: Path) -> None:
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and doc.splitlines()[0].strip(), f"{init.relative_to(ROOT)} has no docstring"


def test_hand_written_modules_stay_short() -> None:
    long = []
    for path in _sources(*PACKAGES, "tests", "benchmarks"):
        lines = path.read_text().splitlines()
        if GENERATED_MARK in "\n".join(lines[:5]):
            continue
        if len(lines) > MAX_LINES:
            long.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
    assert long == []


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    """A component importing a workload is reported (a check that cannot fail is no check)."""
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "probe.py").write_text(
        "def f():\n    from pipelines.serving import repository\n"
    )
    assert layer_violations(tmp_path) == ["components.probe imports pipelines.serving"]
