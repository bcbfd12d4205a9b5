"""A fork server for the per-stack checkov command: import checkov once, fork each scan from it.

Run by ``.venv-checkov/bin/python`` (checkov's own venv) by path; it imports nothing of the
repository. ``infra.gate.checkov_launch`` starts it and talks to it.

Why: of a per-stack scan's CPU, starting ``checkov`` is most: 2.6 s importing checkov and
registering its checks, against 1.5 s for prod-uae's plan and 1.1 s for its manifests once
imported (measured here). The gate runs two scans per stack, and the tests and ``make bench``
run the per-stack gate dozens of times in one process. A child forked from a process that has
only imported checkov is that fresh process, already past its imports: it runs exactly what
``.venv-checkov/bin/checkov`` runs (``Checkov(argv).run()`` under the same warnings filter), with
the request's working folder, environment and arguments, and prints the same bytes (compared
with a fresh process on every example stack's plan and manifests in
``tests/test_checkov_forkserver.py``). Nothing here ever scans: the runners and registries a
child starts from are the ones a fresh process has. (The fleet's ``checkov_worker.py`` differs:
it scans many stacks in one process, with speedups; this is the per-stack path.)

Protocol, one JSON object per line. A request on stdin:
``{"id": int, "argv0": str, "argv": [...], "cwd": str, "env": {...}, "stdout": path,
"stderr": path}``; the child's ``sys.argv`` is ``[argv0, *argv]``, its standard input is empty,
its standard output and error go to those two files, and it dies with the server. Answers on
stdout: ``{"id": id, "pid": pid}`` once the child is forked (``{"id": id, "error": str}`` if it
could not be), then ``{"id": id, "rc": int}`` when it exited (``-N``: killed by signal N). The
caller may kill a child by its pid. When stdin closes, every child still running is killed and
the server exits.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import sys
import traceback
import warnings
from typing import Any

CHILD_FILE_MODE = 0o600
PR_SET_PDEATHSIG = 1


def _exit_code(code: Any) -> int:
    """The exit status ``sys.exit(code)`` gives a process (None is 0; other objects print, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _die_with(server_pid: int) -> None:
    """Be killed when the server dies (Linux's parent-death signal), as a process of the
    server's caller would be waited for or killed by it; exit now if it is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the caller's timeout still kills the scan
        return
    if os.getppid() != server_pid:
        os._exit(1)


def _child(
    checkov_cls: Any, request: dict[str, Any], keep: tuple[int, ...], server_pid: int
) -> None:
    """In the forked child: become the checkov process the request describes; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        _die_with(server_pid)
        for fd in keep:
            os.close(fd)
        stdin = os.open(os.devnull, os.O_RDONLY)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        stdout = os.open(request["stdout"], flags, CHILD_FILE_MODE)
        stderr = os.open(request["stderr"], flags, CHILD_FILE_MODE)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        argv = [str(a) for a in request["argv"]]
        sys.argv = [request.get("argv0", "checkov"), *argv]
        # What .venv-checkov/bin/checkov does, with the arguments given explicitly (its default,
        # sys.argv[1:], was bound when checkov was imported here).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=SyntaxWarning)
            code = _exit_code(checkov_cls(argv).run())
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # a fresh process would have died printing the traceback: so does this
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Server:
    """The server's loop: requests from stdin, children reaped on SIGCHLD, answers on stdout."""

    def __init__(self, checkov_cls: Any, answers: Any) -> None:
        self.checkov_cls = checkov_cls
        self.pid = os.getpid()
        self.children: dict[int, int] = {}  # pid -> request id
        self.answers = answers
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.pending = b""

    def answer(self, message: dict[str, Any]) -> None:
        self.answers.write(json.dumps(message) + "\n")
        self.answers.flush()

    def fork(self, request: dict[str, Any]) -> None:
        # Nothing this process buffered may reach the child's output files.
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            self.answer({"id": request["id"], "error": f"fork: {exc}"})
            return
        if pid == 0:
            keep = (self.wake_r, self.wake_w, self.answers.fileno())
            _child(self.checkov_cls, request, keep, self.pid)
        self.children[pid] = request["id"]
        self.answer({"id": request["id"], "pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request_id = self.children.pop(pid, None)
            if request_id is not None:
                self.answer({"id": request_id, "rc": os.waitstatus_to_exitcode(status)})

    def serve(self) -> int:
        """Until stdin closes; then kill and reap the children still running."""
        while True:
            try:
                ready, _, _ = select.select([0, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in ready:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            self.reap()
            if 0 in ready:
                data = os.read(0, 1 << 16)
                if not data:
                    break
                self.pending += data
                *lines, self.pending = self.pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.fork(json.loads(line))
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise
        while self.children:
            pid, _ = os.waitpid(-1, 0)
            self.children.pop(pid, None)
        return 0


def main() -> int:
    """Import checkov, then serve."""
    # Run by path, this file's folder is sys.path[0], where infra/gate/checkov.py would be
    # imported as checkov itself.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    # The answers get a descriptor of their own before anything is imported: whatever is printed
    # behind the protocol's back (at import, at exit) goes to stderr, never into the answers.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    from checkov.main import Checkov  # as .venv-checkov/bin/checkov: outside the filter

    return Server(Checkov, answers).serve()


if __name__ == "__main__":
    sys.exit(main())
