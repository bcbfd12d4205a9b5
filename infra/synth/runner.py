"""Run the real Pulumi program under the SDK's mock runtime and record what it would create.

``synthesize(stack)`` reads ``stacks/Pulumi.<stack>.yaml`` once (``infra.config.stackfile``:
values from the stack file, project defaults from ``Pulumi.yaml``, validated into one
``PlatformConfig``), sets the engine config the way the Pulumi CLI would, then runs
``infra/__main__.py`` unchanged under ``pulumi.runtime.set_mocks`` with that config handed over.
The recording monitor (``infra.synth.recorder``) keeps every ``RegisterResource`` request and the
mocks (``infra.synth.mocks``) answer with realistic values for the provider's region. The record
is written to ``build/<stack>/resources.json``: other tools (policies, checkov bridge, k8s
validation, cost) read only that file. The record carries its ``fingerprint``
(``infra.synth.fingerprint``: every file, path and version it depends on, by content), from which
``infra.synth.fresh`` decides whether a record on disk may be reused.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.keys import PROJECT
from infra.config.problems import ConfigProblem
from infra.config.stackfile import (
    PROGRAM_GLOBAL,
    ROOT,
    STACKS,
    StackFileError,
    engine_config,
    load_stack,
    repo_relative,
    stack_file,
)
from infra.synth.bytecode import discard_stale_bytecode
from infra.synth.expand import expand_yaml
from infra.synth.fingerprint import fingerprint, snapshot, watch
from infra.synth.mocks import make_mocks
from infra.synth.recorder import Recording, make_monitor
from infra.synth.sdk_loop import run_on_synth_loop
from infra.synth.sdk_trace import no_stack_traces
from infra.synth.sdk_unknowns import iterative_unknowns
from infra.synth.sdk_wait import linear_wait

PROGRAM = ROOT / "infra" / "__main__.py"
"""The Pulumi program ``sovml synth`` runs unless told otherwise."""
BUILD = ROOT / "build"
"""Where synth records (and the gate's reports) are written, one folder per stack."""
RECORD_VERSION = 1


class SynthError(Exception):
    """The stack cannot be synthesized; ``problems`` holds config problems when that is why."""

    def __init__(self, message: str, problems: list[ConfigProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def program_label(program: Path) -> str:
    """How a record names the program it came from (repository-relative when possible)."""
    return repo_relative(program.resolve())


def run_recorded(program: Callable[[], Any], *, stack: str, region: str) -> Recording:
    """Run ``program`` under the recording mocks (fresh runtime state) and return what it declared.

    Component tests use this too, so components are judged by the same record as stacks. The
    synth runs on uvloop's loop where it can (``infra.synth.sdk_loop``).
    """
    return run_on_synth_loop(lambda: _run_recorded_once(program, stack=stack, region=region))


def _run_recorded_once(program: Callable[[], Any], *, stack: str, region: str) -> Recording:
    import pulumi
    from pulumi.runtime.settings import ROOT, SETTINGS
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    recording = Recording()
    mocks = make_mocks(region, recording)
    # set_mocks makes a root Stack only when none is set: without this, every synth after the
    # first in a process parented its components to the first stack's Stack resource.
    ROOT.set(None)
    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=stack,
        preview=False,
        monitor=make_monitor(mocks, recording),
    )
    # set_mocks keeps the outputs set of whatever ran before, and the end of a synth awaits every
    # task in it: an Output made outside any synth (a component helper called directly, as some
    # tests do) sat there on another event loop, and the next synth on uvloop's loop failed on it.
    # A synth waits for its own outputs only.
    SETTINGS.outputs = set()
    try:
        with linear_wait(), no_stack_traces(), iterative_unknowns():
            _sync_await(run_pulumi_func(program))
    except pulumi.RunError as exc:
        raise SynthError(str(exc)) from None
    return recording


def _refuse_stale_bytecode(sources: set[Path]) -> None:
    """Remove bytecode older than its source's content; refuse when this process already ran it.

    Raises:
        SynthError: A module this synth depends on ran from stale bytecode in this process.
    """
    ran = discard_stale_bytecode(sources)
    if ran:
        names = ", ".join(repo_relative(p) for p in ran)
        raise SynthError(
            f"{names}: this process ran bytecode compiled from an older content of the file (same "
            "date and size); the stale .pyc is removed now, so run the command again"
        )


_REAL_ORIGINS: dict[str, str] = {}


def _real_origin(origin: str) -> str:
    """``os.path.realpath`` of a loaded module's file, resolved once per process: a process
    holds thousands of modules (``pulumi_aws``'s), and resolving each on every synth cost
    about 0.05 s of a tenant's synth. A module's code does not move once it is loaded."""
    real = _REAL_ORIGINS.get(origin)
    if real is None:
        real = _REAL_ORIGINS[origin] = os.path.realpath(origin)
    return real


def _clear_program_caches(files: set[Path]) -> int:
    """Empty every ``functools`` cache defined at module level in the program's modules.

    Each synth then reads what those functions read inside its own ``watch``: a read cached by an
    earlier synth of the process (``infra.images.sources._mirror`` reading the image lock) was
    otherwise missing from every later record's fingerprint. And no value of an earlier synth's
    runtime is handed to this one. The synthesizer's own caches (``infra/synth``: hashes keyed by
    content, the audit hook's installation) are kept. Returns how many caches were cleared.
    """
    own = Path(__file__).resolve().parent
    wanted = {os.path.realpath(p) for p in files if Path(p).parent != own}
    cleared = 0
    for module in list(sys.modules.values()):
        origin = getattr(module, "__file__", None)
        if not origin or _real_origin(origin) not in wanted:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == module.__name__:
                clear()
                cleared += 1
    return cleared


@dataclass
class SynthResult:
    """The record and where it was written."""

    record: dict[str, Any]
    path: Path
    seconds: float


def synthesize(
    stack: str,
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    write: bool = True,
    program: Path = PROGRAM,
) -> SynthResult:
    """Run the program for ``stack`` under mocks and write ``build/<stack>/resources.json``.

    ``program`` defaults to ``infra/__main__.py``; tests point it at deliberately insecure
    fixture programs to prove the gate catches what the real program never declares.
    """
    from pulumi.runtime import config as runtime_config

    started = time.perf_counter()
    # A stack file that fails validation fails here, before the program's files are hashed and
    # their bytecode and caches checked (about 70 ms a synth in a warm process, which a bad stack
    # file never needs). Only the load after the snapshot below is used.
    try:
        load_stack(stack, stacks_dir)
    except StackFileError as exc:
        raise SynthError(str(exc), exc.problems) from None
    # Hashed before anything is read, so an edit during the run makes the record stale, not fresh.
    before = snapshot(program, stack_file(stack, stacks_dir))
    _refuse_stale_bytecode(before.closure.files)
    _clear_program_caches(before.closure.files)
    try:
        cfg, raw, secret_keys = load_stack(stack, stacks_dir)
    except StackFileError as exc:
        raise SynthError(str(exc), exc.problems) from None
    # The engine config is still set, for programs that read it (``--program`` fixtures).
    runtime_config.set_all_config(engine_config(raw), sorted(secret_keys))
    try:
        with watch(program) as watched:
            recording = run_recorded(
                lambda: runpy.run_path(
                    str(program), init_globals={PROGRAM_GLOBAL: cfg}, run_name="__main__"
                ),
                stack=stack,
                region=cfg.region,
            )
            # Inside the watch: the manifest files a yaml ConfigGroup names join the fingerprint.
            resources = expand_yaml(recording.resources, program_dir=program.resolve().parent)
            # Registration order follows the event loop's scheduling, which varies from run to
            # run (and between a process's first and later synths): sorted by URN, equal inputs
            # give a byte-identical record, whichever process or turn made it.
            resources.sort(key=lambda r: (r["urn"], r["type"]))
    finally:
        runtime_config.set_all_config({}, [])
    _refuse_stale_bytecode(watched.modules - before.closure.files)

    record = {
        "version": RECORD_VERSION,
        "stack": stack,
        "project": PROJECT,
        "source": cfg.source,
        "program": program_label(program),
        "config": cfg.to_record(),
        "secretKeys": sorted(secret_keys),
        "fingerprint": fingerprint(program, stack_file(stack, stacks_dir), watched, before),
        "resources": resources,
    }
    out = build_dir / stack / "resources.json"
    if write:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: a concurrent `sovml check` never reads half a record.
        partial = out.with_name(f".{out.name}.{os.getpid()}")
        partial.write_text(record_text(record))
        partial.replace(out)
    return SynthResult(record, out, time.perf_counter() - started)


def record_text(record: Mapping[str, Any]) -> str:
    """The record as its file holds it: JSON, everything but ``resources`` indented, then one
    resource a line (``grep`` finds a resource's whole entry). Python's encoder indents in pure
    Python; a line per resource is written by its C encoder, which took a tenant's record from
    about 0.04 s to 0.01 s."""
    rest = {k: v for k, v in record.items() if k != "resources"}
    if not record.get("resources") or not rest or next(reversed(record)) != "resources":
        return json.dumps(dict(record), indent=2) + "\n"
    head = json.dumps(rest, indent=2)
    body = ",\n".join(f"    {json.dumps(r)}" for r in record["resources"])
    return f'{head[:-2]},\n  "resources": [\n{body}\n  ]\n}}\n'


def summary(record: Mapping[str, Any]) -> dict[str, int]:
    """Resource counts per type token (custom resources only), sorted by type."""
    counts: dict[str, int] = {}
    for r in record["resources"]:
        if r["custom"]:
            counts[r["type"]] = counts.get(r["type"], 0) + 1
    return dict(sorted(counts.items()))


# `python -m infra.synth.runner STACK`: one stack, no tables.
if __name__ == "__main__":  # pragma: no cover
    res = synthesize(sys.argv[1])
    print(f"{res.path}: {len(res.record['resources'])} resources in {res.seconds:.2f}s")
