"""A decrypt stopped by a signal leaves no plaintext: real ``sovml`` processes, real signals.

A 200 MB artifact is decrypted by the installed command; once partial plaintext is on disk the
test sends SIGTERM (what Kubernetes and CI send), SIGINT (Ctrl-C) or SIGKILL. After SIGTERM and
SIGINT the process must have removed its temporary folder and died of the signal; after SIGKILL
the folder stays (nothing can run) and the next run in the same folder removes it.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import artifacts as art
from tests.artifact_helpers import REPO_ROOT, snapshot

SIZE = 200 * 1_000_000
"""Plaintext bytes: large enough that a decrypt takes a while even on a fast machine."""
SIGINT_AS_STARTED = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
"""What Python does at start-up when SIGINT is not ignored."""
SEEN_BYTES = 8 << 20
"""Partial plaintext on disk before the signal is sent (the decrypt is then surely under way)."""


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(encrypted artifact, key file)`` of 200 MB of random data; the plaintext is deleted."""
    root = tmp_path_factory.mktemp("big")
    keys = art.LocalKeyFile.create(root / "keys" / "kek.json")
    src = root / "model.safetensors"
    with open(src, "wb") as fh:
        for _ in range(SIZE // (8 << 20)):
            fh.write(os.urandom(8 << 20))
        fh.write(os.urandom(SIZE % (8 << 20)))
    art.encrypt_path(src, keys, out=root / "in" / "model.safetensors.enc")
    src.unlink()
    return root / "in" / "model.safetensors.enc", keys.path


def _start(enc: Path, key: Path, out: Path) -> subprocess.Popen[str]:
    """``sovml artifact decrypt`` as its own process (stderr captured)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            # SIGINT as a shell's foreground command has it (Python's KeyboardInterrupt handler):
            # this test process may have been started with SIGINT ignored (a background job, a
            # CI runner), which a child inherits and the command then rightly keeps ignoring.
            f"{SIGINT_AS_STARTED}from infra.cli.app import main; main()",
            "artifact",
            "decrypt",
            str(enc),
            "--key",
            str(key),
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def _wait_for_partial_plaintext(proc: subprocess.Popen[str], folder: Path) -> Path:
    """Poll until a temp folder in ``folder`` holds SEEN_BYTES of plaintext; returns that file.

    Also asserts what an onlooker could see meanwhile: a 0700 folder and a 0600 file.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the decrypt ended before it could be stopped: {proc.stderr}"
        for temp in folder.glob(".*.sovml-tmp"):
            partial = temp / "plaintext"
            try:
                if partial.stat().st_size >= SEEN_BYTES:
                    assert stat.S_IMODE(temp.stat().st_mode) == 0o700
                    assert stat.S_IMODE(partial.stat().st_mode) == 0o600
                    return partial
            except FileNotFoundError:
                continue
        time.sleep(0.002)
    raise AssertionError("no partial plaintext appeared within 120 s")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_leave_no_plaintext(
    big: tuple[Path, Path], tmp_path: Path, sig: signal.Signals
) -> None:
    enc, key = big
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = snapshot(tmp_path)
    proc = _start(enc, key, out_dir / "model.safetensors")
    _wait_for_partial_plaintext(proc, out_dir)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    # Documented: the process dies of the signal itself (a shell shows 128 + N: 143, 130).
    assert proc.returncode == -sig, (proc.returncode, stderr)
    assert stderr.strip() == (
        f"error: interrupted by {sig.name}; no partial output was left behind"
    )
    assert snapshot(tmp_path) == before, "no plaintext byte left anywhere beside the destination"


@pytest.mark.slow
def test_sigkill_leaves_a_temp_folder_that_the_next_run_removes(
    big: tuple[Path, Path], tmp_path: Path
) -> None:
    enc, key = big
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(enc, key, out_dir / "model.safetensors")
    partial = _wait_for_partial_plaintext(proc, out_dir)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # What SIGKILL leaves (the README says so): the private temp folder beside the destination.
    assert partial.exists() and partial.stat().st_size >= SEEN_BYTES
    assert [p.name for p in out_dir.iterdir()] == [partial.parent.name]

    again = _start(enc, key, out_dir / "model.safetensors")
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.safetensors"]
    assert (out_dir / "model.safetensors").stat().st_size == SIZE


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_in_process_the_signal_goes_on_to_the_previous_handler(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A library caller's own handler still gets the signal, after the clean-up, and is back in
    place afterwards; the operation reports that it did not complete."""
    keys = art.LocalKeyFile.create(tmp_path / "kek.json")
    (tmp_path / "m.bin").write_bytes(os.urandom(64 * 4096))
    art.encrypt_path(tmp_path / "m.bin", keys, chunk_size=4096)
    received: list[int] = []

    def mine(signum: int, frame: object) -> None:
        received.append(signum)

    def stop_midway(_: int) -> None:
        if not received and len(list(tmp_path.glob(".out.bin.*.sovml-tmp"))) == 1:
            os.kill(os.getpid(), sig)

    previous = signal.signal(sig, mine)
    try:
        with pytest.raises(art.Interrupted):
            art.decrypt_path(
                tmp_path / "m.bin.enc", keys, out=tmp_path / "out.bin", progress=stop_midway
            )
        assert received == [sig]
        assert signal.getsignal(sig) is mine
    finally:
        signal.signal(sig, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kek.json",
        "m.bin",
        "m.bin.enc",
        "m.bin.enc.manifest.json",
    ]


@pytest.fixture
def sigint_as_started() -> Iterator[None]:
    """SIGINT handled as in a process a shell started in the foreground, restored afterwards.

    Whether the test process ignores SIGINT depends on how it was started (ignored in a
    background job) and, before this fixture, on which tests ran earlier in the same worker (an
    in-process ``sovml serve`` installed Python's handler): the SIGINT tests failed only when
    the suite was started in the background and no serve test had run on their worker.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_in_process_an_ignored_sigint_stays_ignored(tmp_path: Path) -> None:
    """As under a background shell: the decrypt neither stops nor takes the signal over."""
    keys = art.LocalKeyFile.create(tmp_path / "kek.json")
    (tmp_path / "m.bin").write_bytes(os.urandom(64 * 4096))
    art.encrypt_path(tmp_path / "m.bin", keys, chunk_size=4096)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        art.decrypt_path(
            tmp_path / "m.bin.enc",
            keys,
            out=tmp_path / "out.bin",
            progress=lambda _: os.kill(os.getpid(), signal.SIGINT),
        )
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (tmp_path / "out.bin").read_bytes() == (tmp_path / "m.bin").read_bytes()


@pytest.mark.usefixtures("sigint_as_started")
def test_in_process_sigint_becomes_keyboardinterrupt_after_the_clean_up(tmp_path: Path) -> None:
    keys = art.LocalKeyFile.create(tmp_path / "kek.json")
    (tmp_path / "m.bin").write_bytes(os.urandom(64 * 4096))
    art.encrypt_path(tmp_path / "m.bin", keys, chunk_size=4096)
    with pytest.raises(KeyboardInterrupt):
        art.decrypt_path(
            tmp_path / "m.bin.enc",
            keys,
            out=tmp_path / "out.bin",
            progress=lambda _: os.kill(os.getpid(), signal.SIGINT),
        )
    assert not (tmp_path / "out.bin").exists() and not list(tmp_path.glob(".*sovml*"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
