"""What :mod:`.engine` computes once per game, kept per process (bounded LRUs keyed by content hashes) and, through
:mod:`.compiled`, on disk: the parsed game logic, the PDDL->SAS translation, and the intro + static command texts.

Lookups go memory -> disk -> compute; :func:`load_compiled` and :func:`save_compiled` are the disk steps for logic and
translation, :class:`Renderings` the texts (their file is written by ``CachedPddlEnv.flush_renderings``).
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from collections import OrderedDict
from typing import Any

import fast_downward
import textworld.logic
from textworld.envs.pddl import logic as pddl_logic
from textworld.logic import Variable

from oreo_agents.envs.alfworld.compiled import CompiledCache, decode_logic, encode_logic, game_key

# Bounded so a long-running collector cycling through thousands of games does not grow without limit.
MAX_CACHED_GAMES = 512


class LRU(OrderedDict):
    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_or(self, key: Any, make: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        if len(self) > self.maxsize:
            self.popitem(last=False)
        return value


LOGICS: LRU = LRU(MAX_CACHED_GAMES)
TRANSLATIONS: LRU = LRU(MAX_CACHED_GAMES)
RENDERINGS: LRU = LRU(MAX_CACHED_GAMES)
ON_DISK: set[tuple[str, str]] = set()  # (cache folder, game key) whose compiled file this process knows is current
# Rewrite a game's renderings file when this many new command texts were met since it was last written (and always
# when the env moves to another game or closes).
RENDER_FLUSH_EVERY = 16


def digest(*texts: str) -> str:
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def cached_logic(domain: str, grammar: str) -> pddl_logic.GameLogic:
    """Parse (domain, grammar) once per process. The grammar text embeds the goal, so games differ here."""
    return LOGICS.get_or(digest(domain, grammar), lambda: pddl_logic.GameLogic(domain=domain, grammar=grammar))


def _pddl2sas(domain: str, problem: str, optimize: bool) -> tuple[Any, str]:
    # fast_downward's translator overwrites sys.argv to configure itself; give the caller theirs back.
    argv = list(sys.argv)
    try:
        return fast_downward.pddl2sas(domain, problem, optimize=optimize)
    finally:
        sys.argv[:] = argv


class _Params:
    """An operator schema's parameters as ``_make_action`` and textworld's ``plan_to_templated_actions`` read them."""

    def __init__(self, name: str, parameters: list) -> None:
        self.name = name
        self.parameters = [_Param(p, t) for p, t in parameters]


class _Param:
    def __init__(self, name: str, type_name: str) -> None:
        self.name, self.type_name = name, type_name


class Translation:
    """Everything PddlState derives from (domain, problem) before play starts: computed once per game, or read back
    from its compiled file (then ``task``, Fast Downward's parsed task, is None: nothing reads it after this)."""

    def __init__(self, domain: str, problem: str) -> None:
        self.task, sas = _pddl2sas(domain, problem, optimize=False)
        _, sas_replan = _pddl2sas(domain, problem, optimize=True)
        self._set(
            sas, sas_replan, {o.name: o.type_name for o in self.task.objects},
            {a.name: a for a in self.task.actions},
            [(t.name, list(t.supertype_names)) for t in self.task.types],
            # Predicates some action can change; a command template that queries none of them renders the same in
            # every state, so its text can be memoised.
            {eff.literal.predicate for a in self.task.actions for eff in a.effects},
        )
        self.init_facts: list | None = None  # filled by the first state built from this translation

    def _set(self, sas: str, sas_replan: str, name2type: dict, actions: dict, types: list, fluents: set) -> None:
        self.sas, self.sas_replan = sas, sas_replan
        self.sas_bytes, self.sas_replan_bytes = sas.encode("utf-8"), sas_replan.encode("utf-8")
        self.name2type, self.actions, self.types, self.fluents = name2type, actions, types, fluents
        self.action_cache: dict = {}  # operator name -> Action, rebuilt cheaply: never stored

    def to_compiled(self) -> dict[str, Any]:
        assert self.init_facts is not None, "a translation is stored once a state has filled its initial facts"
        return {
            "sas": self.sas, "sas_replan": self.sas_replan, "name2type": self.name2type,
            "actions": {n: [[p.name, p.type_name] for p in a.parameters] for n, a in self.actions.items()},
            "types": [list(t) for t in self.types], "fluents": sorted(self.fluents),
            "init_facts": [[f.name, [[v.name, v.type] for v in f.arguments]] for f in self.init_facts],
        }

    @classmethod
    def from_compiled(cls, body: dict[str, Any]) -> Translation:
        tr = object.__new__(cls)
        tr.task = None
        tr._set(
            body["sas"], body["sas_replan"], dict(body["name2type"]),
            {n: _Params(n, ps) for n, ps in body["actions"].items()},
            [(n, list(s)) for n, s in body["types"]], set(body["fluents"]),
        )
        tr.init_facts = [
            textworld.logic.Proposition(n, [Variable(v, t) for v, t in args]) for n, args in body["init_facts"]
        ]
        return tr


def translation(domain: str, problem: str) -> Translation:
    return TRANSLATIONS.get_or(digest(domain, problem), lambda: Translation(domain, problem))


def load_compiled(cache: CompiledCache | None, domain: str, grammar: str, problem: str) -> bool:
    """Memory, then disk: put the game's logic and translation in the process caches when its compiled file has them.
    Returns True when the file was read and is missing, stale or corrupt: the caller then (re)writes it."""
    logic_key, tr_key = digest(domain, grammar), digest(domain, problem)
    if cache is None or (logic_key in LOGICS and tr_key in TRANSLATIONS):
        return False
    key = game_key(domain, grammar, problem)
    path = cache.game_path(key)
    body = cache.read(path, key, "game")
    if body is None:
        return True
    try:
        logic = decode_logic(body["logic"], domain)
        tr = Translation.from_compiled(body["translation"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        cache.corrupt(path, exc)
        return True
    LOGICS.get_or(logic_key, lambda: logic)
    TRANSLATIONS.get_or(tr_key, lambda: tr)
    ON_DISK.add((str(cache.directory), key))
    return False


def save_compiled(cache: CompiledCache | None, logic: Any, tr: Translation, grammar: str, problem: str,
                   rewrite: bool) -> None:
    """Make sure the game's compiled file exists in ``cache`` (once per process and folder: a look at its first bytes,
    or one write; ``rewrite``: the file there is known to be unusable)."""
    if cache is None:
        return
    key = game_key(logic.domain, grammar, problem)
    where = (str(cache.directory), key)
    if where in ON_DISK and not rewrite:
        return
    if rewrite or not cache.is_current(key):
        try:
            body = {"logic": encode_logic(logic), "translation": tr.to_compiled()}
        except TypeError as exc:  # a grammar symbol this format cannot hold: play on, uncached
            warnings.warn(f"compiled-game cache: not storing game {key}: {exc}", RuntimeWarning, stacklevel=2)
            return
        if not cache.write(cache.game_path(key), key, "game", body):
            return
    ON_DISK.add(where)


class Renderings:
    """The intro, the static command texts and the planner's plans (by facts digest) of one game under one set of
    entity names; ``saved`` remembers, per cache folder, how many entries its file held when last read or written."""

    def __init__(self, intro: str | None = None, commands: dict[str, str] | None = None,
                 plans: dict[str, list[str]] | None = None) -> None:
        self.intro = intro
        self.commands: dict[str, str] = commands or {}
        self.plans: dict[str, list[str]] = plans or {}
        self.saved: dict[str, int] = {}

    def size(self) -> int:
        return len(self.commands) + len(self.plans) + (self.intro is not None)


# Plans kept per game (the first ones met: from the states most plays reach), bounded so memory stays small with
# 512 games in memory.
MAX_PLANS_PER_GAME = 256


def facts_key(facts: Any) -> str:
    """A digest of a state's facts: the planner's answer depends on the game and these only."""
    return digest(*sorted(map(str, facts)))
