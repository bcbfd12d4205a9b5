"""The lifecycle log (pipelines/audit): appends, the chain, tampering of every kind, concurrency,
the head record, digests (the bucket chain: tests/test_audit_bucket.py)."""

from __future__ import annotations

import json
import multiprocessing
import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.audit import entries
from pipelines.audit import log as audit
from pipelines.audit.verify import verify


def _fill(path: Path, count: int) -> list[dict]:
    return [
        audit.append("model.registered", f"m v{i}", details={"i": i}, log=path)
        for i in range(count)
    ]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


# ---------------------------------------------------------------------------------- appending


def test_entries_chain_and_the_file_is_private(tmp_path: Path) -> None:
    log = tmp_path / "deep" / "er" / "lifecycle.jsonl"
    first, second = _fill(log, 2)
    assert first["seq"] == 0 and first["prev"] == entries.GENESIS
    assert second["seq"] == 1 and second["prev"] == first["hash"]
    assert set(first) == set(entries.FIELDS)
    assert first["hash"] == entries.entry_hash(first)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit.head_path(log).stat().st_mode) == 0o600
    assert json.loads(audit.head_path(log).read_text()) == {"seq": 1, "hash": second["hash"]}
    assert _lines(log)[0] == entries.canonical(first) + b"\n"
    result = verify(log)
    assert result.intact and result.entries == 2 and result.head == second["hash"]


def test_actor_is_the_named_one_else_user_at_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVML_ACTOR", "ci-release")
    assert entries.actor() == "ci-release"
    monkeypatch.delenv("SOVML_ACTOR")
    assert "@" in entries.actor()


@pytest.mark.parametrize(
    ("event", "fields", "message"),
    [
        ("model.deleted", {}, "is not one of the lifecycle events"),
        ("model.registered", {"subject": ""}, "subject must be a non-empty string"),
        ("model.registered", {"subject": "a\nb"}, "line break"),
        ("model.registered", {"details": {"x": [1]}}, "must be a JSON scalar"),
        ("model.registered", {"details": {"x": float("nan")}}, "not a finite number"),
        ("model.registered", {"inputs": {"d": {"sha256": "abc"}}}, "is not a SHA-256"),
        ("model.registered", {"inputs": {"d": {"sha256": "0" * 64, "x": 1}}}, "{sha256, path?}"),
        ("pipeline.run.finished", {}, "details.outcome of pipeline.run.finished"),
    ],
)
def test_bad_entries_are_refused(tmp_path: Path, event: str, fields: dict, message: str) -> None:
    log = tmp_path / "l.jsonl"
    kwargs = {"subject": "s", **fields}
    with pytest.raises(ValueError, match=re.escape(message)):
        audit.append(event, log=log, **kwargs)
    assert not log.exists() or log.read_bytes() == b""


def test_the_env_override_is_the_default_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOVML_AUDIT_LOG", "rel/l.jsonl")
    assert audit.log_path() == tmp_path / "rel" / "l.jsonl"
    monkeypatch.delenv("SOVML_AUDIT_LOG")
    assert audit.log_path() == audit.PROJECT_ROOT / "build" / "audit" / "lifecycle.jsonl"


def test_an_unwritable_log_is_an_audit_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(audit.AuditError, match=f"cannot open the lifecycle log {blocker}/l"):
        audit.append("model.registered", "s", log=blocker / "l.jsonl")


@pytest.mark.parametrize("damage", ["torn", "edited_tail", "truncated", "no_head"])
def test_appends_refuse_to_extend_a_damaged_tail(tmp_path: Path, damage: str) -> None:
    log = tmp_path / "l.jsonl"
    _fill(log, 3)
    lines = _lines(log)
    if damage == "torn":
        _write(log, [*lines[:2], lines[2][:-5]])
        expected = "does not end with a newline"
    elif damage == "edited_tail":
        _write(log, [*lines[:2], lines[2].replace(b"m v2", b"m v9")])
        expected = "the last entry is damaged"
    elif damage == "truncated":
        _write(log, lines[:2])
        expected = "head record names entry 2 but the last entry is 1"
    else:
        audit.head_path(log).unlink()
        expected = "head record is missing"
    before = log.read_bytes()
    with pytest.raises(audit.AuditError, match=expected):
        audit.append("model.registered", "s", log=log)
    assert log.read_bytes() == before


def _append_many(path: str, worker: int, count: int) -> None:
    for i in range(count):
        audit.append("automated.action", f"w{worker}", details={"i": i}, log=path)


def test_concurrent_appends_from_processes_keep_one_chain(tmp_path: Path) -> None:
    log = tmp_path / "l.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(log), w, 15)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    result = verify(log)
    assert result.intact, result.broken
    assert result.entries == 60
    seen = {
        (e["subject"], e["details"]["i"]) for e in map(json.loads, log.read_text().splitlines())
    }
    assert seen == {(f"w{w}", i) for w in range(4) for i in range(15)}


# ------------------------------------------------------------------------------ verification


def test_every_kind_of_break_is_named(tmp_path: Path) -> None:
    log = tmp_path / "l.jsonl"
    _fill(log, 5)
    lines = _lines(log)
    cases = {
        "edited": [*lines[:2], lines[2].replace(b'"i":2', b'"i":7'), *lines[3:]],
        "deleted": [*lines[:2], *lines[3:]],
        "reordered": [*lines[:2], lines[3], lines[2], lines[4]],
        "inserted": [*lines[:3], lines[1], *lines[3:]],
        "truncated": lines[:4],
    }
    expected_seq = {"edited": 2, "deleted": 2, "reordered": 2, "inserted": 3, "truncated": 4}
    for reason, changed in cases.items():
        copy = tmp_path / reason / "l.jsonl"
        copy.parent.mkdir()
        _write(copy, changed)
        audit.head_path(copy).write_bytes(audit.head_path(log).read_bytes())
        broken = verify(copy).broken
        assert broken is not None, reason
        assert (broken.reason, broken.seq, broken.line) == (
            reason,
            expected_seq[reason],
            expected_seq[reason] + 1,
        )


def test_whitespace_is_an_edit_and_a_kept_head_must_be_in_the_chain(tmp_path: Path) -> None:
    log = tmp_path / "l.jsonl"
    made = _fill(log, 3)
    assert verify(log, kept_head=made[1]["hash"]).intact
    broken = verify(log, kept_head="f" * 64).broken
    assert broken is not None and broken.reason == "truncated" and "kept head" in broken.detail
    lines = _lines(log)
    _write(log, [lines[0], lines[1].replace(b'","', b'", "', 1), lines[2]])
    broken = verify(log).broken
    assert broken is not None and (broken.reason, broken.seq) == ("edited", 1)
    assert "canonical form" in broken.detail


def test_a_rewritten_file_and_head_verify_unless_a_head_was_kept(tmp_path: Path) -> None:
    """What a local file cannot prove: a consistent rewrite. The kept head catches it."""
    log = tmp_path / "l.jsonl"
    kept = _fill(log, 3)[-1]["hash"]
    log.unlink()
    audit.head_path(log).unlink()
    _fill(log, 3)  # a whole new history, other times
    assert verify(log).intact
    assert not verify(log, kept_head=kept).intact


def test_recorded_digests_are_recomputed(tmp_path: Path) -> None:
    log = tmp_path / "l.jsonl"
    artifact = tmp_path / "model"
    artifact.mkdir()
    (artifact / "w.bin").write_bytes(b"weights")
    gone = tmp_path / "gone.txt"
    gone.write_text("x")
    audit.append(
        "model.registered",
        "m v1",
        outputs={"model": audit.file_ref(artifact), "gone": audit.file_ref(gone)},
        log=log,
    )
    gone.unlink()
    result = verify(log)
    assert result.intact and result.checked == 1
    assert result.unchecked == [f"0 outputs.gone: {gone}"]
    (artifact / "w.bin").write_bytes(b"other weights")
    broken = verify(log).broken
    assert broken is not None and (broken.reason, broken.seq) == ("digest mismatch", 0)
    assert "outputs.model" in broken.detail


OPS = st.sampled_from(["edit", "delete", "swap", "insert", "truncate"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    count=st.integers(2, 9),
    op=OPS,
    where=st.integers(0, 100),
    other=st.integers(0, 100),
    events=st.lists(
        st.sampled_from(sorted(entries.EVENTS - {"pipeline.run.finished"})), min_size=9, max_size=9
    ),
)
def test_any_single_change_is_caught_at_the_first_changed_line(
    tmp_path_factory: pytest.TempPathFactory,
    count: int,
    op: str,
    where: int,
    other: int,
    events: list[str],
) -> None:
    log = tmp_path_factory.mktemp("h") / "l.jsonl"
    for i in range(count):
        audit.append(events[i], f"s{i}", details={"i": i}, log=log)
    original = _lines(log)
    k = where % count
    changed = list(original)
    if op == "edit":
        changed[k] = changed[k].replace(f'"subject":"s{k}"'.encode(), f'"subject":"t{k}"'.encode())
    elif op == "delete":
        del changed[k]
    elif op == "swap":
        j = (k + 1 + other % (count - 1)) % count
        changed[k], changed[j] = changed[j], changed[k]
    elif op == "insert":
        changed.insert(k, original[other % count])
    else:
        changed = changed[:k]
    _write(log, changed)
    broken = verify(log).broken
    assert broken is not None, (op, k)
    first = next(
        (i for i, (a, b) in enumerate(zip(changed, original, strict=False)) if a != b),
        min(len(changed), len(original)),
    )
    assert broken.seq == first, (op, k, broken)
    assert broken.line == first + 1
    if op in ("edit", "truncate"):
        assert broken.reason == {"edit": "edited", "truncate": "truncated"}[op]
