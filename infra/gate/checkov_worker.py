"""A long-lived checkov process: the per-stack command lines, run one after another in-process.

Run by ``.venv-checkov/bin/python`` (checkov's own venv; this file imports nothing of the
repository, so that interpreter can run it by path; it loads ``checkov_parsers.py`` and
``checkov_dpath.py`` beside it by path, which import only checkov, PyYAML, dpath and the standard
library). Each request on stdin is one JSON line, ``{"argv": [...], "cwd": "..."}``: the
arguments of exactly the command the per-stack gate runs (``infra.gate.checkov.checkov_command``
without the executable), and the folder it runs in. Each answer on stdout is one JSON line,
``{"rc": int, "stdout": str, "stderr": str}``: what that command would have printed and its exit
status, for the same parser. The caller starts it with the per-stack process's environment
(``infra.gate.checkov.checkov_env``).

Why: checkov spends about 2 s of every start importing and registering its checks, more than a
tenant stack's scan (about 0.15 s kubernetes, 0.49 s terraform plan, in a worker). Scanning many
stacks in one checkov run instead is not faithful: its kubernetes graph joins every object it
reads, so one stack's ``podSelector: {}`` NetworkPolicy satisfied CKV2_K8S_6 for another
stack's Pods (shown in ``tests/test_fleet_gate.py``). Here each stack is still its own scan with
its own graph.

checkov keeps parsed definitions on its runner instances, and ``Checkov()`` starts from the same
module-level instances every time: a second scan reported the first stack's files. Every request
therefore gets new runner instances. The registries of checks are loaded once, which is the
point; ``MAX_REQUESTS`` bounds whatever else a long run might accumulate (the caller replaces the
worker after that many).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import importlib.util
import io
import json
import logging
import os
import sys
import traceback
import warnings
from typing import Any

MAX_REQUESTS = 500
"""Requests one worker serves before it exits, unless its first argument says another number
(the caller passes its own limit and replaces the worker after that many answers, so it never
sends a request to a worker that is about to exit)."""


def scan(checkov_cls: Any, argv: list[str], cwd: str) -> dict[str, Any]:
    """One checkov command line, in-process: its exit status and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    rc: Any = 0
    here = os.getcwd()
    try:
        os.chdir(cwd)
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", category=SyntaxWarning)
            try:
                checkov = checkov_cls(list(argv))
                checkov.runners = [type(r)() for r in checkov.runners]
                rc = checkov.run()
            except SystemExit as exc:
                rc = exc.code
    except Exception:  # the per-stack process would have died with a traceback: so does this
        err.write(traceback.format_exc())
        rc = 2
    finally:
        os.chdir(here)
    return {"rc": rc if isinstance(rc, int) else (0 if rc is None else 2), "stdout": out.getvalue(),
            "stderr": err.getvalue()}  # fmt: skip


class _CompactJson:
    """``json`` for checkov's runner registry, printing its report without indentation."""

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)

    @staticmethod
    def dumps(obj: Any, *args: Any, indent: Any = None, **kwargs: Any) -> str:
        return json.dumps(obj, *args, **kwargs)


def _print_json_compact() -> None:
    """checkov prints its JSON report with ``indent=4`` through its own encoder class, which
    forces Python's pure-Python encoder: about 0.08 s of a plan scan's CPU for whitespace the
    caller's ``json.loads`` drops. Printed without indentation, the report holds the same data
    (``tests/test_fleet_gate.py`` compares the fleet's verdicts with the per-stack command's)."""
    from checkov.common.runners import runner_registry

    runner_registry.json = _CompactJson()  # type: ignore[assignment]


class SerialExecutor(concurrent.futures.Executor):
    """An executor that runs each job as it is submitted, in the submitting thread, and returns
    its future already done: the job's result, or what it raised, as a thread pool's would hold.

    checkov runs its graph checks on a ``ThreadPoolExecutor`` and each attribute and resource
    solver submits one job per graph vertex to a new pool of its own (never shut down). In one
    process under the GIL those threads add no parallelism, only hand-offs and thread starts: 7 to
    13 % of a tenant's scan CPU (four alternating runs of seven tenants). The jobs are independent
    (each appends its vertex's verdict to a list), so the results are the same (compared, line
    ranges included, on a tenant's two scans); only their order follows submission instead of
    thread scheduling, which left it to chance (the per-stack command's order still varies)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes and ignores ``ThreadPoolExecutor``'s arguments (``max_workers`` and the rest)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # a pool's worker thread stores these too
            future.set_exception(exc)
        return future


def _serial_thread_pools() -> None:
    """``concurrent.futures.ThreadPoolExecutor`` is ``SerialExecutor`` in this process, before
    checkov is imported, so its ``from concurrent.futures import ThreadPoolExecutor`` binds it
    too. Nothing else in a worker uses threads."""
    concurrent.futures.ThreadPoolExecutor = SerialExecutor  # type: ignore[misc, assignment]


def _install_speedups(here: str) -> None:
    """checkov's YAML loaders for the gate's files and dpath's lookups for its value checks,
    faster and answering the same (``checkov_parsers.py`` and ``checkov_dpath.py`` beside this
    file, loaded by path: this folder is off ``sys.path``)."""
    for name in ("checkov_parsers", "checkov_dpath"):
        spec = importlib.util.spec_from_file_location(
            f"sovml_{name}", os.path.join(here, f"{name}.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.install()


def main() -> int:
    """Serve requests from stdin until it closes or ``MAX_REQUESTS`` were answered."""
    # Run by path, this file's folder is sys.path[0], where infra/gate/checkov.py would be
    # imported as checkov itself.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    # The answers get a descriptor of their own; anything written to descriptor 1 behind
    # Python's back (a handler holding the original stdout, a child process) goes to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), encoding="utf-8")
    _serial_thread_pools()
    from checkov.main import Checkov

    # A scan allocates a few hundred thousand objects; at the default thresholds the collector
    # walked checkov's registries on every full collection. Young collections every 200,000
    # allocations, and everything alive after the first scan (imports, registries) frozen out
    # of later collections: 0.94 -> 0.76 s of CPU per tenant plan scan, same output.
    gc.set_threshold(200_000, 10, 10)
    # checkov keeps its root logger at DEBUG and copies every record into an in-memory buffer,
    # read only for `--support` uploads (``checkov.logging_init``): about 4,800 records a plan
    # scan, 0.13 s of CPU, and a buffer that grew for the worker's life. The records the
    # per-stack command prints (LOG_LEVEL=ERROR on stderr) are kept; nothing else reads them.
    logging.disable(logging.INFO)
    _print_json_compact()
    _install_speedups(here)
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else MAX_REQUESTS
    for served, line in enumerate(sys.stdin, start=1):
        request = json.loads(line)
        answer = scan(Checkov, request["argv"], request["cwd"])
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
        if served == 1:
            gc.collect()
            gc.freeze()
        if served >= limit:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
