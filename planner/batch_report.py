"""OUT/report.html of a batch: success per task and scoring config (bars) and a steps histogram, drawn as
inline SVG (no plotting dependency, opens offline), plus the summary table and a link to every run's report."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")
REPORT_NAME = "report.html"


def _label(path: str) -> str:
    return os.path.splitext(os.path.basename(str(path)))[0]


def series(r: dict) -> str:
    """A row's or result's series in the plots: its scoring config, and its planner variant when it has one."""
    variant = r.get("variant") or "default"
    return _label(r["config"]) if variant == "default" else f"{_label(r['config'])} / {variant}"


def success_bars_svg(rows: Sequence[dict], width: int = 640, bar_h: int = 18) -> str:
    """Horizontal bars: one group per task, one bar per series (config, variant), length = success rate."""
    tasks = sorted({r["task"] for r in rows})
    cfgs = sorted({series(r) for r in rows})
    left, right = 170, 60
    group_h = bar_h * len(cfgs) + 10
    height = 30 + group_h * len(tasks) + 20 * len(cfgs)
    scale = (width - left - right) / 100.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12">']
    for pct in (0, 25, 50, 75, 100):
        x = left + pct * scale
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{20 + group_h * len(tasks)}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="14" text-anchor="middle" fill="#555">{pct}%</text>')
    by = {(r["task"], series(r)): r for r in rows}
    y = 22
    for task in tasks:
        parts.append(f'<text x="{left - 6}" y="{y + group_h / 2:.1f}" text-anchor="end">{html.escape(task)}</text>')
        for i, cfg in enumerate(cfgs):
            r = by.get((task, cfg))
            if r is not None:
                w = 100.0 * r["success_rate"] * scale
                parts.append(f'<rect x="{left}" y="{y + i * bar_h}" width="{w:.1f}" height="{bar_h - 3}" '
                             f'fill="{PALETTE[i % len(PALETTE)]}"/>'
                             f'<text x="{left + w + 4:.1f}" y="{y + i * bar_h + bar_h - 6}" fill="#333">'
                             f'{r["successes"]}/{r["episodes"]}</text>')
        y += group_h
    for i, cfg in enumerate(cfgs):
        yy = y + 10 + 20 * i
        parts.append(f'<rect x="{left}" y="{yy}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{left + 18}" y="{yy + 10}">{html.escape(cfg)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def steps_histogram_svg(results: Sequence[dict], width: int = 640, height: int = 240) -> str:
    """Steps per episode, one bar series per (config, variant) (successes solid, failures pale)."""
    if not results:
        return "<p>(no episodes)</p>"
    cfgs = sorted({series(r) for r in results})
    max_steps = max(1, max(int(r["steps"]) for r in results))
    n_bins = min(15, max_steps + 1)
    bin_w = (max_steps + 1) / n_bins
    counts = {(c, ok): [0] * n_bins for c in cfgs for ok in (True, False)}
    for r in results:
        b = min(n_bins - 1, int(int(r["steps"]) / bin_w))
        counts[(series(r), bool(r["success"]))][b] += 1
    left, bottom, top = 40, 36, 16
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(max(counts[(c, True)][b] + counts[(c, False)][b] for c in cfgs) for b in range(n_bins))
    slot = plot_w / n_bins
    bar = slot * 0.85 / len(cfgs)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>']
    for k in range(peak + 1):
        yy = top + plot_h - plot_h * k / max(1, peak)
        parts.append(f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end" fill="#555">{k}</text>')
    for b in range(n_bins):
        x0 = left + b * slot
        lo, hi = int(round(b * bin_w)), int(round((b + 1) * bin_w)) - 1
        parts.append(f'<text x="{x0 + slot / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#555">'
                     f'{lo if hi <= lo else f"{lo}-{hi}"}</text>')
        for i, c in enumerate(cfgs):
            base = top + plot_h
            for ok, opacity in ((True, 1.0), (False, 0.4)):
                n = counts[(c, ok)][b]
                if not n:
                    continue
                h = plot_h * n / max(1, peak)
                parts.append(f'<rect x="{x0 + i * bar:.1f}" y="{base - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                             f'fill="{PALETTE[i % len(PALETTE)]}" fill-opacity="{opacity}">'
                             f'<title>{html.escape(c)}: {n} {"successes" if ok else "failures"}</title></rect>')
                base -= h
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">steps per episode '
                 f'(solid: success, pale: failure)</text></svg>')
    return "".join(parts)


def write_batch_report(out_dir: str, rows: Sequence[dict], results: Sequence[dict], title: str,
                       notes: Sequence[str] = ()) -> str:
    """Write OUT/report.html; returns its path."""
    table = ["<table><tr><th>task</th><th>config / variant</th><th>episodes</th><th>success</th><th>median steps</th>"
             "<th>s / episode</th><th>errors</th></tr>"]
    for r in rows:
        table.append(f"<tr><td>{html.escape(r['task'])}</td><td>{html.escape(series(r))}</td>"
                     f"<td>{r['episodes']}</td><td>{r['success_rate']:.0%}</td><td>{r['median_steps']:.1f}</td>"
                     f"<td>{r['mean_time_s']:.1f}</td><td>{r['errors']}</td></tr>")
    table.append("</table>")
    runs = ["<table><tr><th>task</th><th>seed</th><th>config / variant</th><th>verdict</th><th>steps</th>"
            "<th>run</th></tr>"]
    for r in results:
        link = ""
        if r.get("run_dir"):
            rel = os.path.relpath(os.path.join(r["run_dir"], "report.html"), out_dir)
            link = f'<a href="{html.escape(rel)}">report</a>'
        verdict = "success" if r["success"] else (f"error: {html.escape(str(r['error']))}" if r.get("error")
                                                  else "failed")
        runs.append(f"<tr><td>{html.escape(_label(r['task']))}</td><td>{r['seed']}</td>"
                    f"<td>{html.escape(series(r))}</td><td>{verdict}</td><td>{r['steps']}</td>"
                    f"<td>{link}</td></tr>")
    runs.append("</table>")
    body = "\n".join([
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *[f"<p>{html.escape(n)}</p>" for n in notes],
        "<h2>Success per task and scoring config (and planner variant)</h2>", success_bars_svg(rows),
        "<h2>Steps per episode</h2>", steps_histogram_svg(results),
        "<h2>Summary</h2>", *table, "<h2>Episodes</h2>", *runs, "</body></html>"])
    path = os.path.join(out_dir, REPORT_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, path)
    return path
