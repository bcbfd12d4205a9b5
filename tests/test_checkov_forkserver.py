"""The per-stack gate's checkov fork server (``infra/gate/checkov_forkserver.py``) and its client
(``infra.gate.checkov_launch``).

The server's mechanics are tested with a stand-in ``checkov.main`` (a few lines below, on the
server's ``PYTHONPATH``): what a child gets (arguments, folder, environment, empty stdin), the
exit statuses ``sys.exit`` gives, concurrency, timeouts, kills, a dead server. Faithfulness is
tested with the real checkov: the same findings as a process per scan on prod-uae's plan and
manifests.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from infra.gate import checkov as cr
from infra.gate import checkov_launch as cl

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the fork server is Linux-only")

STAND_IN = """
import json, os, sys, time


class Checkov:
    def __init__(self, argv):
        self.argv = argv

    def run(self):
        mode, *rest = self.argv
        if mode == "echo":
            print(json.dumps({"argv": self.argv, "sys_argv": sys.argv, "cwd": os.getcwd(),
                              "env": dict(os.environ), "stdin": sys.stdin.read()}))
            print("to stderr", file=sys.stderr)
            return 0
        if mode == "return":
            return {"none": None, "text": "a message"}.get(rest[0], None if not rest[0].isdigit()
                                                          else int(rest[0]))
        if mode == "exit":
            sys.exit(int(rest[0]) if rest[0].isdigit() else rest[0])
        if mode == "raise":
            raise RuntimeError("boom")
        if mode == "sleep":
            time.sleep(float(rest[0]))
            return 0
        raise SystemExit(f"unknown mode {mode}")
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> dict[str, str]:
    """An environment whose python imports the stand-in as ``checkov.main``."""
    package = tmp_path / "stand_in" / "checkov"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(STAND_IN)
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(package.parent)}


@pytest.fixture(autouse=True)
def _no_servers_left() -> Iterator[None]:
    """Each test starts from no server and leaves none (the session's next scan starts one)."""
    cl.close_servers()
    yield
    cl.close_servers()


PYTHON = Path(sys.executable)


def _run(server: cl.ForkServer, argv: list[str], cwd: Path, env: dict[str, str]) -> Any:
    return server.start("checkov-argv0", argv, cwd, env)


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """True once ``pid`` no longer exists (reaped by the server)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# --- the server's mechanics, with the stand-in ---------------------------------------------------
def test_a_child_is_the_process_the_request_describes(
    stand_in: dict[str, str], tmp_path: Path
) -> None:
    """Its arguments (newlines, quotes and non-ASCII survive the JSON lines), sys.argv, folder,
    exactly the request's environment (none of the server's), an empty stdin, both streams."""
    server = cl.server_for(PYTHON, stand_in)
    env = {"ONLY": "this", "TRICKY": 'a=b\nc"d\u00e9', "PATH": stand_in["PATH"]}
    argv = ["echo", "two\nlines", '"quoted"', "\u0645\u0631\u062d\u0628\u0627", "x" * 50_000]
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    rc, out, err = _run(server, argv, cwd, env).result(60)
    seen = json.loads(out)
    assert rc == 0
    assert seen["argv"] == argv and seen["sys_argv"] == ["checkov-argv0", *argv]
    assert seen["cwd"] == str(cwd)
    assert seen["env"] == env  # PYTHONPATH was the server's, not the request's
    assert seen["stdin"] == ""
    assert err == "to stderr\n"


@pytest.mark.parametrize(
    ("argv", "rc", "stderr_has"),
    [
        (["return", "0"], 0, ""),
        (["return", "1"], 1, ""),
        (["return", "none"], 0, ""),
        (["return", "text"], 1, "a message"),
        (["exit", "3"], 3, ""),
        (["exit", "a reason"], 1, "a reason"),
        (["raise"], 1, "RuntimeError: boom"),
    ],
)
def test_exit_statuses_are_what_sys_exit_gives_a_process(
    stand_in: dict[str, str], tmp_path: Path, argv: list[str], rc: int, stderr_has: str
) -> None:
    got_rc, _, err = _run(cl.server_for(PYTHON, stand_in), argv, tmp_path, stand_in).result(60)
    assert got_rc == rc
    assert stderr_has in err and (stderr_has or err == "")


def test_a_scan_runs_while_another_still_runs(stand_in: dict[str, str], tmp_path: Path) -> None:
    server = cl.server_for(PYTHON, stand_in)
    slow = _run(server, ["sleep", "120"], tmp_path, stand_in)
    quick = _run(server, ["echo"], tmp_path, stand_in)
    assert quick.result(60)[0] == 0
    assert not slow.slot.done.is_set()
    slow.kill()
    assert slow.slot.rc == -signal.SIGKILL


def test_a_scan_past_its_timeout_is_killed_and_the_server_serves_on(
    stand_in: dict[str, str], tmp_path: Path
) -> None:
    server = cl.server_for(PYTHON, stand_in)
    scan = _run(server, ["sleep", "120"], tmp_path, stand_in)
    with pytest.raises(cl.ScanTimeoutError):
        scan.result(0.5)
    assert scan.slot.pid is not None and _gone(scan.slot.pid)
    assert scan.slot.rc == -signal.SIGKILL
    assert not scan.stdout.exists() and not scan.stderr.exists()
    assert _run(server, ["echo"], tmp_path, stand_in).result(60)[0] == 0


@pytest.fixture
def sleeping(stand_in: dict[str, str], tmp_path: Path) -> tuple[cl.ForkServer, cl.ForkedScan]:
    """A server and a scan of it that runs (forked, its pid known) for two minutes."""
    server = cl.server_for(PYTHON, stand_in)
    scan = _run(server, ["sleep", "120"], tmp_path, stand_in)
    assert scan.slot.started.wait(60) and scan.slot.pid is not None
    return server, scan


def test_closing_the_server_kills_the_scans_it_runs(
    sleeping: tuple[cl.ForkServer, cl.ForkedScan],
) -> None:
    server, scan = sleeping
    assert scan.slot.pid is not None
    cl.close_servers()
    assert _gone(scan.slot.pid)
    with pytest.raises(cl.ForkServerError, match="exited"):
        scan.result(30)
    assert not server.folder.exists()


def test_a_dead_server_fails_its_scans_its_children_die_and_it_is_replaced(
    sleeping: tuple[cl.ForkServer, cl.ForkedScan], stand_in: dict[str, str], tmp_path: Path
) -> None:
    server, scan = sleeping
    assert scan.slot.pid is not None
    server.proc.send_signal(signal.SIGKILL)
    with pytest.raises(cl.ForkServerError, match="exited -9"):
        scan.result(30)
    assert _gone(scan.slot.pid)  # the parent-death signal: no orphaned scan runs on
    with pytest.raises(cl.ForkServerError):
        server.start("checkov", ["echo"], tmp_path, stand_in)
    again = cl.server_for(PYTHON, stand_in)
    assert again is not server
    assert _run(again, ["echo"], tmp_path, stand_in).result(60)[0] == 0


def test_launch_replaces_a_dead_server_without_failing_the_scan(
    stand_in: dict[str, str], tmp_path: Path
) -> None:
    first = cl.server_for(PYTHON, stand_in)
    first.proc.kill()
    first.proc.wait()
    deadline = time.monotonic() + 30
    while first.dead is None and time.monotonic() < deadline:
        time.sleep(0.02)
    scan = cl.launch(["checkov", "echo"], stand_in, tmp_path, PYTHON)
    assert isinstance(scan, cl.ForkedScan) and scan.result(60)[0] == 0


def test_only_import_neutral_variables_share_a_server(stand_in: dict[str, str]) -> None:
    """ours and pytest's variables may differ; anything else checkov might read at import gets
    a server of its own, and the idle one it replaces is closed."""
    base = cl.server_for(PYTHON, stand_in)
    assert cl.server_for(PYTHON, {**stand_in, "SOVML_AUDIT_LOG": "/x"}) is base
    assert cl.server_for(PYTHON, {**stand_in, "PYTEST_CURRENT_TEST": "t"}) is base
    other = cl.server_for(PYTHON, {**stand_in, "LOG_LEVEL": "DEBUG"})
    assert other is not base
    assert base.proc.wait(30) == 0 and not base.folder.exists()
    assert cl.server_for(PYTHON, {**stand_in, "XSOVML_": "1"}) is not other


def test_what_checkov_prints_at_import_never_reaches_the_protocol(
    stand_in: dict[str, str], tmp_path: Path
) -> None:
    main = Path(stand_in["PYTHONPATH"]) / "checkov" / "main.py"
    main.write_text('print("noise at import"); print("{}")\n' + main.read_text())
    server = cl.server_for(PYTHON, stand_in)
    rc, out, _ = _run(server, ["echo"], tmp_path, stand_in).result(60)
    assert rc == 0 and json.loads(out)["argv"] == ["echo"]
    assert "noise at import" in (server.folder / "server.log").read_text()


def test_a_server_speaking_outside_the_protocol_fails_its_scans(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'not json'\nexec sleep 120\n")
    python.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", "")}
    server = cl.server_for(python, env)
    with pytest.raises(cl.ForkServerError):  # refused at start, or failed once started
        server.start("checkov", ["echo"], tmp_path, env).result(30)
    server._reader.join(30)
    assert server.dead is not None and server.dead.startswith("checkov fork server exited -9")


def test_a_server_that_cannot_start_leaves_the_scan_to_a_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path / "tmp"  # this test's own: other workers' servers live in /tmp
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    python = tmp_path / "python"
    python.write_text("not executable")  # a file, so forkable() holds; starting it fails
    scan = cl.launch(["/bin/echo", "fell back"], dict(os.environ), tmp_path, python)
    assert isinstance(scan, cl.ProcessScan) and scan.result(30) == (0, "fell back\n", "")
    assert not cl._servers and not list(temporary.iterdir())


def test_scans_run_as_processes_when_forking_is_off(
    stand_in: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = ["/bin/echo", "as a process"]
    assert isinstance(cl.launch(command, stand_in, tmp_path, None), cl.ProcessScan)
    off = {**stand_in, cl.DISABLE_ENV: "0"}
    scan = cl.launch(command, off, tmp_path, PYTHON)
    assert isinstance(scan, cl.ProcessScan) and scan.result(30) == (0, "as a process\n", "")
    assert isinstance(cl.launch(command, stand_in, tmp_path, tmp_path / "no-python"),
                      cl.ProcessScan)  # fmt: skip
    monkeypatch.setattr(sys, "platform", "darwin")
    assert isinstance(cl.launch(command, stand_in, tmp_path, PYTHON), cl.ProcessScan)
    assert not cl._servers


def test_a_process_scan_past_its_timeout_is_killed(tmp_path: Path) -> None:
    scan = cl.ProcessScan(["/bin/sleep", "120"], dict(os.environ), tmp_path)
    with pytest.raises(cl.ScanTimeoutError):
        scan.result(0.3)
    assert scan.proc.returncode == -signal.SIGKILL


class _Failing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self, timeout: float) -> tuple[int, str, str]:
        raise self.error

    def kill(self) -> None:
        """Nothing runs."""


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (cl.ScanTimeoutError(), "checkov kubernetes ran over 5s"),
        (cl.ForkServerError("checkov fork server exited -9: x"), "fork server exited -9"),
    ],
)
def test_the_gate_reports_a_lost_scan_as_a_checkov_error(error: Exception, message: str) -> None:
    run = cr.FrameworkRun(framework="kubernetes", target=Path("k8s"), ran=True)
    with pytest.raises(cr.CheckovError, match=message):
        cr._wait(run, _Failing(error), 5)


# --- faithful: the real checkov -----------------------------------------------------------------
@pytest.mark.skipif(not cr.CHECKOV.is_file(), reason="needs .venv-checkov (make setup)")
def test_forked_scans_find_what_a_process_per_scan_finds(
    tmp_path: Path, stack_records: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """prod-uae's plan and manifests (the most resources and checks of the example stacks):
    forked and as processes, the same findings, resources and parse errors. (Not the same bytes:
    two fresh processes already order checkov's graph results differently.)"""
    build = tmp_path / "prod-uae"
    cr.write_scan_inputs(stack_records["prod-uae"], build)
    kinds: list[type] = []
    real_launch = cr.launch

    def spy(*args: Any) -> Any:
        scan = real_launch(*args)
        kinds.append(type(scan))
        return scan

    monkeypatch.setattr(cr, "launch", spy)
    forked = cr.run_checkov(build)
    monkeypatch.setenv(cl.DISABLE_ENV, "0")
    plain = cr.run_checkov(build)
    assert kinds == [cl.ForkedScan] * 2 + [cl.ProcessScan] * 2

    def seen(report: cr.CheckovReport) -> list[Any]:
        return [
            (r.framework, r.ran, r.resource_count, r.parsing_errors, r.command,
             sorted(json.dumps(asdict(f), sort_keys=True) for f in r.findings))
            for r in report.runs
        ]  # fmt: skip

    assert seen(forked) == seen(plain)
    assert all(r.ran and r.findings for r in forked.runs)
