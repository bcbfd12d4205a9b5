"""A synth's record does not depend on what the process did before it.

The fleet gate and the test suite run many syntheses in one process. Three leaks made a later
synth's record differ from the same stack's record made alone in a fresh process, each found by
comparing the two: top-level components were parented to the *first* stack's Stack resource
(the SDK's root resource survived ``set_mocks``); files read by a cached function
(``infra.images.sources._mirror``: the image lock) or by a module body at import
(``policies/inventory.py``: the inventory) were missing from the fingerprint, so editing them
left records "fresh"; and input keys came in the order the event loop resolved them. Also here:
the linear drain of the SDK's outputs (``infra.synth.sdk_wait``) gives the record the SDK's own
loop gives, a synth without source stack traces (``infra.synth.sdk_trace``) the record with them,
the iterative check for unknowns (``infra.synth.sdk_unknowns``) the record of the SDK's own,
a synth on uvloop's event loop (``infra.synth.sdk_loop``) the record of asyncio's, and a process
with the fleet workers' collector settings (``infra.synth.batch_gc``) the record of a fresh one.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.config.stackfile import ROOT
from infra.synth import runner, sdk_trace, sdk_wait
from infra.synth.runner import SynthError, run_recorded, synthesize
from policies import import_reads
from tests.offboard_helpers import tenant_stacks

FRESH = """
import sys
from pathlib import Path
from infra.synth.runner import synthesize
synthesize(sys.argv[1], stacks_dir=Path(sys.argv[2]), build_dir=Path(sys.argv[3]))
"""
TUNED = """
import sys
from pathlib import Path
from infra.synth import batch_gc
from infra.synth.runner import synthesize
batch_gc.start()
synthesize(sys.argv[1], stacks_dir=Path(sys.argv[2]), build_dir=Path(sys.argv[3]) / "warm-up")
batch_gc.settle()
synthesize(sys.argv[4], stacks_dir=Path(sys.argv[2]), build_dir=Path(sys.argv[3]))
"""


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two SMB tenants (image source: the mirror, so the image lock is read)."""
    return tenant_stacks(tmp_path_factory.mktemp("process"), ("first", "second"))


def test_a_later_synth_in_a_process_equals_a_fresh_process_byte_for_byte(
    stacks: Path, tmp_path: Path
) -> None:
    in_process = tmp_path / "in-process"
    synthesize("first", stacks_dir=stacks, build_dir=in_process)
    later = synthesize("second", stacks_dir=stacks, build_dir=in_process)
    alone, tuned = tmp_path / "alone", tmp_path / "tuned"
    subprocess.run(
        [sys.executable, "-c", FRESH, "second", str(stacks), str(alone)],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    assert later.path.read_bytes() == (alone / "second" / "resources.json").read_bytes()
    # A fleet worker's process: its collector tuned and the first synth's survivors frozen.
    subprocess.run(
        [sys.executable, "-c", TUNED, "first", str(stacks), str(tuned), "second"],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    assert (tuned / "second" / "resources.json").read_bytes() == later.path.read_bytes()
    record = later.record
    stack_urn = "urn:pulumi:second::sovereign-ml::pulumi:pulumi:Stack::sovereign-ml-second"
    parents = {r["parent"] for r in record["resources"] if r["parent"] and "Stack::" in r["parent"]}
    assert parents == {stack_urn}
    # Read at import (the inventory) and through a cache (the lock) by the first synth only.
    assert {"policies/inventory.toml", "policies/images.lock.toml"} <= set(
        record["fingerprint"]["files"]
    )


def test_a_bad_stack_file_fails_before_the_program_is_hashed(
    stacks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stack file that fails validation costs no snapshot of the program's files (hashing,
    the bytecode and cache checks: about 70 ms a synth), and is refused with its problems."""
    bad = tmp_path / "stacks"
    bad.mkdir()
    text = (stacks / "Pulumi.first.yaml").read_text()
    (bad / "Pulumi.first.yaml").write_text(text + "  sovereign-ml:noSuchKey: 1\n")

    def hashed(*_: Any) -> None:
        raise AssertionError("the program was hashed for a stack file that cannot be used")

    monkeypatch.setattr(runner, "snapshot", hashed)
    with pytest.raises(SynthError) as caught:
        synthesize("first", stacks_dir=bad, build_dir=tmp_path / "build")
    assert [p.key for p in caught.value.problems] == ["sovereign-ml:noSuchKey"]
    assert not (tmp_path / "build").exists()
    # The valid file still gets its snapshot first (this stand-in then stops the synth).
    with pytest.raises(AssertionError, match="was hashed"):
        synthesize("first", stacks_dir=stacks, build_dir=tmp_path / "build")


@pytest.mark.parametrize(
    "swap", ["linear_wait", "no_stack_traces", "iterative_unknowns", "run_on_synth_loop"]
)
def test_each_sdk_swap_gives_the_record_of_the_sdks_own_code(
    swap: str, stacks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sdk_wait.applies(), "requirements pin the pulumi version the swaps mirror"
    ours = synthesize("first", stacks_dir=stacks, build_dir=tmp_path / "ours").record
    # The SDK's own code: its wait loop, its stack traces, asyncio's default event loop.
    sdks_own = (lambda run: run()) if swap == "run_on_synth_loop" else nullcontext
    monkeypatch.setattr(runner, swap, sdks_own)
    theirs = synthesize("first", stacks_dir=stacks, build_dir=tmp_path / "sdk").record
    for record in (ours, theirs):
        record.pop("fingerprint")
    assert json.dumps(ours) == json.dumps(theirs)


def test_no_stack_traces_swaps_the_sdks_function_inside_the_block_only() -> None:
    from pulumi.runtime import resource

    with sdk_trace.no_stack_traces() as used:
        assert used and resource._get_stack_trace is sdk_trace._empty_trace
    assert resource._get_stack_trace is not sdk_trace._empty_trace


def test_another_sdk_version_keeps_its_stack_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi.runtime import resource

    original = resource._get_stack_trace
    monkeypatch.setattr(sdk_wait, "MIRRORS", "0.0.0")
    with sdk_trace.no_stack_traces() as used:
        assert not used and resource._get_stack_trace is original


def _chain(depth: int, seen: list[int]) -> pulumi.Output[int]:
    """Outputs created while earlier ones drain (each apply starts the next link)."""
    out = pulumi.Output.from_input(0)
    for i in range(depth):
        out = out.apply(lambda v, i=i: seen.append(i) or pulumi.Output.from_input(v + 1))
    return out


def test_the_linear_drain_awaits_outputs_created_while_draining() -> None:
    seen: list[int] = []
    run_recorded(lambda: _chain(50, seen), stack="drain", region="me-central-1")
    assert seen == list(range(50))


def test_a_failing_output_fails_the_synth_under_the_linear_drain() -> None:
    def program() -> None:
        pulumi.Output.from_input(1).apply(lambda _: 1 / 0)

    with pytest.raises((SynthError, ZeroDivisionError)):
        run_recorded(program, stack="drain", region="me-central-1")


def test_another_sdk_version_runs_its_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi.runtime import stack

    original = stack.wait_for_rpcs
    monkeypatch.setattr(sdk_wait, "MIRRORS", "0.0.0")
    with sdk_wait.linear_wait() as used:
        assert not used and stack.wait_for_rpcs is original
    monkeypatch.setattr(sdk_wait, "MIRRORS", sdk_wait.MIRRORS)
    assert stack.wait_for_rpcs is original


def test_import_reads_are_attributed_to_the_imported_module_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_reads, "ROOT", str(tmp_path))
    pkg = tmp_path / f"irpkg_{uuid.uuid4().hex[:8]}"
    pkg.mkdir()
    for name in ("data.txt", "late.txt", "prog.txt"):
        (pkg / name).write_text(name)
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\n"
        "HERE = Path(__file__).parent\n"
        "DATA = (HERE / 'data.txt').read_text()\n"
        "def later():\n"
        "    return (HERE / 'late.txt').read_text()\n"
    )
    program = pkg / "program.py"
    program.write_text(
        "from pathlib import Path\n(Path(__file__).parent / 'prog.txt').read_text()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module: Any = __import__(pkg.name)
    module.later()  # a read after the import is the synth watch's business, not this table's
    runpy.run_path(str(program), run_name="__main__")  # a program run, not an import
    assert import_reads.reads_of([pkg / "__init__.py"]) == {str(pkg / "data.txt")}
    assert import_reads.reads_of([program]) == set()
    sys.modules.pop(pkg.name, None)


def test_every_package_the_synth_enters_by_installs_the_import_hook_first() -> None:
    # kernels/ and pipelines/ are left out on purpose: they are copied into workload images
    # (the model puller's), and the synth reaches them only through infra/ and components/.
    for package in ("infra", "policies", "components"):
        body = (ROOT / package / "__init__.py").read_text()
        code = [line for line in body.splitlines() if line.startswith(("import ", "from "))]
        assert code and "import_reads" in code[0], package


def test_the_collector_is_tuned_only_in_a_process_that_asked_for_it() -> None:
    code = (
        "import gc\n"
        "from infra.synth import batch_gc\n"
        "before = gc.get_threshold()\n"
        "batch_gc.settle()\n"  # a caller's own process (the CLI's): left alone
        "assert gc.get_freeze_count() == 0 and gc.get_threshold() == before\n"
        "batch_gc.start(); batch_gc.settle()\n"  # a pool worker
        "assert gc.get_freeze_count() > 0 and gc.get_threshold() == batch_gc.THRESHOLD\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
