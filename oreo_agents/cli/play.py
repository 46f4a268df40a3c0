"""``oreo-agents play``: play episodes live, showing what the agent considered and why it acted.

On a terminal a rich Live view shows the goal, the current observation, the candidate replies with their policy
log-probs and values (the chosen one highlighted), the reward, the step count and the running success rate. With a
value model it also shows V before the chosen action (V of the context), V after it, and their difference, the
action's advantage A_t: the credit the value gives this step (``oreo-agents value-report`` does the same over a dataset). Piped or
in CI it prints plain lines instead. ``--save-trace`` writes every step as JSON lines; ``--export`` writes the rendered
frames as SVG or HTML (rich's recording console). The episodes come from :class:`oreo_agents.pipeline.play.PlaySession`;
this module renders them.
"""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import console, is_interactive, user_errors
from oreo_agents.pipeline.play import EpisodeBegins, PlayConfig, PlaySession, PlayStep


def _fmt(x: float, signed: bool = False) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3f}" if signed else f"{x:.3f}"


def render(event: PlayStep, max_steps: int | None) -> Any:
    """The rich view of one step: goal, observation, the candidates with log p, V and A, the chosen one highlighted."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    rate = f"{event.wins}/{event.played} ({event.wins / event.played:.0%})" if event.played else "-"
    steps = f"{event.step}/{max_steps}" if max_steps else str(event.step)
    head = Text.assemble(("episode ", "dim"), f"{event.episode}/{event.episodes}  ", ("task ", "dim"), event.task,
                         ("  step ", "dim"), steps, ("  reward ", "dim"), f"{event.reward:g}", ("  success ", "dim"), rate)
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("", width=2)
    table.add_column("candidate reply", ratio=1, overflow="fold")
    for name, width in (("log p", 9), ("V", 8), ("A", 8)):
        table.add_column(name, justify="right", width=width)
    for c in event.candidates:
        text = c["action"] if c["action"] is not None else f"(no action) {c['reply']!r}"
        adv = _fmt(c["value"] - event.value_before if c["value"] is not None else math.nan, signed=True)
        table.add_row("▶" if c["chosen"] else "", Text(text), _fmt(c["logprob"]), _fmt(c["value"]), adv,
                      style="bold green" if c["chosen"] else "")
    parts = [head, Panel(Text(event.goal or "-"), title="goal", title_align="left"),  # Text: game text is not markup
             Panel(Text(event.observation[-1500:] or "-"), title="observation", title_align="left"), table]
    if _value_line(event):
        a = event.advantage
        parts.append(Text.assemble(("chosen action: ", "dim"), _value_line(event),
                                   style="green" if a > 0 else "red" if a < 0 else ""))
    if event.done:
        parts.append(Text(f"episode over: {event.done}", style="bold green" if event.done == "success" else "bold red"))
    return Panel(Group(*parts), title="oreo-agents play", border_style="cyan")


def plain(event: PlayStep) -> str:
    """The step as plain lines (pipes, CI logs)."""
    chosen = next((c for c in event.candidates if c["chosen"]), None)
    values = f"; {_value_line(event)}" if _value_line(event) else ""
    lines = [f"[ep {event.episode} step {event.step}] > {event.decision.action}"
             + (f"  (log p {_fmt(chosen['logprob'])}, V {_fmt(chosen['value'])}{values})" if chosen else "")]
    lines += [f"    candidate: {c['action']!r}  log p {_fmt(c['logprob'])}  V {_fmt(c['value'])}"
              for c in event.candidates if len(event.candidates) > 1]
    return "\n".join(lines)


def _value_line(event: PlayStep) -> str:
    if math.isnan(event.advantage):
        return ""
    return f"V before {event.value_before:.3f} -> after {event.value_after:.3f}   A_t {event.advantage:+.3f}"


@click.command("play")
@config_options(PlayConfig)
@user_errors
def play(**kwargs: Any) -> None:
    """Play episodes live with the candidates, their log-probs and values, and the chosen action.

    \b
    Examples:
      oreo-agents play --env alfworld --policy expert --game 0
      oreo-agents play --policy runs/oreo/policy --value runs/oreo/value --select value --k 4 --episodes 3
      oreo-agents play --env math --policy runs/sft/policy --step --save-trace trace.jsonl --export play.svg
    """
    run_play(build_config(PlayConfig, kwargs))


def run_play(cfg: PlayConfig) -> dict[str, Any]:
    from rich.console import Console

    session = PlaySession(cfg)
    rich_frames = is_interactive()
    interactive = rich_frames and not cfg.step  # manual stepping prints frame after frame instead of a Live view
    recorder = Console(record=True, width=110, file=io.StringIO(), force_terminal=True) if cfg.export else None
    trace = Path(cfg.save_trace).open("w") if cfg.save_trace else None
    live = None
    try:
        if interactive:
            from rich.live import Live

            live = Live(console=console, refresh_per_second=8, transient=False)
            live.start()
        for event in session.events():
            if isinstance(event, EpisodeBegins):
                if not interactive:
                    console.print(f"episode {event.episode}/{event.episodes}  task {event.task}\ngoal: {event.goal}\n"
                                  f"{event.observation.strip()}", markup=False)
            else:
                _show(event, session.max_steps, live, recorder, rich_frames)
                if trace is not None:
                    trace.write(json.dumps(event.trace_row()) + "\n")
                if cfg.delay:
                    time.sleep(cfg.delay)
                if event.done and not interactive:
                    console.print(f"episode {event.episode}: {event.done} after {event.step} steps  "
                                  f"(success so far {event.wins}/{event.played})")
            if cfg.step and not (isinstance(event, PlayStep) and event.done):
                console.input("[dim]Enter to step[/] ")
    finally:
        if live is not None:
            live.stop()
        if trace is not None:
            trace.close()
        session.env.close()
    console.print(f"[bold]played {session.played} episode(s): success {session.wins}/{session.played}[/]")
    if recorder is not None:
        path = Path(cfg.export)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".svg":
            recorder.save_svg(str(path), title="oreo-agents play")
        else:
            recorder.save_html(str(path))
        console.print(f"saved the rendered view to {path}", markup=False)
    if cfg.save_trace:
        console.print(f"saved the trace to {cfg.save_trace}", markup=False)
    return {"played": session.played, "wins": session.wins}


def _show(event: PlayStep, max_steps: int | None, live: Any, recorder: Any, rich_frames: bool) -> None:
    if live is not None:
        live.update(render(event, max_steps), refresh=True)
    elif rich_frames:
        console.print(render(event, max_steps))
    else:
        console.print(plain(event), soft_wrap=True, markup=False)
    if recorder is not None:
        recorder.print(render(event, max_steps))
