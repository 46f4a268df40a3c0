"""A play session as a library function: episodes of one agent, step by step, for ``oreo-agents play`` to render.

:class:`PlaySession` builds the agent and the env from a :class:`PlayConfig` and plays its episodes with the rollout
runner (:mod:`oreo_agents.rollouts`), one env, yielding :class:`EpisodeBegins` when an episode resets and a
:class:`PlayStep` after every decision (what the agent considered, the action, the reward, the running success rate)::

    >>> session = PlaySession(PlayConfig(env="alfworld", policy="expert", episodes=2))       # doctest: +SKIP
    >>> for event in session.events():                                                       # doctest: +SKIP
    ...     print(event)

The session's episodes are the same as ``collect``'s and ``eval``'s: the same runner ends them by the same rules.
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from oreo_agents.envs.core import INFO_TASK_ID
from oreo_agents.errors import OreoError
from oreo_agents.pipeline.options import AgentOptions, EnvOptions, SamplingOptions
from oreo_agents.turns import Decision


@dataclass
class PlayConfig(SamplingOptions, AgentOptions, EnvOptions):
    """Settings of ``play`` (YAML keys of ``--config`` and flags are these field names); the env, agent and sampling
    options come from :mod:`oreo_agents.pipeline.options`."""

    game: str | None = field(default=None, metadata={"help": "Play this game / problem: an index, a problem id or a game folder."})
    episodes: int = field(default=1, metadata={"help": "Episodes to play."})
    delay: float = field(default=0.0, metadata={"help": "Seconds to pause after each step."})
    step: bool = field(default=False, metadata={"help": "Wait for Enter before each step (manual stepping)."})
    save_trace: str | None = field(default=None, metadata={"help": "Write every step as JSON lines to this file."})
    export: str | None = field(default=None, metadata={"help": "Save the rendered frames as .svg or .html."})

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise OreoError(f"--episodes must be at least 1, got {self.episodes}")
        self.check_agent()
        if self.delay < 0:
            raise OreoError(f"--delay must be >= 0, got {self.delay}")
        if self.export and Path(self.export).suffix.lower() not in (".svg", ".html", ".htm"):
            raise OreoError(f"--export {self.export}: the file must end in .svg or .html")


@dataclass
class EpisodeBegins:
    episode: int  # 1-based
    episodes: int
    task: str
    goal: str
    observation: str


@dataclass
class PlayStep:
    """One decision and what it did. ``step`` counts the env steps of the episode so far (an unparseable or aborted
    decision takes none); ``done`` is the episode's ending when this decision ended it, else ""."""

    episode: int
    episodes: int
    task: str
    goal: str
    decision: Decision
    observation: str
    reward: float
    step: int
    done: str
    wins: int
    played: int

    @property
    def candidates(self) -> list[dict[str, Any]]:
        """Every reply the agent considered (one, the chosen, for a policy that samples one), as plain dicts."""
        d = self.decision
        if d.candidates:
            return [dict(reply=c.reply, action=c.action, logprob=c.logprob, value=c.value, chosen=c.chosen)
                    for c in d.candidates]
        return [dict(reply=d.reply or d.action or "", action=d.action, logprob=math.nan, value=d.value, chosen=True)]

    @property
    def value_before(self) -> float:
        """V of the context the action was chosen in (NaN without a value model)."""
        return float(getattr(self.decision, "value_before", math.nan))

    @property
    def value_after(self) -> float:
        chosen = next((c for c in self.candidates if c["chosen"]), None)
        return math.nan if chosen is None or chosen["value"] is None else float(chosen["value"])

    @property
    def advantage(self) -> float:
        """A_t = V(after the chosen action) - V(before it): the credit the value gives this step; NaN without V."""
        return self.value_after - self.value_before

    def trace_row(self) -> dict[str, Any]:
        """The step as one JSON line of ``--save-trace`` (NaN as null)."""
        d = self.decision
        return dict(episode=self.episode - 1, step=self.step, task_id=self.task, goal=self.goal, action=d.action,
                    reply=d.reply, reward=self.reward, observation=self.observation, done=self.done or None,
                    v_before=_jsonable(self.value_before), v_after=_jsonable(self.value_after),
                    advantage=_jsonable(self.advantage),
                    candidates=[{k: _jsonable(v) for k, v in c.items()} for c in self.candidates])


def _jsonable(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x



class PlaySession:
    """The agent and env of a :class:`PlayConfig`; :meth:`events` plays its episodes (see the module docstring)."""

    def __init__(self, cfg: PlayConfig) -> None:
        from oreo_agents.policies import NEEDS_EXPERT

        self.cfg = cfg
        self.env_id = cfg.env_id
        self.agent = cfg.build(cfg.seed)
        self.env = cfg.make(expert=cfg.policy in NEEDS_EXPERT)
        self.max_steps: int | None = getattr(self.env.unwrapped, "max_steps", None)
        self.wins = self.played = 0

    def events(self) -> Iterator[EpisodeBegins | PlayStep]:
        """Play ``cfg.episodes`` episodes (episode i resets with ``seed + i``; ``--game`` picks the task of each)."""
        from oreo_agents.rollouts import EpisodeStarted, Job, StepTaken, rollouts  # gymnasium: loaded when episodes run, not for --help

        cfg = self.cfg
        jobs = [Job(seed=cfg.seed + ep, task=cfg.game, tag=ep + 1) for ep in range(cfg.episodes)]
        task = goal = ""
        steps = 0
        with closing(rollouts(lambda: self.env, self.agent, jobs, env_id=self.env_id, task_options=_game_options)) as run:
            for event in run:
                if isinstance(event, EpisodeStarted):
                    task, goal, steps = str(event.info.get(INFO_TASK_ID, "")), str(event.info.get("goal", "")), 0
                    yield EpisodeBegins(event.job.tag, cfg.episodes, task, goal, event.observation)
                elif isinstance(event, StepTaken):
                    steps += int(event.stepped_env)
                    if event.termination:
                        self.played += 1
                        self.wins += int(event.termination == "success")
                    yield PlayStep(event.job.tag, cfg.episodes, task, goal, event.decision, event.observation,
                                   event.reward, steps, event.termination, self.wins, self.played)


def _game_options(env: Any, game: str | None) -> dict[str, Any] | None:
    if game is None:
        return None
    from oreo_agents.envs.core import task_list

    found = task_list(env)
    if found is None:
        raise OreoError(f"--game: env {type(env.unwrapped).__name__} cannot be told which task to play")
    return {found[0]: int(game) if game.lstrip("-").isdigit() else game}


# --- how a step looks: a rich panel on a terminal, plain lines in pipes and CI logs (like agent/report.py's tables) ---
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
