"""The Prometheus pushgateway client the platform's jobs share: push a group, read one back.

A group is ``job`` plus a grouping key (label -> value), at
``<gateway>/metrics/job/<job>/<label>/<value>...``. ``PUT`` replaces every metric of the group,
``POST`` only the metrics of the same name; neither adds to a pushed value. The drift job
(:mod:`pipelines.monitoring.drift_job`) replaces its model's scores; the training pipeline's
exit task (:func:`pipelines.training.outcome.push_run`) reads its counter back and pushes it plus
one. Standard library only: the exit task runs on a bare Python image with nothing installed.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Mapping

DEFAULT_URL = "http://prometheus-pushgateway.monitoring.svc:9091"
"""The pushgateway of the monitoring component (``components.monitoring.PUSHGATEWAY_URL``)."""
CONTENT_TYPE = "text/plain; version=0.0.4"
TIMEOUT_S = 30.0
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALUE = re.compile(r"[\w.-]+")
_SAMPLE = re.compile(r"([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?")
_LABEL = re.compile(r'\s*([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"\s*,?')


def group_url(gateway: str, job: str, grouping: Mapping[str, str] | None = None) -> str:
    """The URL of a group; ``job`` and every label value are letters, digits, ``_ . -``."""
    parts = ["metrics", "job", _checked_value("job", job)]
    for label, value in (grouping or {}).items():
        if not _NAME.fullmatch(label):
            raise ValueError(f"grouping label: {label!r} is not a Prometheus label name")
        parts += [label, _checked_value(label, value)]
    return f"{gateway.rstrip('/')}/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


def _checked_value(label: str, value: str) -> str:
    """``value`` if it cannot leave its path segment (no ``/``, no base64 form needed)."""
    if not _VALUE.fullmatch(value):
        raise ValueError(f"{label}: {value!r}; allowed letters, digits, '_', '.', '-'")
    return value


def push(
    gateway: str,
    job: str,
    grouping: Mapping[str, str] | None,
    body: str,
    method: str = "PUT",
) -> None:
    """Push ``body`` (text exposition) to the group: ``PUT`` replaces it, ``POST`` merges by
    metric name. Raises ``OSError`` (``urllib.error.URLError``) when the gateway refuses it."""
    if method not in ("PUT", "POST"):
        raise ValueError(f"method: {method!r}; allowed 'PUT', 'POST'")
    req = urllib.request.Request(
        group_url(gateway, job, grouping),
        data=body.encode(),
        method=method,
        headers={"Content-Type": CONTENT_TYPE},
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT_S):
        pass


def read_samples(gateway: str, metric: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of ``metric`` the gateway exposes now, as (labels, value); the group's
    ``job`` and grouping labels are among the labels, as Prometheus scrapes them."""
    req = urllib.request.Request(f"{gateway.rstrip('/')}/metrics", method="GET")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
        text = response.read().decode()
    return parse_samples(text, metric)


def parse_samples(text: str, metric: str) -> list[tuple[dict[str, str], float]]:
    """The samples of ``metric`` in text exposition ``text`` (comments and others skipped)."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.fullmatch(line.strip())
        if match is None or match.group(1) != metric:
            continue
        labels = {m.group(1): _unescape(m.group(2)) for m in _LABEL.finditer(match.group(2) or "")}
        samples.append((labels, float(match.group(3))))
    return samples


def _unescape(value: str) -> str:
    """A label value as written in the exposition, unescaped (``\\\\``, ``\\"``, ``\\n``)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)
