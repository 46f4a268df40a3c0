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
import time
from pathlib import Path
from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import console, is_interactive, user_errors
from oreo_agents.pipeline.play import EpisodeBegins, PlayConfig, PlaySession, PlayStep, plain, render


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
