"""checkov over many stacks: each stack its own scan, in a few long-lived checkov processes.

``scan_fleet`` hands every stack's scan inputs (``build/<stack>/tfplan.json`` and
``build/<stack>/k8s/``, as ``infra.gate.checkov.write_scan_inputs`` wrote them) to ``PARALLEL``
checkov worker processes (``infra.gate.checkov_worker``, one per core), each of which imports
checkov once and then runs, in-process and one after another, exactly the command line the
per-stack gate runs (``infra.gate.checkov.checkov_command``) in the same folder. Its output is read
by the per-stack parser, so each stack gets the ``CheckovReport`` its own run would give.

Each stack stays its own scan. Scanning batches of stacks in one checkov run (this module's
first design) was not faithful: checkov's kubernetes graph joins every object it reads, so a
NetworkPolicy with ``podSelector: {}`` in one stack satisfied CKV2_K8S_6 for another stack's Pod
(``tests/test_fleet_gate.py`` shows the batch passing it and the stack alone failing). It was not
cheaper either: checkov's start-up (about 2 s) is paid once per worker here, and a tenant's scans
cost about 0.5 s (kubernetes) and 1.3 s (terraform plan) of CPU (0.15 s and 0.49 s since the
workers' collector and logging settings, loaders and dpath lookups), where the batches cost
about 6.6 s of CPU a stack (their graphs grow faster than the batch).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.gate import checkov as checkov_runner
from infra.gate.checkov import FRAMEWORKS, CheckovError, CheckovReport, FrameworkRun

WORKER = Path(__file__).with_name("checkov_worker.py")
"""The worker script, run by the python of checkov's venv."""
PARALLEL = 2
"""checkov workers at a time: one per core of the machine this was measured on."""
SCANS_PER_WORKER = 500
"""Scans one worker process serves before it is replaced (told to the worker, which stops after
that many too). A worker grew from 223 to 320 MB over its first 50 tenants (100 scans), and each
replacement costs a checkov start-up (about 2.5 s of CPU): 500 scans bound the memory and start
the two workers three times for 503 stacks instead of six. The caller replaces it right after
the last answer: a worker left to exit on its own was sent the next request while exiting, and 4
of 503 stacks got a false error."""


@dataclass
class _Task:
    stack: str
    run: FrameworkRun
    cwd: Path
    done: bool = False
    """Set once the scan's output was parsed or its error recorded: a task left unset (its
    thread died) is an error for its stack, never an empty, passing scan."""


class _Completion:
    """Calls ``on_done(stack, result)`` once per stack, in the thread that finished its last
    scan, while the other scans go on; what a call raises is kept for ``scan_fleet`` to raise."""

    def __init__(
        self,
        pending: dict[str, int],
        result: Callable[[str], CheckovReport | str],
        on_done: Callable[[str, CheckovReport | str], None] | None,
    ) -> None:
        self.pending, self.result, self.on_done = pending, result, on_done
        self.lock = threading.Lock()
        self.failure: BaseException | None = None
        self.told: set[str] = set()
        """Stacks ``on_done`` was called for."""

    def finished(self, stack: str) -> None:
        """One scan of ``stack`` is done (parsed or failed)."""
        with self.lock:
            self.pending[stack] -= 1
            if self.pending[stack] > 0 or self.on_done is None or self.failure is not None:
                return
            self.told.add(stack)
        self.tell(stack)

    def tell(self, stack: str) -> None:
        """``on_done`` for ``stack``; what it raises is kept (the first only)."""
        assert self.on_done is not None
        try:
            self.on_done(stack, self.result(stack))
        except BaseException as exc:  # raised by scan_fleet once every thread has stopped
            with self.lock:
                self.failure = self.failure or exc


class _Worker:
    """One checkov worker process, restarted when it exits (its request limit, a crash)."""

    def __init__(self, python: Path, env: dict[str, str]) -> None:
        self.python, self.env = python, env
        self.proc: subprocess.Popen[str] | None = None
        self.served = 0

    def _started(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.served = 0
            self.proc = subprocess.Popen(
                [str(self.python), str(WORKER), str(SCANS_PER_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=self.env,
            )
        return self.proc

    def ask(self, argv: list[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of one command line; CheckovError on a lost worker."""
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            proc.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd)}) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except OSError:
            line = ""
        finally:
            overran = not timer.is_alive() and proc.poll() is not None
            timer.cancel()
        if not line:
            self._discard()
            if overran:
                raise CheckovError(f"checkov ran over {timeout:.0f}s")
            raise CheckovError(f"the checkov worker exited {proc.returncode} without an answer")
        try:
            answer = json.loads(line)
            result = int(answer["rc"]), str(answer["stdout"]), str(answer["stderr"])
        except (ValueError, KeyError, TypeError):
            self._discard()
            raise CheckovError(
                f"the checkov worker answered something else: {line[:200]!r}"
            ) from None
        self.served += 1
        if self.served >= SCANS_PER_WORKER:  # it stops now: replaced before the next request
            self.close()
            self.proc = None
        return result

    def _discard(self) -> None:
        """Kill the process after a lost or garbled answer (the next scan starts a new one)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        """End the process (stdin closed: it leaves its loop)."""
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _serve(
    worker: _Worker,
    tasks: queue.Queue[_Task | None],
    external_checks_dir: Path | None,
    checkov: Path,
    timeout: float,
    errors: dict[str, str],
    completion: _Completion,
) -> None:
    """Take tasks until the sentinel: run each, parse it as the per-stack gate does."""
    while (task := tasks.get()) is not None:
        run = task.run
        try:
            argv = checkov_runner.checkov_command(
                run.framework, run.target, external_checks_dir, checkov
            )[1:]
            started = time.perf_counter()
            rc, stdout, stderr = worker.ask(argv, task.cwd, timeout)
            run.seconds = time.perf_counter() - started
            run.command = [str(checkov), *argv]
            # checkov exits 1 when a check failed: only a missing report is an error.
            if rc not in (0, 1):
                raise CheckovError(f"checkov {run.framework} exited {rc}: {stderr.strip()[-2000:]}")
            checkov_runner._parse_into(run, stdout, stderr, task.cwd, [])
        except CheckovError as exc:
            errors[task.stack] = f"checkov {run.framework}: {exc}"
        except Exception as exc:  # any failure is this stack's error, never an empty pass
            errors[task.stack] = f"checkov {run.framework}: {type(exc).__name__}: {exc}"
        task.done = True
        completion.finished(task.stack)


def scan_fleet(
    build_dir: Path,
    stacks: Sequence[str],
    *,
    checkov: Path | None = None,
    external_checks_dir: Path | None = checkov_runner.EXTERNAL_CHECKS,
    timeout: float = 600,
    parallel: int = PARALLEL,
    on_done: Callable[[str, CheckovReport | str], None] | None = None,
) -> dict[str, CheckovReport | str]:
    """checkov over every stack, each scanned alone: per stack its ``CheckovReport``, or the error
    (one line) that kept checkov from judging it (missing, crashed or overran).

    ``checkov`` defaults to ``infra.gate.checkov.CHECKOV`` as it is when called; its venv's
    ``python`` runs the workers. Missing, it is an error for every stack even where there is
    nothing to scan, as in the per-stack run. ``timeout`` bounds each scan.

    ``on_done(stack, result)`` is called once for each stack whose scans all ran (with what this
    returns for it), as soon as its last scan is done, in a thread of this call, while the other
    stacks' scans go on: the caller's work on a result overlaps the scans instead of following
    them. Calls are concurrent with one another; what one raises, this raises at the end.
    """
    checkov = checkov_runner.CHECKOV if checkov is None else checkov
    python = checkov_runner.checkov_python(checkov)
    if not Path(checkov).is_file() or not python.is_file():
        message = f"{checkov} not found: run `make setup` to create .venv-checkov"
        for stack in stacks if on_done is not None else ():
            on_done(stack, message)
        return dict.fromkeys(stacks, message)
    runs: dict[str, list[FrameworkRun]] = {}
    tasks: queue.Queue[_Task | None] = queue.Queue()
    every: list[_Task] = []
    for stack in stacks:
        runs[stack] = []
        for framework in FRAMEWORKS:
            target, present = checkov_runner._target(build_dir / stack, framework)
            run = FrameworkRun(framework, target, present)
            runs[stack].append(run)
            if present:
                every.append(_Task(stack, run, build_dir / stack))
                tasks.put(every[-1])
    errors: dict[str, str] = {}

    def result(stack: str) -> CheckovReport | str:
        return errors[stack] if stack in errors else CheckovReport(runs=runs[stack])

    scans_of = Counter(t.stack for t in every)
    pending = {stack: scans_of[stack] for stack in stacks}
    completion = _Completion(pending, result, on_done)
    env = checkov_runner.checkov_env()
    workers = [_Worker(python, env) for _ in range(max(1, min(parallel, tasks.qsize())))]
    for _ in workers:
        tasks.put(None)
    threads = [
        threading.Thread(
            target=_serve,
            args=(w, tasks, external_checks_dir, checkov, timeout, errors, completion),
        )
        for w in workers
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in workers:
            w.close()
    if completion.failure is not None:
        raise completion.failure
    for task in every:
        if not task.done:
            errors.setdefault(task.stack, f"checkov {task.run.framework}: the scan never ran")
    if on_done is not None:
        # A stack with nothing to scan, or one whose scans never all finished, is told now.
        for stack in stacks:
            if stack not in completion.told:
                completion.tell(stack)
        if completion.failure is not None:
            raise completion.failure
    return {stack: result(stack) for stack in stacks}
