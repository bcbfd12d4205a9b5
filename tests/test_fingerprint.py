"""A synth record is never stale: reused only while its fingerprint (contents, never dates) holds.

Three layers: the fingerprint's parts on small trees (import closure, open hook, bytecode); a tiny
program in ``tmp_path`` that imports a helper beside it and reads a data file, synthesized and
checked through ``fresh_record`` and the gate; and the real program, whose every listed file is
changed (date restored) in a temporary copy of the repository files it needs.
"""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

import pytest

from infra.config.stackfile import ROOT, STACKS
from infra.cost.stack import load_record
from infra.gate import run as gate
from infra.synth import bytecode, fresh
from infra.synth import fingerprint as fpmod
from infra.synth.fresh import fresh_record
from infra.synth.runner import PROGRAM, synthesize

HELPER = "fp_helper"
"""The helper module the tiny program imports (forgotten before each synth, see ``Tiny``)."""
TINY_PROGRAM = f'''"""Fingerprint test program: a helper module and a data file beside it."""
import json
import sys
from pathlib import Path

import pulumi_aws as aws

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import {HELPER}
finally:
    sys.path.remove(str(HERE))


def tags():
    return json.loads((HERE / "tags.json").read_text())


aws.s3.Bucket({HELPER}.NAME, bucket={HELPER}.NAME, tags=tags())
'''


def edit_keeping_date(path: Path, text: str) -> None:
    """Rewrite ``path`` and put its access and modification times back, to the nanosecond."""
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns


@dataclass
class Tiny:
    """The tiny program, its stack folder and a build folder, all under ``tmp_path``."""

    root: Path

    @property
    def program(self) -> Path:
        return self.root / "prog" / "__main__.py"

    @property
    def helper(self) -> Path:
        return self.root / "prog" / f"{HELPER}.py"

    @property
    def tags(self) -> Path:
        return self.root / "prog" / "tags.json"

    def stacks(self, name: str = "stacks") -> Path:
        return self.root / name

    @property
    def build(self) -> Path:
        return self.root / "build"

    def fresh(self, stacks: str = "stacks") -> fresh.FreshRecord:
        # A `sovml` command starts a new process; this test process must forget the helper it
        # imported in an earlier synth, or the program would run that copy again.
        sys.modules.pop(HELPER, None)
        return fresh_record("dev", self.stacks(stacks), self.build, self.program)


def bucket(record: dict[str, Any]) -> dict[str, Any]:
    """The tiny program's one bucket in a record."""
    (found,) = [r for r in record["resources"] if r["type"] == "aws:s3/bucket:Bucket"]
    return found


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Tiny]:
    prog = tmp_path / "prog"
    prog.mkdir()
    (prog / "__main__.py").write_text(TINY_PROGRAM)
    (prog / f"{HELPER}.py").write_text('NAME = "fp-alpha"\n')
    (prog / "tags.json").write_text('{"owner": "alpha"}\n')
    for folder in ("stacks", "other-stacks"):
        (tmp_path / folder).mkdir()
        shutil.copy(STACKS / "Pulumi.dev.yaml", tmp_path / folder / "Pulumi.dev.yaml")
    yield Tiny(tmp_path)
    sys.modules.pop(HELPER, None)


@pytest.fixture
def no_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any synthesis from here on fails the test: the record must be reused."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("synthesized although the fingerprint held")

    monkeypatch.setattr(fresh, "synthesize", refuse)


# --- the parts ------------------------------------------------------------------------------


def test_import_closure_follows_every_import_form(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    files = {
        "main.py": "import json\nimport yaml\nimport pkg.a\n\ndef late():\n    from pkg import b\n",
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import c\nfrom .d import thing\n",
        "pkg/b.py": "import importlib\nimportlib.import_module('pkg.e')\n",
        "pkg/c.py": "",
        "pkg/d.py": "thing = 1\n",
        "pkg/e.py": "",
        "pkg/unused.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    closure = fpmod.import_closure([tmp_path / "main.py"], [tmp_path])
    names = {p.relative_to(tmp_path).as_posix() for p in closure.files}
    assert names == set(files) - {"pkg/unused.py"}
    assert closure.external == {"yaml"}  # json and importlib are the standard library's
    assert fpmod.distributions(closure.external) == ["pyyaml"]


def test_open_hook_records_reads_of_the_watched_run_only(tmp_path: Path) -> None:
    program = tmp_path / "prog" / "__main__.py"
    program.parent.mkdir()
    program.write_text("")
    for name in ("data.txt", "thread.txt", "late.txt"):
        (program.parent / name).write_text(name)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("not under the program's folder or the repository")
    try:
        with fpmod.watch(program) as seen:
            (program.parent / "data.txt").read_text()
            (program.parent / "written.txt").write_text("an output, not an input")
            outside.read_text()
            # Another thread runs in its own context: not the program's run.
            reader = threading.Thread(target=(program.parent / "thread.txt").read_text)
            reader.start()
            reader.join()
        (program.parent / "late.txt").read_text()
    finally:
        outside.unlink()
    assert seen.opened == {(program.parent / "data.txt").resolve()}


def test_policy_digest_covers_names_and_contents(tmp_path: Path) -> None:
    shutil.copytree(fpmod.POLICIES, tmp_path / "policies", ignore=shutil.ignore_patterns("__py*"))
    root = tmp_path / "policies"
    first = fpmod.policy_digest(root)
    assert first == fpmod.policy_digest(root)
    (root / "rules" / "extra.py").write_text("")
    second = fpmod.policy_digest(root)
    assert second != first
    edit_keeping_date(root / "suppressions.yaml", (root / "suppressions.yaml").read_text() + "#\n")
    assert fpmod.policy_digest(root) != second


# --- the tiny program -----------------------------------------------------------------------


def test_unchanged_inputs_reuse_the_record(tiny: Tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tiny.fresh()
    assert first.synthesized and first.reason == "there was no record"
    fp = first.record["fingerprint"]
    assert {str(tiny.helper.resolve()), str(tiny.tags.resolve()), "Pulumi.yaml"} <= set(fp["files"])
    assert str(tiny.program.resolve()) in fp["files"]
    assert "infra/synth/mocks.py" in fp["files"]  # the synthesizer shapes the record too
    assert fp["stackFile"]["path"] == str((tiny.stacks() / "Pulumi.dev.yaml").resolve())
    monkeypatch.setattr(fresh, "synthesize", lambda *a, **k: pytest.fail("synthesized again"))
    again = tiny.fresh()
    assert not again.synthesized and "unchanged" in again.reason
    assert again.record == first.record
    assert again.describe().startswith("dev: reused ")


def test_helper_changed_with_its_date_restored_is_synthesized_again(tiny: Tiny) -> None:
    tiny.fresh()
    edit_keeping_date(tiny.helper, 'NAME = "fp-bravo"\n')
    assert fpmod.stale_reason(json.loads((tiny.build / "dev" / "resources.json").read_text()),
                              tiny.stacks() / "Pulumi.dev.yaml", tiny.program)  # fmt: skip
    result = tiny.fresh()
    assert result.synthesized
    assert result.reason == f"{tiny.helper.resolve()} changed"
    assert bucket(result.record)["inputs"]["bucket"] == "fp-bravo"


def test_a_data_file_the_program_reads_counts(tiny: Tiny) -> None:
    first = tiny.fresh()
    assert bucket(first.record)["inputs"]["tags"] == {"owner": "alpha"}
    edit_keeping_date(tiny.tags, '{"owner": "bravo"}\n')
    result = tiny.fresh()
    assert result.synthesized and result.reason == f"{tiny.tags.resolve()} changed"
    assert bucket(result.record)["inputs"]["tags"] == {"owner": "bravo"}


def test_a_missing_listed_file_is_a_reason(tiny: Tiny) -> None:
    record = tiny.fresh().record
    tiny.tags.unlink()
    reason = fpmod.stale_reason(record, tiny.stacks() / "Pulumi.dev.yaml", tiny.program)
    assert reason == f"{tiny.tags.resolve()} is missing"


def test_same_stack_name_in_another_stacks_dir_is_synthesized_again(tiny: Tiny) -> None:
    assert tiny.fresh("stacks").synthesized
    other = tiny.fresh("other-stacks")
    assert other.synthesized
    assert "another stacks dir" in other.reason and "other-stacks" in other.reason
    assert not tiny.fresh("other-stacks").synthesized
    back = tiny.fresh("stacks")
    assert back.synthesized and "another stacks dir" in back.reason


def test_a_record_without_fingerprint_or_of_another_program_is_not_reused(tiny: Tiny) -> None:
    path = tiny.build / "dev" / "resources.json"
    record = tiny.fresh().record
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "fingerprint"}))
    assert tiny.fresh().reason == "the record has no fingerprint (of this version)"
    reason = fpmod.stale_reason(record, tiny.stacks() / "Pulumi.dev.yaml", PROGRAM)
    assert reason and reason.startswith("the record is of program ")
    path.write_text(json.dumps({**record, "fingerprint": {"version": fpmod.FINGERPRINT_VERSION}}))
    assert tiny.fresh().reason == "the record's fingerprint is malformed"
    path.write_text("{not json")
    assert tiny.fresh().reason.startswith("the record is unreadable")


def test_a_changed_sdk_version_is_a_reason(tiny: Tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tiny.fresh().record
    real = fpmod.metadata.version
    monkeypatch.setattr(
        fpmod.metadata, "version", lambda d: "0.0.1" if d == "pulumi-aws" else real(d)
    )
    reason = fpmod.stale_reason(record, tiny.stacks() / "Pulumi.dev.yaml", tiny.program)
    was = record["fingerprint"]["versions"]["pulumi-aws"]
    assert reason == f"pulumi-aws changed from {was} to 0.0.1"


def test_check_after_a_date_preserving_copy_synthesizes_again(tiny: Tiny) -> None:
    """``rsync -a`` / ``cp -p``: the new content arrives with an older date than the record."""
    kwargs = {"stacks_dir": tiny.stacks(), "build_dir": tiny.build, "program": tiny.program}
    sys.modules.pop(HELPER, None)
    first = gate.run_gate("dev", checkov=False, **kwargs)
    assert first.record.startswith("dev: synthesized ")
    second = gate.run_gate("dev", checkov=False, **kwargs)
    assert second.record.startswith("dev: reused ")
    incoming = tiny.root / "incoming" / f"{HELPER}.py"
    incoming.parent.mkdir()
    incoming.write_text('NAME = "fp-copied-with-its-date"\n')
    old = tiny.helper.stat().st_mtime_ns - 3_600 * 10**9
    os.utime(incoming, ns=(old, old))
    shutil.copy2(incoming, tiny.helper)
    record_path = tiny.build / "dev" / "resources.json"
    # What a date rule would see: the record is newer than every source; it is stale all the same.
    assert tiny.helper.stat().st_mtime_ns < record_path.stat().st_mtime_ns
    sys.modules.pop(HELPER, None)
    third = gate.run_gate("dev", checkov=False, **kwargs)
    assert third.record.startswith("dev: synthesized ")
    assert f"{HELPER}.py changed" in third.record
    assert bucket(json.loads(record_path.read_text()))["inputs"]["bucket"] == (
        "fp-copied-with-its-date"
    )


def test_stale_bytecode_of_the_same_date_and_size_is_never_run(tiny: Tiny) -> None:
    """Python trusts a .pyc whose source kept date and size; the synth must not."""
    tiny.fresh()
    cached = Path(importlib_util.cache_from_source(str(tiny.helper)))
    py_compile.compile(
        str(tiny.helper),
        cfile=str(cached),
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )
    edit_keeping_date(tiny.helper, 'NAME = "fp-bravo"\n')  # same length as "fp-alpha"
    assert bytecode.stale_bytecode([tiny.helper]) == [tiny.helper]
    result = tiny.fresh()
    assert result.synthesized and bucket(result.record)["inputs"]["bucket"] == "fp-bravo"
    # The stale file is gone: removed, or (where Python writes bytecode) compiled afresh.
    assert not cached.exists() or bytecode.stale_bytecode([tiny.helper]) == []
    # A module this process already runs from stale bytecode is refused, not trusted.
    sys.modules.pop(HELPER, None)
    py_compile.compile(
        str(tiny.helper),
        cfile=str(cached),
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )
    edit_keeping_date(tiny.helper, 'NAME = "fp-delta"\n')
    assert bytecode.discard_stale_bytecode([tiny.helper]) == []  # not imported now
    assert not cached.exists()
    py_compile.compile(
        str(tiny.helper),
        cfile=str(cached),
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )
    sys.path.insert(0, str(tiny.helper.parent))
    try:
        __import__(HELPER)
    finally:
        sys.path.remove(str(tiny.helper.parent))
    edit_keeping_date(tiny.helper, 'NAME = "fp-gamma"\n')
    assert bytecode.discard_stale_bytecode([tiny.helper]) == [tiny.helper]


def test_the_bytecode_verdict_is_remembered_by_content_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each source is compiled once per content: a later check of the same .pyc and source
    reuses the verdict, and an edit that keeps date and size is a new content, compiled again."""
    source = tmp_path / "memo_mod.py"
    source.write_text('NAME = "memo-aa"\n')
    cached = Path(importlib_util.cache_from_source(str(source)))
    py_compile.compile(
        str(source), cfile=str(cached), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
    )
    compiled: list[str] = []

    def counting(text: bytes, name: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(name)
        return compile(text, name, *args, **kwargs)

    monkeypatch.setattr(bytecode, "compile", counting, raising=False)
    assert bytecode.stale_bytecode([source]) == []
    assert bytecode.stale_bytecode([source]) == []
    assert compiled == [str(source)]
    edit_keeping_date(source, 'NAME = "memo-bb"\n')
    assert bytecode.stale_bytecode([source]) == [source]
    assert bytecode.stale_bytecode([source]) == [source]
    assert len(compiled) == 2
    py_compile.compile(
        str(source), cfile=str(cached), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
    )
    assert bytecode.stale_bytecode([source]) == []
    assert len(compiled) == 3


def test_cli_check_says_whether_it_reused_or_synthesized(tiny: Tiny) -> None:
    stack = f"fp-probe-{os.getpid()}"
    shutil.copy(tiny.stacks() / "Pulumi.dev.yaml", tiny.stacks() / f"Pulumi.{stack}.yaml")
    args = [sys.executable, "-m", "infra.cli.app", "check", stack, "--no-checkov",
            "--stacks-dir", str(tiny.stacks()), "--program", str(tiny.program)]  # fmt: skip
    env = {"COLUMNS": "250", "PATH": "/usr/bin:/bin"}
    lines = []
    try:
        for _ in range(2):
            proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
            assert proc.returncode in (0, 1), proc.stdout + proc.stderr
            said = (f"{stack}: synthesized ", f"{stack}: reused ")
            lines += [line for line in proc.stdout.splitlines() if line.startswith(said)]
    finally:
        shutil.rmtree(ROOT / "build" / stack, ignore_errors=True)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{stack}: synthesized build/{stack}/resources.json in ")
    assert lines[0].endswith("because there was no record")
    assert lines[1].startswith(f"{stack}: reused build/{stack}/resources.json: fingerprint ")


# --- the real program -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The dev stack synthesized once from the real program: (record, build folder)."""
    build = tmp_path_factory.mktemp("fingerprint-build")
    return synthesize("dev", build_dir=build).record, build


def test_the_real_program_lists_what_it_imports(dev: tuple[dict[str, Any], Path]) -> None:
    fp = dev[0]["fingerprint"]
    expected = {
        "Pulumi.yaml",
        "infra/__main__.py",
        "infra/platform.py",
        "infra/config/stackfile.py",
        "infra/synth/mocks.py",
        "infra/synth/recorder.py",
        "components/storage.py",
        "components/vault_layout.py",
        "policies/zones.py",
        "policies/promotion.py",
    }
    assert expected <= set(fp["files"])
    assert not [f for f in fp["files"] if f.startswith(("/", ".venv", "infra/cli/", "tests/"))]
    assert "stacks/Pulumi.dev.yaml" not in fp["files"]  # listed on its own, with its path
    assert fp["stackFile"]["path"] == str((STACKS / "Pulumi.dev.yaml").resolve())
    assert {"python", "pulumi", "pulumi-aws", "pulumi-kubernetes", "pulumi-vault",
            "pulumi-random"} <= set(fp["versions"])  # fmt: skip
    assert fp["policies"] == fpmod.policy_digest()


def test_the_real_record_is_reused_by_gate_and_cost(
    dev: tuple[dict[str, Any], Path], no_synth: None
) -> None:
    record, build = dev
    assert fresh_record("dev", build_dir=build).record == record
    assert load_record("dev", STACKS, build) == record
    assert gate.current_record("dev", build_dir=build) == record


def test_recomputing_the_real_fingerprint_takes_under_100_ms(
    dev: tuple[dict[str, Any], Path],
) -> None:
    fp = dev[0]["fingerprint"]
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        again = fpmod.recompute(fp)
        best = min(best, time.perf_counter() - started)
    assert again["files"] == fp["files"] or fpmod.difference(fp, again)  # others may edit
    assert best < 0.1, f"{best * 1000:.0f} ms"


@pytest.fixture
def repo_copy(
    dev: tuple[dict[str, Any], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The repository files the real program's record lists, copied with their dates, as ROOT."""
    root = tmp_path / "repo"
    for key in [*dev[0]["fingerprint"]["files"], "stacks/Pulumi.dev.yaml"]:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / key, root / key)
    shutil.copytree(fpmod.POLICIES, root / "policies", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    monkeypatch.setattr(fpmod, "ROOT", root)
    monkeypatch.setattr(fpmod, "SYNTHESIZER", root / "infra" / "synth" / "runner.py")
    monkeypatch.setattr(fpmod, "PROJECT_FILE", root / "Pulumi.yaml")
    monkeypatch.setattr(fpmod, "POLICIES", root / "policies")
    return root


def test_any_repository_file_the_real_program_imports_counts(
    dev: tuple[dict[str, Any], Path], repo_copy: Path
) -> None:
    program, stack = repo_copy / "infra" / "__main__.py", repo_copy / "stacks" / "Pulumi.dev.yaml"
    fp = fpmod.fingerprint(program, stack)
    # Resolved statically over the copy, the same source files as the real run recorded; the
    # data files the program opens (the Fluent Bit masking script it ships in the chart values,
    # the price table and instance shapes the cost rules are priced from) are known only from
    # the run's audit hook, and the image inventory policies/inventory.py reads at import only
    # from policies.import_reads (keyed by the real modules, not the copy's), so only the real
    # record lists them.
    real = set(dev[0]["fingerprint"]["files"])
    assert set(fp["files"]) <= real
    opened = {
        "components/fluent_bit/mask.lua",
        "infra/cost/shapes.yaml",
        "infra/cost/prices/me-central-1.yaml",
        "policies/inventory.toml",
    }
    assert real - set(fp["files"]) == opened
    for key in opened:
        assert dev[0]["fingerprint"]["files"][key] == fpmod.sha256_of(fpmod.ROOT / key)
    assert fpmod.difference(fp, fpmod.recompute(fp)) is None
    for key in fp["files"]:
        path = repo_copy / key
        text = path.read_text()
        edit_keeping_date(path, text + "\n# changed, date kept\n")
        try:
            assert fpmod.difference(fp, fpmod.recompute(fp)) == f"{key} changed"
        finally:
            edit_keeping_date(path, text)
    edit_keeping_date(stack, stack.read_text() + "# changed\n")
    assert fpmod.difference(fp, fpmod.recompute(fp)) == "stacks/Pulumi.dev.yaml changed"


def test_a_new_import_in_a_listed_file_extends_the_list(repo_copy: Path) -> None:
    program, stack = repo_copy / "infra" / "__main__.py", repo_copy / "stacks" / "Pulumi.dev.yaml"
    before = fpmod.fingerprint(program, stack)
    (repo_copy / "components" / "extra.py").write_text("X = 1\n")
    storage = repo_copy / "components" / "storage.py"
    edit_keeping_date(
        storage, storage.read_text() + "\ndef later():\n    from components import extra\n"
    )
    after = fpmod.fingerprint(program, stack)
    assert set(after["files"]) - set(before["files"]) == {"components/extra.py"}
    assert fpmod.difference(before, fpmod.recompute(before)) == "components/storage.py changed"
