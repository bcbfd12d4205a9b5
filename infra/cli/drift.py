"""``sovml drift REFERENCE CURRENT``: per-feature drift of a data window and a retraining decision.

Register it on the main app with ``app.command("drift")(drift_command)``. Numeric columns get
PSI, KS, JS and W1 from :mod:`kernels.drift`; other columns (strings, categories, booleans) get
:func:`kernels.drift.categorical_drift`. A feature drifts when the chosen statistic exceeds the
threshold; categorical columns are judged by PSI over categories (``--statistic psi``, ``ks`` or
``w1``, which have no categorical form, against :data:`CATEGORICAL_PSI_THRESHOLD` in the last two
cases) or by JS over categories (``--statistic js``). A column with no value at all in the window
also counts as drifted.

Exit codes follow ``infra.cli.app``: 0 no drift, 1 drift above the threshold (retrain), 2 bad input
(unreadable file, schema mismatch, empty window, unknown statistic).
"""

from __future__ import annotations

import html as htmlmod
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kernels.drift import (
    STATISTICS,
    CategoricalDrift,
    DriftError,
    build_profile,
    categorical_drift,
    drift,
)

EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
DEFAULT_HTML = Path("build/drift/report.html")
# Categorical columns have no KS or W1; under those statistics they are judged by PSI against
# the conventional "significant shift" level instead of a threshold meant for another scale.
CATEGORICAL_PSI_THRESHOLD = 0.2
_PLOT_BINS = 40
_MAX_CATEGORIES_PLOTTED = 20


@dataclass(frozen=True)
class FeatureRow:
    """One feature's line in the table and the report."""

    name: str
    kind: str  # "numeric" or "categorical"
    psi: float
    ks: float
    js: float
    w1: float
    chi2_p: float
    nan_fraction_cur: float
    value: float  # the statistic the decision uses
    drifted: bool


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet (.parquet/.pq) or CSV file as a DataFrame; DriftError when it can't be read."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DriftError(f"{path}: no such file")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file
        raise DriftError(f"{path}: cannot read ({exc})") from exc
    raise DriftError(f"{path}: unsupported file type {suffix!r}; use .parquet or .csv")


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _check_columns(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns; DriftError naming expected vs got on any mismatch."""
    expected, got = [str(c) for c in ref.columns], [str(c) for c in cur.columns]
    if expected != got:
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        raise DriftError(
            f"schema mismatch: expected columns {expected}, got {got} "
            f"(missing {missing}, unexpected {extra})"
        )
    numeric = [c for c in ref.columns if _is_numeric(ref[c])]
    categorical = [c for c in ref.columns if c not in numeric]
    wrong = [c for c in numeric if not _is_numeric(cur[c])]
    if wrong:
        raise DriftError(f"schema mismatch: columns numeric in reference but not current: {wrong}")
    return [str(c) for c in numeric], [str(c) for c in categorical]


def _as_float(frame: pd.DataFrame) -> np.ndarray:
    # astype turns nullable integers' <NA> into NaN, which the kernel treats as missing.
    return frame.astype("float64").to_numpy()


def _fmt(x: float, digits: int = 4) -> str:
    return "-" if x is None or np.isnan(x) else f"{x:.{digits}g}"


# ----------------------------------------------------------------------------------------------
# Inline SVG plots (matplotlib is not a dependency of the main venv)

_W, _H, _ML, _MR, _MT, _MB = 560, 230, 48, 12, 28, 40
_REF_COLOUR, _CUR_COLOUR = "#1f77b4", "#ff7f0e"


def _svg_frame(title: str, body: list[str], x_labels: list[tuple[float, str]], y_max: float) -> str:
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


def svg_histogram(ref: np.ndarray, cur: np.ndarray, title: str) -> str:
    """Overlaid reference/current histograms (shares of each sample) as an SVG string."""
    both = np.concatenate((ref, cur))
    lo, hi = np.quantile(both, [0.005, 0.995]) if both.size > 200 else (both.min(), both.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
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
    labels = [(_ML + k * plot_w / 4, f"{lo + k * (hi - lo) / 4:.3g}") for k in range(5)]
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


def write_html(
    path: Path,
    rows: list[FeatureRow],
    plots: dict[str, str],
    decision: str,
    meta: dict[str, str],
) -> None:
    """A self-contained HTML report: decision, per-feature table, one plot per drifted feature."""
    esc = htmlmod.escape
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "feature",
            "kind",
            "PSI",
            "KS",
            "JS",
            "W1",
            "chi2 p",
            "missing (current)",
            "drifted",
        )
    )
    body_rows = []
    for r in rows:
        cls = ' class="drifted"' if r.drifted else ""
        body_rows.append(
            f"<tr{cls}><td>{esc(r.name)}</td><td>{r.kind}</td><td>{_fmt(r.psi)}</td>"
            f"<td>{_fmt(r.ks)}</td><td>{_fmt(r.js)}</td><td>{_fmt(r.w1)}</td>"
            f"<td>{_fmt(r.chi2_p, 3)}</td><td>{r.nan_fraction_cur:.1%}</td>"
            f"<td>{'yes' if r.drifted else 'no'}</td></tr>"
        )
    figures = [
        f'<figure class="plot" data-feature="{esc(name)}">{svg}'
        f"<figcaption>{esc(name)}: reference vs current</figcaption></figure>"
        for name, svg in plots.items()
    ]
    meta_html = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in meta.items())
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; }}
td:nth-child(n+3) {{ text-align: right; }} tr.drifted {{ background: #fde2e2; }}
.decision {{ font-size: 1.2em; font-weight: bold; }} figure {{ display: inline-block; }}
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")


def drift_command(
    reference: Annotated[Path, typer.Argument(help="Reference data (.parquet or .csv).")],
    current: Annotated[Path, typer.Argument(help="Current window (.parquet or .csv).")],
    threshold: Annotated[
        float, typer.Option(help="A feature drifts when the statistic exceeds this.")
    ] = 0.2,
    html: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = DEFAULT_HTML,
    statistic: Annotated[
        str, typer.Option(help="Statistic the decision uses: psi, ks, js or w1.")
    ] = "psi",
) -> None:
    """Compare CURRENT with REFERENCE per feature; exit 1 when any feature drifts (retrain)."""
    console = Console()
    if not console.is_terminal:
        # Logs and CI capture: rich would squeeze the table to 80 columns and elide cells.
        console = Console(width=120)
    err = Console(stderr=True)
    statistic = statistic.lower()
    if statistic not in STATISTICS:
        err.print(f"[red]unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}[/]")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        ref_df, cur_df = read_table(reference), read_table(current)
        for path, df in ((reference, ref_df), (current, cur_df)):
            if len(df) == 0:
                # Checked first: an empty CSV has no column types to check against.
                raise DriftError(f"empty {'window' if df is cur_df else 'reference'}: {path}")
        numeric, categorical = _check_columns(ref_df, cur_df)
        rows, plots = _compute(ref_df, cur_df, numeric, categorical, threshold, statistic)
    except DriftError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(EXIT_BAD_INPUT) from None

    table = Table(
        title=escape(
            f"drift of {current.name} against {reference.name} ({statistic} > {threshold:g})"
        ),
        title_justify="left",
    )
    for col in ("feature", "kind", "PSI", "KS", "JS", "W1", "chi2 p", "missing", "drifted"):
        table.add_column(col, justify="left" if col in ("feature", "kind") else "right")
    for r in rows:
        table.add_row(
            escape(r.name),
            r.kind,
            _fmt(r.psi),
            _fmt(r.ks),
            _fmt(r.js),
            _fmt(r.w1),
            _fmt(r.chi2_p, 3),
            f"{r.nan_fraction_cur:.1%}",
            "[red]yes[/]" if r.drifted else "[green]no[/]",
        )
    console.print(table)

    k, d = sum(r.drifted for r in rows), len(rows)
    decision = (
        f"drift on {k} of {d} features exceeds threshold -> retrain"
        if k
        else "no retraining needed"
    )
    meta = {
        "reference": f"{reference} ({len(ref_df)} rows)",
        "current": f"{current} ({len(cur_df)} rows)",
        "statistic": statistic,
        "threshold": f"{threshold:g}",
    }
    write_html(html, rows, plots, decision, meta)
    console.print(f"report: {html}", markup=False)
    console.print(decision, style="bold red" if k else "bold green")
    if k:
        raise typer.Exit(EXIT_DRIFT)


def _compute(
    ref_df: pd.DataFrame,
    cur_df: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    threshold: float,
    statistic: str,
) -> tuple[list[FeatureRow], dict[str, str]]:
    rows: list[FeatureRow] = []
    plots: dict[str, str] = {}
    if numeric:
        profile = build_profile(_as_float(ref_df[numeric]), numeric)
        cur_values = _as_float(cur_df[numeric])
        res = drift(profile, cur_values, feature_names=numeric, allow_empty_features=True)
        values = res.statistic(statistic)
        drifted = res.drifted(threshold, statistic)
        for j, name in enumerate(numeric):
            rows.append(
                FeatureRow(
                    name=name,
                    kind="numeric",
                    psi=res.psi[j],
                    ks=res.ks[j],
                    js=res.js[j],
                    w1=res.w1[j],
                    chi2_p=float("nan"),
                    nan_fraction_cur=res.nan_fraction_cur[j],
                    value=values[j],
                    drifted=bool(drifted[j]),
                )
            )
            if drifted[j]:
                col = cur_values[:, j]
                plots[name] = svg_histogram(profile.values(j), col[np.isfinite(col)], name)
    for name in categorical:
        cur_col = cur_df[name]
        if cur_col.notna().sum() == 0:
            # Like an empty numeric feature: nothing to compare, which is itself a drift.
            rows.append(
                FeatureRow(name, "categorical", *([float("nan")] * 5), 1.0, float("nan"), True)
            )
            continue
        cat = categorical_drift(ref_df[name].to_numpy(), cur_col.to_numpy())
        value = cat.js if statistic == "js" else cat.psi
        limit = threshold if statistic in ("psi", "js") else CATEGORICAL_PSI_THRESHOLD
        is_drift = value > limit
        rows.append(
            FeatureRow(
                name=name,
                kind="categorical",
                psi=cat.psi,
                ks=float("nan"),
                js=cat.js,
                w1=float("nan"),
                chi2_p=cat.p_value,
                nan_fraction_cur=cat.missing_fraction_cur,
                value=value,
                drifted=is_drift,
            )
        )
        if is_drift:
            plots[name] = svg_categories(cat, name)
    order = {name: i for i, name in enumerate(ref_df.columns.astype(str))}
    rows.sort(key=lambda r: order[r.name])
    return rows, plots
