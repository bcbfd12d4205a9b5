"""``sovml artifact``: the commands end to end, and their one-line failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import artifacts as art
from tests.artifact_helpers import (  # noqa: F401 - fixtures
    fixture_encrypted_file,
    fixture_keys,
    fixture_model_repo,
    flip,
    run_cli,
    tree,
)

# ------------------------------------------------------------------------------------- CLI


def test_cli_local_round_trip_rotate_rewrap(tmp_path: Path, model_repo: Path) -> None:
    key = str(tmp_path / "cli-kek.json")
    code, out = run_cli("encrypt", str(model_repo), "--key", key, "--chunk-size", "4KiB")
    assert code == 0, out
    assert "encrypted 5 file(s)" in out and "created local key file" in out
    code, out = run_cli(
        "decrypt", str(tmp_path / "repo.enc"), "--key", key, "-o", str(tmp_path / "a")
    )
    assert code == 0, out
    assert tree(tmp_path / "a") == tree(model_repo)
    code, out = run_cli("rotate-key", "--key", key)
    assert code == 0 and "newest version 2" in out, out
    code, out = run_cli("rewrap", str(tmp_path / "repo.enc"), "--key", key, "--json")
    assert code == 0, out
    assert {(f["previous_version"], f["key_version"]) for f in json.loads(out)["files"]} == {(1, 2)}
    code, out = run_cli(
        "decrypt", str(tmp_path / "repo.enc"), "--key", key, "-o", str(tmp_path / "b")
    )
    assert code == 0, out
    assert tree(tmp_path / "b") == tree(model_repo)


def _one_error_line(out: str) -> str:
    """The output must be exactly one ``error:`` line; returns it."""
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    return lines[0]


def test_cli_failures_are_one_line_messages_with_their_exit_code(
    tmp_path: Path, keys: art.LocalKeyFile, encrypted_file: tuple[Path, bytes]
) -> None:
    """2 for bad input (tampered data, a wrong key or backend, a missing input), 3 for the
    environment (an unusable key file), never 1: these commands have no negative outcome."""
    enc, _ = encrypted_file
    key = str(keys.path)
    flip(enc, 60)
    code, out = run_cli("decrypt", str(enc), "--key", key)
    assert code == 2 and "failed authentication" in _one_error_line(out)
    assert not (tmp_path / "model.bin").exists()
    flip(enc, 60)

    code, out = run_cli("decrypt", str(tmp_path / "nothing.enc"), "--key", key)
    assert code == 2 and "manifest not found" in _one_error_line(out)

    other = art.LocalKeyFile.create(tmp_path / "other.json")
    code, out = run_cli("decrypt", str(enc), "--key", str(other.path))
    assert code == 2 and "wrong key" in _one_error_line(out)

    code, out = run_cli("decrypt", str(enc), "--backend", "kms")
    assert code == 2 and "encrypted with the local backend" in _one_error_line(out)

    code, out = run_cli("encrypt", str(tmp_path / "missing"), "--key", key)
    assert code == 2 and "no such file" in _one_error_line(out)

    code, out = run_cli("encrypt", str(tmp_path / "missing"), "-b", "vault", "-k", "../x")
    assert code == 2, out  # the input is checked first; a bad key name is an input error too
    (tmp_path / "in.txt").write_text("x")
    code, out = run_cli("encrypt", str(tmp_path / "in.txt"), "-b", "vault", "-k", "../../sys/seal")
    assert code == 2 and "is not allowed" in _one_error_line(out)
    code, out = run_cli("rotate-key", "-b", "vault", "--vault-mount", "transit/../sys")
    assert code == 2 and "transit mount" in _one_error_line(out)

    keys.path.chmod(0o644)
    code, out = run_cli("decrypt", str(enc), "--key", key)
    assert code == 3 and "chmod 600" in _one_error_line(out)

    for command in ("encrypt", "decrypt", "rewrap", "rotate-key"):
        code, out = run_cli(command, "--help")
        assert code == 0 and "--backend" in out and "--key" in out


def test_cli_local_key_file_from_the_environment(tmp_path: Path, model_repo: Path) -> None:
    env = {"SOVML_ARTIFACT_KEY": str(tmp_path / "env-kek.json")}
    code, out = run_cli("encrypt", str(model_repo), "--json", env=env)
    assert code == 0, out
    notice, _, body = out.partition("\n")
    assert notice.startswith("created local key file") and "Back it up" in notice
    report = json.loads(body)
    assert report["operation"] == "encrypt" and report["backend"] == "local"
    assert report["key"] == art.LocalKeyFile(tmp_path / "env-kek.json").name
    assert set(report) == {
        "operation",
        "source",
        "destination",
        "manifest",
        "backend",
        "key",
        "files",
        "bytes",
        "seconds",
        "mb_per_s",
    }
    code, out = run_cli("decrypt", str(tmp_path / "repo.enc"), "-o", str(tmp_path / "a"), env=env)
    assert code == 0 and "created local key file" not in out, out
    assert tree(tmp_path / "a") == tree(model_repo)


def test_cli_key_service_options_reach_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str | None, dict[str, object]]] = []

    def fake(backend: str, key: str | None = None, **options: object) -> art.KeyService:
        seen.append((backend, key, options))
        raise art.KeyServiceError("stop here")

    monkeypatch.setattr(art, "open_key_service", fake)
    code, out = run_cli(
        "rotate-key",
        "--backend",
        "vault",
        "--vault-mount",
        "m",
        "--vault-role",
        "r",
        "--vault-auth-mount",
        "a",
        env={"SOVML_ARTIFACT_KEY": "/keys/k.json"},
    )
    assert code == 3 and "error: stop here" in out
    assert seen == [
        (
            "vault",
            None,
            {
                "local_key_file": "/keys/k.json",
                "vault_mount": "m",
                "vault_role": "r",
                "vault_auth_mount": "a",
                "region": None,
            },
        )
    ]
    code, out = run_cli("rotate-key", "--region", "me-central-1", env={"SOVML_VAULT_ROLE": "pod"})
    assert seen[-1][0] == "local" and seen[-1][2]["region"] == "me-central-1"
    assert seen[-1][2]["vault_role"] == "pod" and seen[-1][2]["vault_mount"] == "transit"
