"""The expert check: where an agent left the expert's path, does its value model prefer the expert's action?

Value-guided selection beats greedy decoding only if V ranks a better reply above the one the policy would pick.
ALFWorld has an oracle for "better": its expert (alfworld's handcoded expert while play follows it, the engine's
planner from any state after that) names a next action that still solves the game. Replaying a recorded episode in an
env built with ``expert=True`` gives the expert's action at every state the agent saw (the replay must reproduce the
recorded observations, or the check stops). At each state where the agent did something else, both actions are
written as replies the same way (the prompt format's text and terminator, as ``--select admissible`` writes commands)
and scored on the same context: V at each reply's last token (what best-of-K selection compares) and the policy's
log-probability of each reply.

    >>> checks = check_episodes(value_model, lm, tokenizer, rows, env_for)       # doctest: +SKIP
    >>> summarize_checks(checks)["v_prefers_expert"]                              # doctest: +SKIP
    0.62

``v_prefers_expert`` is V's pairwise accuracy against the expert on the states where the agent went wrong (0.5: a
coin); ``policy_prefers_expert`` is the policy's on the same states, the bar V must clear to help a sampled agent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from oreo_agents.envs.core import INFO_EXPERT
from oreo_agents.errors import OreoError
from oreo_agents.prompting import context_ids, encode_text, format_for, reply_terminator_ids


@dataclass
class ExpertCheck:
    """One state where the agent's action differs from the expert's, both scored."""

    episode_id: str
    split: str
    success: bool  # the agent's episode
    step: int
    action: str  # the agent's
    expert_action: str
    v_action: float
    v_expert: float
    logprob_action: float
    logprob_expert: float


def expert_actions(env: Any, row: dict[str, Any]) -> list[str | None]:
    """The expert's next action before each recorded step of ``row``, replayed in ``env`` (built with ``expert=True``
    over the same games); an OreoError if the replay does not reproduce what was recorded."""
    game = _game_index(env, row)
    obs, info = env.reset(seed=0, options={"task": game})
    if obs != row["initial_observation"]:
        raise OreoError(f"episode {row.get('episode_id')}: replaying task {row['task_id']} gives another first "
                        "observation than the recorded one (other games under this --games-root?)")
    out: list[str | None] = []
    for t, step in enumerate(row["steps"]):
        out.append(info.get(INFO_EXPERT))
        last_invalid = t == len(row["steps"]) - 1 and row.get("termination") == "invalid_action"
        if not step.get("action") or last_invalid:  # an unparseable reply ended the episode; nothing reached the env
            break
        obs, _, terminated, truncated, info = env.step(step["action"])
        if obs != step["observation"]:
            raise OreoError(f"episode {row.get('episode_id')}: step {t} ({step['action']!r}) replays to another "
                            "observation than the recorded one; the expert check needs the same game engine and games")
        if terminated or truncated:
            break
    return out


def _game_index(env: Any, row: dict[str, Any]) -> int:
    from oreo_agents.envs.alfworld.games import task_id_of

    files = getattr(env.unwrapped, "game_files", None)
    if files is None:
        raise OreoError(f"the expert check replays ALFWorld games; env {row.get('env_id')} has none")
    for i, f in enumerate(files):
        if task_id_of(f) == row["task_id"]:
            return i
    raise OreoError(f"episode {row.get('episode_id')}: task {row['task_id']} is not among the env's "
                    f"{len(files)} games of split {row.get('split')}")


def check_episodes(value_model: Any, lm: Any, tokenizer: Any, rows: Sequence[dict[str, Any]],
                   env_for: Callable[[dict[str, Any]], Any], *, pad_id: int = 0,
                   max_length: int | None = None) -> list[ExpertCheck]:
    """Score the agent's action and the expert's at every state of ``rows`` where they differ.

    ``env_for(row)`` returns an env with ``expert=True`` over the games ``row`` was played on. Each episode's states
    are scored in order with a prefix cache per model, so a state re-reads only what was added since the last one.
    States whose context and reply do not fit in ``max_length`` tokens (default: the value model's context) are left out.
    """
    from oreo_agents.agent.selection import policy_logprobs, value_at_ends
    from oreo_agents.models.prefix_cache import PrefixCache

    limit = max_length or getattr(value_model.config, "max_position_embeddings", None) or 10**9
    checks = []
    for row in rows:
        if not row.get("steps"):
            continue
        fmt = format_for(row["env_id"])
        reply = lambda text: encode_text(tokenizer, fmt.reply_text(text)) + reply_terminator_ids(fmt, tokenizer)  # noqa: E731
        v_cache, lm_cache = PrefixCache(2**28), PrefixCache(2**28)
        for t, expert in enumerate(expert_actions(env_for(row), row)):
            action = row["steps"][t].get("action")
            if not expert or not action or _same(action, expert):
                continue
            context, _ = context_ids(fmt, tokenizer, goal=row["goal"], initial_observation=row["initial_observation"],
                                     steps=row["steps"][:t])
            conts = [reply(action), reply(expert)]
            if len(context) + max(map(len, conts)) > limit:
                break
            (v_a, v_e), = value_at_ends(value_model, [context], [conts], pad_id, v_cache)
            (lp_a, lp_e), = policy_logprobs(lm, [context], [conts], pad_id, lm_cache)
            checks.append(ExpertCheck(
                episode_id=str(row.get("episode_id", "")), split=str(row.get("split", "") or "-"),
                success=bool(row["success"]), step=t, action=str(action), expert_action=str(expert),
                v_action=v_a, v_expert=v_e, logprob_action=sum(lp_a), logprob_expert=sum(lp_e),
            ))
    return checks


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def prefers_expert(checks: Sequence[ExpertCheck], key: str) -> float | None:
    """Share of ``checks`` where the expert's reply scores higher by ``key`` (``"v"`` or ``"logprob"``); ties count
    half (a tie ranks neither first). None without checks."""
    if not checks:
        return None
    wins = 0.0
    for c in checks:
        a, e = (c.v_action, c.v_expert) if key == "v" else (c.logprob_action, c.logprob_expert)
        wins += 1.0 if e > a else 0.5 if e == a else 0.0
    return wins / len(checks)


def summarize_checks(checks: Sequence[ExpertCheck]) -> dict[str, Any]:
    """The numbers of the expert check (JSON-ready): overall, for the agent's successes and failures, and per split."""
    from oreo_agents.stats import wilson

    def group(cs: Sequence[ExpertCheck]) -> dict[str, Any]:
        share = prefers_expert(cs, "v")
        lo, hi = wilson(round((share or 0.0) * len(cs)), len(cs)) if cs else (None, None)
        margins = [c.v_expert - c.v_action for c in cs]
        return {"states": len(cs), "episodes": len({c.episode_id for c in cs}),
                "v_prefers_expert": share, "v_ci": [lo, hi],
                "policy_prefers_expert": prefers_expert(cs, "logprob"),
                "mean_v_margin": sum(margins) / len(margins) if margins else None}

    return {
        **group(checks),
        "in_successes": group([c for c in checks if c.success]),
        "in_failures": group([c for c in checks if not c.success]),
        "splits": {s: group([c for c in checks if c.split == s]) for s in sorted({c.split for c in checks})},
        "examples": [asdict(c) for c in sorted(checks, key=lambda c: c.v_action - c.v_expert, reverse=True)[:5]],
    }


def markdown(summary: dict[str, Any]) -> str:
    """The check as a Markdown section (missing numbers as the value report writes them)."""
    from oreo_agents.agent.value_report import fmt

    lines = ["## The expert check: does V prefer the expert's action where the agent left it?", "",
             "| states (episodes) | V prefers the expert's (95% CI) | the policy prefers the expert's | mean V(expert) − V(agent) |",
             "|---|---:|---:|---:|"]
    for label, g in [("all", summary), ("in successful episodes", summary["in_successes"]),
                     ("in failed episodes", summary["in_failures"]),
                     *((f"split {s}", g) for s, g in summary["splits"].items())]:
        lo, hi = g["v_ci"]
        lines.append(f"| {label}: {g['states']} ({g['episodes']}) | {fmt(g['v_prefers_expert'], '.0%')} "
                     f"({fmt(lo, '.0%')} – {fmt(hi, '.0%')}) | {fmt(g['policy_prefers_expert'], '.0%')} | "
                     f"{fmt(g['mean_v_margin'], '+.3f')} |")
    lines += ["", "States of one episode are not independent: read the interval as a lower bound on the uncertainty.",
              "", "Where V preferred the agent's action most:", ""]
    for e in summary["examples"]:
        lines.append(f"- `{e['episode_id']}` step {e['step']}: agent `{e['action']}` (V {e['v_action']:.3f}) vs expert "
                     f"`{e['expert_action']}` (V {e['v_expert']:.3f})")
    return "\n".join(lines) + "\n"
