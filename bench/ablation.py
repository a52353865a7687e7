"""`antigrounding bench --ablation`: the planner with one part taken away at a time, over tasks and seeds.

The variants are data (configs/ablations.yaml, or `--variants FILE`; format in planner/batch_variants.py): full,
no_anchored_proposals, no_rotation_module, no_failure_recovery, single_view. The grid runs through `batch`
(parallel, resumable, OUT/ablation/results.jsonl). Printed: the ablation table (success and median steps per
task per variant); written: OUT/ablation/ablation.html (table and bar chart, inline SVG) and ablation.png (the
same chart, drawn with Pillow), plus batch's report.html with every run linked.
"""

from __future__ import annotations

import argparse
import html
import os
import statistics

from PIL import Image, ImageDraw

from planner.batch import summarise
from planner.batch_report import PALETTE, write_batch_report

ABLATIONS = "ablations"


def ablation_cells(results: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """(tasks, variants in grid order, (task, variant) -> {episodes, successes, success_rate, median_steps}), with
    an 'all tasks' row."""
    variants = list(dict.fromkeys(r.get("variant") or "default" for r in results))
    tasks = sorted({r.get("task_name") or r["task"] for r in results})
    cells: dict[tuple[str, str], dict] = {}
    for task in [*tasks, "all tasks"]:
        for v in variants:
            rs = [r for r in results if (r.get("variant") or "default") == v
                  and (task == "all tasks" or (r.get("task_name") or r["task"]) == task)]
            if rs:
                ok = sum(r["success"] is True for r in rs)
                cells[(task, v)] = {"episodes": len(rs), "successes": ok, "success_rate": ok / len(rs),
                                    "median_steps": statistics.median(r["steps"] for r in rs)}
    return [*tasks, "all tasks"] if len(tasks) > 1 else tasks, variants, cells


def format_ablation_table(results: list[dict]) -> str:
    tasks, variants, cells = ablation_cells(results)
    width = max(14, *(len(v) + 1 for v in variants))
    lines = ["success % (median steps), per task and planner variant", f"{'task':20s}" +
             "".join(f"{v:>{width}s}" for v in variants)]
    for task in tasks:
        row = f"{task[:20]:20s}"
        for v in variants:
            c = cells.get((task, v))
            text = "-" if c is None else f"{c['success_rate']:.0%} ({c['median_steps']:g})"
            row += f"{text:>{width}s}"
        lines.append(row)
    n = {c["episodes"] for (t, _), c in cells.items() if t != "all tasks"}
    lines.append(f"episodes per cell: {', '.join(map(str, sorted(n)))}")
    return "\n".join(lines)


def _bars(tasks, variants, cells):
    """(task index, variant index, success rate, label) for every cell: one layout for the SVG and the PNG."""
    return [(i, j, cells[(t, v)]["success_rate"], f"{cells[(t, v)]['successes']}/{cells[(t, v)]['episodes']}")
            for i, t in enumerate(tasks) for j, v in enumerate(variants) if (t, v) in cells]


def ablation_svg(results: list[dict], width: int = 760, height: int = 320) -> str:
    """Grouped vertical bars: one group per task, one bar per variant, height = success rate."""
    tasks, variants, cells = ablation_cells(results)
    left, bottom, top, legend = 44, 40, 16, 150
    plot_w, plot_h = width - left - legend, height - bottom - top
    slot = plot_w / max(1, len(tasks))
    bar = slot * 0.8 / max(1, len(variants))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11">']
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{pct}%</text>')
    for i, j, rate, label in _bars(tasks, variants, cells):
        x = left + i * slot + slot * 0.1 + j * bar
        h = plot_h * rate
        out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                   f'fill="{PALETTE[j % len(PALETTE)]}"><title>{html.escape(variants[j])}: {label}</title></rect>')
    for i, t in enumerate(tasks):
        out.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                   f'{html.escape(t)}</text>')
    for j, v in enumerate(variants):
        y = top + 18 * j
        out.append(f'<rect x="{left + plot_w + 12}" y="{y}" width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/>'
                   f'<text x="{left + plot_w + 30}" y="{y + 10}">{html.escape(v)}</text>')
    out.append("</svg>")
    return "".join(out)


def ablation_png(results: list[dict], path: str, width: int = 760, height: int = 320) -> str:
    """The same chart as ablation_svg, as a PNG (Pillow's default font)."""
    tasks, variants, cells = ablation_cells(results)
    left, bottom, top, legend = 44, 40, 16, 150
    plot_w, plot_h = width - left - legend, height - bottom - top
    slot = plot_w / max(1, len(tasks))
    bar = slot * 0.8 / max(1, len(variants))
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        draw.line([(left, y), (left + plot_w, y)], fill="#dddddd")
        draw.text((4, y - 6), f"{pct}%", fill="#555555")
    for i, j, rate, _ in _bars(tasks, variants, cells):
        x = left + i * slot + slot * 0.1 + j * bar
        h = plot_h * rate
        if h > 0:
            draw.rectangle([x, top + plot_h - h, x + bar - 2, top + plot_h], fill=PALETTE[j % len(PALETTE)])
    for i, t in enumerate(tasks):
        draw.text((left + i * slot + 4, top + plot_h + 8), t[: int(slot / 6)], fill="black")
    for j, v in enumerate(variants):
        y = top + 18 * j
        draw.rectangle([left + plot_w + 12, y, left + plot_w + 24, y + 12], fill=PALETTE[j % len(PALETTE)])
        draw.text((left + plot_w + 30, y), v[:20], fill="black")
    img.save(path)
    return path


def write_ablation_page(out_dir: str, results: list[dict], notes: list[str]) -> tuple[str, str]:
    """OUT/ablation.html and OUT/ablation.png; returns their paths."""
    png = ablation_png(results, os.path.join(out_dir, "ablation.png"))
    table = html.escape(format_ablation_table(results))
    page = "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'><title>antigrounding ablation</title></head>",
        "<body style='font-family:sans-serif;margin:2em'><h1>Planner ablation</h1>",
        *[f"<p>{html.escape(n)}</p>" for n in notes],
        ablation_svg(results), f"<pre>{table}</pre>", "<p><a href='report.html'>every episode</a></p>",
        "</body></html>"])
    path = os.path.join(out_dir, "ablation.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path, png


def run_ablation(args: argparse.Namespace) -> int:
    from bench.episodes import run_grid, stage_table

    result, variants, out = run_grid(args, args.variants or ABLATIONS, "ablation")
    notes = [f"scorer backend(s): {args.scorer}; success is the lab's verdict on its truth",
             *(f"{v.name}: {v.describe()}" for v in variants)]
    write_batch_report(os.path.abspath(out), summarise(result.results), result.results,
                       "antigrounding bench --ablation", notes=notes)
    page, png = write_ablation_page(os.path.abspath(out), result.results, notes)
    print()
    print(format_ablation_table(result.results))
    print()
    print(stage_table(result.results))
    print(f"plot: {page} and {png}", flush=True)
    return 0
