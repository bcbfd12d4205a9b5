"""The automated-action recorder (:mod:`pipelines.audit.recorder`), as an attacker would probe it.

* Over HTTP on a loopback port: a notification with an automated action appends exactly one
  ``automated.action`` entry per firing; a replay (and a restart that re-reads the log) adds
  nothing; resolved alerts and alerts without the annotation add nothing; the chain verifies.
* Refusals, each a specific 4xx and one log line: wrong path, method, token, content type,
  missing or oversized length, chunked body, non-JSON, wrong version, missing and unexpected
  fields at both levels, bad types, too many alerts, a control character the log refuses.
  Nothing is appended for any of them.
* A log that cannot be written answers 503 (Alertmanager retries it).
* End to end with the real Prometheus and the real Alertmanager: an alert labelled for the
  recorder fires, Alertmanager routes it to the recorder (a subprocess) as well as its usual
  receiver, one entry lands in a local lifecycle log, ``sovml audit verify`` passes, a replay
  of the same notification adds nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from components._alertmanager_config import PAGE, Receivers, alertmanager_config
from components._alerts import AUDIT_LABEL
from infra.cli.app import app
from pipelines.audit.recorder import (
    ANNOTATION,
    MAX_ALERTS,
    MAX_BODY,
    PATH,
    Recorder,
    server,
)
from pipelines.audit.verify import verify
from tests.alertmanager_server import (
    RESEND_EVERY_SECOND,
    WebhookRecorder,
    alert_to,
    running_alertmanager,
)
from tests.prometheus import start_prometheus, stop_prometheus
from tests.system import free_port

TOKEN = "t0ken-for-tests"
ACTION = "KEDA adds replicas within the gpu pool's bounds."


def alert(status: str = "firing", fingerprint: str = "0123456789abcdef", **extra: Any) -> dict:
    """One alert as Alertmanager 0.25 sends it."""
    return {
        "status": status,
        "labels": {"alertname": "GpuSaturated", "severity": "warning", "Hostname": "node-1"},
        "annotations": {ANNOTATION: ACTION, "runbook_url": "docs/runbooks/GpuSaturated.md"},
        "startsAt": "2025-01-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
        **extra,
    }


def payload(*alerts: dict) -> dict:
    """A version 4 webhook payload holding ``alerts``."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="GpuSaturated"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "audit-recorder",
        "groupLabels": {"alertname": "GpuSaturated"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": list(alerts) or [alert()],
    }


@contextlib.contextmanager
def running(log: Path, token: str | None = TOKEN) -> Iterator[int]:
    """The recorder on a loopback port, appending to ``log``."""
    httpd = server("127.0.0.1", 0, Recorder(log), token)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def post(
    port: int,
    body: bytes | dict,
    *,
    path: str = PATH,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    """Send one request; (status, JSON body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {TOKEN}",
        "Content-Length": str(len(data)),
        **(headers or {}),
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in sent.items():
            if v is not None:
                conn.putheader(k, v)
        conn.endheaders()
        conn.send(data)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"{}")
    finally:
        conn.close()


def entries(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_firing_alert_is_recorded_once_and_the_chain_verifies(tmp_path: Path) -> None:
    log = tmp_path / "lifecycle.jsonl"
    with running(log) as port:
        assert post(port, payload()) == (200, {"recorded": 1, "duplicates": 0})
        assert post(port, payload()) == (200, {"recorded": 0, "duplicates": 1})
    (entry,) = entries(log)
    assert entry["event"] == "automated.action"
    assert entry["subject"] == "GpuSaturated Hostname=node-1"
    details = entry["details"]
    assert details["action"] == ACTION and details["fingerprint"] == "0123456789abcdef"
    assert details["starts_at"] == "2025-01-01T10:00:00.123456789Z"
    assert details["runbook_url"] == "docs/runbooks/GpuSaturated.md"
    assert json.loads(details["labels"])["Hostname"] == "node-1"
    # A restarted recorder reads what is recorded: the replay still adds nothing.
    with running(log) as port:
        assert post(port, payload())[1] == {"recorded": 0, "duplicates": 1}
        # The same alert firing again later (a new startsAt) is a new action.
        again = alert(startsAt="2025-01-02T10:00:00Z")
        assert post(port, payload(again))[1] == {"recorded": 1, "duplicates": 0}
    assert len(entries(log)) == 2
    result = verify(log)
    assert result.intact and result.entries == 2


def test_resolved_and_unannotated_alerts_are_not_actions(tmp_path: Path) -> None:
    log = tmp_path / "lifecycle.jsonl"
    bare = alert(fingerprint="00000000000000ff")
    bare["annotations"] = {"runbook_url": "x"}
    blank = alert(fingerprint="00000000000000fe")
    blank["annotations"][ANNOTATION] = "   "
    with running(log) as port:
        status, counts = post(port, payload(alert("resolved"), bare, blank))
    assert (status, counts) == (200, {"recorded": 0, "duplicates": 0})
    assert entries(log) == []


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


REFUSED_BODIES = {
    "not json": (b"{not json", 400, "not JSON"),
    "not utf-8": (b"\xff\xfe", 400, "not JSON"),
    "a list": (b"[]", 400, "must be a JSON object"),
    "version 3": (json.dumps({**payload(), "version": "3"}).encode(), 400, "version"),
    "missing field": (json.dumps(_without(payload(), "groupKey")).encode(), 400, "groupKey"),
    "unexpected field": (json.dumps({**payload(), "x": 1}).encode(), 400, "unexpected ['x']"),
    "alert missing fingerprint": (
        json.dumps(payload(_without(alert(), "fingerprint"))).encode(),
        400,
        "fingerprint",
    ),
    "alert extra field": (json.dumps(payload(alert(extra=1))).encode(), 400, "extra"),
    "bad fingerprint": (
        json.dumps(payload(alert(fingerprint="../../etc"))).encode(),
        400,
        "16 hex",
    ),
    "bad time": (json.dumps(payload(alert(startsAt="yesterday"))).encode(), 400, "RFC 3339"),
    "bad status": (json.dumps(payload(alert(status="pending"))).encode(), 400, "status"),
    "label not a string": (
        json.dumps(payload(alert(labels={"alertname": "X", "n": 1}))).encode(),
        400,
        "must be a string",
    ),
    "bad label name": (
        json.dumps(payload(alert(labels={"alertname": "X", "a-b": "1"}))).encode(),
        400,
        "not a label name",
    ),
    "no alertname": (
        json.dumps(payload(alert(labels={"severity": "page"}))).encode(),
        400,
        "no alertname",
    ),
    "negative truncated": (
        json.dumps({**payload(), "truncatedAlerts": -1}).encode(),
        400,
        "truncatedAlerts",
    ),
    "boolean truncated": (
        json.dumps({**payload(), "truncatedAlerts": True}).encode(),
        400,
        "truncatedAlerts",
    ),
    "no alerts": (json.dumps({**payload(), "alerts": []}).encode(), 400, "non-empty"),
    "too many alerts": (
        json.dumps(
            payload(*(alert(fingerprint=f"{i:016x}") for i in range(MAX_ALERTS + 1)))
        ).encode(),
        413,
        f"at most {MAX_ALERTS}",
    ),
    "control character": (
        json.dumps(payload(alert(labels={"alertname": "GpuSaturated", "model": "a\nb"}))).encode(),
        422,
        "control character",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BODIES))
def test_malformed_payloads_are_refused_and_logged(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body, status, reason = REFUSED_BODIES[case]
    log = tmp_path / "lifecycle.jsonl"
    with caplog.at_level(logging.WARNING, logger="sovml.audit.recorder"), running(log) as port:
        got, answer = post(port, body)
    assert got == status, answer
    assert reason in answer["error"]
    assert any(f"refused {status}" in r.message and reason in r.message for r in caplog.records)
    assert entries(log) == []


REFUSED_REQUESTS = {
    "wrong path": ({"path": "/hook"}, 404, "no such path"),
    "GET": ({"method": "GET"}, 405, "only POST"),
    "PUT": ({"method": "PUT"}, 405, "not allowed"),
    "no token": ({"headers": {"Authorization": None}}, 401, "bearer token"),
    "wrong token": ({"headers": {"Authorization": "Bearer nope"}}, 401, "bearer token"),
    "text/plain": ({"headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
    "no length": ({"headers": {"Content-Length": None}}, 411, "Content-Length"),
    "negative length": ({"headers": {"Content-Length": "-5"}}, 411, "Content-Length"),
    "chunked": (
        {"headers": {"Transfer-Encoding": "chunked", "Content-Length": None}},
        411,
        "chunked",
    ),
    "oversized": ({"headers": {"Content-Length": str(MAX_BODY + 1)}}, 413, "over"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_REQUESTS))
def test_bad_requests_are_refused_and_logged(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kwargs, status, reason = REFUSED_REQUESTS[case]
    log = tmp_path / "lifecycle.jsonl"
    with caplog.at_level(logging.WARNING, logger="sovml.audit.recorder"), running(log) as port:
        body = b"" if case in ("oversized", "chunked") else json.dumps(payload()).encode()
        got, answer = post(port, body, **kwargs)
    assert (got, reason in answer["error"]) == (status, True), answer
    assert any(f"refused {status}" in r.message for r in caplog.records)
    assert entries(log) == []


def test_an_unwritable_log_answers_503_so_alertmanager_retries(tmp_path: Path) -> None:
    log = tmp_path / "lifecycle.jsonl"
    with running(log) as port:
        log.write_text("torn line without newline")
        status, answer = post(port, payload())
    assert status == 503 and "cannot be written" in answer["error"]
    assert log.read_text() == "torn line without newline"


def test_health_answers_without_a_token(tmp_path: Path) -> None:
    with running(tmp_path / "l.jsonl") as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200


# --- end to end: the real Prometheus and Alertmanager ---------------------------------------


@contextlib.contextmanager
def recorder_process(log: Path, token_file: Path) -> Iterator[tuple[str, Path]]:
    """``python -m pipelines.audit.recorder`` as the cluster runs it; (URL, its stderr file)."""
    port = free_port()
    stderr = log.with_suffix(".stderr")
    env = {**os.environ, "SOVML_ACTOR": "system:serviceaccount:monitoring:audit-recorder"}
    env.pop("SOVML_AUDIT_BUCKET", None)
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "pipelines.audit.recorder", "--host", "127.0.0.1"),
                *("--port", str(port), "--log", str(log), "--token-file", str(token_file)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while "listening" not in stderr.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}{PATH}", stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_prometheus_fires_alertmanager_routes_recorder_records(tmp_path: Path) -> None:
    """Fires at once, resent every second (see tests/test_alertmanager.py for why)."""
    rules = tmp_path / "rules.yml"
    name, value = AUDIT_LABEL
    rule = {
        "alert": "E2EAutomatedAction",
        "expr": "vector(1)",
        "labels": {"severity": "page", "model": "credit-risk", name: value},
        "annotations": {ANNOTATION: "The canary is aborted.", "runbook_url": "docs/r.md"},
    }
    rules.write_text(yaml.safe_dump({"groups": [{"name": "e2e", "rules": [rule]}]}))
    log, token_file = tmp_path / "lifecycle.jsonl", tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with WebhookRecorder() as hook, recorder_process(log, token_file) as (url, stderr):
        config = alertmanager_config(Receivers(webhook_url=hook.url), {}, url, TOKEN)
        config["route"].update(group_wait="1s", group_interval="1s")
        for route in config["route"]["routes"]:
            route.pop("group_wait", None)
        with running_alertmanager(config) as am:
            prom = start_prometheus([], rule_files=[rules], extra_args=[RESEND_EVERY_SECOND])
            try:
                alert_to(prom, am)
                prom.wait_until(
                    lambda: bool(entries(log)) and bool(hook.payloads),
                    f"an entry and a page\n{am.log_tail()}\n{stderr.read_text()}",
                    timeout_s=60,
                )
            finally:
                stop_prometheus(prom)
        # The usual receiver got it too (the recorder's route continues).
        assert hook.payloads[0]["receiver"] == PAGE
        (entry,) = entries(log)
        assert entry["event"] == "automated.action"
        assert entry["actor"] == "system:serviceaccount:monitoring:audit-recorder"
        assert entry["subject"] == "E2EAutomatedAction model=credit-risk"
        assert entry["details"]["action"] == "The canary is aborted."
        assert entry["details"]["receiver"] == "audit-recorder"
        # Replay what Alertmanager sent (the page carries the same alert): nothing is added.
        replay = {**hook.payloads[0], "receiver": "audit-recorder"}
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert post(port, replay) == (200, {"recorded": 0, "duplicates": 1})
        assert post(port, b"{}")[0] == 400
        assert "refused 400" in stderr.read_text()
    assert len(entries(log)) == 1
    result = CliRunner().invoke(app, ["audit", "verify", "--log", str(log)])
    assert result.exit_code == 0, result.output


# --- the component ---------------------------------------------------------------------------


def _component(**kw: Any) -> Any:
    from components.audit_recorder import AuditRecorder, AuditRecorderArgs
    from tests.component_mocks import ACCESS, KEY

    args = {
        "namespace": "monitoring",
        "image": "registry.example/sovml/drift:1.4.0",
        "audit_bucket": "p-audit",
        "audit_key_arn": KEY,
        "cluster_access": ACCESS,
        "audit_prefix": "lifecycle/automated-actions",
        **kw,
    }
    return AuditRecorder("audit-recorder", AuditRecorderArgs(**args))


def test_component_runs_one_restricted_pinned_recorder_reachable_by_alertmanager_only() -> None:
    from tests.component_mocks import children_named_after, of_type, record

    res = record(_component)
    (deployment,) = of_type(res, "kubernetes:apps/v1:Deployment")
    spec = deployment["inputs"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (box,) = pod["containers"]
    assert box["image"] == "registry.example/sovml/drift:1.4.0"
    assert box["command"] == ["python", "-m", "pipelines.audit.recorder"]
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert box["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e["value"] for e in box["env"]}
    assert (
        env["SOVML_AUDIT_BUCKET"] == "p-audit"
        and env["SOVML_AUDIT_PREFIX"] == "lifecycle/automated-actions"
    )
    assert "--token-file" in box["args"]
    (policy,) = of_type(res, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    (rule,) = policy["inputs"]["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "alertmanager"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(inline["inputs"]["policy"])["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["ReadAndAppendEntries"]["Resource"] == (
        "arn:aws:s3:::p-audit/lifecycle/automated-actions/*"
    )
    assert "s3:DeleteObject" not in json.dumps(statements)
    assert by_sid["FindTheChainsHead"]["Condition"]["StringLike"]["s3:prefix"][0] == (
        "lifecycle/automated-actions/*"
    )
    (secret,) = of_type(res, "kubernetes:core/v1:Secret")
    assert secret["inputs"]["metadata"]["name"] == "audit-recorder-token"
    children_named_after(res, "sovereign-ml:audit_recorder:AuditRecorder", "audit-recorder")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image": "registry.example/sovml/drift"}, "pinned tag"),
        ({"image": "registry.example/sovml/drift:latest"}, "pinned tag"),
        ({"audit_prefix": "a*"}, "audit_prefix"),
        ({"audit_prefix": "/"}, "audit_prefix"),
        ({"audit_prefix": "lifecycle"}, "audit_prefix"),
        ({"audit_prefix": "lifecycle/kubeflow/x"}, "audit_prefix"),
        ({"audit_prefix": "lifecycle/../trail"}, "audit_prefix"),
        ({"audit_prefix": "trail/x"}, "audit_prefix"),
    ],
)
def test_component_refuses_bad_args(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _component(**kw)
