"""checkov once per framework over many stacks, its results split back per stack by path.

``scan_fleet`` links every stack's scan inputs (``build/<stack>/tfplan.json`` and
``build/<stack>/k8s/``, as ``infra.gate.checkov.write_scan_inputs`` wrote them) into trees of
``BATCH`` stacks, ``build/fleet/scan/<batch>/<framework>/<stack>/...``, runs one checkov per
batch and framework on them (``PARALLEL`` at a time: one per core), and hands each stack a
``CheckovReport`` whose file paths read exactly as the per-stack run's do (``tfplan.json``,
``k8s/<object>.yaml``). Hard links, not copies: the
tree costs no space, and only what checkov scans is in it (no records, no reports).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from infra.gate import checkov as checkov_runner
from infra.gate.checkov import (
    FRAMEWORKS,
    K8S_DIR,
    TFPLAN_FILE,
    CheckovError,
    CheckovReport,
    FrameworkRun,
)

SCAN_DIR = Path("fleet") / "scan"
"""Under the build folder: the tree checkov scans, one folder per framework, then per stack."""


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links refused: a copy reads the same
        shutil.copyfile(src, dst)


def build_scan_tree(root: Path, build_dir: Path, stacks: Sequence[str]) -> dict[str, list[str]]:
    """Link the stacks' scan inputs under ``root/<framework>/<stack>``; the stacks per framework."""
    shutil.rmtree(root, ignore_errors=True)
    present: dict[str, list[str]] = {fw: [] for fw in FRAMEWORKS}
    for stack in stacks:
        out = build_dir / stack
        plan = out / TFPLAN_FILE
        if plan.is_file():
            _link(plan, root / "terraform_plan" / stack / TFPLAN_FILE)
            present["terraform_plan"].append(stack)
        manifests = sorted((out / K8S_DIR).glob("*.y*ml")) if (out / K8S_DIR).is_dir() else []
        for path in manifests:
            _link(path, root / "kubernetes" / stack / K8S_DIR / path.name)
        if manifests:
            present["kubernetes"].append(stack)
    return present


def _split(run: FrameworkRun, build_dir: Path, stacks: Sequence[str]) -> dict[str, FrameworkRun]:
    """One framework's fleet run cut into per-stack runs (findings' files made stack-relative)."""
    per: dict[str, FrameworkRun] = {
        s: FrameworkRun(run.framework, build_dir / s, True, run.seconds) for s in stacks
    }
    for f in run.findings:
        stack, _, rest = f.file.partition("/")
        if stack not in per:
            raise CheckovError(f"checkov {run.framework} reported {f.file}, not a scanned stack")
        per[stack].findings.append(_with_file(f, rest))
    for error in run.parsing_errors:
        owners = [s for s in stacks if f"/{s}/" in error]
        # A parse error no stack owns is charged to every stack: none of them was fully judged.
        for s in owners or stacks:
            per[s].parsing_errors.append(error)
    return per


def _with_file(f: checkov_runner.CheckResult, file: str) -> checkov_runner.CheckResult:
    from dataclasses import replace

    return replace(f, file=file)


BATCH = 20
"""Stacks per checkov process. One checkov over a whole fleet builds one graph of every object:
its memory grows faster than the fleet (over 18 GB for the kubernetes framework on 103 stacks,
killed by the kernel); 20 stacks stay near 1 GB and still spread the start-up over 20 stacks."""
PARALLEL = 2
"""checkov processes at a time: one per core of the machine this was measured on."""


def _command(checkov: Path, fw: str, target: Path, external_checks_dir: Path | None) -> list[str]:
    # A folder for both frameworks: the tree holds only what that framework reads.
    cmd = [str(checkov), "--framework", fw, "-o", "json", "--skip-download", "-d", str(target)]
    if external_checks_dir is not None:
        cmd += ["--external-checks-dir", str(external_checks_dir)]
    return cmd


def _run_batches(
    batches: list[tuple[str, Path, list[str]]],
    checkov: Path,
    external_checks_dir: Path | None,
    timeout: float,
    parallel: int,
) -> tuple[list[tuple[FrameworkRun, list[str]]], dict[str, str]]:
    """Run every (framework, folder, stacks) batch, ``parallel`` at a time; the runs, and the
    error per stack whose batch failed."""
    env = checkov_runner.checkov_env()
    pending = list(batches)
    running: list[tuple[FrameworkRun, list[str], subprocess.Popen[str], float]] = []
    done: list[tuple[FrameworkRun, list[str]]] = []
    errors: dict[str, str] = {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                fw, target, stacks = pending.pop(0)
                run = FrameworkRun(fw, target, True)
                run.command = _command(checkov, fw, target, external_checks_dir)
                proc = checkov_runner._start(run.command, env, target)
                running.append((run, stacks, proc, time.perf_counter()))
            # Wait for the oldest: batches are of like size, so they end in about that order.
            run, stacks, proc, started = running.pop(0)
            try:
                stdout, stderr = checkov_runner._wait(run, proc, timeout)
                run.seconds = time.perf_counter() - started
                checkov_runner._parse_into(run, stdout, stderr, run.target, [])
                done.append((run, stacks))
            except CheckovError as exc:
                message = str(exc)
                if proc.returncode == -9:
                    message += "(killed: out of memory?)"
                errors.update(dict.fromkeys(stacks, message))
    finally:
        for _, _, proc, _ in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done, errors


def scan_fleet(
    build_dir: Path,
    stacks: Sequence[str],
    *,
    checkov: Path | None = None,
    external_checks_dir: Path | None = checkov_runner.EXTERNAL_CHECKS,
    timeout: float = 1800,
    batch: int | None = None,
    parallel: int = PARALLEL,
) -> dict[str, CheckovReport | str]:
    """checkov over every stack, ``batch`` stacks per process: per stack its ``CheckovReport``,
    or the error (one line) that kept checkov from judging it (missing, crashed or overran).

    ``checkov`` defaults to ``infra.gate.checkov.CHECKOV`` as it is when called. Missing, it is
    an error for every stack even where there is nothing to scan, as in the per-stack run.
    """
    checkov = checkov_runner.CHECKOV if checkov is None else checkov
    batch = BATCH if batch is None else batch
    if not Path(checkov).is_file():
        message = f"{checkov} not found: run `make setup` to create .venv-checkov"
        return dict.fromkeys(stacks, message)
    root = build_dir / SCAN_DIR
    shutil.rmtree(root, ignore_errors=True)
    chunks = [list(stacks[i : i + batch]) for i in range(0, len(stacks), batch)]
    present: dict[str, set[str]] = {fw: set() for fw in FRAMEWORKS}
    batches: list[tuple[str, Path, list[str]]] = []
    for i, chunk in enumerate(chunks):
        found = build_scan_tree(root / f"{i:04d}", build_dir, chunk)
        for fw in FRAMEWORKS:
            present[fw].update(found[fw])
            if found[fw]:
                batches.append((fw, root / f"{i:04d}" / fw, found[fw]))
    # Both frameworks of a batch side by side: their memory and time are alike.
    batches.sort(key=lambda b: (b[1].parent.name, b[0]))
    done, failed = _run_batches(batches, checkov, external_checks_dir, timeout, parallel)
    split: dict[str, dict[str, FrameworkRun]] = {fw: {} for fw in FRAMEWORKS}
    for run, batch_stacks in done:
        try:
            split[run.framework].update(_split(run, build_dir, batch_stacks))
        except CheckovError as exc:
            failed.update(dict.fromkeys(batch_stacks, str(exc)))
    out: dict[str, CheckovReport | str] = {}
    for stack in stacks:
        if stack in failed:
            out[stack] = failed[stack]
            continue
        stack_runs = [
            split[fw][stack] if stack in split[fw] else FrameworkRun(fw, build_dir / stack, False)
            for fw in FRAMEWORKS
        ]
        out[stack] = CheckovReport(runs=stack_runs)
    return out
