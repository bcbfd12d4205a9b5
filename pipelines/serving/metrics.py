"""Read Triton's Prometheus metrics endpoint: per-model counters, latency sums and quantiles.

Triton exports, per ``model`` and ``version`` label (all counters are cumulative since load):

* ``nv_inference_request_success`` / ``nv_inference_request_failure`` (the latter per ``reason``),
* ``nv_inference_count`` (inferences, i.e. batch rows) and ``nv_inference_exec_count``
  (model executions; count / exec_count is the average batch size the dynamic batcher formed),
* ``nv_inference_request_duration_us`` and ``nv_inference_queue_duration_us`` (sums, so a delta
  divided by the delta of requests is the mean over an interval),
* with ``--metrics-config summary_latencies=true``: ``nv_inference_request_summary_us`` with
  ``quantile`` labels (the levels ``summary_quantiles`` configures,
  :data:`policies.promotion.SUMMARY_LEVELS`) over a sliding window of the last 48-60 s, and its
  cumulative ``_count``: what the canary's latency guard reads, locally and in the cluster
  (:func:`policies.promotion.latency_verdict_query`).

The text format is parsed here (a few lines) rather than with a client library: only plain
``name{labels} value`` samples are needed.
"""

from __future__ import annotations

import math
import re
import time
import urllib.request
from dataclasses import dataclass, field, fields
from typing import Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Sample = tuple[str, dict[str, str], float]


def parse_prometheus(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition: ``(name, labels, value)``; comments skipped."""
    samples: list[Sample] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, _, labels, value = match.group(1), match.group(2), match.group(3), match.group(4)
        parsed = {
            k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            for k, v in _LABEL.findall(labels or "")
        }
        try:
            samples.append((name, parsed, float(value)))
        except ValueError:
            continue
    return samples


def _counter(series: str) -> Any:
    """A counter field: Triton's cumulative ``series``, summed over the model's versions."""
    return field(default=0.0, metadata={"series": series})


@dataclass
class ModelMetrics:
    """One model's counters (summed over versions) and latency quantiles at a scrape."""

    success: float = _counter("nv_inference_request_success")
    """Requests that succeeded."""
    failure: float = _counter("nv_inference_request_failure")
    """Requests that failed (every ``reason``)."""
    inferences: float = _counter("nv_inference_count")
    """Inferences, i.e. batch rows."""
    executions: float = _counter("nv_inference_exec_count")
    """Model executions (one per batch the scheduler formed)."""
    request_duration_us: float = _counter("nv_inference_request_duration_us")
    """Summed server-side request duration."""
    queue_duration_us: float = _counter("nv_inference_queue_duration_us")
    """Summed time requests waited in the scheduler queue."""
    compute_infer_us: float = _counter("nv_inference_compute_infer_duration_us")
    """Summed time in the model's forward pass."""
    summary_count: float = _counter("nv_inference_request_summary_us_count")
    """Observations the request summary has taken (cumulative; its window's size comes from
    differences of this counter)."""
    quantiles_us: dict[float, float] = field(default_factory=dict)
    """``nv_inference_request_summary_us`` quantile -> microseconds (window, not cumulative)."""

    @property
    def requests(self) -> float:
        """Requests that completed, successfully or not."""
        return self.success + self.failure

    def minus(self, before: ModelMetrics) -> ModelMetrics:
        """Counter deltas since ``before``; quantiles are this scrape's (they are a window)."""
        deltas = {f.name: getattr(self, f.name) - getattr(before, f.name) for f in _COUNTER_FIELDS}
        return ModelMetrics(**deltas, quantiles_us=dict(self.quantiles_us))

    @property
    def mean_request_us(self) -> float:
        """Mean server-side request duration (meaningful on a delta)."""
        return self.request_duration_us / self.requests if self.requests else math.nan

    @property
    def mean_queue_us(self) -> float:
        """Mean time a request waited in the scheduler queue (meaningful on a delta)."""
        return self.queue_duration_us / self.requests if self.requests else math.nan

    @property
    def average_batch(self) -> float:
        """Rows per model execution: > 1 when the dynamic batcher merged requests."""
        return self.inferences / self.executions if self.executions else math.nan

    def quantile_us(self, q: float) -> float:
        """A summary quantile in microseconds; NaN when the window holds no observation."""
        return self.quantiles_us.get(q, math.nan)


_COUNTER_FIELDS = tuple(f for f in fields(ModelMetrics) if "series" in f.metadata)
_COUNTERS = {f.metadata["series"]: f.name for f in _COUNTER_FIELDS}
"""Triton series -> the :class:`ModelMetrics` field it fills."""


def model_metrics(samples: list[Sample]) -> dict[str, ModelMetrics]:
    """Per-model metrics from parsed samples (versions summed; quantiles: the largest version's
    value, since only one version of a model is loaded in these runs)."""
    out: dict[str, ModelMetrics] = {}
    for name, labels, value in samples:
        model = labels.get("model")
        if model is None:
            continue
        m = out.setdefault(model, ModelMetrics())
        attr = _COUNTERS.get(name)
        if attr is not None:
            setattr(m, attr, getattr(m, attr) + value)
        elif name == "nv_inference_request_summary_us" and "quantile" in labels:
            q = float(labels["quantile"])
            if not math.isnan(value):
                m.quantiles_us[q] = max(value, m.quantiles_us.get(q, -math.inf))
    return out


def scrape(metrics_url: str, timeout_s: float = 5.0) -> dict[str, ModelMetrics]:
    """GET the metrics endpoint and return :func:`model_metrics` of it."""
    with urllib.request.urlopen(metrics_url, timeout=timeout_s) as resp:
        text = resp.read().decode("utf-8", errors="replace")
    return model_metrics(parse_prometheus(text))


def settled_scrape(
    metrics_url: str, model: str, *, timeout_s: float = 5.0, interval_s: float = 0.05
) -> ModelMetrics:
    """Scrape until ``model``'s counters read the same twice in a row, and return them.

    Triton answers a request before it has bumped every counter of it (``nv_inference_count``
    can lead ``nv_inference_exec_count``), so a scrape taken right after a load may catch a
    request half-counted; a delta between two such scrapes then shows, say, 300 inferences over
    301 executions. Waiting for two equal readings removes that race; when the counters never
    settle within ``timeout_s`` the last reading is returned.
    """
    deadline = time.monotonic() + timeout_s
    last = scrape(metrics_url).get(model, ModelMetrics())
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        now = scrape(metrics_url).get(model, ModelMetrics())
        if _counters(now) == _counters(last):
            return now
        last = now
    return last


def _counters(m: ModelMetrics) -> tuple[float, ...]:
    return tuple(getattr(m, f.name) for f in _COUNTER_FIELDS)
