"""A profile as one self-contained HTML file (inline CSS, charts as inline SVG drawn by matplotlib; no
network, no scripts) and as JSON."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
from pathlib import Path
from typing import Any

from headwater import __version__
from headwater.manifest import write_atomic
from headwater.quality.profiling import ColumnProfile, Profile
from headwater.quality.suggest import suggestions_yaml
from headwater.units import format_bytes

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#15324b;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.8}main{padding:18px 28px;max-width:1200px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 18px}.card{background:#fff;border-radius:6px;
padding:10px 14px;box-shadow:0 1px 2px #0002;min-width:120px}.card b{display:block;font-size:20px}
.card span{color:#5b6675;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002;border-radius:6px}
th,td{padding:5px 9px;border-bottom:1px solid #e6e9ee;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
section.col{background:#fff;border-radius:6px;box-shadow:0 1px 2px #0002;margin:16px 0;padding:12px 16px}
section.col h3{margin:0 0 8px}section.col .grid{display:grid;grid-template-columns:minmax(280px,1fr) 2fr;gap:16px}
section.col table{box-shadow:none}.tag{display:inline-block;background:#e3ecf7;color:#15324b;border-radius:10px;
padding:0 8px;font-size:12px;margin-left:6px}.warn{color:#a34700}ul.anom{margin:6px 0;padding-left:18px}
pre{background:#0f1b26;color:#e6edf3;padding:12px;border-radius:6px;overflow:auto}svg{max-width:100%;height:auto}
footer{color:#5b6675;font-size:12px;padding:18px 28px}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.4e}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _e(value: Any) -> str:
    return html.escape(_fmt(value))


def _day_number(value: dt.datetime) -> float:
    """Matplotlib's date axis unit: days since 1970-01-01 (its default epoch)."""
    return (value - dt.datetime(1970, 1, 1)).total_seconds() / 86400.0


def _chart(c: ColumnProfile) -> str:
    """An inline SVG: a histogram for numbers and dates, a bar chart of the top values otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if c.histogram:
        lows = [h[0] for h in c.histogram]
        highs = [h[1] for h in c.histogram]
        counts = [h[2] for h in c.histogram]
        if c.kind == "temporal":
            left = [_day_number(v) for v in lows]
            width = [_day_number(b) - _day_number(a) for a, b in zip(lows, highs, strict=True)]
        else:
            left = [float(v) for v in lows]
            width = [float(b) - float(a) for a, b in zip(lows, highs, strict=True)]
        kind = "hist"
    elif c.top:
        labels = [_fmt(v)[:28] for v, _ in c.top][::-1]
        values = [n for _, n in c.top][::-1]
        kind = "bar"
    else:
        return "<p><i>no values to draw</i></p>"
    with plt.rc_context(
        {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
    ):
        height = 2.6 if kind == "hist" else max(1.5, 0.6 + 0.24 * len(labels))
        fig, ax = plt.subplots(figsize=(6.4, height), layout="constrained")
        if kind == "hist":
            ax.bar(left, counts, width=width, align="edge", color="#2f6fa3", edgecolor="white", linewidth=0.5)
            ax.set_ylabel("rows")
            if c.kind == "temporal":
                ax.xaxis_date()
                fig.autofmt_xdate()
        else:
            ax.barh(range(len(labels)), values, color="#2f6fa3")
            ax.set_yticks(range(len(labels)), labels)
            ax.set_xlabel("rows")
        what = "distribution" if kind == "hist" else "top values"
        if kind == "bar" and not c.top_exact:
            what += " (estimated from a sample)"
        ax.set_title(f"{c.name}: {what}", loc="left", fontsize=10)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def _stats(c: ColumnProfile, rows: int) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("type", c.type),
        ("non-null", c.count),
        ("null", f"{c.nulls:,} ({c.null_pct:.2f}%)"),
        (
            "distinct",
            f"{c.distinct:,}"
            + ("" if c.distinct_exact else " (approx.)")
            + (" - unique" if c.unique else ""),
        ),
    ]
    if c.min is not None:
        out += [("min", c.min), ("max", c.max)]
    if c.mean is not None:
        out += [("mean", c.mean), ("std", c.std)]
    for name in ("p05", "p25", "p50", "p75", "p95"):
        if name in c.quantiles:
            out.append((name, c.quantiles[name]))
    if c.min_length is not None:
        out.append(("length", f"{c.min_length}..{c.max_length} (mean {_fmt(c.mean_length)})"))
    if c.patterns:
        shapes = ", ".join(f"{s!r} {share * 100:.0f}%" for s, share in c.patterns[:3])
        out.append(("shapes (sample)", shapes))
    if c.true_count is not None:
        out.append(("true", c.true_count))
    return out


def render_html(profile: Profile) -> str:
    """The profile as one self-contained HTML page."""
    p = profile
    missing_pct = 100.0 * p.missing_cells / (p.rows * len(p.columns)) if p.rows and p.columns else 0.0
    cards = [
        ("rows", _fmt(p.rows)),
        ("columns", str(len(p.columns))),
        ("size", format_bytes(p.bytes) if p.bytes else "-"),
        ("missing cells", f"{missing_pct:.2f}%"),
        ("duplicate rows", _fmt(p.duplicate_rows)),
    ]
    if p.key:
        cards.append((f"duplicate keys ({', '.join(p.key)})", _fmt(p.duplicate_keys)))
    if p.rejected_lines:
        cards.append(("lines not parsed", _fmt(p.rejected_lines)))
    cards.append(("profiled in", f"{p.elapsed:.2f} s"))
    alerts = [f"{c.name}: {a}" for c in p.columns for a in c.anomalies]
    if p.duplicate_rows:
        alerts.insert(0, f"{p.duplicate_rows:,} duplicate row(s) (identical in every column)")
    if p.duplicate_keys:
        alerts.insert(0, f"{p.duplicate_keys:,} duplicate key(s) in {', '.join(p.key)}")
    if p.rejected_lines:
        alerts.insert(0, f"{p.rejected_lines:,} line(s) did not parse and are not in the figures")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Profile of {html.escape(p.table)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>Profile of {html.escape(p.table)}</h1><p>{html.escape(p.source)} - {html.escape(p.created_at)}</p></header><main>",
        "<div class='cards'>"
        + "".join(
            f"<div class='card'><span>{html.escape(k)}</span><b>{html.escape(v)}</b></div>" for k, v in cards
        )
        + "</div>",
    ]
    if alerts:
        parts.append(
            "<h2>Alerts</h2><ul class='anom warn'>"
            + "".join(f"<li>{html.escape(a)}</li>" for a in alerts)
            + "</ul>"
        )
    parts.append(
        "<h2>Columns</h2><table><tr><th>column</th><th>type</th><th>null %</th><th>distinct</th><th>min</th><th>max</th><th>mean</th><th>anomalies</th></tr>"
    )
    for c in p.columns:
        parts.append(
            f"<tr><td><a href='#col-{html.escape(c.name)}'>{html.escape(c.name)}</a></td><td>{html.escape(c.type)}</td>"
            f"<td class='n'>{c.null_pct:.2f}</td><td class='n'>{_e(c.distinct)}</td><td>{_e(c.min)}</td><td>{_e(c.max)}</td>"
            f"<td class='n'>{_e(c.mean)}</td><td class='n'>{len(c.anomalies) or ''}</td></tr>"
        )
    parts.append("</table>")
    for c in p.columns:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_e(v)}</td></tr>" for k, v in _stats(c, p.rows))
        top = ""
        if c.top and c.histogram:  # the chart shows the distribution; list the most frequent values too
            top = "<p><b>top values:</b> " + ", ".join(f"{_e(v)} ({n:,})" for v, n in c.top[:5] if n) + "</p>"
        anomalies = (
            ("<ul class='anom warn'>" + "".join(f"<li>{html.escape(a)}</li>" for a in c.anomalies) + "</ul>")
            if c.anomalies
            else ""
        )
        parts.append(
            f"<section class='col' id='col-{html.escape(c.name)}'><h3>{html.escape(c.name)}<span class='tag'>{html.escape(c.kind)}</span></h3>"
            f"{anomalies}<div class='grid'><table>{rows}</table><div>{_chart(c)}{top}</div></div></section>"
        )
    if p.suggested_checks:
        parts.append(
            "<h2>Suggested checks</h2><p>Review, then paste into <code>headwater.yaml</code> "
            "(or run <code>headwater profile ... --accept</code>):</p>"
            f"<pre>{html.escape(suggestions_yaml(p.table, p.suggested_checks))}</pre>"
        )
    parts.append(
        f"</main><footer>headwater {html.escape(__version__)} - computed in {p.passes} SQL passes</footer></body></html>"
    )
    return "\n".join(parts)


def write_profile(profile: Profile, *, html_path: Path | None = None, json_path: Path | None = None) -> None:
    """Write the HTML report and/or the JSON profile (each atomically)."""
    if html_path is not None:
        write_atomic(html_path, render_html(profile).encode("utf-8"))
    if json_path is not None:
        write_atomic(json_path, (json.dumps(profile.to_json(), indent=2) + "\n").encode("utf-8"))
