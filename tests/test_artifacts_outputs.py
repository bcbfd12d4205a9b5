"""Outputs that never destroy: what ``--force`` may replace, private temporaries, stale ones,
and inputs that are FIFOs or devices (refused at once, never a blocking read)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines import artifacts as art
from tests.artifact_helpers import (  # noqa: F401 - fixtures
    CHUNK,
    REPO_ROOT,
    fixture_encrypted_file,
    fixture_keys,
    fixture_model_repo,
    leftovers,
    run_cli,
    snapshot,
    tree,
    write_random,
)

# ------------------------------------------------------------------ the two cases of the issue


def test_encrypt_into_the_folder_holding_the_input_is_refused(
    tmp_path: Path, keys: art.LocalKeyFile
) -> None:
    """``encrypt D/model -o D --force`` used to replace D whole: its other files and the input."""
    d = tmp_path / "D"
    write_random(d / "model" / "weights.bin", 3 * CHUNK)
    (d / "notes.txt").write_text("other work")
    before = snapshot(tmp_path)
    with pytest.raises(art.UnsafeDestinationError, match="contains the input"):
        art.encrypt_path(d / "model", keys, out=d, overwrite=True)
    code, out = run_cli("encrypt", str(d / "model"), "-o", str(d), "--force", "-k", str(keys.path))
    assert code == 2 and out.startswith("error: ") and "contains the input" in out, out
    assert out.count("\n") == 1
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_decrypt_into_the_parent_of_the_artifact_is_refused(
    tmp_path: Path, model_repo: Path, kind: str
) -> None:
    """``decrypt X.enc -o <parent> --force`` used to delete the siblings, the ciphertext and the
    local key file (then fail, saying the key file was missing)."""
    parent = tmp_path / "work"
    keys = art.LocalKeyFile.create(parent / "kek.json")
    (parent / "sibling.txt").parent.mkdir(exist_ok=True)
    (parent / "sibling.txt").write_text("keep me")
    if kind == "folder":
        art.encrypt_path(model_repo, keys, out=parent / "X.enc", chunk_size=CHUNK)
    else:
        write_random(tmp_path / "x.bin", 2 * CHUNK)
        art.encrypt_path(tmp_path / "x.bin", keys, out=parent / "X.enc", chunk_size=CHUNK)
    before = snapshot(tmp_path)
    expected = "contains the encrypted artifact"
    with pytest.raises(art.UnsafeDestinationError, match=expected):
        art.decrypt_path(parent / "X.enc", keys, out=parent, overwrite=True)
    code, out = run_cli(
        "decrypt", str(parent / "X.enc"), "-o", str(parent), "--force", "-k", str(keys.path)
    )
    assert code == 2 and expected in out and out.count("\n") == 1, out
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- what --force may replace


def test_force_replaces_an_earlier_encrypted_folder_only(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    out = tmp_path / "repo.enc"
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    first = art.locate(out).manifest.artifact["id"]
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK, overwrite=True)  # an earlier output
    assert art.locate(out).manifest.artifact["id"] != first
    (out / "mine.txt").write_text("not the tool's")
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    before = snapshot(tmp_path)
    with pytest.raises(art.UnsafeDestinationError, match=r"holds 'mine.txt'"):
        art.encrypt_path(model_repo, keys, chunk_size=CHUNK, overwrite=True)
    with pytest.raises(art.UnsafeDestinationError, match=r"no valid sovml-manifest\.json"):
        art.encrypt_path(model_repo, keys, out=other, overwrite=True)
    with pytest.raises(art.UnsafeDestinationError, match="the key file"):
        art.encrypt_path(model_repo, keys, out=keys.path.parent, overwrite=True)
    assert snapshot(tmp_path) == before


def test_force_replaces_an_earlier_decrypt_output_only(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    enc = tmp_path / "repo.enc"
    out = tmp_path / "restored"
    art.decrypt_path(enc, keys, out=out)
    (out / "resnet" / "config.pbtxt").write_text("edited by hand: still one of its files")
    art.decrypt_path(enc, keys, out=out, overwrite=True)
    assert tree(out) == tree(model_repo)
    (out / "resnet" / "1" / "extra.bin").write_text("unrelated")
    os.symlink(out, tmp_path / "link")
    before = snapshot(tmp_path)
    with pytest.raises(art.UnsafeDestinationError, match=r"holds 'resnet/1/extra.bin'"):
        art.decrypt_path(enc, keys, out=out, overwrite=True)
    with pytest.raises(art.UnsafeDestinationError, match="is inside the encrypted artifact"):
        art.decrypt_path(enc, keys, out=enc / "resnet", overwrite=True)
    with pytest.raises(art.UnsafeDestinationError, match="contains the key file"):
        art.decrypt_path(enc, keys, out=keys.path.parent, overwrite=True)
    with pytest.raises(art.UnsafeDestinationError, match="symbolic link"):
        art.decrypt_path(enc, keys, out=tmp_path / "link", overwrite=True)
    assert snapshot(tmp_path) == before


def test_force_on_single_files(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    enc, data = encrypted_file
    before = snapshot(tmp_path)
    for target, why in [
        (enc, "is the encrypted artifact"),
        (enc.with_name(enc.name + art.MANIFEST_SUFFIX), "is the manifest"),
        (keys.path, "is the key file"),
    ]:
        with pytest.raises(art.UnsafeDestinationError, match=why):
            art.decrypt_path(enc, keys, out=target, overwrite=True)
    write_random(tmp_path / "other.bin", 100)
    art.encrypt_path(tmp_path / "other.bin", keys)
    with pytest.raises(art.UnsafeDestinationError, match="encrypted artifact or manifest"):
        art.decrypt_path(enc, keys, out=tmp_path / "other.bin.enc", overwrite=True)
    (tmp_path / "plain.txt").write_text("an earlier plaintext: replaceable")
    art.decrypt_path(enc, keys, out=tmp_path / "plain.txt", overwrite=True)
    assert (tmp_path / "plain.txt").read_bytes() == data

    src = tmp_path / "src.bin"
    write_random(src, 10)
    with pytest.raises(art.UnsafeDestinationError, match="is the input"):
        art.encrypt_path(src, keys, out=src, overwrite=True)
    with pytest.raises(art.UnsafeDestinationError, match="not one: it is not an encrypted file"):
        art.encrypt_path(src, keys, out=tmp_path / "plain.txt", overwrite=True)
    art.encrypt_path(src, keys, out=tmp_path / "other.bin.enc", overwrite=True)
    assert art.locate(tmp_path / "other.bin.enc").manifest.files[0].path == "src.bin"
    assert {k for k in snapshot(tmp_path)} >= {k for k in before}


# ------------------------------------------------------------------------------ temporaries


def test_plaintext_is_private_while_it_is_written(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    seen: list[tuple[str, int, int]] = []

    def look(_: int) -> None:
        for temp in tmp_path.glob(".restored.*.sovml-tmp"):
            for f in temp.rglob("*"):
                if f.is_file():
                    seen.append((temp.name, stat.S_IMODE(temp.stat().st_mode), f.stat().st_mode))

    art.decrypt_path(tmp_path / "repo.enc", keys, out=tmp_path / "restored", progress=look)
    assert seen, "the progress callback saw the temporary folder"
    for name, dir_mode, file_mode in seen:
        assert name.startswith(f".restored.{os.getpid()}.") and dir_mode == 0o700
        # 0600 while being written; its own mode (from the manifest) only once complete.
        assert stat.S_IMODE(file_mode) in (0o600, 0o644, 0o755 & ~0o022), oct(file_mode)
    assert leftovers(tmp_path) == []


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pipelines.artifacts import fs
    with fs.private_temp_dir(Path(sys.argv[1])) as tmp:
        (tmp / "partial").write_bytes(b"secret plaintext")
        print(tmp, flush=True)
        time.sleep(60)
    """)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[Path], tuple[subprocess.Popen[str], Path]]]:
    """Start processes that hold a private temp folder beside a path (stopped afterwards)."""
    procs: list[subprocess.Popen[str]] = []

    def start(beside: Path) -> tuple[subprocess.Popen[str], Path]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(beside)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        procs.append(proc)
        assert proc.stdout is not None
        return proc, Path(proc.stdout.readline().strip())

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_stale_temporaries_are_removed_only_when_their_process_is_gone(
    tmp_path: Path,
    keys: art.LocalKeyFile,
    holder: Callable[..., tuple[subprocess.Popen[str], Path]],
) -> None:
    art.encrypt_path(write_random_file(tmp_path / "m.bin"), keys, chunk_size=CHUNK)
    alive_proc, alive = holder(tmp_path / "other")
    dead_proc, dead = holder(tmp_path / "out.bin")
    dead_proc.kill()  # SIGKILL: no clean-up ran, the partial plaintext is still there
    dead_proc.wait()
    assert (dead / "partial").read_bytes() == b"secret plaintext"
    old_style = tmp_path / ".out.bin.x1y2z3.sovml-tmp"  # an earlier version's, never locked
    old_style.write_bytes(b"old partial plaintext")
    unrelated = tmp_path / ".cache"
    unrelated.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("x")
    os.symlink(elsewhere, tmp_path / ".trap.sovml-tmp")

    art.decrypt_path(tmp_path / "m.bin.enc", keys, out=tmp_path / "out.bin")

    assert not dead.exists() and not old_style.exists()
    assert (alive / "partial").exists(), "a temp folder of a running process is left alone"
    assert alive_proc.poll() is None
    assert unrelated.is_dir() and (elsewhere / "precious").exists()
    assert (tmp_path / ".trap.sovml-tmp").is_symlink()


def write_random_file(path: Path) -> Path:
    """``write_random`` for a few chunks; returns the path."""
    write_random(path, 3 * CHUNK + 1)
    return path


# ---------------------------------------------------------------- FIFOs, devices, sockets


def _unblock_after(fifo: Path, seconds: float) -> threading.Timer:
    """If something blocks opening ``fifo`` for reading, open it for writing later (the test
    then fails on time instead of hanging the run)."""

    def unblock() -> None:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return  # no reader is waiting: nothing hangs
        os.close(fd)

    timer = threading.Timer(seconds, unblock)
    timer.daemon = True
    timer.start()
    return timer


def _quick(fn: Callable[[], object], fifo: Path) -> float:
    timer = _unblock_after(fifo, 10)
    started = time.monotonic()
    try:
        fn()
    finally:
        timer.cancel()
    return time.monotonic() - started


def test_fifo_as_key_file_manifest_ciphertext_or_input_is_refused_at_once(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    enc, _ = encrypted_file
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def refused(fn: Callable[[], object], error: type[Exception], match: str) -> None:
        def call() -> None:
            with pytest.raises(error, match=match):
                fn()

        assert _quick(call, fifo) < 5

    refused(lambda: art.LocalKeyFile(fifo), art.KeyServiceError, "a FIFO")
    refused(
        lambda: art.decrypt_path(enc, keys, out=fifo, overwrite=True),
        art.UnsafeDestinationError,
        "device, FIFO or socket",
    )
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    refused(lambda: art.encrypt_path(fifo, keys), art.ArtifactError, "only regular files")
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    refused(lambda: art.encrypt_path(folder, keys), art.ArtifactError, "a FIFO")

    manifest = enc.with_name(enc.name + art.MANIFEST_SUFFIX)
    manifest.rename(tmp_path / "manifest.saved")
    os.mkfifo(manifest)
    refused(lambda: art.decrypt_path(enc, keys), art.ManifestError, "a FIFO")
    manifest.unlink()
    (tmp_path / "manifest.saved").rename(manifest)
    enc.rename(tmp_path / "enc.saved")
    os.mkfifo(enc)
    refused(lambda: art.decrypt_path(enc, keys), art.IntegrityError, "a FIFO")
    refused(lambda: art.LocalKeyFile("/dev/zero"), art.KeyServiceError, "a device")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        refused(lambda: art.LocalKeyFile(tmp_path / "sock"), art.KeyServiceError, "a socket")


def test_cli_with_a_fifo_as_key_path_exits_3_at_once(tmp_path: Path, model_repo: Path) -> None:
    """The issue's hang, as a real process: the key path is a FIFO nobody writes to."""
    fifo = tmp_path / "key-fifo"
    os.mkfifo(fifo)
    timer = _unblock_after(fifo, 30)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "from infra.cli.app import main; main()",
                "artifact",
                "encrypt",
                str(model_repo),
                "--key",
                str(fifo),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            check=False,
        )
    finally:
        timer.cancel()
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error: ") and "a FIFO" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "repo.enc").exists()


def test_a_destination_that_changes_while_writing_is_checked_again(
    tmp_path: Path, keys: art.LocalKeyFile, model_repo: Path
) -> None:
    """The destination is checked before writing and again before the rename: what appeared or
    changed meanwhile is neither overwritten nor (with --force) replaced unless recognised."""
    art.encrypt_path(model_repo, keys, chunk_size=CHUNK)
    enc, out = tmp_path / "repo.enc", tmp_path / "restored"

    def appear(_: int) -> None:
        out.mkdir(exist_ok=True)
        (out / "someone-else.txt").write_text("written meanwhile")

    with pytest.raises(art.ArtifactError, match="destination exists"):
        art.decrypt_path(enc, keys, out=out, progress=appear)
    assert (out / "someone-else.txt").read_text() == "written meanwhile"
    with pytest.raises(art.UnsafeDestinationError, match=r"someone-else\.txt"):
        art.decrypt_path(enc, keys, out=out, overwrite=True, progress=appear)
    assert sorted(p.name for p in out.iterdir()) == ["someone-else.txt"]
    assert leftovers(tmp_path) == []
