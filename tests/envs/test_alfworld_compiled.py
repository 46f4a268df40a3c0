"""The compiled-game cache: a warm cache skips the grammar parse, the PDDL->SAS translation and the intro derivation in a
fresh process and plays byte for byte like the engine without it; stale, corrupt and disabled caches behave."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from oreo_agents.envs.alfworld import compiled as C
from oreo_agents.envs.alfworld import engine as E
from oreo_agents.envs.alfworld import games as G
from oreo_agents.envs.alfworld import memo as M
from oreo_agents.errors import OreoError

REPO = Path(__file__).resolve().parents[2]

# Plays a game in this or a fresh process: reset + the first walkthrough steps + two commands that change nothing,
# the raw engine text (observation + admissible commands) at each, then the engine's own plan from the start.
PLAY = """
import json, sys
from pathlib import Path
from oreo_agents.envs.alfworld.engine import TextGame

def play(game_file, cache, steps=4):
    game = TextGame(facts=True, compiled_cache=cache)
    state = game.load_and_reset(game_file)
    out = [[state["feedback"], state["admissible_commands"]]]
    for command in json.loads(Path(game_file).read_text())["walkthrough"][:steps] + ["look", "not a command"]:
        state = game.step(command)
        out.append([state["feedback"], state["admissible_commands"], bool(state["won"])])
    game.load_and_reset(game_file)
    out.append(game.plan())
    game.close()
    return out
"""
_ns: dict = {}
exec(PLAY, _ns)  # the same play() in this process as in the child
play = _ns["play"]

# The child refuses to parse, translate, plan or derive an intro: a warm cache must make all four unnecessary.
CHILD = PLAY + """
import textworld.envs.pddl.logic as L
from textworld.envs.pddl.textgen import ContextSensitiveGrammar
from oreo_agents.envs.alfworld import engine

def refuse(*a, **k):
    raise AssertionError("compiled cache missed: the engine recomputed a game")

L.GameLogic.__init__ = refuse
L.PddlState.replan = refuse
import oreo_agents.envs.alfworld.memo as memo
memo._pddl2sas = refuse
derive = ContextSensitiveGrammar.derive
def no_intro(self, start, context={}):
    assert start != "#intro#", "compiled cache missed: the intro was derived again"
    return derive(self, start, context)
ContextSensitiveGrammar.derive = no_intro
print(json.dumps(play(sys.argv[1], sys.argv[2])))
"""


@pytest.fixture
def game_file(alfworld_games_root):
    return G.list_games(alfworld_games_root, "train", ["pick_two_obj_and_place"])[0]


def _forget(monkeypatch, caches=("LOGICS", "TRANSLATIONS", "RENDERINGS")):
    """Empty this process's memory of compiled games (restored after the test), as a fresh process starts."""
    for name in caches:
        monkeypatch.setattr(M, name, M.LRU(8))
    monkeypatch.setattr(M, "ON_DISK", set())


@pytest.fixture
def cold(monkeypatch):
    """This process's memory of compiled games and warnings emptied for the test (restored after)."""
    _forget(monkeypatch)
    monkeypatch.setattr(C, "_WARNED", set())


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()) if folder.is_dir() else []


def _read(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))  # JSON, never pickle: every file must read this way


def test_warm_cache_in_a_fresh_process_skips_compiling_and_plays_byte_identically(game_file, tmp_path, cold):
    reference = play(str(game_file), "none")  # the engine without a disk cache (itself checked against stock textworld)
    assert play(str(game_file), tmp_path) == reference  # cold: compiles and writes
    files = _files(tmp_path)
    assert [p.name.count(".") for p in files] == [4, 2]  # <key>.<names>.render.json.gz and <key>.json.gz
    assert all(_read(p)["header"] == C.header() for p in files)
    res = subprocess.run([sys.executable, "-c", CHILD, str(game_file), str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.dumps(json.loads(res.stdout)) == json.dumps(reference)


def test_decoded_logic_is_the_parsed_logic(game_file):
    from textworld.envs.pddl.logic import GameLogic

    data = json.loads(game_file.read_text())
    parsed = GameLogic(domain=data["pddl_domain"], grammar=data["grammar"])
    body = json.loads(json.dumps(C.encode_logic(parsed)))
    decoded = C.decode_logic(body, data["pddl_domain"])
    assert repr(dict(decoded.grammar._rules)) == repr(dict(parsed.grammar._rules))
    assert {k: vars(a) for k, a in decoded.actions.items()} == {k: vars(a) for k, a in parsed.actions.items()}
    assert decoded.domain == parsed.domain and vars(decoded.types) == vars(parsed.types)


def _rewrite(path: Path, edit) -> None:
    data = _read(path)
    edit(data)
    path.write_bytes(gzip.compress(json.dumps(data).encode()))


@pytest.mark.parametrize("field", ["format", "fast_downward_textworld"])
def test_stale_header_is_recompiled_and_overwritten(game_file, tmp_path, cold, monkeypatch, field):
    reference = play(str(game_file), tmp_path)
    game_path = next(p for p in _files(tmp_path) if p.name.count(".") == 2)
    _rewrite(game_path, lambda d: d["header"].update({field: "0.0-other"}))
    _forget(monkeypatch)
    calls = []
    parse = E.pddl_logic.GameLogic
    monkeypatch.setattr(E.pddl_logic, "GameLogic", lambda **kw: calls.append(1) or parse(**kw))
    with pytest.warns(RuntimeWarning, match="another engine version"):
        assert play(str(game_file), tmp_path) == reference
    assert calls == [1]  # recompiled, not read
    assert _read(game_path)["header"] == C.header()


CORRUPTIONS = {
    "not gzip": lambda p: p.write_bytes(b"definitely not a compiled game"),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "not json": lambda p: p.write_bytes(gzip.compress(b"\x80{[")),
    "wrong shape": lambda p: _rewrite(p, lambda d: d.update(body={"translation": {"sas": 1}, "logic": [], "intro": 3})),
    "another game": lambda p: _rewrite(p, lambda d: d.update({"key": "0" * 32})),
}


@pytest.mark.parametrize("which,corruption", [("game", c) for c in sorted(CORRUPTIONS)] +
                         [("renderings", "not gzip"), ("renderings", "wrong shape")])
def test_corrupt_file_is_recomputed_and_rewritten_with_a_warning(game_file, tmp_path, cold, monkeypatch, which,
                                                                 corruption):
    reference = play(str(game_file), tmp_path)
    path = next(p for p in _files(tmp_path) if p.name.endswith(".render.json.gz") == (which == "renderings"))
    good = path.read_bytes()
    CORRUPTIONS[corruption](path)
    # Forget the game in memory (only its renderings when those are what is broken), so the file is read again.
    _forget(monkeypatch, ("LOGICS", "TRANSLATIONS", "RENDERINGS") if which == "game" else ("RENDERINGS",))
    with pytest.warns(RuntimeWarning, match=f"{path.name} is unreadable"):
        assert play(str(game_file), tmp_path) == reference
    if which == "game":
        assert path.read_bytes() == good  # recompiled to the very same bytes
    else:  # renderings grow during play; what was rewritten is whole and current
        assert _read(path)["header"] == C.header() and _read(path)["body"]["intro"] == reference[0][0]


def test_disabled_cache_writes_nothing(alfworld_games_root, tmp_path, cold, monkeypatch):
    import gymnasium as gym

    monkeypatch.setenv("OREO_AGENTS_CACHE", str(tmp_path / "default"))
    for off in ("none", False, "off"):
        env = gym.make("oreo_agents/ALFWorld-v0", games_root=alfworld_games_root, num_tasks=6, compiled_cache=off)
        env.reset(options={"task": 0})
        env.step("look")
        env.close()
    assert not (tmp_path / "default").exists()
    env = gym.make("oreo_agents/ALFWorld-v0", games_root=alfworld_games_root, num_tasks=6)  # default: on
    env.reset(options={"task": 0})
    env.close()
    assert len(_files(tmp_path / "default" / C.SUBDIR)) == 2


def test_cache_folder_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("OREO_AGENTS_CACHE", str(tmp_path))
    assert C.resolve_cache_dir(None) == C.resolve_cache_dir(True) == tmp_path / "alfworld-compiled"
    monkeypatch.delenv("OREO_AGENTS_CACHE")
    assert C.resolve_cache_dir(None) == Path.home() / ".cache" / "oreo-agents" / "alfworld-compiled"
    assert C.resolve_cache_dir("none") is C.resolve_cache_dir(False) is C.resolve_cache_dir("OFF") is None
    assert C.resolve_cache_dir(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(OreoError, match="compiled_cache=3"):
        C.resolve_cache_dir(3)


def test_unwritable_folder_warns_once_and_plays_on(game_file, tmp_path, cold):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        play(str(game_file), blocker / "cache")
    assert [str(w.message) for w in caught if "cannot write" in str(w.message)][:1] and sum(
        "cannot write" in str(w.message) for w in caught) == 1


def test_renderings_grow_and_merge_across_processes(game_file, tmp_path, cold, monkeypatch):
    game = E.TextGame(compiled_cache=tmp_path)
    state = game.load_and_reset(game_file)
    render_path = next(p for p in _files(tmp_path) if p.name.endswith(".render.json.gz"))
    first = _read(render_path)["body"]["commands"]
    for command in json.loads(game_file.read_text())["walkthrough"]:
        state = game.step(command)
    game.close()
    grown = _read(render_path)["body"]["commands"]
    assert set(first) < set(grown) and state["won"]
    # Another process (memory emptied) that met other texts merges with the file instead of replacing it.
    _forget(monkeypatch)
    _rewrite(render_path, lambda d: d["body"].update({"commands": first}))
    other = E.TextGame(compiled_cache=tmp_path)
    other.load_and_reset(game_file)
    other._env.unwrapped._render.commands["x-only-here"] = "a text only this process met"
    _rewrite(render_path, lambda d: d["body"].update({"commands": grown}))  # meanwhile a third process wrote these
    other.close()
    merged = _read(render_path)["body"]["commands"]
    assert set(merged) == set(grown) | {"x-only-here"}


def test_compile_game_then_skip(game_file, tmp_path, cold):
    assert E.compile_game(game_file, tmp_path) is True
    assert E.compile_game(game_file, tmp_path) is False
    assert not M.LOGICS and not M.TRANSLATIONS  # a warm-up process does not keep what it compiled
    body = _read(next(p for p in _files(tmp_path) if p.name.endswith(".render.json.gz")))["body"]
    assert body["intro"].startswith("-= Welcome to TextWorld, ALFRED! =-") and len(body["commands"]) > 10


def test_games_compile_command_is_resumable(alfworld_games_root, tmp_path, cold):
    from click.testing import CliRunner

    from oreo_agents.cli.app import cli

    args = ["games", "compile", "--split", "valid_unseen", "--out", str(alfworld_games_root), "--cache-dir", str(tmp_path)]
    res = CliRunner().invoke(cli, args + ["--task-type", "look_at_obj_in_light"])
    assert res.exit_code == 0, res.output
    assert "1 valid_unseen games compiled, 0 already cached" in res.output
    assert len(_files(tmp_path)) == 2
    res = CliRunner().invoke(cli, args + ["--jobs", "2"])  # the cached game is skipped before any worker starts
    assert res.exit_code == 0, res.output
    assert "1 valid_unseen games compiled, 1 already cached" in res.output and len(_files(tmp_path)) == 4


def test_no_pickle_in_the_cache_code():
    import ast

    for module in (C, E, M):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}, module.__name__


def test_concurrent_writers_leave_one_whole_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    cache = C.CompiledCache(tmp_path)
    key, body = "k" * 32, {"intro": "x" * 100_000, "commands": {str(i): "y" * i for i in range(300)}}
    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(lambda _: cache.write(cache.game_path(key), key, "renderings", body), range(32)))
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.json.gz"]  # no temporary file left behind
    assert cache.read(cache.game_path(key), key, "renderings") == body
