"""``oreo-agents play``: play episodes live, showing what the agent considered and why it acted.

On a terminal a rich Live view shows the goal, the current observation, the candidate replies with their policy
log-probs and values (the chosen one highlighted), the reward, the step count and the running success rate. With a
value model it also shows V before the chosen action (V of the context), V after it, and their difference, the
action's advantage A_t: the credit the value gives this step (``oreo-agents value-report`` does the same over a dataset). Piped or
in CI it prints plain lines instead. ``--save-trace`` writes every step as JSON lines; ``--export`` writes the rendered
frames as SVG or HTML (rich's recording console).
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click

from oreo_agents.console import console, is_interactive, user_errors
from oreo_agents.config import build_config
from oreo_agents.cli.flags import config_options
from oreo_agents.errors import OreoError


@dataclass
class PlayConfig:
    """Settings of ``play`` (YAML keys of ``--config`` and flags are these field names)."""

    env: str = field(default="alfworld", metadata={"help": "Env family: alfworld, math or webshop (or a Gymnasium id)."})
    policy: str = field(default="expert", metadata={"help": "expert, random, or a policy checkpoint folder."})
    value: str | None = field(default=None, metadata={"help": "Value model folder (from `train`): shows V, enables --select value."})
    select: Literal["greedy", "sample", "value", "admissible"] = field(
        default="greedy", metadata={"help": "greedy, sample, value (best of --k by V) or admissible (score each command)."})
    k: int = field(default=4, metadata={"help": "Candidates sampled per turn for --select value."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature for sample / value selection."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest reply in tokens."})
    backend: Literal["hf", "vllm"] = field(default="hf", metadata={"help": "Generation backend (vllm needs a GPU)."})
    device: str | None = field(default=None, metadata={"help": "torch device, e.g. cpu or cuda."})
    dtype: str | None = field(default=None, metadata={"help": "Model dtype: float32, bfloat16 or float16."})
    split: str | None = field(default=None, metadata={"help": "Split: train / valid_seen / valid_unseen (ALFWorld), train / test (env default when unset)."})
    data_path: str | None = field(default=None, metadata={"help": "Env data: real ALFWorld root, or a math problems file."})
    games_root: str | None = field(default=None, metadata={"help": "ALFWorld: embedded games root (env default when unset)."})
    source: str | None = field(default=None, metadata={"help": "Math: problem source (embedded, gsm8k, math, reasoning-gym:NAME)."})
    task_types: list[str] = field(default_factory=list, metadata={"help": "Keep only these task types (repeatable)."})
    num_tasks: int | None = field(default=None, metadata={"help": "How many games / problems the env holds (env default when unset)."})
    max_steps: int | None = field(default=None, metadata={"help": "Step limit per episode (env default when unset)."})
    game: str | None = field(default=None, metadata={"help": "Play this game / problem: an index, a problem id or a game folder."})
    episodes: int = field(default=1, metadata={"help": "Episodes to play."})
    seed: int = field(default=0, metadata={"help": "Seed: episode i resets with seed + i; also seeds sampling."})
    delay: float = field(default=0.0, metadata={"help": "Seconds to pause after each step."})
    step: bool = field(default=False, metadata={"help": "Wait for Enter before each step (manual stepping)."})
    save_trace: str | None = field(default=None, metadata={"help": "Write every step as JSON lines to this file."})
    export: str | None = field(default=None, metadata={"help": "Save the rendered frames as .svg or .html."})

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise OreoError(f"--episodes must be at least 1, got {self.episodes}")
        if self.k < 1:
            raise OreoError(f"--k must be at least 1, got {self.k}")
        if self.delay < 0:
            raise OreoError(f"--delay must be >= 0, got {self.delay}")
        if self.export and Path(self.export).suffix.lower() not in (".svg", ".html", ".htm"):
            raise OreoError(f"--export {self.export}: the file must end in .svg or .html")


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

    import oreo_agents  # noqa: F401  (registers the env ids)
    from oreo_agents.agent import build_agent
    from oreo_agents import envs
    from oreo_agents.envs.core import INFO_TASK_ID, INFO_WON
    from oreo_agents.turns import Turn
    from oreo_agents.turns import StepRecord

    env_id = envs.resolve(cfg.env)
    agent = build_agent(cfg.policy, value=cfg.value, select=cfg.select, k=cfg.k, temperature=cfg.temperature,
                        top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, backend=cfg.backend,
                        device=cfg.device, dtype=cfg.dtype)
    env = envs.make(env_id, **env_options(cfg, env_id, needs_expert=cfg.policy == "expert"))
    max_steps = getattr(env.unwrapped, "max_steps", None)
    rich_frames = is_interactive()
    interactive = rich_frames and not cfg.step  # manual stepping prints frame after frame instead of a Live view
    recorder = Console(record=True, width=110, file=io.StringIO(), force_terminal=True) if cfg.export else None
    trace = Path(cfg.save_trace).open("w") if cfg.save_trace else None
    wins = played = 0
    live = None
    try:
        if interactive:
            from rich.live import Live

            live = Live(console=console, refresh_per_second=8, transient=False)
            live.start()
        for ep in range(cfg.episodes):
            obs, info = env.reset(seed=cfg.seed + ep, options=_game_options(env, cfg.game))
            goal, init_obs, history = str(info.get("goal", "")), obs, []
            task = str(info.get(INFO_TASK_ID, ""))
            done, step = "", 0
            if not interactive:
                console.print(f"episode {ep + 1}/{cfg.episodes}  task {task}\ngoal: {goal}\n{obs.strip()}", markup=False)
            while not done:
                if cfg.step:
                    console.input("[dim]Enter to step[/] ")
                [d] = agent.act([Turn(env_id, goal, init_obs, obs, info, history)])
                frame = Frame(ep + 1, cfg.episodes, task, goal, obs, step, max_steps, _candidates(d), d.action,
                              wins=wins, played=played, value_before=float(getattr(d, "value_before", math.nan)))
                reward = 0.0
                if d.aborted:
                    done = "aborted"
                elif d.action is None:
                    done = "invalid_action"
                    history.append(StepRecord(action="", observation="", reward=0.0, reply=d.reply))
                else:
                    obs, reward, terminated, truncated, info = env.step(d.action)
                    history.append(StepRecord(action=d.action, observation=str(obs), reward=float(reward),
                                              won=bool(info.get(INFO_WON)), reply=d.reply, value=d.value,
                                              prompt_token_ids=d.prompt_token_ids,
                                              completion_token_ids=d.completion_token_ids,
                                              completion_logprobs=d.completion_logprobs))
                    step += 1
                    if terminated or truncated:
                        won = bool(info.get(INFO_WON))
                        done = "success" if won else ("failure" if terminated else "truncated")
                if done:
                    played += 1
                    wins += int(done == "success")
                frame.step, frame.reward, frame.done, frame.wins, frame.played = step, float(reward), done, wins, played
                frame.observation = str(obs)
                _show(frame, live, recorder, rich_frames)
                if trace is not None:
                    row = dict(episode=ep, step=step, task_id=task, goal=goal, action=d.action, reply=d.reply,
                               reward=float(reward), observation=str(obs), done=done or None,
                               v_before=_jsonable(frame.value_before), v_after=_jsonable(frame.value_after),
                               advantage=_jsonable(frame.advantage),
                               candidates=[{k: _jsonable(v) for k, v in c.items()} for c in frame.candidates])
                    trace.write(json.dumps(row) + "\n")
                if cfg.delay:
                    time.sleep(cfg.delay)
            if not interactive:
                console.print(f"episode {ep + 1}: {done} after {step} steps  (success so far {wins}/{played})")
    finally:
        if live is not None:
            live.stop()
        if trace is not None:
            trace.close()
        env.close()
    console.print(f"[bold]played {played} episode(s): success {wins}/{played}[/]")
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
    return {"played": played, "wins": wins}


def _show(frame: Frame, live: Any, recorder: Any, rich_frames: bool) -> None:
    if live is not None:
        live.update(frame.render(), refresh=True)
    elif rich_frames:
        console.print(frame.render())
    else:
        console.print(frame.plain(), soft_wrap=True, markup=False)
    if recorder is not None:
        recorder.print(frame.render())


def env_options(cfg: Any, env_id: str, *, needs_expert: bool, **override: Any) -> dict[str, Any]:
    """Env constructor keywords from the env options of ``cfg`` (same names and checks as ``collect``)."""
    import dataclasses

    from oreo_agents.cli.collect import ENV_OPTIONS, CollectConfig, env_kwargs

    values = {name: getattr(cfg, name) for name in ENV_OPTIONS if hasattr(cfg, name)}
    values.update(override)
    names = {f.name for f in dataclasses.fields(CollectConfig)}
    collect_cfg = CollectConfig(**{k: v for k, v in values.items() if k in names})
    return env_kwargs(collect_cfg, env_id, needs_expert)


def _game_options(env: Any, game: str | None) -> dict[str, Any] | None:
    if game is None:
        return None
    from oreo_agents.envs.core import task_list

    found = task_list(env)
    if found is None:
        raise OreoError(f"--game: env {type(env.unwrapped).__name__} cannot be told which task to play")
    return {found[0]: int(game) if game.lstrip("-").isdigit() else game}
