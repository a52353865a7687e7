"""report.html: a page a person can read, built from the run log alone (so it also works for killed runs)."""

from __future__ import annotations

import html
import os

from planner.runlog import atomic_write, read_header, read_records

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1700px}
h1{margin-bottom:4px} .sub{color:#666;margin-top:0}
.ok{color:#0a7d27;font-weight:600} .bad{color:#b3261e;font-weight:600}
.step{border:1px solid #ddd;border-radius:8px;padding:12px 16px;margin:18px 0}
.views{display:flex;gap:8px;flex-wrap:wrap} .views figure{margin:0} .views img{width:400px;border:1px solid #ccc}
figcaption{font-size:12px;color:#555;text-align:center}
table{border-collapse:collapse;font-size:13px;margin-top:8px}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} tr.chosen td{background:#fff3c4;font-weight:600} td.l{text-align:left}
.t{font-size:12px;color:#555} img.tv{width:960px;border:1px solid #ccc}
pre.raw{white-space:pre-wrap;font-size:11px;background:#f7f7f7;padding:6px;max-height:160px;overflow:auto}
.ev{background:#fbe9e7;border-radius:6px;padding:8px 12px;margin:10px 0}
.fail{border:2px solid #b3261e;border-radius:8px;padding:8px 12px;margin:10px 0;background:#fff6f5}
.fail img{width:480px;border:1px solid #ccc;float:right;margin-left:12px}
.fail:after{content:"";display:block;clear:both}
.sym{display:inline-block;border-radius:4px;padding:1px 6px;margin-right:6px;font-weight:600;color:#fff}
.on{background:#14963c} .off{background:#5a5a5a} .rw{background:#222} .xh{color:#ff2828;font-size:18px}
.ar{color:#c89600;font-size:18px}
"""


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _status(o: dict) -> str:
    """An object's reconstruction status (older logs have only 'found')."""
    status = o.get("status") or ("ok" if o.get("found") else "missing")
    return {"ok": "found", "missing": "MISSING", "low_confidence": "LOW CONFIDENCE"}.get(status, status)


def _identification_html(rec: dict) -> str:
    e = html.escape
    rows = []
    for name, est in rec.get("objects", {}).items():
        used = rec.get("twin_physics", {}).get(name, {})
        rows.append(f"<tr><td class='l'>{e(name)}</td><td>{_fmt(est.get('mass_kg'), 3)}</td>"
                    f"<td>{_fmt(est.get('friction'), 2)}</td><td>{_fmt(est.get('confidence'))}</td>"
                    f"<td>{_fmt(used.get('mass_kg'), 3)}</td><td>{_fmt(used.get('friction'), 2)}</td>"
                    f"<td class='l'>{e('; '.join(est.get('notes', [])))}</td></tr>")
    return ("<div class='step'><h3>Physical parameters (probe before the first step)</h3><table><tr><th>object</th>"
            "<th>mass kg</th><th>friction</th><th>confidence</th><th>twin mass</th><th>twin friction</th>"
            "<th class='l'>notes</th></tr>" + "".join(rows) + "</table></div>")


def _cache_note(rate) -> str:
    return "" if rate is None else f" (answer cache hit rate {100 * rate:.0f}%)"


def _calls_html(scores: dict) -> str:
    """Every (agent, view) call: backend, model, latency, cache, error and the raw answer, folded."""
    calls = scores.get("calls", [])
    if not calls:
        return ""
    e = html.escape
    rows = []
    for c in calls:
        status = "ok" if c.get("parsed") is not None else f"failed: {c.get('error')}"
        extra = " (cached)" if c.get("cached") else ""
        notes = "; ".join((c.get("parsed") or {}).get("notes", []))
        status += f" · {notes}" if notes else ""
        rows.append(f"<tr><td class='l'>{e(c.get('agent', ''))}</td><td class='l'>{e(c.get('view', ''))}</td>"
                    f"<td class='l'>{e(c.get('backend', ''))} / {e(c.get('model', ''))}</td>"
                    f"<td>{_fmt(c.get('latency_s'))}{extra}</td><td class='l'>{e(status)}"
                    f"<pre class='raw'>{e(c.get('raw_text') or '')}</pre></td></tr>")
    return ("<details><summary class='t'>agent calls (raw answers)</summary><table><tr><th>agent</th><th>view</th>"
            "<th>backend / model</th><th>s</th><th class='l'>outcome</th></tr>" + "".join(rows) + "</table></details>")


def _failure_html(f: dict) -> str:
    """A diagnosed failure with its visual symbols: the picture (crosshair, arrow, ON/OFF, rewind drawn on the
    twin) and the same symbols in the text, plus what each agent answered to the failure question."""
    e = html.escape
    on = f.get("gripper_closed")
    gripper = f"<span class='sym {'on' if on else 'off'}'>gripper {'ON' if on else 'OFF'}</span>"
    target = f.get("target_xyz")
    cross = (f"<span class='xh'>&#8982;</span> target {e(str(f.get('object') or '-'))} at "
             + ", ".join(f"{v:.3f}" for v in target) + " m") if target else ""
    arrow = (f"<span class='ar'>&#10140;</span> correction: from the gripper to {e(str(f.get('object')))}"
             if target and f.get("from_xyz") else "")
    if f.get("acted"):
        rewind = (f"<span class='sym rw'>&#9194; rewind</span> subtask {f.get('subtask_from', 0) + 1} &rarr; "
                  f"{f.get('subtask_to', 0) + 1}: {e(f.get('redo_say', ''))} (annealing restarted)")
    else:
        rewind = "<span class='sym rw'>recovery off</span> logged only; the plan went on"
    rows = []
    for a in f.get("agents", []):
        ans = a.get("answer")
        said = (f"{e(ans['failure_type'])}, redo {ans['redo_subtask']}, confidence {_fmt(ans['confidence'], 1)}: "
                f"{e(ans['explanation'])}") if ans else f"failed: {e(str(a.get('error')))}"
        rows.append(f"<li>{e(a.get('agent', ''))} ({e(a.get('backend', ''))}): {said}</li>")
    img = f"<a href='{e(f['image'])}'><img src='{e(f['image'])}' alt='failure symbols'></a>" if f.get("image") else ""
    return (f"<div class='fail'>{img}<b class='bad'>Failure after step {f.get('step')}: {e(f.get('type', ''))}</b>"
            f"<p>{e(f.get('message', ''))}</p><p>{gripper} {cross}</p><p>{arrow}</p><p>{rewind}</p>"
            + (f"<p class='t'>failure question (prompt _failure-v1):</p><ul class='t'>{''.join(rows)}</ul>"
               if rows else "") + "</div>")


def _step_html(rec: dict) -> str:
    e = html.escape
    parts = [f"<div class='step'><h3>Step {rec['step']} &middot; subtask {rec.get('subtask_index', 0) + 1}: "
             f"{e(rec.get('subtask', ''))}</h3>"]
    parts.append(f"<p class='t'>t={rec.get('t')} &middot; sampling radius {_fmt(rec.get('radius_m'), 3)} m "
                 f"&middot; scorer: {e(', '.join(rec.get('backends', [])))} &middot; M'={rec.get('M_prime')}"
                 f" &middot; timings (s): " + ", ".join(f"{k} {v:.3f}" for k, v in rec.get("timings_s", {}).items())
                 + _cache_note(rec.get("score_cache_hit_rate")) + "</p>")
    if rec.get("failure"):
        parts.append(_failure_html(rec["failure"]))
    if rec.get("note"):
        parts.append(f"<div class='ev'>{e(rec['note'])}</div>")
    recon = rec.get("reconstruction", {})
    if recon:
        objs = ", ".join(f"{e(n)}: {_status(o)} (confidence {_fmt(o.get('confidence'))})"
                         for n, o in recon.get("objects", {}).items())
        parts.append(f"<p class='t'>twin: {objs}; {recon.get('n_unknown', 0)} unknown obstacle(s)"
                     f"{'; holding ' + e(recon['held']) if recon.get('held') else ''}</p>")
    for issue in recon.get("issues", []):
        parts.append(f"<p class='t bad'>reconstruction: {e(issue.get('kind', ''))} {e(issue.get('subject', ''))}: "
                     f"{e(issue.get('message', ''))}</p>")
    parts.append("<div class='views'>")
    for view, path in rec.get("images", {}).items():
        conf = rec.get("view_confidence", {}).get(view)
        parts.append(f"<figure><a href='{e(path)}'><img src='{e(path)}' alt='{e(view)}'></a>"
                     f"<figcaption>{e(view)} (confidence C'={_fmt(conf)})</figcaption></figure>")
    parts.append("</div>")
    if rec.get("twin_view"):
        parts.append(f"<details open><summary class='t'>twin vs camera (the reconstruction rendered through the "
                     f"real camera; double edges in the blend are disagreements)</summary>"
                     f"<a href='{e(rec['twin_view'])}'><img class='tv' src='{e(rec['twin_view'])}' "
                     f"alt='twin vs camera'></a></details>")
    parts.append(_calls_html(rec.get("scores", {})))
    cands = rec.get("candidates", [])
    if cands:
        dims = ["safety", "task_alignment", "efficiency", "feasibility"]
        parts.append("<table><tr><th>id</th><th>S_j</th>" + "".join(f"<th>{d}</th>" for d in dims)
                     + "<th>gripper</th><th>feasible</th><th>collisions</th><th>progress</th><th>path m</th>"
                       "<th class='l'>note</th></tr>")
        for c in sorted(cands, key=lambda c: -(c.get("S") if c.get("S") is not None else -1)):
            cls = " class='chosen'" if c["id"] == rec.get("chosen") else ""
            dim_cells = "".join(f"<td>{_fmt(c.get('mean_scores', {}).get(d), 1)}</td>" for d in dims)
            parts.append(f"<tr{cls}><td>{c['id']}</td><td>{_fmt(c.get('S'))}</td>{dim_cells}"
                         f"<td>{e(c.get('gripper', ''))}</td><td>{'yes' if c.get('feasible') else 'no'}</td>"
                         f"<td>{c.get('collisions', 0)}</td><td>{_fmt(c.get('progress'))}</td>"
                         f"<td>{_fmt(c.get('path_length_m'))}</td><td class='l'>{e(c.get('reason') or '')}</td></tr>")
        parts.append("</table>")
    chosen = rec.get("chosen")
    exe = rec.get("execute") or {}
    if chosen is None:
        parts.append(f"<div class='ev'>No candidate executed: {e(rec.get('hold_reason', ''))}. "
                     "The arm held still.</div>")
    else:
        notes = "; ".join(exe.get("notes", [])) or "no envelope changes"
        done = "completed" if exe.get("completed") else "stopped: " + e(str(exe.get("stopped_reason")))
        parts.append(f"<p>Chose <b>{chosen}</b>; executed: {done} ({e(notes)})</p>")
    parts.append("</div>")
    return "".join(parts)


def write_report(run_dir: str) -> str:
    """(Re)write report.html from run.json and steps.jsonl; returns its path."""
    header = read_header(run_dir)
    records = read_records(run_dir)
    e = html.escape
    end = next((r for r in reversed(records) if r.get("type") == "end"), None)
    if end is None:
        status = "<span class='bad'>incomplete (the run is going on, or it was killed)</span>"
    else:
        judged = end.get("lab_success")
        if judged is None:
            word = f"<span class='bad'>NO VERDICT</span> ({e(str(end.get('no_verdict') or 'the lab did not judge'))})"
        else:
            word = ("<span class='ok'>SUCCESS</span>" if judged else "<span class='bad'>FAILED</span>") + \
                " (judged by the lab on its truth)"
        status = f"{word} after {end.get('steps')} steps, {_fmt(end.get('time_s'), 1)} s"
        if end.get("error"):
            status += f"; <span class='bad'>the run was aborted: {e(end['error'])}</span>"
    body = [f"<h1>{e(header.get('task', '?'))} &middot; seed {header.get('seed', '?')}</h1>",
            f"<p class='sub'>&ldquo;{e(header.get('instruction', ''))}&rdquo; &middot; scorer "
            f"{e(header.get('scorer', '?'))} &middot; {e(header.get('started', ''))}</p>",
            f"<p>Result: {status}</p>"]
    for rec in records:
        if rec.get("type") == "step":
            body.append(_step_html(rec))
        elif rec.get("type") == "identification":
            body.append(_identification_html(rec))
        elif rec.get("type") == "event":
            body.append(f"<div class='ev'>{e(rec.get('message', ''))}</div>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(header.get('task', 'run'))}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
    path = os.path.join(run_dir, "report.html")
    atomic_write(path, page.encode("utf-8"))
    return path
