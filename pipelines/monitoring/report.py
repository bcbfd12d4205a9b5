"""The drift report: a self-contained HTML page with inline SVG plots of the drifted features.

matplotlib is not a dependency of the main virtualenv, so the plots are written as SVG by hand.
:func:`output_problem` says, before anything is computed, why a report path cannot be written;
:func:`write_report` writes the page whole or not at all (a temporary file, then a rename).
"""

from __future__ import annotations

import html as htmlmod
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kernels.drift import CategoricalDrift
from pipelines.monitoring.compare import Comparison, FeatureRow, NumericSample

_PLOT_BINS = 40
_PLOT_PEAK = 2.0**1000
"""Larger values are scaled down for the histogram: differences of values near 1e308 overflow."""
_MAX_CATEGORIES_PLOTTED = 20
_W, _H, _ML, _MR, _MT, _MB = 560, 230, 48, 12, 28, 40
_REF_COLOUR, _CUR_COLOUR = "#1f77b4", "#ff7f0e"
_COLUMNS = ("feature", "kind", "PSI", "KS", "JS", "W1", "chi2 p", "missing (current)", "drifted")
_STYLE = """body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
td:nth-child(n+3) { text-align: right; } tr.drifted { background: #fde2e2; }
.decision { font-size: 1.2em; font-weight: bold; } figure { display: inline-block; }"""


def fmt_stat(x: float, digits: int = 4) -> str:
    """A statistic in ``digits`` significant digits, ``-`` when there is none (NaN)."""
    return "-" if x is None or np.isnan(x) else f"{x:.{digits}g}"


def stat_cells(row: FeatureRow) -> list[str]:
    """A row's PSI, KS, JS, W1, chi-square p-value and missing fraction, formatted for display."""
    stats = [fmt_stat(v) for v in (row.psi, row.ks, row.js, row.w1)]
    return [*stats, fmt_stat(row.chi2_p, 3), f"{row.nan_fraction_cur:.1%}"]


def write_report(path: Path, comparison: Comparison, reference: Path, current: Path) -> None:
    """Write the HTML report of ``comparison`` (``current`` against ``reference``) to ``path``."""
    meta = {
        "reference": f"{reference} ({comparison.ref_rows} rows)",
        "current": f"{current} ({comparison.cur_rows} rows)",
        "statistic": comparison.statistic,
        "threshold": f"{comparison.threshold:g}",
    }
    doc = render_html(comparison.rows, plots(comparison), comparison.decision.summary(), meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file renamed over the target: a failed write never leaves half a report, nor
    # destroys the previous one.
    fd, tmp = tempfile.mkstemp(prefix=".drift-report.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(doc)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (mkstemp creates files 0600; a report gets the usual mode)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_problem(path: Path, inputs: Sequence[Path] = ()) -> str | None:
    """Why the report cannot be written to ``path``, or None when nothing known prevents it.

    Refused: a path naming no file, an existing folder or non-regular file (a FIFO would block),
    a file without write permission, one of ``inputs`` (the report would replace the data), and
    a path whose nearest existing ancestor is a file or a folder without write permission
    (missing folders are created when the report is written).
    """
    try:
        return _output_problem(path, inputs)
    except OSError as exc:  # a name too long, a loop of links: the path is unusable as given
        return f"cannot be used ({exc.strerror or exc})"


def _output_problem(path: Path, inputs: Sequence[Path]) -> str | None:
    """:func:`output_problem`, letting the ``OSError`` of an unusable path through."""
    if path.name in ("", ".", ".."):
        return "names a folder, not a file"
    if path.exists():
        if path.is_dir():
            return "is a folder, not a file"
        if not path.is_file():
            return "is not a regular file"
        if not os.access(path, os.W_OK):
            return "is not writable"
        for given in inputs:
            if _exists(given) and os.path.samefile(path, given):
                return f"is the input file {given}; the report would overwrite it"
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder {parent} is not writable"
    return None


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; False for a path the system cannot even look up."""
    try:
        return path.exists()
    except OSError:
        return False


def plots(comparison: Comparison) -> dict[str, str]:
    """One SVG per drifted feature (histograms for numeric ones, bars for categorical ones)."""
    out = {}
    for name, evidence in comparison.evidence.items():
        if isinstance(evidence, NumericSample):
            out[name] = svg_histogram(evidence.reference, evidence.current, name)
        elif isinstance(evidence, CategoricalDrift):
            out[name] = svg_categories(evidence, name)
    return out


def render_html(
    rows: tuple[FeatureRow, ...] | list[FeatureRow],
    plots: dict[str, str],
    decision: str,
    meta: dict[str, str],
) -> str:
    """A self-contained HTML page: decision, per-feature table, one plot per drifted feature."""
    esc = htmlmod.escape
    head = "".join(f"<th>{h}</th>" for h in _COLUMNS)
    body_rows = []
    for r in rows:
        cls = ' class="drifted"' if r.drifted else ""
        cells = "".join(f"<td>{c}</td>" for c in stat_cells(r))
        body_rows.append(
            f"<tr{cls}><td>{esc(r.name)}</td><td>{r.kind}</td>{cells}"
            f"<td>{'yes' if r.drifted else 'no'}</td></tr>"
        )
    figures = [
        f'<figure class="plot" data-feature="{esc(name)}">{svg}'
        f"<figcaption>{esc(name)}: reference vs current</figcaption></figure>"
        for name, svg in plots.items()
    ]
    meta_html = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in meta.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<style>
{_STYLE}
</style></head><body>
<h1>Drift report</h1>
<p class="decision">{esc(decision)}</p>
<ul>{meta_html}</ul>
<table><thead><tr>{head}</tr></thead><tbody>
{"".join(body_rows)}
</tbody></table>
<h2>Drifted features</h2>
{"".join(figures) if figures else "<p>None.</p>"}
</body></html>
"""


# ----------------------------------------------------------------------------------------------
# Inline SVG plots


def svg_histogram(ref: np.ndarray, cur: np.ndarray, title: str) -> str:
    """Overlaid reference/current histograms (shares of each sample) as an SVG string."""
    both = np.concatenate((ref, cur)).astype(np.float64)
    # Values near +-1e308 are plotted scaled down by a power of two (exact) and labelled with
    # their true values: the quantiles and bin widths below would overflow otherwise.
    scale = 2.0**-8 if both.size and np.max(np.abs(both)) > _PLOT_PEAK else 1.0
    ref, cur, both = ref * scale, cur * scale, both * scale
    lo, hi = np.quantile(both, [0.005, 0.995]) if both.size > 200 else (both.min(), both.max())
    edges = np.linspace(lo, hi, _PLOT_BINS + 1)
    if not np.all(np.diff(edges) > 0):
        # A constant sample, or a range narrower than 40 float steps: widen it around its middle.
        mid = lo / 2 + hi / 2
        pad = max(0.5, abs(mid) * 2.0**-20)
        lo, hi = mid - pad, mid + pad
        edges = np.linspace(lo, hi, _PLOT_BINS + 1)
    shares = [np.histogram(np.clip(v, lo, hi), edges)[0] / max(v.size, 1) for v in (ref, cur)]
    y_max = float(max(s.max() for s in shares)) or 1.0
    plot_w, plot_h = _W - _ML - _MR, _H - _MT - _MB
    bar_w = plot_w / _PLOT_BINS
    body = []
    for share, colour in zip(shares, (_REF_COLOUR, _CUR_COLOUR), strict=True):
        for i, s in enumerate(share):
            h = plot_h * float(s) / y_max
            body.append(
                f'<rect x="{_ML + i * bar_w:.1f}" y="{_MT + plot_h - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}" fill-opacity="0.55"/>'
            )
    labels = [(_ML + k * plot_w / 4, f"{(lo + k * (hi - lo) / 4) / scale:.3g}") for k in range(5)]
    return _svg_frame(title, body, labels, y_max)


def svg_categories(result: CategoricalDrift, title: str) -> str:
    """Grouped bars of category shares, reference next to current, as an SVG string."""
    ref = np.array(result.ref_counts, dtype=float) / max(result.n_ref, 1)
    cur = np.array(result.cur_counts, dtype=float) / max(result.n_cur, 1)
    order = np.argsort(-np.maximum(ref, cur), kind="stable")[:_MAX_CATEGORIES_PLOTTED]
    y_max = float(max(ref[order].max(), cur[order].max())) or 1.0
    plot_w, plot_h = _W - _ML - _MR, _H - _MT - _MB
    slot = plot_w / len(order)
    body, labels = [], []
    for k, idx in enumerate(order):
        for off, (share, colour) in enumerate(((ref, _REF_COLOUR), (cur, _CUR_COLOUR))):
            h = plot_h * float(share[idx]) / y_max
            x = _ML + k * slot + slot * (0.1 + 0.4 * off)
            body.append(
                f'<rect x="{x:.1f}" y="{_MT + plot_h - h:.1f}" width="{slot * 0.4:.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="0.55"/>'
            )
        labels.append((_ML + (k + 0.5) * slot, str(result.categories[idx])[:10]))
    return _svg_frame(title, body, labels, y_max)


def _svg_frame(title: str, body: list[str], x_labels: list[tuple[float, str]], y_max: float) -> str:
    """Axes, title, x labels and legend around the plot's ``body`` elements."""
    plot_h = _H - _MT - _MB
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{htmlmod.escape(title)}">',
        f'<text x="{_W / 2}" y="16" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{htmlmod.escape(title)}</text>',
        f'<line x1="{_ML}" y1="{_H - _MB}" x2="{_W - _MR}" y2="{_H - _MB}" stroke="#444"/>',
        f'<line x1="{_ML}" y1="{_MT}" x2="{_ML}" y2="{_H - _MB}" stroke="#444"/>',
        f'<text x="{_ML - 4}" y="{_MT + 4}" text-anchor="end" font-size="10">{y_max:.3g}</text>',
        f'<text x="{_ML - 4}" y="{_MT + plot_h}" text-anchor="end" font-size="10">0</text>',
    ]
    parts += body
    for x, label in x_labels:
        parts.append(
            f'<text x="{x:.1f}" y="{_H - _MB + 14}" text-anchor="middle" '
            f'font-size="10">{htmlmod.escape(label)}</text>'
        )
    legend_y = _H - 8
    parts += [
        f'<rect x="{_ML}" y="{legend_y - 9}" width="10" height="10" fill="{_REF_COLOUR}" '
        f'fill-opacity="0.55"/>',
        f'<text x="{_ML + 14}" y="{legend_y}" font-size="11">reference</text>',
        f'<rect x="{_ML + 90}" y="{legend_y - 9}" width="10" height="10" fill="{_CUR_COLOUR}" '
        f'fill-opacity="0.55"/>',
        f'<text x="{_ML + 104}" y="{legend_y}" font-size="11">current</text>',
        "</svg>",
    ]
    return "\n".join(parts)
