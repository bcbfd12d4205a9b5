"""checkov once per framework over many stacks, its results split back per stack by path.

``scan_fleet`` links every stack's scan inputs (``build/<stack>/tfplan.json`` and
``build/<stack>/k8s/``, as ``infra.gate.checkov.write_scan_inputs`` wrote them) into one tree,
``build/fleet/scan/<framework>/<stack>/...``, runs one checkov per framework on it (both at the
same time: one per core), and hands each stack a ``CheckovReport`` whose file paths read exactly
as the per-stack run's do (``tfplan.json``, ``k8s/<object>.yaml``). Hard links, not copies: the
tree costs no space, and only what checkov scans is in it (no records, no reports).
"""

from __future__ import annotations

import os
import shutil
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


def build_scan_tree(build_dir: Path, stacks: Sequence[str]) -> dict[str, list[str]]:
    """Link the stacks' scan inputs under ``build_dir/fleet/scan``; the stacks per framework."""
    root = build_dir / SCAN_DIR
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


def scan_fleet(
    build_dir: Path,
    stacks: Sequence[str],
    *,
    checkov: Path | None = None,
    external_checks_dir: Path | None = checkov_runner.EXTERNAL_CHECKS,
    timeout: float = 3600,
) -> dict[str, CheckovReport | str]:
    """checkov over every stack at once: per stack its ``CheckovReport``, or the error (one
    line) that kept checkov from judging it (checkov missing, crashed or overran).

    ``checkov`` defaults to ``infra.gate.checkov.CHECKOV`` as it is when called. Missing, it is
    an error for every stack even where there is nothing to scan, as in the per-stack run.
    """
    checkov = checkov_runner.CHECKOV if checkov is None else checkov
    if not Path(checkov).is_file():
        message = f"{checkov} not found: run `make setup` to create .venv-checkov"
        return dict.fromkeys(stacks, message)
    root = build_dir / SCAN_DIR
    present = build_scan_tree(build_dir, stacks)
    env = checkov_runner.checkov_env()
    runs: dict[str, FrameworkRun] = {}
    procs = []
    errors: dict[str, str] = {}
    try:
        for fw in FRAMEWORKS:
            if not present[fw]:
                continue
            target = root / fw
            run = FrameworkRun(fw, target, True)
            # A folder for both frameworks: the tree holds only what that framework reads.
            run.command = [str(checkov), "--framework", fw, "-o", "json", "--skip-download"]
            run.command += ["-d", str(target)]
            if external_checks_dir is not None:
                run.command += ["--external-checks-dir", str(external_checks_dir)]
            runs[fw] = run
            procs.append(
                (run, checkov_runner._start(run.command, env, target), time.perf_counter())
            )
        for run, proc, started in procs:
            try:
                stdout, stderr = checkov_runner._wait(run, proc, timeout)
                run.seconds = time.perf_counter() - started
                checkov_runner._parse_into(run, stdout, stderr, run.target, [])
            except CheckovError as exc:
                errors[run.framework] = str(exc)
    finally:
        for _, proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    split: dict[str, dict[str, FrameworkRun]] = {}
    for fw, run in runs.items():
        if fw not in errors:
            try:
                split[fw] = _split(run, build_dir, present[fw])
            except CheckovError as exc:
                errors[fw] = str(exc)
    out: dict[str, CheckovReport | str] = {}
    for stack in stacks:
        failed = [errors[fw] for fw in FRAMEWORKS if fw in errors and stack in present[fw]]
        if failed:
            out[stack] = failed[0]
            continue
        stack_runs = []
        for fw in FRAMEWORKS:
            if fw in split and stack in split[fw]:
                stack_runs.append(split[fw][stack])
            else:
                stack_runs.append(FrameworkRun(fw, build_dir / stack, False))
        out[stack] = CheckovReport(runs=stack_runs)
    return out
