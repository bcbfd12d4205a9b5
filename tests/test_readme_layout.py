"""The README's layout table matches the tree: every package and module is named where it lives.

A row ``| `pipelines/serving/` | ... |`` names each module of that folder in backticks; a
sub-package without a row of its own is named ``name/`` in its parent's row, with its modules as
words there. Every path a row starts with exists.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("infra", "components", "pipelines", "policies", "kernels")
ROW = re.compile(r"^\| `([^`]+)` \| (.*) \|$")


def table() -> dict[str, str]:
    """Layout rows of the README (its "## Architecture" section; other tables, such as the exit
    codes per command, are not layout): path -> the row's description."""
    rows = {}
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        m = ROW.match(line)
        if m:
            rows[m[1].rstrip("/")] = m[2]
    return rows


def modules(folder: Path) -> list[str]:
    """Module names (without ``.py``) of one folder, ``__init__`` and ``__main__`` aside."""
    return sorted(p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__"))


def packages() -> list[Path]:
    """Every folder of the five code packages that holds Python files."""
    found = {p.parent for top in PACKAGES for p in (ROOT / top).rglob("*.py")}
    return sorted(f for f in found if "__pycache__" not in f.parts)


def missing_from_table(rows: dict[str, str]) -> list[str]:
    """Packages and modules the table does not name."""
    out = []
    for folder in packages():
        rel = folder.relative_to(ROOT).as_posix()
        if not modules(folder):
            continue  # a namespace folder with only its __init__ (pipelines/, kernels/)
        if rel in rows:
            named = rows[rel]
            out += [
                f"{rel}/{m}.py"
                for m in modules(folder)
                if f"`{m}`" not in named and f"`{m}.py`" not in named
            ]
            continue
        parent = folder.parent.relative_to(ROOT).as_posix()
        row = rows.get(parent, "")
        if f"`{folder.name}/`" not in row:
            out.append(f"{rel}/ (no row, and not named `{folder.name}/` in the {parent}/ row)")
            continue
        words = set(re.findall(r"[A-Za-z_]+", row))
        out += [f"{rel}/{m}.py" for m in modules(folder) if m not in words]
    return out


def test_every_row_names_an_existing_path() -> None:
    assert [p for p in table() if not (ROOT / p).exists()] == []


def test_every_package_and_module_is_in_the_table() -> None:
    assert missing_from_table(table()) == []


def test_a_new_module_would_be_reported(tmp_path: Path) -> None:
    rows = dict(table())
    rows["pipelines/serving"] = rows["pipelines/serving"].replace("`bench`", "bench")
    assert "pipelines/serving/bench.py" in missing_from_table(rows)
