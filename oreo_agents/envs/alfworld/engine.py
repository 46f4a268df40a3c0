"""textworld's PDDL engine with the deterministic work memoised.

Stock ``textworld.envs.pddl.PddlEnv`` (what alfworld's ``AlfredTWEnv`` plays) spends its time in three places that
depend only on the game, not on the play:

- ``load``/``reset`` parse the grammar with tatsu and run Fast Downward's PDDL->SAS translation twice (once plain, once
  optimised for the planner) on every reset;
- every step re-derives every admissible command through the context-sensitive grammar, although a command's text
  depends only on the action's arguments (and on facts that no action can change);
- the intro text is re-derived from the initial state on every reset.

:class:`CachedPddlEnv` keeps the same engine (Fast Downward's shared library applies operators and checks the goal,
the grammar derives feedback) and memoises exactly those deterministic results per game, so transcripts are identical
to the stock engine's. The caches (:mod:`.memo`) are process-wide and keyed by content hashes, so ``make_vec`` copies in
one process share them, and the compiled-game cache (:mod:`.compiled`) keeps them on disk for every later process. :class:`TextGame` is one game session on it with ALFWorld's name demangling: what
:class:`~oreo_agents.envs.alfworld.env.ALFWorldEnv` plays and the game generator checks games with.

    >>> env = AlfredDemangler()(CachedPddlEnv(textworld.EnvInfos(admissible_commands=True, won=True)))  # doctest: +SKIP
    >>> env.load("path/to/game.tw-pddl"); state = env.reset()                                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import fast_downward
import textworld
import textworld.logic
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
from textworld.core import GameState
from textworld.envs.pddl import PddlEnv
from textworld.envs.pddl import logic as pddl_logic
from textworld.logic import Placeholder, Variable

from oreo_agents.envs.alfworld import memo
from oreo_agents.envs.alfworld.compiled import CompiledCache, game_key, names_key, resolve_cache_dir
from oreo_agents.envs.alfworld.memo import Renderings, cached_logic  # noqa: F401  (cached_logic: re-exported)

class CachedPddlState(pddl_logic.PddlState):
    """``PddlState`` built from a memoised translation; play (apply, goal check, replan) is Fast Downward's, as stock."""

    def __init__(self, downward_lib: Any, pddl_problem: str, logic: pddl_logic.GameLogic) -> None:
        # The same empty fact tables stock PddlState sets up (it bypasses State.__init__ too).
        self._facts = defaultdict(set)
        self._vars_by_name = {}
        self._vars_by_type = defaultdict(set)
        self._var_counts = Counter()
        self._logic = logic
        self.downward_lib = downward_lib
        self.pddl_problem = pddl_problem
        tr = self._tr = memo.translation(logic.domain, pddl_problem)
        self.task, self.sas, self.sas_replan = tr.task, tr.sas, tr.sas_replan
        self._actions = tr.actions
        for name, supertypes in tr.types:
            try:
                logic.types.add(textworld.logic.Type(name, supertypes))
            except ValueError:
                pass
        self.downward_lib.load_sas(tr.sas_bytes)
        self.downward_lib.load_sas_replan(tr.sas_replan_bytes)
        self.name2type = tr.name2type
        if tr.init_facts is None:
            # Same two sources as stock PddlState: the PDDL :init, then Fast Downward's initial state.
            facts = []
            for atom in self.task.init:
                fact = _atom2proposition(atom, self.name2type)
                if fact is not None:
                    facts.append(fact)
            size = self.downward_lib.get_state_size()
            atoms = (pddl_logic.Atom * size)()
            self.downward_lib.get_state(atoms)
            facts += [f for f in (a.get_fact(self.name2type) for a in atoms) if not f.is_negation]
            tr.init_facts = facts
        self.add_facts(tr.init_facts)
        # Operator name -> Action; operator ids are fixed by the SAS text, so these are shared by every play of the game.
        self._action_cache: dict[str, textworld.logic.Action] = tr.action_cache

    def all_applicable_actions(self) -> list:
        count = self.downward_lib.get_applicable_operators_count()
        operators = (fast_downward.Operator * count)()
        self.downward_lib.get_applicable_operators(operators)
        self._operators = {op.id: op for op in operators}
        actions, seen = [], set()
        for op in operators:
            name = op.name
            if name in seen:
                continue
            seen.add(name)
            action = self._action_cache.get(name)
            if action is None or action.id != op.id:
                action = self._action_cache[name] = self._make_action(name, op.id)
            actions.append(action)
        return actions

    def _make_action(self, op_name: str, op_id: int) -> textworld.logic.Action:
        name, *arguments = op_name.split()
        action = textworld.logic.Action(name=name, preconditions=[], postconditions=[])
        action.id = op_id
        action.mapping = {
            Placeholder(p.name.strip("?"), p.type_name): Variable(arg, p.type_name)
            for p, arg in zip(self._actions[name].parameters, arguments)
        }
        action.command_template = self._logic.actions[name].template
        action.feedback_rule = self._logic.actions[name].feedback_rule
        return action


def _atom2proposition(atom: Any, name2type: dict[str, str]) -> textworld.logic.Proposition | None:
    # Verbatim logic of the closure inside stock PddlState.__init__.
    from fast_downward.translate.pddl import conditions, f_expression

    if isinstance(atom, conditions.Atom):
        if atom.predicate == "=":
            return None
        return textworld.logic.Proposition(atom.predicate, [Variable(a, name2type[a]) for a in atom.args])
    if isinstance(atom, f_expression.Assign):
        if atom.fluent.symbol == "total-cost":
            return None
        name = f"{atom.expression.value}"
        if str.isdigit(name):
            return None
        return textworld.logic.Proposition(name, [Variable(a, name2type[a]) for a in atom.fluent.args])
    return None


_QUERY_PREDICATE = re.compile(r"([A-Za-z_][\w-]*)\s*\(")


class CachedPddlEnv(PddlEnv):
    """Drop-in ``PddlEnv`` (same states, commands and feedback) with per-game memoisation; see the module doc.

    ``compiled_cache``: the folder of compiled games read before computing and written after (see :mod:`.compiled`);
    None for the default folder, ``"none"``/False for memory only.
    """

    def __init__(self, infos: textworld.EnvInfos | None = None, compiled_cache: Any = None) -> None:
        super().__init__(infos)
        directory = resolve_cache_dir(compiled_cache)
        self._cache = CompiledCache(directory) if directory is not None else None
        self._render: Renderings | None = None

    def load(self, filename_or_data: Any) -> None:
        if isinstance(filename_or_data, (str, bytes)) or hasattr(filename_or_data, "__fspath__"):
            with open(filename_or_data) as f:
                data = json.load(f)
            self._game_file = str(filename_or_data)
        else:
            data, self._game_file = filename_or_data, None
        self.flush_renderings(force=True)  # the previous game's new command texts, before its renderings go
        self._game_data = data
        self.walkthrough = data.get("walkthrough", None)
        domain, grammar, problem = data["pddl_domain"], data["grammar"], data["pddl_problem"]
        rewrite = memo.load_compiled(self._cache, domain, grammar, problem)  # memory -> disk -> (below) compute
        self._logic = cached_logic(domain, grammar)
        self._pddl_state = CachedPddlState(self.downward_lib, problem, self._logic)
        memo.save_compiled(self._cache, self._logic, self._pddl_state._tr, grammar, problem, rewrite)
        self._entity_infos = self._get_entity_infos()
        self._render = None  # per (game, entity names): filled at the first reset, after wrappers rename entities

    def _renderings(self) -> Renderings:
        # Entity display names are set by wrappers (AlfredDemangler) after load, so the key includes them.
        names = self._names = "\n".join(f"{k}={v.name}" for k, v in sorted(self._entity_infos.items()))
        data = self._game_data
        key = memo.digest(self._logic.domain, data["grammar"], data["pddl_problem"], names)
        return memo.RENDERINGS.get_or(key, lambda: self._read_renderings() or Renderings())

    def _renderings_file(self) -> tuple[Any, str]:
        data = self._game_data
        key = game_key(self._logic.domain, data["grammar"], data["pddl_problem"])
        return self._cache.renderings_path(key, names_key(self._names)), key

    def _read_renderings(self) -> Renderings | None:
        if self._cache is None:
            return None
        path, key = self._renderings_file()
        body = self._cache.read(path, key, "renderings")
        if body is None:
            return None
        intro, commands, plans = body.get("intro"), body.get("commands"), body.get("plans", {})
        if not (intro is None or isinstance(intro, str)) or not isinstance(commands, dict) or not all(
            isinstance(v, str) for v in commands.values()
        ) or not isinstance(plans, dict) or not all(
            isinstance(p, list) and all(isinstance(c, str) for c in p) for p in plans.values()
        ):
            self._cache.corrupt(path, ValueError("renderings are not texts"))
            return None
        render = Renderings(intro, dict(commands), dict(plans))
        render.saved[str(self._cache.directory)] = render.size()
        return render

    def flush_renderings(self, force: bool = False) -> None:
        """Write this game's renderings file if it grew since last written: at once when ``force`` or never written to
        this folder, else after ``RENDER_FLUSH_EVERY`` new entries (or a quarter more). Merges with the file's entries
        (another process's)."""
        render, cache = self._render, self._cache
        if render is None or cache is None:
            return
        where, size = str(cache.directory), render.size()
        last = render.saved.get(where, -1)
        # Growth of a quarter at least: rewriting a big file often would cost more than its texts save.
        if size <= last or not (force or last < 0 or size - last >= max(memo.RENDER_FLUSH_EVERY, last // 4)):
            return
        on_disk = self._read_renderings()
        if on_disk is not None:  # same game, same names: the same texts, so a union is safe
            for name_id, text in on_disk.commands.items():
                render.commands.setdefault(name_id, text)
            for facts, plan in on_disk.plans.items():
                render.plans.setdefault(facts, plan)
            if render.intro is None:
                render.intro = on_disk.intro
        path, key = self._renderings_file()
        body = {"intro": render.intro, "commands": dict(sorted(render.commands.items())),
                "plans": dict(sorted(render.plans.items()))}
        if cache.write(path, key, "renderings", body):
            render.saved[where] = render.size()

    def plan(self) -> list[str]:
        """Fast Downward's plan from the current state (textworld's ``replan``), kept per (game, names, facts) with
        the renderings: the planner is deterministic, and by far the slowest call of the engine (up to ~20 s)."""
        render = self._render
        if render is None:
            return list(self._pddl_state.replan(self._entity_infos))
        key = memo.facts_key(self._pddl_state.facts)
        plan = render.plans.get(key)
        if plan is None:
            plan = list(self._pddl_state.replan(self._entity_infos))
            if len(render.plans) < memo.MAX_PLANS_PER_GAME:
                render.plans[key] = plan
        return list(plan)

    def _static_template(self, template: str) -> bool:
        if "#" in template:  # nested non-terminals could hide state-dependent rules
            return False
        return not any(p in self._pddl_state._tr.fluents for p in _QUERY_PREDICATE.findall(template))

    def _command(self, action: Any, mapping: dict) -> str:
        cache = self._render.commands
        text = cache.get(action.name_id)
        if text is None:
            context = {
                "state": self._pddl_state,
                "facts": list(self._pddl_state.facts),
                "variables": {ph.name: self._entity_infos[var.name] for ph, var in action.mapping.items()},
                "mapping": action.mapping,
                "entity_infos": self._entity_infos,
            }
            template = self._logic.actions[action.name].template
            derived = self._logic.grammar.derive(template, context)
            action.command_template = derived
            text = action.format_command(mapping)
            if self._static_template(template):
                cache[action.name_id] = text
        return text

    def _gather_infos(self) -> None:
        state, pddl = self.state, self._pddl_state
        state["command_templates"] = sorted(set(a.template for a in self._logic.actions.values()))
        state["won"] = pddl.check_goal()
        state["lost"] = False
        state["_entity_infos"] = dict(self._entity_infos)
        state["_facts"] = list(pddl.facts)
        if self.request_infos.facts:
            state["facts"] = list(map(self._get_human_readable_fact, state["_facts"]))
        state["last_action"] = None
        state["_last_action"] = self._last_action
        state["_valid_actions"] = actions = pddl.all_applicable_actions()
        mapping = self._name_mapping
        commands = []
        for action in actions:
            if not hasattr(action, "name_id"):
                action.name_id = action.name + " " + " ".join(v.name for v in action.mapping.values())
            commands.append(self._command(action, mapping))
        state["_valid_commands"] = commands
        state["admissible_commands"] = sorted(set(commands))
        if self.request_infos.moves:
            state["moves"] = self._moves
        if self.request_infos.policy_commands:
            state["policy_commands"] = pddl.replan(self._entity_infos)

    def reset(self) -> GameState:
        self._pddl_state = CachedPddlState(self.downward_lib, self._game_data["pddl_problem"], self._logic)
        if self._render is None:
            self._render = self._renderings()
        self._name_mapping = {k: info.name for k, info in self._entity_infos.items()}
        self.prev_state = None
        self.state = GameState()
        self._last_action = None
        self._moves = 0
        intro = self._render.intro
        if intro is None:  # the intro is derived from the initial state only
            context = {
                "state": self._pddl_state,
                "facts": list(self._pddl_state.facts),
                "variables": {},
                "mapping": {},
                "entity_infos": self._entity_infos,
            }
            intro = self._render.intro = self._logic.grammar.derive("#intro#", context)
        self.state.feedback = intro
        self.state.raw = intro
        self._gather_infos()
        if "walkthrough" in self.request_infos.extras:
            self.state["extra.walkthrough"] = self.walkthrough or self._pddl_state.replan(self._entity_infos)
        self.flush_renderings()
        return self.state


class TextGame:
    """One textworld PDDL game session with ALFWorld's name demangling; the engine under :class:`ALFWorldEnv`.

    >>> game = TextGame(facts=True); state = game.load_and_reset("…/game.tw-pddl")   # doctest: +SKIP
    >>> state = game.step("go to fridge 1"); state["feedback"], state["won"]           # doctest: +SKIP
    """

    def __init__(self, facts: bool = False, compiled_cache: Any = None) -> None:
        infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=facts)
        self._env = AlfredDemangler(shuffle=False)(CachedPddlEnv(infos, compiled_cache=compiled_cache))
        self.game_file: str | None = None

    def load_and_reset(self, game_file: str | Path) -> Any:
        game_file = str(game_file)
        if game_file != self.game_file:
            self._env.load(game_file)
            self.game_file = game_file
        return self._env.reset()

    def step(self, command: str) -> Any:
        state, _, _ = self._env.step(command)
        return state

    def plan(self) -> list[str]:
        """The engine's own plan from the current state: Fast Downward's ``replan`` on the current facts, as textworld
        computes ``policy_commands`` and ALFWorld's "planner" expert reads them. Commands, [] when no plan exists."""
        return self._env.unwrapped.plan()  # CachedPddlEnv: its entity names were demangled in place by AlfredDemangler

    def close(self) -> None:
        # Like stock textworld, leave Fast Downward's library loaded: unloading it while ctypes objects that point
        # into it are still alive crashes the interpreter at exit.
        self._env.unwrapped.flush_renderings(force=True)
        self.game_file = None


def compile_game(game_file: str | Path, compiled_cache: Any = None) -> bool:
    """Put one game's compiled form in the cache folder (see :mod:`.compiled`), unless it is there already.

    Plays the first state and the game's walkthrough (when the file has one) so the renderings file holds the intro
    and the commands along it. Returns True if it compiled, False if the folder already held the game. The game is then
    dropped from this process's memory, so a warm-up process stays small however many games it compiles.
    """
    directory = resolve_cache_dir(compiled_cache)
    if directory is None:
        raise ValueError("compile_game needs a compiled-game cache folder, not compiled_cache='none'")
    data = json.loads(Path(game_file).read_text())
    domain, grammar, problem = data["pddl_domain"], data["grammar"], data["pddl_problem"]
    if CompiledCache(directory).is_current(game_key(domain, grammar, problem)):
        return False
    game = TextGame(facts=False, compiled_cache=directory)
    game.load_and_reset(game_file)
    for command in data.get("walkthrough") or ():
        game.step(command)
    game.close()
    memo.LOGICS.pop(memo.digest(domain, grammar), None)
    memo.TRANSLATIONS.pop(memo.digest(domain, problem), None)
    for key in [k for k, r in memo.RENDERINGS.items() if r is game._env.unwrapped._render]:
        memo.RENDERINGS.pop(key)
    return True
