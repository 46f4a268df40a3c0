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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from oreo_agents.config import build_config, config_options
from oreo_agents.console import console, is_interactive, user_errors
from oreo_agents.pipeline.play import EpisodeBegins, PlayConfig, PlaySession, PlayStep


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


@dataclass
class Frame:
    """What one step shows."""

    episode: int
    episodes: int
    task: str
    goal: str
    observation: str
    step: int
    max_steps: int | None
    candidates: list[dict[str, Any]]
    action: str | None = None
    reward: float = 0.0
    done: str = ""
    wins: int = 0
    played: int = 0
    value_before: float = math.nan  # V of the context the action was chosen in

    @property
    def value_after(self) -> float:
        chosen = next((c for c in self.candidates if c["chosen"]), None)
        return math.nan if chosen is None or chosen["value"] is None else float(chosen["value"])

    @property
    def advantage(self) -> float:
        """A_t = V(after the chosen action) - V(before it); NaN without a value model."""
        return self.value_after - self.value_before

    def value_line(self) -> str:
        if math.isnan(self.advantage):
            return ""
        return f"V before {self.value_before:.3f} -> after {self.value_after:.3f}   A_t {self.advantage:+.3f}"

    def render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        rate = f"{self.wins}/{self.played} ({self.wins / self.played:.0%})" if self.played else "-"
        steps = f"{self.step}/{self.max_steps}" if self.max_steps else str(self.step)
        head = Text.assemble(("episode ", "dim"), f"{self.episode}/{self.episodes}  ", ("task ", "dim"), self.task,
                             ("  step ", "dim"), steps, ("  reward ", "dim"), f"{self.reward:g}",
                             ("  success ", "dim"), rate)
        table = Table(expand=True, show_edge=False, pad_edge=False)
        table.add_column("", width=2)
        table.add_column("candidate reply", ratio=1, overflow="fold")
        table.add_column("log p", justify="right", width=9)
        table.add_column("V", justify="right", width=8)
        table.add_column("A", justify="right", width=8)
        for c in self.candidates:
            style = "bold green" if c["chosen"] else ""
            text = c["action"] if c["action"] is not None else f"(no action) {c['reply']!r}"
            adv = _signed(c["value"] - self.value_before if c["value"] is not None else math.nan)
            table.add_row("▶" if c["chosen"] else "", Text(text), _fmt(c["logprob"]), _fmt(c["value"]), adv, style=style)
        parts = [head, Panel(Text(self.goal or "-"), title="goal", title_align="left"),  # Text: game text is not markup
                 Panel(Text(self.observation[-1500:] or "-"), title="observation", title_align="left"), table]
        if self.value_line():
            a = self.advantage
            parts.append(Text.assemble(("chosen action: ", "dim"), self.value_line(),
                                       style="green" if a > 0 else "red" if a < 0 else ""))
        if self.done:
            parts.append(Text(f"episode over: {self.done}", style="bold green" if self.done == "success" else "bold red"))
        return Panel(Group(*parts), title="oreo-agents play", border_style="cyan")

    def plain(self) -> str:
        chosen = next((c for c in self.candidates if c["chosen"]), None)
        values = f"; {self.value_line()}" if self.value_line() else ""
        lines = [f"[ep {self.episode} step {self.step}] > {self.action}"
                 + (f"  (log p {_fmt(chosen['logprob'])}, V {_fmt(chosen['value'])}{values})" if chosen else "")]
        lines += [f"    candidate: {c['action']!r}  log p {_fmt(c['logprob'])}  V {_fmt(c['value'])}"
                  for c in self.candidates if len(self.candidates) > 1]
        return "\n".join(lines)


def _signed(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:+.3f}"


def _candidates(decision: Any) -> list[dict[str, Any]]:
    if decision.candidates:
        return [dict(reply=c.reply, action=c.action, logprob=c.logprob, value=c.value, chosen=c.chosen)
                for c in decision.candidates]
    return [dict(reply=decision.reply or decision.action or "", action=decision.action, logprob=math.nan,
                 value=decision.value, chosen=True)]


def _jsonable(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x


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
                d = event.decision
                frame = Frame(event.episode, event.episodes, event.task, event.goal, event.observation, event.step,
                              session.max_steps, _candidates(d), d.action, event.reward, event.done, event.wins,
                              event.played, value_before=float(getattr(d, "value_before", math.nan)))
                _show(frame, live, recorder, rich_frames)
                if trace is not None:
                    row = dict(episode=event.episode - 1, step=event.step, task_id=event.task, goal=event.goal,
                               action=d.action, reply=d.reply, reward=event.reward, observation=event.observation,
                               done=event.done or None, v_before=_jsonable(frame.value_before),
                               v_after=_jsonable(frame.value_after), advantage=_jsonable(frame.advantage),
                               candidates=[{k: _jsonable(v) for k, v in c.items()} for c in frame.candidates])
                    trace.write(json.dumps(row) + "\n")
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


def _show(frame: Frame, live: Any, recorder: Any, rich_frames: bool) -> None:
    if live is not None:
        live.update(frame.render(), refresh=True)
    elif rich_frames:
        console.print(frame.render())
    else:
        console.print(frame.plain(), soft_wrap=True, markup=False)
    if recorder is not None:
        recorder.print(frame.render())
