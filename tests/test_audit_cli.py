"""``sovml audit verify|show``, and the commands that record events: drift, the drift job,
artifact encrypt/rewrap, abtest (without Triton), pipeline run (an unwritable log)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from infra.cli.app import app
from pipelines.audit import log as audit
from pipelines.audit.verify import verify

runner = CliRunner()


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own lifecycle log, as every recorder finds it."""
    path = tmp_path / "audit" / "lifecycle.jsonl"
    monkeypatch.setenv("SOVML_AUDIT_LOG", str(path))
    return path


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _sovml(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


# ------------------------------------------------------------------------------- audit verify


def test_verify_intact_prints_count_and_head(log: Path) -> None:
    made = [audit.append("model.approved", f"m v{i}") for i in range(3)]
    code, out, err = _sovml("audit", "verify")
    assert (code, err) == (0, "")
    assert f"intact: 3 entries, head {made[-1]['hash']}" in out
    code, out, _ = _sovml("audit", "verify", "--log", log, "--json", "--head", made[0]["hash"])
    body = json.loads(out)
    assert code == 0 and body["intact"] and body["entries"] == 3 and body["broken"] is None


def test_verify_names_the_first_broken_entry_and_exits_1(log: Path) -> None:
    for i in range(4):
        audit.append("model.approved", f"m v{i}")
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([lines[0], lines[2], lines[1], lines[3]]))
    code, out, err = _sovml("audit", "verify")
    assert (code, err) == (1, "")
    assert "BROKEN at entry 1 (line 2, holds seq 2): reordered: entry 1 comes later" in out
    code, out, _ = _sovml("audit", "verify", "--json")
    assert code == 1
    assert json.loads(out)["broken"] == {
        "seq": 1,
        "line": 2,
        "reason": "reordered",
        "detail": "entry 1 comes later in the file",
        "found": 2,
        "key": None,
    }


def test_verify_a_kept_head_not_in_the_chain_exits_1(log: Path) -> None:
    audit.append("model.approved", "m v1")
    code, out, _ = _sovml("audit", "verify", "--head", "A" * 64)
    assert code == 1 and "truncated: the kept head " + "a" * 64 in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log", "{tmp}/none.jsonl"], "error: --log {tmp}/none.jsonl: no such file"),
        (["--log", "{tmp}"], "error: --log {tmp}: not a regular file"),
        (["--head", "abc"], "error: --head 'abc': not a SHA-256 (64 hexadecimal digits)"),
        (["--head", "g" * 64], "not a SHA-256"),
    ],
)
def test_verify_bad_input_exits_2(log: Path, tmp_path: Path, args: list[str], message: str) -> None:
    audit.append("model.approved", "m v1")
    code, out, err = _sovml("audit", "verify", *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and out == ""
    assert message.format(tmp=tmp_path) in err and err.count("\n") == 1


def test_verify_an_unreadable_log_exits_2(log: Path) -> None:
    audit.append("model.approved", "m v1")
    log.chmod(0)
    try:
        code, _, err = _sovml("audit", "verify")
    finally:
        log.chmod(0o600)
    if code == 0:  # running as root: permissions do not apply
        pytest.skip("root reads any file")
    assert code == 2 and "Permission denied" in err


# --------------------------------------------------------------------------------- audit show


def test_show_filters_and_prints_a_table(log: Path) -> None:
    audit.append("model.registered", "credit_risk v1", details={"auc": 0.81})
    audit.append("model.promoted", "credit_risk v1", details={"reason": "passed"})
    audit.append("model.registered", "other v1")
    code, out, _ = _sovml("audit", "show", "--event", "model.registered", "--subject", "credit")
    assert code == 0
    assert "credit_risk v1" in out and "auc=0.81" in out and "other v1" not in out
    assert "model.promoted" not in out
    code, out, _ = _sovml("audit", "show", "--last", "1", "--json")
    assert code == 0 and [e["subject"] for e in json.loads(out)] == ["other v1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--event", "model.deleted"], "error: --event 'model.deleted': choose one of"),
        (["--last", "0"], "error: --last 0: must be 1 or more"),
        (["--log", "/nonexistent/l.jsonl"], "error: --log /nonexistent/l.jsonl: no such file"),
    ],
)
def test_show_bad_input_exits_2(log: Path, args: list[str], message: str) -> None:
    audit.append("model.approved", "m v1")
    code, out, err = _sovml("audit", "show", *args)
    assert code == 2 and out == "" and message in err


# ----------------------------------------------------------------------------- drift commands


@pytest.fixture
def drift_files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 2000)})
    cur = pd.DataFrame({"a": rng.normal(1.5, 1, 1000)})
    paths = {"ref": tmp_path / "ref.csv", "cur": tmp_path / "cur.csv"}
    ref.to_csv(paths["ref"], index=False)
    cur.to_csv(paths["cur"], index=False)
    return paths


def test_drift_records_its_decision(
    log: Path, drift_files: dict[str, Path], tmp_path: Path
) -> None:
    html = tmp_path / "r.html"
    code, out, _ = _sovml("drift", drift_files["ref"], drift_files["cur"], "--html", html)
    assert code == 1 and "retrain" in out
    (entry,) = _entries(log)
    assert entry["event"] == "drift.decided" and entry["subject"] == "cur.csv"
    assert entry["details"]["retrain"] is True and entry["details"]["drifted"] == "a"
    assert entry["outputs"]["report"]["sha256"] == audit.digest_ref(html)["sha256"]
    assert verify(log).intact


def test_drift_fails_with_3_when_the_decision_cannot_be_recorded(
    drift_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("SOVML_AUDIT_LOG", str(tmp_path / "file" / "l.jsonl"))
    code, out, err = _sovml(
        "drift", drift_files["ref"], drift_files["cur"], "--html", tmp_path / "r.html"
    )
    assert code == 3 and "retrain" not in out
    assert (
        f"error: cannot record the decision: cannot open the lifecycle log {tmp_path}/file/l.jsonl"
        in err
    )


def test_the_drift_job_records_the_decision_then_the_retraining(log: Path, tmp_path: Path) -> None:
    from kernels.drift import build_profile
    from pipelines.monitoring import drift_job

    rng = np.random.default_rng(0)
    build_profile(rng.normal(size=(3000, 1)), ("a",)).save(tmp_path / "p.npz")
    pd.DataFrame({"a": rng.normal(2.0, 1, 1000)}).to_csv(tmp_path / "w.csv", index=False)
    calls: list[tuple[str, ...]] = []
    drift_job.run(
        "credit-risk",
        str(tmp_path / "p.npz"),
        str(tmp_path / "w.csv"),
        0.2,
        kfp_endpoint="http://kfp",
        submit=lambda *a: calls.append(a),
    )
    assert calls
    decided, submitted = _entries(log)
    assert (decided["event"], decided["details"]["retrain"]) == ("drift.decided", True)
    assert submitted["event"] == "retraining.submitted"
    assert submitted["details"] == {
        "pipeline": "training",
        "endpoint": "http://kfp",
        "automated": True,
        "trigger": "drift.decided",
    }


def test_the_drift_job_submits_nothing_when_it_cannot_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kernels.drift import build_profile
    from pipelines.monitoring import drift_job

    rng = np.random.default_rng(0)
    build_profile(rng.normal(size=(3000, 1)), ("a",)).save(tmp_path / "p.npz")
    pd.DataFrame({"a": rng.normal(2.0, 1, 1000)}).to_csv(tmp_path / "w.csv", index=False)
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("SOVML_AUDIT_LOG", str(tmp_path / "file" / "l.jsonl"))
    calls: list[object] = []
    monkeypatch.setattr(drift_job, "submit_retraining", lambda *a: calls.append(a))
    argv = ["--model", "m", "--reference", str(tmp_path / "p.npz")]
    argv += ["--window", str(tmp_path / "w.csv"), "--kfp-endpoint", "http://kfp"]
    code = drift_job.main(argv)
    assert code == 1 and not calls
    assert "drift-job: cannot open the lifecycle log" in capsys.readouterr().err


# --------------------------------------------------------------------------- artifact commands


def test_artifact_encrypt_and_rewrap_are_recorded(log: Path, tmp_path: Path) -> None:
    plain = tmp_path / "model.bin"
    plain.write_bytes(b"weights" * 100)
    key = tmp_path / "key.json"
    code, _, err = _sovml("artifact", "encrypt", plain, "--key", key)
    assert code == 0, err
    code, _, err = _sovml("artifact", "rotate-key", "--key", key)
    assert code == 0, err
    code, _, err = _sovml("artifact", "rewrap", f"{plain}.enc", "--key", key)
    assert code == 0, err
    encrypted, rewrapped = _entries(log)
    assert encrypted["event"] == "artifact.encrypted"
    assert encrypted["inputs"]["plaintext"] == {"sha256": audit.digest_ref(plain)["sha256"]}
    assert encrypted["outputs"]["ciphertext"]["path"] == str(Path(f"{plain}.enc").resolve())
    assert rewrapped["event"] == "artifact.rewrapped" and rewrapped["details"]["key_versions"]
    result = verify(log)
    assert result.intact and result.checked == 1  # the ciphertext, untouched by the rewrap


def test_artifact_encrypt_exits_3_when_the_log_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("SOVML_AUDIT_LOG", str(tmp_path / "file" / "l.jsonl"))
    plain = tmp_path / "model.bin"
    plain.write_bytes(b"w")
    code, _, err = _sovml("artifact", "encrypt", plain, "--key", tmp_path / "key.json")
    assert code == 3 and "error: cannot open the lifecycle log" in err
    assert "internal error" not in err


# ----------------------------------------------------------------------------- abtest, pipeline


@pytest.mark.parametrize(
    ("decision", "event"),
    [("promoted", "model.promoted"), ("rolled_back", "model.rolled_back"), ("held", "canary.held")],
)
def test_abtest_records_the_canary_decision(
    log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decision: str, event: str
) -> None:
    """The command's wiring, with the run and the server replaced (tests/test_abtest.py runs
    the real canary on Triton)."""
    from infra.cli import serve
    from pipelines.serving.canary import run as canary_run
    from pipelines.serving.canary.evidence import AbTestResult

    evidence = tmp_path / "evidence.json"
    evidence.write_text("{}")

    @contextlib.contextmanager
    def serving(*args: Any) -> Iterator[tuple[Any, Any]]:
        yield type("S", (), {"endpoints": None})(), type("T", (), {"update": print})()

    def run_abtest(*args: Any, **kwargs: Any) -> AbTestResult:
        return AbTestResult(
            "r1", "base", "cand", decision, "the reason", [], 0.0, 1.0, 10,
            evidence_path=str(evidence),
        )  # fmt: skip

    monkeypatch.setattr(serve, "_serving", serving)
    monkeypatch.setattr(serve, "_demo_pair", lambda *a: (tmp_path, ("base", "cand"), (None, None)))
    monkeypatch.setattr(canary_run, "run_abtest", run_abtest)
    code, _, err = _sovml("abtest")
    assert code == 0, err
    (entry,) = _entries(log)
    assert (entry["event"], entry["subject"]) == (event, "cand vs base")
    assert entry["details"]["reason"] == "the reason"
    assert entry["outputs"]["evidence"]["path"] == str(evidence)


def test_pipeline_run_exits_3_naming_the_log_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_server: str
) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("SOVML_AUDIT_LOG", str(tmp_path / "file" / "l.jsonl"))
    code, _, err = _sovml(
        "pipeline", "run", "training", "--local", "--output-dir", tmp_path / "out"
    )
    assert code == 3
    assert f"error: cannot open the lifecycle log {tmp_path}/file/l.jsonl" in err
    assert not (tmp_path / "out" / "runs").exists()
