"""A game's compiled form on disk, so a process's first play of a game costs what a repeat does.

What :mod:`.engine` memoises per game (the grammar parse, Fast Downward's two PDDL->SAS translations, the intro and the
static command texts) is a pure function of the game's texts and the engine's versions. This module stores it as gzipped
JSON, never pickle, in one folder shared by every process:

- ``<key>.json.gz``: the parsed :class:`~textworld.envs.pddl.logic.GameLogic` (actions + production rules, symbols as
  tagged lists) and the translation (the two SAS texts, object types, action parameters, type hierarchy, fluent
  predicates, initial facts). Written once per game.
- ``<key>.<names>.render.json.gz``: the intro text, the text of every state-independent command seen so far and the
  planner's plans from the states it was asked about, for one set of entity display names. It grows as plays meet new
  commands; writers merge with what is there.

``key`` is the sha256 of the format version and the game's domain, grammar and problem texts, so a game whose text
changes gets a new file. Every file carries a header (format version, textworld / alfworld / fast-downward-textworld
versions, the hashes of alfworld's grammar and domain); a file whose header or key does not match, or that cannot be read
or decoded, is ignored with a warning and recomputed, then overwritten. Writes go to a temporary file, are fsynced and
renamed over the target, so readers never see half a file and concurrent writers (who write the same bytes) are harmless.

The folder is ``$OREO_AGENTS_CACHE/alfworld-compiled`` else ``~/.cache/oreo-agents/alfworld-compiled``; an env's
``compiled_cache=`` overrides it (a folder, or ``"none"``/``False`` to use no disk cache).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from oreo_agents.config import default_cache_root
from oreo_agents.errors import OreoError

# Bump by hand whenever what is stored, or how engine.py derives it, changes: old files are then recompiled.
FORMAT = 1
SUBDIR = "alfworld-compiled"
DISABLED = ("none", "off", "false", "no", "0")


def default_compiled_dir() -> Path:
    return default_cache_root() / SUBDIR


def resolve_cache_dir(setting: Any) -> Path | None:
    """``compiled_cache=`` -> the folder to use, or None for no disk cache.

    None/True: the default folder (read from the environment now); False or "none"/"off": disabled; else a folder path.
    """
    if setting is None or setting is True:
        return default_compiled_dir()
    if setting is False:
        return None
    if isinstance(setting, (str, os.PathLike)):
        text = os.fspath(setting)
        if text.strip().lower() in DISABLED or not text.strip():
            return None
        return Path(os.path.expandvars(text)).expanduser()
    raise OreoError(f"compiled_cache={setting!r}: expected a folder path, or 'none'/False to disable the compiled-game cache")


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "missing"


@functools.lru_cache(maxsize=1)
def header() -> dict[str, Any]:
    """What a compiled file must have been made by to be used: any difference means recompile."""
    from oreo_agents.envs.alfworld.gamefiles import engine_fingerprint

    fp = engine_fingerprint()
    return {
        "format": FORMAT,
        "textworld": _version("textworld"),
        "alfworld": _version("alfworld"),
        "fast_downward_textworld": _version("fast-downward-textworld"),
        "grammar_sha256": fp["grammar_sha256"],
        "domain_sha256": fp["domain_sha256"],
    }


def game_key(domain: str, grammar: str, problem: str) -> str:
    """The content key of a game's compiled form (its file name)."""
    h = hashlib.sha256(f"oreo-agents alfworld compiled v{FORMAT}".encode())
    for text in (domain, grammar, problem):
        h.update(b"\0" + text.encode("utf-8"))
    return h.hexdigest()[:32]


def names_key(names: str) -> str:
    return hashlib.sha256(names.encode("utf-8")).hexdigest()[:16]


# -- warnings: once per kind (stale, unwritable) or per file (corrupt) per process ---------------------------------------

_WARNED: set[str] = set()


def _warn_once(tag: str, message: str) -> None:
    if tag not in _WARNED:
        _WARNED.add(tag)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class CompiledCache:
    """One folder of compiled games. Reading never raises: a missing, stale or corrupt file reads as None."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def game_path(self, key: str) -> Path:
        return self.directory / f"{key}.json.gz"

    def renderings_path(self, key: str, names: str) -> Path:
        return self.directory / f"{key}.{names}.render.json.gz"

    # -- reading ---------------------------------------------------------------------------------------------------

    def read(self, path: Path, key: str, kind: str) -> dict[str, Any] | None:
        """The body of ``path`` if it holds ``kind`` for ``key`` made by this engine; else None (warned unless missing)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _warn_once(f"corrupt:{path}", f"compiled-game cache: cannot read {path} ({exc}); recompiling the game")
            return None
        try:
            data = json.loads(gzip.decompress(raw).decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("body"), dict):
                raise ValueError("not a compiled-game file")
            file_header, file_key, file_kind = data.get("header"), data.get("key"), data.get("kind")
        except (OSError, EOFError, ValueError, UnicodeDecodeError) as exc:  # gzip.BadGzipFile is an OSError
            self.corrupt(path, exc)
            return None
        if file_header != header():
            _warn_once(
                "stale",
                f"compiled-game cache: {path} was made by another engine version ({file_header} vs {header()}); "
                "recompiling it (other stale files of this folder are recompiled without a warning)",
            )
            return None
        if file_key != key or file_kind != kind:
            self.corrupt(path, ValueError(f"holds {file_kind} {file_key}, expected {kind} {key}"))
            return None
        return data["body"]

    def corrupt(self, path: Path, exc: BaseException) -> None:
        """Announce (once per file) that ``path`` is unusable; the caller recomputes and overwrites it."""
        _warn_once(f"corrupt:{path}", f"compiled-game cache: {path} is unreadable ({type(exc).__name__}: {exc}); "
                                      "recompiling the game and overwriting it")

    def is_current(self, key: str) -> bool:
        """Whether the game file of ``key`` exists with this engine's header (reads only its first bytes)."""
        prefix = json.dumps({"header": header(), "key": key, "kind": "game"})[:-1].encode("utf-8")
        try:
            with gzip.open(self.game_path(key), "rb") as f:
                return f.read(len(prefix)) == prefix
        except (OSError, EOFError):
            return False

    # -- writing ---------------------------------------------------------------------------------------------------

    def write(self, path: Path, key: str, kind: str, body: dict[str, Any]) -> bool:
        """Write atomically (temporary file, fsync, rename); an unwritable folder is warned about once, never raised."""
        text = json.dumps({"header": header(), "key": key, "kind": kind, "body": body}, ensure_ascii=False)
        # mtime=0: the same content gives the same bytes, whoever writes it.
        data = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)  # mkstemp makes it private; a shared cache is read by other users
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return True
        except OSError as exc:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            _warn_once(f"unwritable:{self.directory}", f"compiled-game cache: cannot write under {self.directory} "
                                                       f"({exc}); games are compiled in memory only")
            return False


# -- GameLogic <-> JSON ---------------------------------------------------------------------------------------------


def encode_logic(logic: Any) -> dict[str, Any]:
    """A parsed ``GameLogic`` as JSON: its actions (five strings each) and its grammar's production rules.

    ``logic.types`` is not stored: it starts empty and the state fills it from the translation's types.
    """
    return {
        "actions": [[key, {"name": a.name, "template": a.template, "feedback_rule": a.feedback_rule, "pddl": a.pddl,
                           "grammar": a.grammar}] for key, a in logic.actions.items()],
        "rules": [[lhs, [{"rhs": [_encode_symbol(s) for s in r.rhs], "weight": r.weight, "condition": r.condition}
                         for r in rules]] for lhs, rules in logic.grammar._rules.items()],
    }


def decode_logic(body: dict[str, Any], domain: str) -> Any:
    """The ``GameLogic`` that ``GameLogic(domain, grammar)`` parses, rebuilt from :func:`encode_logic`'s JSON."""
    import textworld.logic
    from textworld.envs.pddl import logic as pddl_logic
    from textworld.envs.pddl.textgen import ContextSensitiveGrammar, ProductionRule

    logic = object.__new__(pddl_logic.GameLogic)  # its __init__ is the tatsu parse this cache exists to skip
    logic.domain = domain
    logic.types = textworld.logic.TypeHierarchy()
    logic.actions = {key: pddl_logic.Action(**fields) for key, fields in body["actions"]}
    logic.grammar = ContextSensitiveGrammar()
    for lhs, rules in body["rules"]:
        for r in rules:
            rhs = [_decode_symbol(s) for s in r["rhs"]]
            logic.grammar.add_rule(ProductionRule(lhs=lhs, rhs=rhs, weight=r["weight"], condition=r["condition"]))
    return logic


def _encode_symbol(symbol: Any) -> list:
    from textworld.envs.pddl import textgen as tg

    # Exact type checks: a subclass textworld adds later must not be stored as its parent.
    kind = type(symbol)
    if kind is tg.TerminalSymbol:
        return ["T", symbol.symbol]
    if kind is tg.NonterminalSymbol:
        return ["N", symbol.symbol]
    if kind is tg.ConditionalSymbol:
        return ["C", _encode_symbol(symbol.expression), symbol.given]
    if kind is tg.EvalSymbol:
        return ["E", symbol.expression]
    if kind is tg.ListSymbol:
        return ["L", _encode_symbol(symbol.symbol)]
    raise TypeError(f"cannot store grammar symbol {symbol!r} ({kind.__name__})")


def _decode_symbol(data: list) -> Any:
    from textworld.envs.pddl import textgen as tg

    tag = data[0]
    if tag == "T":
        return tg.TerminalSymbol(data[1])
    if tag == "N":
        return tg.NonterminalSymbol(data[1])
    if tag == "C":
        return tg.ConditionalSymbol(_decode_symbol(data[1]), data[2])
    if tag == "E":
        return tg.EvalSymbol(data[1])
    if tag == "L":
        return tg.ListSymbol(_decode_symbol(data[1]))
    raise ValueError(f"unknown grammar symbol tag {tag!r}")
