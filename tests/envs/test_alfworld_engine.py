"""The memoised engine plays exactly like stock textworld PddlEnv, and the expert fix is what makes pick_two solvable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import textworld
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
from textworld.envs.pddl import PddlEnv

from oreo_agents.envs.alfworld import games as G
from oreo_agents.envs.alfworld.engine import CachedPddlEnv
from oreo_agents.envs.alfworld.expert import HandcodedExpert

REAL_GAME = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "alfworld_real_game"


def _transcript(env_cls, game, actions, plays=2):
    env = AlfredDemangler()(env_cls(textworld.EnvInfos(won=True, admissible_commands=True, facts=True)))
    out = []
    for _ in range(plays):  # the second play hits every cache
        env.load(str(game))
        state = env.reset()
        out.append((state.feedback, state.admissible_commands, sorted(map(str, state.facts))))
        for a in actions:
            state, score, done = env.step(a)
            out.append((state.feedback, state.admissible_commands, sorted(map(str, state.facts)), score, done))
    return out


def test_cached_engine_matches_stock_on_a_generated_game(alfworld_games_root):
    game = G.list_games(alfworld_games_root, "train", ["pick_two_obj_and_place"])[0]
    actions = json.loads(game.read_text())["walkthrough"] + ["look", "inventory", "not a command"]
    assert _transcript(CachedPddlEnv, game, actions) == _transcript(PddlEnv, game, actions, plays=1) * 2


@pytest.mark.skipif(not REAL_GAME.is_dir(), reason=f"real ALFWorld fixture not present at {REAL_GAME}")
def test_cached_engine_matches_stock_on_the_real_game():
    game = G.list_games(REAL_GAME, "train")[0]
    actions = json.loads(game.read_text())["walkthrough"]
    assert _transcript(CachedPddlEnv, game, actions) == _transcript(PddlEnv, game, actions, plays=1) * 2


def test_expert_move_fix_updates_inventory(alfworld_games_root):
    """After "move X to R" the fixed expert's inventory is empty again (stock keeps X there forever)."""
    from oreo_agents.envs.alfworld.engine import TextGame

    game_file = G.list_games(alfworld_games_root, "train", ["pick_two_obj_and_place"])[0]
    game, expert = TextGame(facts=True), HandcodedExpert(seed=0)
    state = game.load_and_reset(game_file)
    action = expert.reset(game_file, state)
    moved = False
    for _ in range(50):
        state = game.step(action)
        if action.startswith("move ") and "Nothing happens" not in state["feedback"]:
            moved = True
        action = expert.next_action(state, action)
        if moved:
            break
    assert moved and expert._agent.policy.inventory == []
