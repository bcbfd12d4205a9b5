"""The import closure parses each source text once per process (infra/synth/fingerprint.py
``_imports_in``, keyed by the bytes): an edited file is parsed afresh, so the fingerprint never
follows the imports of a file's old text."""

from __future__ import annotations

from pathlib import Path

from infra.synth import fingerprint as fpmod


def _closure(tmp_path: Path) -> set[str]:
    found = fpmod.import_closure([tmp_path / "main.py"], [tmp_path]).files
    return {p.name for p in found}


def test_an_edited_file_is_parsed_again(tmp_path: Path) -> None:
    for name in ("b", "c"):
        (tmp_path / f"{name}.py").write_text("X = 1\n")
    (tmp_path / "main.py").write_text("import b\n")
    assert _closure(tmp_path) == {"main.py", "b.py"}
    assert _closure(tmp_path) == {"main.py", "b.py"}  # the cached parse gives the same answer
    (tmp_path / "main.py").write_text("import c\n")
    assert _closure(tmp_path) == {"main.py", "c.py"}


def test_the_same_text_in_two_files_resolves_relative_imports_per_file(tmp_path: Path) -> None:
    """Identical bytes in two packages: the cached imports are resolved against each file."""
    for pkg in ("p", "q"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("from . import leaf\n")
        (tmp_path / pkg / "leaf.py").write_text(f"NAME = {pkg!r}\n")
    (tmp_path / "main.py").write_text("import p\nimport q\n")
    found = fpmod.import_closure([tmp_path / "main.py"], [tmp_path]).files
    assert {p.relative_to(tmp_path).as_posix() for p in found} == {
        "main.py", "p/__init__.py", "p/leaf.py", "q/__init__.py", "q/leaf.py",
    }  # fmt: skip


def test_a_file_that_does_not_parse_is_listed_without_imports(tmp_path: Path) -> None:
    (tmp_path / "b.py").write_text("X = 1\n")
    (tmp_path / "main.py").write_text("import b\ndef broken(:\n")
    assert _closure(tmp_path) == {"main.py"}
    (tmp_path / "main.py").write_text("import b\n")
    assert _closure(tmp_path) == {"main.py", "b.py"}
