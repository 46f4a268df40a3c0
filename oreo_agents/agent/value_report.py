"""The value lens written out: ``value_report.md`` / ``.json``, two plots and a step trace coloured by A_t.

Files in the report folder (see :func:`write_value_report`):

    value_report.md           the numbers: AUC, ECE, per split, AUC by step, reliability bins, decisive steps
    value_report.json         the same numbers, and every episode's V before/after each step
    value_curves.png          mean V by step for successful vs failed episodes (from the start, and up to the end)
    value_calibration.png     reliability diagram: V binned against the observed success rate, with ECE
    value_trace.html / .txt   one success and one failure step by step, each step coloured by its advantage A_t
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

from oreo_agents.agent.value_lens import EpisodeValues, pick_traces, summarize_lens

FILES = ("value_report.md", "value_report.json", "value_curves.png", "value_calibration.png", "value_trace.html",
         "value_trace.txt")


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def write_value_report(episodes: Sequence[EpisodeValues], out_dir: Path, *, title: str = "", bins: int = 10,
                       top: int = 3) -> dict[str, Any]:
    """Write every file of the report into ``out_dir``; returns the summary (as in ``value_report.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize_lens(episodes, bins=bins, top=top)
    summary["title"] = title
    traces = pick_traces(episodes)
    data = {**summary, "episode_values": [e.__dict__ for e in episodes]}
    (out_dir / "value_report.json").write_text(json.dumps(_clean(data), indent=1, default=str))
    (out_dir / "value_report.md").write_text(markdown(summary, traces, top=top))
    plot_curves(summary, out_dir / "value_curves.png", title=title)
    plot_calibration(summary, out_dir / "value_calibration.png", title=title)
    (out_dir / "value_trace.html").write_text(trace_html(traces, title=title))
    (out_dir / "value_trace.txt").write_text("\n\n".join(trace_text(e) for e in traces) + "\n")
    return summary


def headline(summary: dict[str, Any]) -> str:
    """One line of the main numbers (printed by ``value-report``, ``eval`` and the quickstart)."""
    return (f"AUC of V(s0) {fmt(summary['auc_v0'])}, of V over all states {fmt(summary['auc_states'])}, "
            f"after the last step {fmt(summary['auc_last'])}; ECE {fmt(summary['ece'])} "
            f"({summary['episodes']} episodes, {summary['successes']} successes)")


def markdown(summary: dict[str, Any], traces: Sequence[EpisodeValues], *, top: int) -> str:
    s = summary
    lines = [f"# Value lens{': ' + s['title'] if s.get('title') else ''}", "",
             f"{s['episodes']} episodes ({s['successes']} successes), {s['states']} states. V is read just before each "
             "reply (the state s_t) and right after it; A_t = V(after step t) - V(before step t). AUC: how well V ranks "
             "successful episodes above failed ones (0.5 = chance); ECE: mean gap between V (clipped to [0, 1]) and the "
             "observed success rate, over all states.", "",
             "| metric | value |", "|---|---:|",
             f"| AUC of V(s_0) | {fmt(s['auc_v0'])} |", f"| AUC of V, all states | {fmt(s['auc_states'])} |",
             f"| AUC of V after the last step | {fmt(s['auc_last'])} |",
             f"| ECE, all states | {fmt(s['ece'])} |", f"| ECE of V(s_0) | {fmt(s['ece_v0'])} |", "",
             "![mean V by step](value_curves.png)", "", "![reliability diagram](value_calibration.png)", "",
             "## By split", "", "| split | episodes | successes | mean V(s_0) | AUC of V(s_0) | ECE |",
             "|---|---:|---:|---:|---:|---:|"]
    for split, g in s["splits"].items():
        lines.append(f"| {split} | {g['episodes']} | {g['successes']} | {fmt(g['mean_v0'])} | {fmt(g['auc_v0'])} | "
                     f"{fmt(g['ece'])} |")
    lines += ["", "## AUC of V at each step", "", "| step | AUC | mean V (successes) | mean V (failures) |",
              "|---:|---:|---:|---:|"]
    for t, a in enumerate(s["auc_by_step"]):
        (ws, wn), (fs, fn) = s["mean_v_success"][t], s["mean_v_failure"][t]
        lines.append(f"| {t} | {fmt(a)} | {fmt(ws)} (n={wn}) | {fmt(fs)} (n={fn}) |")
    lines += ["", "## Reliability bins (all states)", "", "| V in | states | mean V | success rate |", "|---|---:|---:|---:|"]
    for b in s["reliability"]:
        if b["count"]:
            lines.append(f"| {b['lo']:.1f}–{b['hi']:.1f} | {b['count']} | {fmt(b['mean_prediction'])} | "
                         f"{fmt(b['success_rate'])} |")
    lines += ["", f"## Decisive steps (the {top} largest |A_t| per episode)", "",
              "| episode | split | outcome | steps: A_t action |", "|---|---|---|---|"]
    for d in s["decisive"]:
        steps = "; ".join(f"{x['step']}: {x['advantage']:+.2f} {_md(x['action'])}" for x in d["steps"])
        lines.append(f"| {d['task_id'] or d['episode_id']} | {d['split']} | {'success' if d['success'] else 'failure'} "
                     f"| {steps} |")
    lines += ["", "## Traces", "", "Step by step in [value_trace.html](value_trace.html) (coloured by A_t) and below.", ""]
    for e in traces:
        lines += ["```", trace_text(e), "```", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:60]


def trace_text(e: EpisodeValues) -> str:
    """A plain-text trace: one line per step, A_t as a signed bar (+ raises V, - lowers it), decisive steps marked."""
    from oreo_agents.agent.value_metrics import decisive_steps

    adv = e.advantages
    key = set(decisive_steps(adv))
    scale = max((abs(a) for a in adv), default=0.0) or 1.0
    lines = [f"{'SUCCESS' if e.success else 'FAILURE'} {e.task_id} ({e.split}, {e.task_type}): "
             f"V(s0) {e.v0:.2f}, {len(adv)} steps, {e.termination}",
             "step  V before  V after     A_t  action"]
    for t, (a, act) in enumerate(zip(adv, e.actions)):
        bar = ("+" if a >= 0 else "-") * max(1 if a else 0, round(8 * abs(a) / scale))
        lines.append(f"{t:>4}  {e.v_before[t]:8.3f}  {e.v_after[t]:7.3f}  {a:+6.3f}  {act[:50]:<50} {bar:<8}"
                     + (" <- decisive" if t in key else ""))
    return "\n".join(line.rstrip() for line in lines)


def _colour(a: float, scale: float) -> str:
    """Green for steps that raised V, red for steps that lowered it; stronger with |A_t|."""
    alpha = min(1.0, abs(a) / scale) * 0.75 if scale else 0.0
    rgb = "34,160,70" if a >= 0 else "210,50,50"
    return f"rgba({rgb},{alpha:.2f})"


def trace_html(traces: Sequence[EpisodeValues], *, title: str = "") -> str:
    from oreo_agents.agent.value_metrics import decisive_steps

    parts = ["<!doctype html><meta charset='utf-8'><title>value trace</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em}"
             "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}td.a{text-align:left;"
             "font-family:monospace}td.o{text-align:left;color:#555;font-size:85%}</style>",
             f"<h1>Value trace{': ' + html.escape(title) if title else ''}</h1>",
             "<p>Each step is coloured by its advantage A<sub>t</sub> = V(after step t) − V(before step t): green raised "
             "V, red lowered it; <b>bold</b> = the decisive steps (largest |A<sub>t</sub>|).</p>"]
    for e in traces:
        adv = e.advantages
        scale = max((abs(a) for a in adv), default=0.0)
        key = set(decisive_steps(adv))
        parts.append(f"<h2>{'success' if e.success else 'failure'}: {html.escape(e.task_id)} "
                     f"({html.escape(e.split)}, {html.escape(e.task_type)}) — V(s<sub>0</sub>) {e.v0:.3f}</h2>")
        parts.append("<table><tr><th>step</th><th>V before</th><th>V after</th><th>A<sub>t</sub></th>"
                     "<th style='text-align:left'>action</th><th style='text-align:left'>observation</th></tr>")
        for t, a in enumerate(adv):
            obs = e.observations[t] if t < len(e.observations) else ""
            weight = "font-weight:bold;" if t in key else ""
            parts.append(f"<tr style='background:{_colour(a, scale)};{weight}'><td>{t}</td><td>{e.v_before[t]:.3f}</td>"
                         f"<td>{e.v_after[t]:.3f}</td><td>{a:+.3f}</td><td class='a'>{html.escape(e.actions[t])}</td>"
                         f"<td class='o'>{html.escape(obs[:160])}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"


# --- plots ---------------------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_curves(summary: dict[str, Any], path: Path, *, title: str = "") -> None:
    """Mean V by step for successes (green) and failures (red): from the first step, and counted back from the last."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    for ax, suffix, xlabel in ((axes[0], "", "step t (from the start)"), (axes[1], "_to_end", "steps before the end")):
        for key, colour, name in (("success", "tab:green", "successes"), ("failure", "tab:red", "failures")):
            curve = summary[f"mean_v_{key}{suffix}"]
            xs = [t for t, (m, n) in enumerate(curve) if n]
            ys = [curve[t][0] for t in xs]
            if xs:
                count = curve[0][1]
                ax.plot(xs, ys, "-o", color=colour, ms=3, lw=1.8, label=f"{name} (n={count})")
        ax.axhline(1.0, color="grey", lw=0.6, ls=":")
        ax.axhline(0.0, color="grey", lw=0.6, ls=":")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[1].invert_xaxis()  # the last step on the right in both panels
    axes[0].set_ylabel("mean V(s_t)")
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"V along the episode{' — ' + title if title else ''}: should rise on successes, fall on failures",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(summary: dict[str, Any], path: Path, *, title: str = "") -> None:
    """Reliability diagram: mean V per bin against the observed success rate, with the states per bin below."""
    plt = _pyplot()
    bins = [b for b in summary["reliability"] if b["count"]]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    ax.plot([b["mean_prediction"] for b in bins], [b["success_rate"] for b in bins], "-o", color="tab:blue",
            label="V (clipped to [0, 1])")
    ax.set_ylabel("observed success rate")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"calibration: ECE {fmt(summary['ece'])}, AUC {fmt(summary['auc_states'])}"
                 + (f"\n{title}" if title else ""), fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    all_bins = summary["reliability"]
    width = all_bins[0]["hi"] - all_bins[0]["lo"] if all_bins else 0.1
    hist.bar([b["lo"] + width / 2 for b in all_bins], [b["count"] for b in all_bins], width=width * 0.9, color="tab:blue",
             alpha=0.6)
    hist.set_xlabel("V binned")
    hist.set_ylabel("states")
    hist.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _clean(x: Any) -> Any:
    """NaN (an empty bin or step) as JSON null: json.dumps would write the non-standard ``NaN``."""
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def value_report_for(value_path: str | Path, rows: Sequence[dict[str, Any]], out_dir: Path, *, title: str = "",
                     device: str | None = None, bins: int = 10, top: int = 3, batch_size: int = 8) -> dict[str, Any]:
    """Load the value model (and its tokenizer), score ``rows`` and write the report: what ``value-report`` runs."""
    from oreo_agents.agent.value_lens import load_value_and_tokenizer, score_episodes

    value, tokenizer = load_value_and_tokenizer(value_path, device=device)
    episodes = score_episodes(value, tokenizer, rows, batch_size=batch_size)
    summary = write_value_report(episodes, out_dir, title=title, bins=bins, top=top)
    summary["out"] = str(out_dir)
    return summary
