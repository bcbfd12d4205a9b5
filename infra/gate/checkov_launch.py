"""Start the per-stack checkov scans: forked from a process that imported checkov once, or as
processes of their own.

``infra.gate.checkov.run_checkov`` runs ``checkov`` once per framework and stack. Started as a
process, each scan first spends about 2.6 s of CPU importing checkov (prod-uae's scans then take
1.5 s and 1.1 s). Here a fork server (``checkov_forkserver.py``, run by checkov's own python)
imports it once per process of ours and forks every later scan from it: the child is the fresh
process past its imports, printing the same bytes (``tests/test_checkov_forkserver.py``). The
server lives as long as this process (closed at exit, or when its stdin closes because this
process died) and serves any number of scans, concurrently.

Which path a scan takes: the fork server for the real checkov of ``.venv-checkov`` on Linux
(fork without exec is unsafe on macOS once some system libraries are loaded), unless
``SOVML_CHECKOV_FORKSERVER=0``; anything else (another executable, a test's stand-in) runs as
the process it names. A server is started with the environment of its first scan, because
checkov reads some variables at import; a scan whose environment differs in anything but
:data:`IMPORT_NEUTRAL_PREFIXES` gets a server of its own. Each child then gets its scan's exact
environment, working folder and arguments.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

FORKSERVER = Path(__file__).with_name("checkov_forkserver.py")
"""The server script, run by the python of checkov's venv."""
DISABLE_ENV = "SOVML_CHECKOV_FORKSERVER"
"""Set to ``0``: every scan is a process of its own (as before the fork server)."""
IMPORT_NEUTRAL_PREFIXES = ("SOVML_", "PYTEST_")
"""Variables checkov never reads (ours and pytest's, which changes per test): a scan whose
environment differs from a server's only in these still forks from that server."""
KILL_GRACE_S = 30.0
"""How long a killed child may take to be reported gone."""


class ScanTimeoutError(Exception):
    """The scan ran past its timeout; it was killed."""


class ForkServerError(RuntimeError):
    """The fork server could not run the scan (it exited, or could not fork)."""


class Scan(Protocol):
    """One running checkov command."""

    def result(self, timeout: float) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) once it exits; ScanTimeoutError (after killing it) past
        ``timeout`` seconds."""
        ...

    def kill(self) -> None:
        """Stop it now if it still runs (idempotent)."""
        ...


class ProcessScan:
    """A scan as a process of its own (``subprocess.Popen``)."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
        )

    def result(self, timeout: float) -> tuple[int, str, str]:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ScanTimeoutError from None
        return self.proc.returncode, stdout, stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@dataclass
class _Slot:
    """What the server said about one request."""

    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    rc: int | None = None
    error: str | None = None


class ForkedScan:
    """A scan forked by a :class:`ForkServer`; its output arrives in two files."""

    def __init__(self, slot: _Slot, stdout: Path, stderr: Path) -> None:
        self.slot, self.stdout, self.stderr = slot, stdout, stderr

    def result(self, timeout: float) -> tuple[int, str, str]:
        if not self.slot.done.wait(timeout):
            self.kill()
            raise ScanTimeoutError
        try:
            if self.slot.error is not None:
                raise ForkServerError(self.slot.error)
            assert self.slot.rc is not None
            # Read as Popen(text=True) reads a pipe: the locale's encoding, universal newlines.
            return self.slot.rc, self.stdout.read_text(), self.stderr.read_text()
        finally:
            self._remove()

    def kill(self) -> None:
        slot = self.slot
        if not slot.done.is_set() and slot.started.wait(KILL_GRACE_S) and slot.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # exited: its answer is on the way
                os.kill(slot.pid, signal.SIGKILL)
        slot.done.wait(KILL_GRACE_S)
        self._remove()

    def _remove(self) -> None:
        for path in (self.stdout, self.stderr):
            path.unlink(missing_ok=True)


class ForkServer:
    """One ``checkov_forkserver.py`` process and the scans it forked."""

    def __init__(self, python: Path, env: dict[str, str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sovml-checkov-"))
        # Held open for the server's life (its stderr), closed in close().
        self._log: IO[bytes] = open(self.folder / "server.log", "w+b")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [str(python), str(FORKSERVER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=env,
                cwd=self.folder,
            )
        except OSError as exc:
            self._log.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise ForkServerError(f"checkov fork server: {exc}") from None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._slots: dict[int, _Slot] = {}
        self.dead: str | None = None
        self._reader = threading.Thread(target=self._read, name="checkov-forkserver", daemon=True)
        self._reader.start()

    def start(self, argv0: str, argv: list[str], cwd: Path, env: dict[str, str]) -> ForkedScan:
        """Ask for one scan; it runs once checkov is imported (the first scan waits for that)."""
        with self._lock:
            if self.dead is not None:
                raise ForkServerError(self.dead)
            request_id = next(self._ids)
            slot = self._slots[request_id] = _Slot()
            out, err = self.folder / f"{request_id}.out", self.folder / f"{request_id}.err"
            request = {"id": request_id, "argv0": argv0, "argv": argv, "cwd": str(cwd),
                       "env": env, "stdout": str(out), "stderr": str(err)}  # fmt: skip
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                self.proc.stdin.flush()
            except OSError as exc:
                del self._slots[request_id]
                raise ForkServerError(f"checkov fork server: {exc}") from None
        return ForkedScan(slot, out, err)

    @property
    def busy(self) -> bool:
        """Whether a scan it forked has not been reported done."""
        with self._lock:
            return bool(self._slots)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
                message["id"]
            except (ValueError, TypeError, KeyError):
                # Not the protocol: nothing it says can be trusted. Its scans fail below.
                self.proc.kill()
                break
            with self._lock:
                slot = self._slots.get(message["id"])
                if slot is None:
                    continue
                if "pid" in message:
                    slot.pid = message["pid"]
                    slot.started.set()
                    continue
                del self._slots[message["id"]]
            slot.rc, slot.error = message.get("rc"), message.get("error")
            slot.started.set()
            slot.done.set()
        rc = self.proc.wait()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace").strip()[-2000:]
        with self._lock:
            self.dead = f"checkov fork server exited {rc}: {tail}"
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            slot.error = self.dead
            slot.started.set()
            slot.done.set()

    def close(self) -> None:
        """Close its stdin (it kills the scans still running and exits), wait, clean up."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=KILL_GRACE_S)
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_servers: dict[tuple[str, tuple[tuple[str, str], ...]], ForkServer] = {}
_servers_lock = threading.Lock()


def _key(python: Path, env: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    kept = ((k, v) for k, v in env.items() if not k.startswith(IMPORT_NEUTRAL_PREFIXES))
    return str(python), tuple(sorted(kept))


def server_for(python: Path, env: dict[str, str]) -> ForkServer:
    """This process's server for ``python`` and (the import-relevant part of) ``env``: the
    running one, or a new one in place of a dead one. Idle servers of other environments are
    closed (each holds checkov's imports, about 250 MB)."""
    key = _key(python, env)
    with _servers_lock:
        server = _servers.get(key)
        if server is not None and server.dead is None:
            return server
        stale = [k for k, s in _servers.items() if k == key or s.dead is not None or not s.busy]
        for k in stale:
            _servers.pop(k).close()
        server = _servers[key] = ForkServer(python, env)
        return server


def close_servers() -> None:
    """Close every server of this process (at exit; tests call it too)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.close()


atexit.register(close_servers)


def forkable(python: Path, env: dict[str, str]) -> bool:
    """Whether scans by ``python``'s checkov may fork from a server (see the module's notes)."""
    return sys.platform == "linux" and env.get(DISABLE_ENV) != "0" and python.is_file()


def launch(command: list[str], env: dict[str, str], cwd: Path, python: Path | None) -> Scan:
    """Start ``command`` (checkov's argv) in ``cwd`` with ``env``: forked from the server of
    ``python`` (checkov's interpreter) where :func:`forkable`, else as a process. A server that
    exited is replaced once; one that cannot be started or reached leaves the scan to a
    process."""
    if python is not None and forkable(python, env):
        for _ in range(2):
            try:
                return server_for(python, env).start(command[0], command[1:], cwd, env)
            except ForkServerError:
                continue
    return ProcessScan(command, env, cwd)
