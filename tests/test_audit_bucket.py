"""The lifecycle log on the cluster: the chain of objects in the audit bucket (pipelines/audit/sink)
and ``sovml audit verify|show --bucket``.

moto checks what S3 does with the requests: the conditional put (``If-None-Match: *`` refused
with 412 when the key exists), versions and delete markers, the bucket's default retention mode
on each new object. It does not enforce Object Lock's promise itself (that no one, root included,
can delete or overwrite a locked version before its retention ends); tests here only show what
the verifier reports when a key is overwritten or delete-marked, which S3 does allow.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli.app import app
from pipelines.audit import log as audit
from pipelines.audit import sink
from pipelines.audit.entries import canonical
from pipelines.audit.verify import verify_bucket

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")
from botocore.exceptions import ClientError  # noqa: E402  (after the skip: boto3 may be absent)

REGION = "me-central-1"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials, no metadata service, a fresh head hint, a file log that must stay empty."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "SOVML_AUDIT_LOG": str(tmp_path / "file" / "lifecycle.jsonl"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "SOVML_AUDIT_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    sink._HEADS.clear()
    yield
    sink._HEADS.clear()


def _bucket(s3: Any, name: str = "audit", locked: bool = True, days: int | None = 1) -> None:
    """A bucket as the stack makes it (Object Lock, default compliance retention) or a plain one."""
    s3.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=locked,
    )
    if locked and days:
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
            },
        )


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in process, the audit bucket made and named in ``SOVML_AUDIT_BUCKET``."""
    with moto.mock_aws():
        client = boto3.client("s3", region_name=REGION)
        _bucket(client)
        monkeypatch.setenv("SOVML_AUDIT_BUCKET", "audit")
        yield client


def _fill(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        audit.append("model.registered", f"m v{i}", details={"i": i})
        for i in range(start, start + count)
    ]


def _keys(s3: Any, bucket: str = "audit") -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _body(s3: Any, key: str, bucket: str = "audit") -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _sovml(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


class Counting:
    """An S3 client that counts (and can intercept) the calls the chain makes."""

    def __init__(self, inner: Any, before_put: Any = None) -> None:
        self.inner = inner
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.before_put = before_put

    def _count(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))

    def list_objects_v2(self, **kwargs: Any) -> Any:
        self._count("list", kwargs)
        return self.inner.list_objects_v2(**kwargs)

    def get_object(self, **kwargs: Any) -> Any:
        self._count("get", kwargs)
        return self.inner.get_object(**kwargs)

    def put_object(self, **kwargs: Any) -> Any:
        self._count("put", kwargs)
        if self.before_put is not None:
            self.before_put(kwargs)
        return self.inner.put_object(**kwargs)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]


# ---------------------------------------------------------------------------------- appending


def test_appends_chain_in_the_bucket_and_nowhere_else(s3: Any, tmp_path: Path) -> None:
    made = _fill(3)
    assert [e["seq"] for e in made] == [0, 1, 2]
    assert made[1]["prev"] == made[0]["hash"] and made[2]["prev"] == made[1]["hash"]
    assert _keys(s3) == [f"lifecycle/00000000000{i}.json" for i in range(3)]
    assert [_body(s3, k) for k in _keys(s3)] == [canonical(e) + b"\n" for e in made]
    # Each entry is locked in compliance mode by the bucket's default retention.
    head = s3.head_object(Bucket="audit", Key="lifecycle/000000000002.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert not (tmp_path / "file").exists()  # the pod's file is not the log
    result = verify_bucket(sink.BucketLog("audit"))
    assert result.intact and result.entries == 3 and result.head == made[2]["hash"]
    assert result.notes == []
    # An explicit file still means the file: the local mode is unchanged.
    local = audit.append("model.approved", "m", log=tmp_path / "l.jsonl")
    assert local["seq"] == 0 and len(_keys(s3)) == 3


def test_a_prefix_is_its_own_chain(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(2)
    monkeypatch.setenv("SOVML_AUDIT_PREFIX", "/tenants/acme/")
    other = _fill(1)
    assert other[0]["seq"] == 0
    assert "tenants/acme/000000000000.json" in _keys(s3)
    assert verify_bucket(sink.BucketLog("audit", "tenants/acme")).entries == 1


def test_the_head_is_found_with_a_few_one_key_lists(s3: Any) -> None:
    _fill(100)
    sink._HEADS.clear()  # a fresh pod: no hint
    client = Counting(boto3.client("s3", region_name=REGION))
    chain = sink.BucketLog("audit", client=client)
    entry = chain.append({"event": "model.promoted", "subject": "m", "inputs": {}, "outputs": {},
                          "details": {}})  # fmt: skip
    assert entry["seq"] == 100
    lists = client.named("list")
    assert all(kwargs["MaxKeys"] == 1 for kwargs in lists)
    assert 2 <= len(lists) <= 2 * 7 + 2, len(lists)  # gallop + bisect over 100 keys
    assert len(client.named("get")) == 1  # the head's body, read and checked
    client.calls.clear()
    chain.append({"event": "model.promoted", "subject": "m", "inputs": {}, "outputs": {},
                  "details": {}})  # fmt: skip
    # Warm: one LIST confirms nothing came after this process's own entry; no GET.
    assert [name for name, _ in client.calls] == ["list", "put"]
    put = client.named("put")[0]
    assert put["IfNoneMatch"] == "*" and put["ChecksumAlgorithm"] == "SHA256"
    assert put["Key"] == "lifecycle/000000000101.json"


def test_a_writer_that_loses_the_race_builds_on_the_new_head(s3: Any) -> None:
    fields = {"event": "model.promoted", "subject": "a", "inputs": {}, "outputs": {}, "details": {}}
    _fill(1)
    raced: list[dict[str, Any]] = []

    def other_writer_first(kwargs: dict[str, Any]) -> None:
        if not raced:  # between A's read of the head and A's put, B appends seq 1
            raced.append(sink.BucketLog("audit").append({**fields, "subject": "b"}))

    client = Counting(boto3.client("s3", region_name=REGION), before_put=other_writer_first)
    entry = sink.BucketLog("audit", client=client).append(fields)
    puts = [kwargs["Key"] for kwargs in client.named("put")]
    assert puts == ["lifecycle/000000000001.json", "lifecycle/000000000002.json"]
    assert raced[0]["seq"] == 1 and raced[0]["subject"] == "b"
    assert entry["seq"] == 2 and entry["prev"] == raced[0]["hash"]
    assert verify_bucket(sink.BucketLog("audit")).intact


def test_retries_are_bounded(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink, "BACKOFF_S", 0.0)

    def always_taken(kwargs: dict[str, Any]) -> None:
        raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")

    client = Counting(boto3.client("s3", region_name=REGION), before_put=always_taken)
    fields = {"event": "model.promoted", "subject": "a", "inputs": {}, "outputs": {}, "details": {}}
    with pytest.raises(
        audit.AuditError,
        match=rf"cannot append to s3://audit/lifecycle/: another writer took the next entry in "
        rf"each of {sink.MAX_ATTEMPTS} attempts",
    ):
        sink.BucketLog("audit", client=client).append(fields)
    assert len(client.named("put")) == sink.MAX_ATTEMPTS
    assert _keys(s3) == []


def test_appends_refuse_a_damaged_head_or_a_foreign_key(s3: Any) -> None:
    _fill(2)
    s3.put_object(Bucket="audit", Key="lifecycle/notes.txt", Body=b"hello")
    with pytest.raises(audit.AuditError, match=r"lifecycle/notes\.txt is not a lifecycle entry.s"):
        _fill(1)
    s3.delete_object(Bucket="audit", Key="lifecycle/notes.txt")
    s3.put_object(Bucket="audit", Key="lifecycle/000000000002.json", Body=b"{}\n")
    sink._HEADS.clear()
    with pytest.raises(audit.AuditError, match=r"000000000002.json: the head entry is damaged"):
        _fill(1)


def test_an_unreachable_bucket_fails_the_append(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVML_AUDIT_BUCKET", "audit")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(audit.AuditError, match=r"cannot list s3://audit/lifecycle/: "):
        _fill(1)


def test_a_bad_bucket_or_prefix_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVML_AUDIT_BUCKET", "Audit_Bucket")
    with pytest.raises(audit.AuditError, match="audit bucket 'Audit_Bucket': not an S3 bucket"):
        _fill(1)
    with pytest.raises(audit.AuditError, match=r"audit prefix 'a/\.\./b': not a key prefix"):
        sink.BucketLog("audit", "a/../b")


# ------------------------------------------------------------------------ racing writers


def test_racing_writers_land_every_entry_once(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four threads, each with its own client, append at once.

    moto's server needs flask (not installed), so the writers race in process; each S3 request
    is handled whole under a lock, as S3 applies a conditional put atomically (moto checks the
    key and writes it in two steps that two threads could interleave). The writers' own reads,
    builds and puts interleave freely: the races, the 412s and the retries are real.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    serial = threading.Lock()
    process = BotocoreStubber.process_request

    def atomic(self: Any, request: Any) -> Any:
        with serial:
            return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", atomic)
    lost: list[int] = []
    put_new = sink.BucketLog._put_new

    def counted(self: sink.BucketLog, entry: dict[str, Any]) -> bool:
        landed = put_new(self, entry)
        if not landed:
            lost.append(entry["seq"])
        return landed

    monkeypatch.setattr(sink.BucketLog, "_put_new", counted)
    workers, each = 4, 8
    # boto3's default session is not thread-safe: one session and client per writer, made here.
    clients = [boto3.session.Session().client("s3", region_name=REGION) for _ in range(workers)]
    start = threading.Barrier(workers)
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            start.wait()
            chain = sink.BucketLog("audit", client=clients[worker])
            for i in range(each):
                chain.append(
                    {
                        "event": "automated.action",
                        "subject": f"w{worker}",
                        "inputs": {},
                        "outputs": {},
                        "details": {"i": i},
                    }
                )
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    result = verify_bucket(sink.BucketLog("audit"))
    assert result.intact, result.broken
    assert result.entries == workers * each
    bodies = [json.loads(_body(s3, k)) for k in _keys(s3)]
    assert sorted((e["subject"], e["details"]["i"]) for e in bodies) == sorted(
        (f"w{w}", i) for w in range(workers) for i in range(each)
    )
    # No key was ever written twice, and the writers did collide (a race that never happened
    # would prove nothing).
    assert len(s3.list_object_versions(Bucket="audit")["Versions"]) == workers * each
    assert lost, "no writer ever lost a race"


# ----------------------------------------------------------------------------- verification


def _plain(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A bucket without Object Lock or versioning: a rewrite replaces the only copy."""
    client = boto3.client("s3", region_name=REGION)
    _bucket(client, "plain", locked=False)
    monkeypatch.setenv("SOVML_AUDIT_BUCKET", "plain")
    return client


def _first_break(bucket: str) -> Any:
    result = verify_bucket(sink.BucketLog(bucket))
    assert result.broken is not None
    return result.broken


def _key(seq: int) -> str:
    return f"lifecycle/{seq:012d}.json"


def test_tampering_with_a_plain_bucket_is_named_at_its_seq(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _plain(monkeypatch)
    made = _fill(5)
    bodies = {i: _body(plain, _key(i), "plain") for i in range(5)}

    edited = json.loads(bodies[2])
    edited["subject"] = "m v9"  # the hash no longer matches
    plain.put_object(Bucket="plain", Key=_key(2), Body=canonical(edited) + b"\n")
    broken = _first_break("plain")
    assert (broken.seq, broken.reason, broken.key) == (2, "edited", _key(2))
    assert broken.detail == "its hash does not match its content"

    plain.put_object(Bucket="plain", Key=_key(2), Body=bodies[3])
    plain.put_object(Bucket="plain", Key=_key(3), Body=bodies[2])
    broken = _first_break("plain")
    assert (broken.seq, broken.reason, broken.found) == (2, "reordered", 3)
    assert broken.detail == "the object holds entry 3"

    plain.put_object(Bucket="plain", Key=_key(2), Body=bodies[1])
    plain.put_object(Bucket="plain", Key=_key(3), Body=bodies[3])
    broken = _first_break("plain")
    assert (broken.seq, broken.reason, broken.found) == (2, "inserted", 1)

    plain.delete_object(Bucket="plain", Key=_key(2))
    broken = _first_break("plain")
    assert (broken.seq, broken.reason, broken.found) == (2, "deleted", 3)
    assert broken.detail == "no object for entries 2..2"
    assert (broken.line, broken.key) == (3, _key(3))

    plain.put_object(Bucket="plain", Key=_key(2), Body=bodies[2])
    assert verify_bucket(sink.BucketLog("plain")).intact
    result = verify_bucket(sink.BucketLog("plain"))
    assert result.notes == [
        "5 entries carry no COMPLIANCE-mode Object Lock retention (is the bucket's default "
        "retention set?)"
    ]
    # A chain rewritten whole from entry 2 on verifies: only a kept head shows it.
    kept = made[4]["hash"]
    plain.delete_object(Bucket="plain", Key=_key(4))
    plain.delete_object(Bucket="plain", Key=_key(3))
    plain.delete_object(Bucket="plain", Key=_key(2))
    sink._HEADS.clear()
    _fill(3, start=20)
    assert verify_bucket(sink.BucketLog("plain")).intact
    broken = verify_bucket(sink.BucketLog("plain"), kept_head=kept).broken
    assert broken is not None and broken.reason == "truncated"


def test_a_locked_bucket_shows_overwrites_and_delete_markers(s3: Any) -> None:
    _fill(5)
    s3.put_object(Bucket="audit", Key=_key(3), Body=_body(s3, _key(3)))  # same bytes, again
    broken = _first_break("audit")
    assert (broken.seq, broken.reason) == (3, "edited")
    assert broken.detail == "overwritten: the key has 2 versions"
    # The first version is still there: what the lock keeps.
    assert len(s3.list_object_versions(Bucket="audit", Prefix=_key(3))["Versions"]) == 2

    s3.delete_object(Bucket="audit", Key=_key(1))  # no version id: only a delete marker
    broken = _first_break("audit")
    assert (broken.seq, broken.reason, broken.key) == (1, "deleted", _key(1))
    assert "a delete marker hides it" in broken.detail


def test_a_key_that_is_not_an_entry_is_inserted(s3: Any) -> None:
    _fill(2)
    s3.put_object(Bucket="audit", Key="lifecycle/000000000001.json.bak", Body=b"x")
    broken = _first_break("audit")
    assert (broken.seq, broken.reason, broken.key) == (
        2,
        "inserted",
        "lifecycle/000000000001.json.bak",
    )


# ---------------------------------------------------------------------------------------- CLI


def test_cli_verify_and_show_the_bucket(s3: Any) -> None:
    made = _fill(3)
    code, out, err = _sovml("audit", "verify", "--bucket", "audit")
    assert (code, err) == (0, "")
    assert f"intact: 3 entries, head {made[2]['hash']}" in out
    code, out, _ = _sovml("audit", "show", "--bucket", "audit", "--prefix", "lifecycle/")
    assert code == 0 and "m v0" in out and "m v2" in out
    code, out, _ = _sovml("audit", "show", "--bucket", "audit", "--last", "1", "--json")
    assert code == 0 and [e["seq"] for e in json.loads(out)] == [2]

    s3.put_object(Bucket="audit", Key=_key(1), Body=_body(s3, _key(2)))
    code, out, err = _sovml("audit", "verify", "--bucket", "audit")
    assert (code, err) == (1, "")
    assert (
        f"BROKEN at entry 1 (object {_key(1)}): edited: overwritten: the key has 2 versions" in out
    )
    code, out, _ = _sovml("audit", "verify", "--bucket", "audit", "--json")
    broken = json.loads(out)["broken"]
    assert code == 1 and (broken["seq"], broken["key"]) == (1, _key(1))
    assert json.loads(out)["log"] == "s3://audit/lifecycle/"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bucket", "audit", "--log", "x.jsonl"], "--log and --bucket exclude each other"),
        (["--prefix", "lifecycle"], "--prefix needs --bucket"),
        (["--bucket", "Audit_1"], "--bucket 'Audit_1': not an S3 bucket name"),
        (["--bucket", "audit", "--prefix", "a/../b"], "--prefix 'a/../b': not a key prefix"),
        (["--bucket", "missing-bucket"], "cannot list the versions in s3://missing-bucket/"),
        (["--bucket", "audit", "--prefix", "nothing"], "no lifecycle entries under s3://audit/"),
    ],
)
@pytest.mark.parametrize("command", ["verify", "show"])
def test_cli_bad_input_exits_2(s3: Any, command: str, args: list[str], message: str) -> None:
    _fill(1)
    code, out, err = _sovml("audit", command, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("command", ["verify", "show"])
def test_cli_s3_unreachable_or_no_credentials_exits_3(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    code, _, err = _sovml("audit", command, "--bucket", "audit")
    assert code == 3 and "Could not connect to the endpoint URL" in err
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it found
    code, _, err = _sovml("audit", command, "--bucket", "audit")
    assert code == 3 and "Unable to locate credentials" in err
    assert err.startswith("error: cannot list the versions in s3://audit/lifecycle/")


def test_bytes_that_are_not_utf8_are_an_edit_not_a_crash(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _plain(monkeypatch)
    _fill(2)
    plain.put_object(Bucket="plain", Key=_key(1), Body=b"\xff\xfe{\n")
    broken = _first_break("plain")
    assert (broken.seq, broken.reason, broken.detail) == (1, "edited", "not JSON (not UTF-8)")
    sink._HEADS.clear()  # a fresh process: it reads the head's body
    with pytest.raises(audit.AuditError, match=r"head entry is damaged \(not JSON \(not UTF-8\)\)"):
        _fill(1)
