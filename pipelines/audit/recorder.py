"""The automated-action recorder: Alertmanager's webhook in, ``automated.action`` entries out.

Some of the platform's automated responses are taken by software that is not ours (Argo Rollouts
aborting a canary, KEDA and the cluster autoscaler scaling GPU serving), so they are recorded
where we can see them: each such alert carries an ``automated_action`` annotation (what the
platform does by itself, and its runbook), and an Alertmanager route (``continue: true``, beside
the alert's usual receivers) posts it here. For every *firing* alert with a non-empty
annotation the recorder appends one ``automated.action`` entry to the lifecycle log (the
object-locked bucket when ``SOVML_AUDIT_BUCKET`` is set, else the file), once per alert
fingerprint and ``startsAt``: Alertmanager repeats a notification every ``repeat_interval`` and
a replay of the same firing adds nothing.

What an entry proves: that the alert fired and which automated response the platform declared
for it, at the time Alertmanager notified. It does not prove that Argo or KEDA acted: their own
records (the Rollout's status, KEDA's events) say that.

The request is checked before anything is recorded, deny by default: ``POST`` to
:data:`PATH` only, a ``Content-Length`` of at most :data:`MAX_BODY` bytes (no chunked bodies),
``application/json``, the bearer token when one is configured, and the body must be exactly
Alertmanager's webhook payload (version 4: every field present, no other field, each of its
type, at most :data:`MAX_ALERTS` alerts, label names as Prometheus allows). Any refusal is a 4xx
and one log line naming the reason; a log that cannot be written is a 503 (Alertmanager retries
5xx, never 4xx).

Run: ``python -m pipelines.audit.recorder --port 8080 [--log PATH] [--token-file FILE]``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipelines.audit.entries import canonical, content_problem, json_error
from pipelines.audit.log import AuditError, append, log_path

EVENT = "automated.action"
"""The lifecycle event the recorder appends."""
ANNOTATION = "automated_action"
"""The alert annotation naming what the platform does by itself when the alert fires."""
PATH = "/alerts"
"""The one path that accepts notifications."""
HEALTH_PATH = "/healthz"
"""``GET`` here answers 200 (the kubelet's probes)."""
MAX_BODY = 256 * 1024
"""Largest accepted body in bytes: Alertmanager's payload for :data:`MAX_ALERTS` alerts of this
platform's size is well below it."""
MAX_ALERTS = 100
"""Most alerts one notification may carry (the route sets ``max_alerts`` to the same)."""
MAX_FIELD = 4096
"""Longest accepted string anywhere in a payload (a group key, an annotation)."""
SUBJECT_LABELS = ("model", "feature", "Hostname", "tenant", "namespace", "pipeline", "service")
"""Labels that name what an alert is about, in the order the subject lists them."""
READ_TIMEOUT_S = 10
"""Seconds a client may take to send its request before the connection is closed."""

PAYLOAD_FIELDS = frozenset(
    {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
)
"""Every field of Alertmanager's webhook payload (version 4), all required, no other."""
ALERT_FIELDS = frozenset(
    {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
)
"""Every field of one alert in that payload, all required, no other."""
STATUSES = ("firing", "resolved")

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")

LOG = logging.getLogger("sovml.audit.recorder")


class RefusedError(ValueError):
    """A request the recorder will not act on: its HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        """The 4xx status answered."""
        self.reason = reason
        """Why, for the log line and the response body."""


@dataclass(frozen=True)
class Action:
    """One firing alert with an automated action, as the entry will record it."""

    key: tuple[str, str]
    """``(fingerprint, startsAt)``: the same firing is recorded once."""
    fields: dict[str, Any]
    """The entry's event, subject, inputs, outputs and details (checked)."""


def _string(value: object, what: str, limit: int = MAX_FIELD) -> str:
    if not isinstance(value, str):
        raise RefusedError(400, f"{what} must be a string")
    if len(value) > limit:
        raise RefusedError(400, f"{what} is longer than {limit} characters")
    return value


def _labels(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RefusedError(400, f"{what} must be an object")
    for name, item in value.items():
        if not _LABEL_NAME.match(name):
            raise RefusedError(400, f"{what}: {name[:64]!r} is not a label name")
        _string(item, f"{what}.{name}")
    return value


def _exact(value: object, fields: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RefusedError(400, f"{what} must be a JSON object")
    if set(value) != fields:
        missing = sorted(fields - set(value))
        extra = sorted(set(value) - fields)
        raise RefusedError(
            400,
            f"{what}: fields differ (missing {missing or 'none'}, unexpected {extra or 'none'})",
        )
    return value


def _alert(value: object, i: int) -> dict[str, Any]:
    what = f"alerts[{i}]"
    alert = _exact(value, ALERT_FIELDS, what)
    if alert["status"] not in STATUSES:
        raise RefusedError(400, f"{what}.status must be one of {', '.join(STATUSES)}")
    labels = _labels(alert["labels"], f"{what}.labels")
    _labels(alert["annotations"], f"{what}.annotations")
    if not labels.get("alertname"):
        raise RefusedError(400, f"{what}.labels has no alertname")
    for name in ("startsAt", "endsAt"):
        if not _TIME.match(_string(alert[name], f"{what}.{name}", 64)):
            raise RefusedError(400, f"{what}.{name} is not an RFC 3339 time")
    _string(alert["generatorURL"], f"{what}.generatorURL")
    if not _FINGERPRINT.match(_string(alert["fingerprint"], f"{what}.fingerprint", 64)):
        raise RefusedError(400, f"{what}.fingerprint is not 16 hex digits")
    return alert


def parse_payload(body: bytes) -> dict[str, Any]:
    """The webhook payload in ``body``, checked field by field.

    Raises:
        RefusedError: Not JSON, not version 4, a field missing, unexpected or of the wrong type.
    """
    if len(body) > MAX_BODY:
        raise RefusedError(413, f"body of {len(body)} bytes is over {MAX_BODY}")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise RefusedError(400, f"not JSON ({json_error(exc)})") from None
    payload = _exact(payload, PAYLOAD_FIELDS, "payload")
    if payload["version"] != "4":
        raise RefusedError(400, f"payload version {str(payload['version'])[:16]!r} is not '4'")
    if payload["status"] not in STATUSES:
        raise RefusedError(400, f"payload status must be one of {', '.join(STATUSES)}")
    for name in ("groupKey", "receiver", "externalURL"):
        _string(payload[name], name)
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        _labels(payload[name], name)
    truncated = payload["truncatedAlerts"]
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise RefusedError(400, "truncatedAlerts must be a non-negative integer")
    alerts = payload["alerts"]
    if not isinstance(alerts, list) or not alerts:
        raise RefusedError(400, "alerts must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise RefusedError(413, f"{len(alerts)} alerts in one notification; at most {MAX_ALERTS}")
    payload["alerts"] = [_alert(a, i) for i, a in enumerate(alerts)]
    return payload


def subject_of(labels: dict[str, str]) -> str:
    """``<alertname>`` and the labels naming what it is about (``model=credit-risk``...)."""
    named = [f"{k}={labels[k]}" for k in SUBJECT_LABELS if labels.get(k)]
    return " ".join([labels["alertname"], *named])


def actions(payload: dict[str, Any]) -> list[Action]:
    """The entries a checked payload asks for: one per firing alert with an automated action.

    Raises:
        RefusedError: An entry would not be acceptable to the lifecycle log (422): a control
            character in a label, a text over the log's length limit.
    """
    found = []
    for i, alert in enumerate(payload["alerts"]):
        action = alert["annotations"].get(ANNOTATION, "").strip()
        if alert["status"] != "firing" or not action:
            continue
        labels = alert["labels"]
        details = {
            "alert": labels["alertname"],
            "fingerprint": alert["fingerprint"],
            "starts_at": alert["startsAt"],
            "action": action,
            "runbook_url": alert["annotations"].get("runbook_url", ""),
            "severity": labels.get("severity", ""),
            "labels": canonical(labels).decode("utf-8"),
            "receiver": payload["receiver"],
        }
        fields = {
            "event": EVENT,
            "subject": subject_of(labels),
            "inputs": {},
            "outputs": {},
            "details": details,
        }
        if problem := content_problem(fields):
            raise RefusedError(422, f"alerts[{i}] cannot be recorded: {problem}")
        found.append(Action((alert["fingerprint"], alert["startsAt"]), fields))
    return found


def recorded_keys(entries: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """``(fingerprint, startsAt)`` of every ``automated.action`` entry among ``entries``."""
    keys = set()
    for entry in entries:
        details = entry.get("details") if isinstance(entry, dict) else None
        if entry.get("event") == EVENT and isinstance(details, dict):
            fingerprint, starts = details.get("fingerprint"), details.get("starts_at")
            if isinstance(fingerprint, str) and isinstance(starts, str):
                keys.add((fingerprint, starts))
    return keys


def existing_entries(log: Path | None) -> list[dict[str, Any]]:
    """Every entry already in the log the recorder appends to (bucket or file), parsed.

    Lines or objects that are not JSON are passed over: appending refuses a damaged tail, and
    ``sovml audit verify`` is the judge of the rest.

    Raises:
        AuditError: The bucket or the file cannot be read.
    """
    from pipelines.audit import sink

    bodies: list[bytes]
    if log is None and (bucket := sink.configured_bucket()):
        bodies = [s.body for s in sink.BucketLog(bucket).read() if s.body]
    else:
        path = log if log is not None else log_path()
        try:
            bodies = path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise AuditError(f"cannot read the lifecycle log {path}: {exc}") from None
    entries = []
    for body in bodies:
        try:
            entries.append(json.loads(body))
        except ValueError:
            continue
    return entries


class Recorder:
    """Appends the entries of checked payloads, once per firing (thread-safe)."""

    def __init__(self, log: Path | None = None) -> None:
        """Record into ``log`` (None: the bucket when configured, else the default file); the
        firings already recorded there are read once, here.

        Raises:
            AuditError: The existing log cannot be read.
        """
        self.log = log
        """The file appended to; None for the bucket or the default file."""
        self._seen = recorded_keys(existing_entries(log))
        self._lock = threading.Lock()

    def record(self, payload: dict[str, Any]) -> dict[str, int]:
        """Append the payload's new actions; ``{"recorded", "duplicates"}``.

        Raises:
            RefusedError: An entry would not be acceptable (nothing is appended).
            AuditError: The log could not be written (what was appended before stays).
        """
        wanted = actions(payload)
        recorded = duplicates = 0
        with self._lock:
            for action in wanted:
                if action.key in self._seen:
                    duplicates += 1
                    continue
                f = action.fields
                entry = append(f["event"], f["subject"], details=f["details"], log=self.log)
                self._seen.add(action.key)
                recorded += 1
                LOG.info(
                    "recorded seq=%s alert=%s fingerprint=%s starts_at=%s",
                    entry["seq"],
                    f["details"]["alert"],
                    *action.key,
                )
        return {"recorded": recorded, "duplicates": duplicates}


def _handler(recorder: Recorder, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """One request: checked, then recorded, answered with a small JSON body."""

        timeout = READ_TIMEOUT_S
        server_version = "sovml-audit-recorder"
        sys_version = ""

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, refused: RefusedError) -> None:
            LOG.warning(
                "refused %d from %s: %s", refused.status, self.client_address[0], refused.reason
            )
            self.close_connection = True
            self._answer(refused.status, {"error": refused.reason})

        def _body(self) -> bytes:
            if self.path != PATH:
                raise RefusedError(
                    404, f"no such path {self.path[:64]!r}; notifications go to {PATH}"
                )
            if token is not None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    raise RefusedError(401, "missing or wrong bearer token")
            if self.headers.get("Transfer-Encoding"):
                raise RefusedError(411, "chunked bodies are refused; send a Content-Length")
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():
                raise RefusedError(411, "a Content-Length is required")
            if int(length) > MAX_BODY:
                raise RefusedError(413, f"body of {length} bytes is over {MAX_BODY}")
            kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                raise RefusedError(415, f"content type {kind[:64]!r} is not application/json")
            return self.rfile.read(int(length))

        def do_POST(self) -> None:
            """A notification: check, record, answer 200 (4xx refused, 503 log failure)."""
            try:
                counts = recorder.record(parse_payload(self._body()))
            except RefusedError as refused:
                self._refuse(refused)
                return
            except (AuditError, ValueError) as exc:
                LOG.error("cannot record: %s", exc)
                self._answer(503, {"error": "the lifecycle log cannot be written"})
                return
            self._answer(200, counts)

        def do_GET(self) -> None:
            """Health only."""
            if self.path == HEALTH_PATH:
                self._answer(200, {"ok": True})
            else:
                self._refuse(RefusedError(404 if self.path != PATH else 405, "only POST " + PATH))

        def _not_allowed(self) -> None:
            self._refuse(RefusedError(405, f"{self.command} is not allowed; POST {PATH}"))

        def do_PUT(self) -> None:
            """Refused (405)."""
            self._not_allowed()

        def do_DELETE(self) -> None:
            """Refused (405)."""
            self._not_allowed()

        def do_PATCH(self) -> None:
            """Refused (405)."""
            self._not_allowed()

        def log_message(self, format: str, *args: Any) -> None:
            """Request lines at debug level; refusals and entries are logged above."""
            LOG.debug(format, *args)

    return Handler


def server(
    host: str, port: int, recorder: Recorder, token: str | None = None
) -> ThreadingHTTPServer:
    """The recorder's HTTP server, bound (``port`` 0: any free one), not yet serving."""
    httpd = ThreadingHTTPServer((host, port), _handler(recorder, token))
    httpd.daemon_threads = True
    return httpd


def main(argv: list[str] | None = None) -> int:
    """Serve until stopped; 2 for bad arguments, 3 when the log or the port cannot be used."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.audit.recorder")
    parser.add_argument("--host", default="0.0.0.0")  # a pod's one interface
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log", type=Path, default=None, help="file log (default: bucket/env)")
    parser.add_argument("--token-file", type=Path, default=None, help="bearer token required")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        token = args.token_file.read_text().strip() if args.token_file else None
        if token == "":
            raise OSError("the token file is empty")
        httpd = server(args.host, args.port, Recorder(args.log), token)
    except (AuditError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    LOG.info("listening on %s:%d%s", args.host, httpd.server_address[1], PATH)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
