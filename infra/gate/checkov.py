"""Run checkov on the synth record bridged for it, and read its results back.

``write_scan_inputs`` writes what checkov scans: the record's AWS resources as a Terraform plan
(``infra.gate.tfplan``) and its Kubernetes objects as YAML (``infra.gate.k8s_manifests``).
checkov pins ``packaging==23.2``, which the main venv cannot hold, so it lives in
``.venv-checkov`` and runs apart from this process: once on ``build/<stack>/tfplan.json``
(``terraform_plan``) and once on ``build/<stack>/k8s`` (``kubernetes``), both at the same time,
each forked from a process that imported checkov once (``infra.gate.checkov_launch``).
Results are parsed from checkov's JSON output into ``CheckResult`` records. Suppressions are
applied here, not with checkov's ``--skip-check``, so that a suppressed failure stays visible in
reports together with its justification.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.config.stackfile import ROOT
from infra.gate.checkov_launch import ForkServerError, Scan, ScanTimeoutError, launch
from infra.gate.findings import Suppression, find_suppression
from infra.gate.k8s_manifests import write_k8s
from infra.gate.tfplan import write_tfplan

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
EXTERNAL_CHECKS = ROOT / "policies" / "checkov"
FRAMEWORKS = ("terraform_plan", "kubernetes")
TFPLAN_FILE = "tfplan.json"
K8S_DIR = "k8s"

PASSED, FAILED, SKIPPED, SUPPRESSED = "passed", "failed", "skipped", "suppressed"
RESULTS = (PASSED, FAILED, SKIPPED, SUPPRESSED)


class CheckovError(RuntimeError):
    """checkov is missing, crashed, or printed something that is not its JSON report."""


@dataclass(frozen=True)
class CheckResult:
    """checkov's verdict of one check on one resource (the gate turns failures into Findings)."""

    framework: str
    check_id: str
    check_name: str
    resource: str
    file: str
    result: str
    guideline: str | None = None
    severity: str | None = None
    # Why a failure is accepted (suppressed) or why checkov skipped the check (skipped).
    justification: str | None = None


@dataclass
class FrameworkRun:
    """checkov's run for one framework: what it scanned, how long it took, what it found."""

    framework: str
    target: Path
    ran: bool
    seconds: float = 0.0
    findings: list[CheckResult] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    resource_count: int = 0
    command: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Findings per result (every result present, zeros included)."""
        out = dict.fromkeys(RESULTS, 0)
        for f in self.findings:
            out[f.result] += 1
        return out


@dataclass
class CheckovReport:
    """All frameworks' results for one stack, suppressions applied."""

    runs: list[FrameworkRun]
    suppressions: list[Suppression] = field(default_factory=list)

    @property
    def findings(self) -> list[CheckResult]:
        """Every finding of every run, in run order."""
        return [f for run in self.runs for f in run.findings]

    def by_result(self, result: str) -> list[CheckResult]:
        """Findings with ``result`` (``passed``, ``failed``, ``skipped``, ``suppressed``)."""
        return [f for f in self.findings if f.result == result]

    @property
    def failed(self) -> list[CheckResult]:
        """Failures that no suppression covers."""
        return self.by_result(FAILED)

    @property
    def suppressed(self) -> list[CheckResult]:
        """Failures accepted by a suppression, with its justification."""
        return self.by_result(SUPPRESSED)

    @property
    def ok(self) -> bool:
        """No unsuppressed failure and no file checkov could not parse."""
        return not self.failed and not any(run.parsing_errors for run in self.runs)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{framework: {passed, failed, skipped, suppressed}}`` for the frameworks that ran."""
        return {run.framework: run.counts() for run in self.runs if run.ran}

    def unused_suppressions(self) -> list[Suppression]:
        """Suppressions that matched no failure: stale entries worth deleting."""
        used = [f for f in self.suppressed]
        return [
            s for s in self.suppressions if not any(s.matches(f.check_id, f.resource) for f in used)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: counts, findings other than passes, and run timings."""
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "runs": [
                {
                    "framework": r.framework,
                    "target": str(r.target),
                    "ran": r.ran,
                    "seconds": round(r.seconds, 2),
                    "resource_count": r.resource_count,
                    "parsing_errors": r.parsing_errors,
                }
                for r in self.runs
            ],
            "findings": [asdict(f) for f in self.findings if f.result != PASSED],
            "unused_suppressions": [asdict(s) for s in self.unused_suppressions()],
        }


def as_suppressions(
    skip: Iterable[Suppression | Sequence[str] | Mapping[str, str]],
) -> list[Suppression]:
    """Suppressions from ``Suppression``s, ``(check_id, resource_glob, justification)`` tuples
    or mappings with those keys; a missing justification is an error, since it is the point."""
    out: list[Suppression] = []
    for item in skip:
        if isinstance(item, Suppression):
            sup = item
        elif isinstance(item, Mapping):
            sup = Suppression(
                (str(item["check_id"]),), str(item["resource"]), str(item.get("justification", ""))
            )
        else:
            check_id, resource, justification = item
            sup = Suppression((str(check_id),), str(resource), str(justification))
        if not sup.justification.strip():
            ids = ", ".join(sup.ids)
            raise ValueError(f"suppression of {ids} on {sup.resource}: no justification")
        out.append(sup)
    return out


def write_scan_inputs(
    record: Mapping[str, Any], build_dir: Path, objects: list[dict[str, Any]] | None = None
) -> tuple[Path, list[Path]]:
    """Write what checkov scans into ``build_dir`` (``build/<stack>``): the plan and the YAML
    (``objects``: the record's Kubernetes objects, when the caller made them already)."""
    plan = write_tfplan(record, build_dir / TFPLAN_FILE)
    return plan, write_k8s(record, build_dir / K8S_DIR, objects)


def checkov_command(
    framework: str, target: Path, external_checks_dir: Path | None, checkov: Path = CHECKOV
) -> list[str]:
    """The checkov command line for one framework and target (file or folder)."""
    # --compact: the JSON without each result's code block and connected node, which nothing
    # here reads (a quarter of the size: 25 MB -> 6 MB of output for two tenant stacks' scans).
    cmd = [str(checkov), "--framework", framework, "-o", "json", "--compact", "--skip-download"]
    cmd += ["-f", str(target)] if framework == "terraform_plan" else ["-d", str(target)]
    if external_checks_dir is not None:
        if not (external_checks_dir / "__init__.py").is_file():
            # checkov ignores such a folder without a word, which would hide every custom check.
            raise CheckovError(f"{external_checks_dir}: custom checks need an __init__.py")
        cmd += ["--external-checks-dir", str(external_checks_dir)]
    return cmd


def checkov_python(checkov: Path = CHECKOV) -> Path:
    """The interpreter of checkov's venv, beside its ``checkov`` script (it runs the fork server
    and the fleet's workers)."""
    return Path(checkov).parent / "python"


def checkov_env() -> dict[str, str]:
    """Environment for checkov: no look-ups of Prisma Cloud mappings, no telemetry, no colour,
    files parsed in its own process."""
    env = dict(os.environ)
    env.update(
        {
            "BC_SKIP_MAPPING": "TRUE",
            "CHECKOV_NO_TELEMETRY": "TRUE",
            "ANSI_COLORS_DISABLED": "1",
            "LOG_LEVEL": "ERROR",
            # checkov forks a process per core to parse a folder's manifests and reports their
            # results in the order the children finish. Parsed in-process, the order is the same
            # every run (the same results otherwise: compared on dev, prod-uae and a tenant), and
            # a tenant's kubernetes scan costs 0.40 s of CPU instead of 0.49 s.
            "CHECKOV_PARALLELIZATION_TYPE": "none",
        }
    )
    return env


def _target(build_dir: Path, framework: str) -> tuple[Path, bool]:
    if framework == "terraform_plan":
        path = build_dir / TFPLAN_FILE
        return path, path.is_file()
    if framework == "kubernetes":
        path = build_dir / K8S_DIR
        return path, path.is_dir() and any(path.glob("*.y*ml"))
    raise ValueError(f"unsupported checkov framework {framework!r} (known: {FRAMEWORKS})")


def run_checkov(
    build_dir: Path,
    *,
    frameworks: Sequence[str] = FRAMEWORKS,
    external_checks_dir: Path | None = EXTERNAL_CHECKS,
    skip: Iterable[Suppression | Sequence[str] | Mapping[str, str]] = (),
    checkov: Path = CHECKOV,
    timeout: float = 600,
) -> CheckovReport:
    """Scan ``build_dir`` (``build/<stack>``, as written by ``write_scan_inputs``).

    ``tfplan.json`` is scanned with ``terraform_plan`` and ``k8s/`` with ``kubernetes``; a
    framework with nothing to scan (no plan, no YAML) is recorded as not run. The checkov
    processes run concurrently. ``skip`` holds suppressions: a failure they match is reported
    as ``suppressed`` with the justification. Raises CheckovError if checkov is not installed
    or does not produce a report.
    """
    suppressions = as_suppressions(skip)
    if not Path(checkov).is_file():
        raise CheckovError(f"{checkov} not found: run `make setup` to create .venv-checkov")

    runs: list[FrameworkRun] = []
    scans: list[tuple[FrameworkRun, Scan, float]] = []
    env = checkov_env()
    # The real checkov forks from a server that imported it once (infra.gate.checkov_launch);
    # any other executable runs as the process it names.
    python = checkov_python() if Path(checkov) == CHECKOV else None
    try:
        for framework in frameworks:
            target, present = _target(build_dir, framework)
            run = FrameworkRun(framework=framework, target=target, ran=present)
            runs.append(run)
            if present:
                run.command = checkov_command(framework, target, external_checks_dir, checkov)
                scan = launch(run.command, env, build_dir, python)
                scans.append((run, scan, time.perf_counter()))
        for run, scan, started in scans:
            stdout, stderr = _wait(run, scan, timeout)
            run.seconds = time.perf_counter() - started
            _parse_into(run, stdout, stderr, build_dir, suppressions)
    finally:
        for _, scan, _ in scans:
            scan.kill()
    return CheckovReport(runs=runs, suppressions=suppressions)


def _wait(run: FrameworkRun, scan: Scan, timeout: float) -> tuple[str, str]:
    """checkov's (stdout, stderr) for ``run``; CheckovError when it overran or crashed."""
    try:
        rc, stdout, stderr = scan.result(timeout)
    except ScanTimeoutError:
        raise CheckovError(f"checkov {run.framework} ran over {timeout:.0f}s") from None
    except ForkServerError as exc:
        raise CheckovError(f"checkov {run.framework}: {exc}") from None
    # checkov exits 1 when a check failed: only a missing report is an error.
    if rc not in (0, 1):
        raise CheckovError(f"checkov {run.framework} exited {rc}: {stderr.strip()[-2000:]}")
    return stdout, stderr


def _parse_into(
    run: FrameworkRun, stdout: str, stderr: str, build_dir: Path, suppressions: list[Suppression]
) -> None:
    files = _FilePaths(run, build_dir)
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise CheckovError(
            f"checkov {run.framework}: no JSON report\n{stdout[-1000:]}\n{stderr.strip()[-2000:]}"
        ) from None
    reports = doc if isinstance(doc, list) else [doc]
    for report in reports:
        if "results" not in report:
            # A scan that found nothing to check prints only a summary.
            run.resource_count += int(report.get("resource_count", 0) or 0)
            continue
        run.resource_count += int(report.get("summary", {}).get("resource_count", 0) or 0)
        results = report["results"]
        run.parsing_errors += [str(p) for p in results.get("parsing_errors") or []]
        for key, result in (
            ("passed_checks", PASSED),
            ("failed_checks", FAILED),
            ("skipped_checks", SKIPPED),
        ):
            for item in results.get(key) or []:
                run.findings.append(_finding(run, item, result, build_dir, suppressions, files))


def _finding(
    run: FrameworkRun,
    item: Mapping[str, Any],
    result: str,
    build_dir: Path,
    suppressions: list[Suppression],
    files: _FilePaths,
) -> CheckResult:
    check_id = str(item.get("check_id"))
    resource = str(item.get("resource_address") or item.get("resource") or "")
    justification = None
    if result == SKIPPED:
        justification = (item.get("check_result") or {}).get("suppress_comment")
    elif result == FAILED:
        sup = find_suppression(suppressions, check_id, resource)
        if sup is not None:
            result, justification = SUPPRESSED, sup.justification
    return CheckResult(
        framework=run.framework,
        check_id=check_id,
        check_name=str(item.get("check_name") or ""),
        resource=resource,
        file=files.of(item),
        result=result,
        guideline=item.get("guideline") or None,
        severity=item.get("severity") or None,
        justification=justification,
    )


class _FilePaths:
    """Findings' files relative to the stack's folder, for one parse. A scan reports each of its
    few hundred files for about a thousand findings, so each distinct path is worked out once, and
    the folder is resolved once (``lstat`` per path component: it was most of the parser's time).
    """

    def __init__(self, run: FrameworkRun, build_dir: Path) -> None:
        self._build_dir = build_dir
        self._resolved = build_dir.resolve()
        # checkov reports paths relative to what it scanned ("/tfplan.json", "/pod-x-y.yaml").
        self._base = run.target if run.target.is_dir() else run.target.parent
        self._memo: dict[tuple[str, str], str] = {}

    def of(self, item: Mapping[str, Any]) -> str:
        """The file of one finding (``file_abs_path``, else ``file_path`` under the target)."""
        key = (str(item.get("file_abs_path") or ""), str(item.get("file_path") or ""))
        if key not in self._memo:
            self._memo[key] = self._relative(*key)
        return self._memo[key]

    def _relative(self, abs_path: str, file_path: str) -> str:
        if abs_path:
            path = Path(abs_path)
            for root in (self._resolved, self._build_dir):
                if path.is_relative_to(root):
                    return str(path.relative_to(root))
            return str(path)
        path = self._base / file_path.lstrip("/")
        try:
            return str(path.relative_to(self._build_dir))
        except ValueError:
            return str(path)


def format_findings(findings: Iterable[CheckResult]) -> str:
    """One line per finding, sorted: ``CHECK_ID  resource  check name [justification]``."""
    lines = []
    for f in sorted(findings, key=lambda f: (f.framework, f.check_id, f.resource)):
        line = f"{f.check_id:<14} {f.resource:<60} {f.check_name}"
        if f.justification:
            line += f"  [{f.justification}]"
        lines.append(line)
    return "\n".join(lines)
