"""What an ALFWorld game is made of: the folder layout's names, the grammar and PDDL domain alfworld ships, and the
fingerprint of that engine. Read by the game lists (:mod:`.games`) and written by the generator (:mod:`.generator`);
standard library only, so ``oreo-agents games --help`` stays fast.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
SPLITS = ("train", "valid_seen", "valid_unseen")
MANIFEST = "gameset.json"  # an embedded root's list of games (see games.ensure_games)
DATA_DIR = "json_2.1.1"  # <root>/json_2.1.1/<split>/<task folder>/<trial>/
GAME_FILE = "game.tw-pddl"


def _alfworld_file(name: str) -> Path:
    import alfworld

    return Path(alfworld.__file__).parent / "data" / name


def grammar_text() -> str:
    return _alfworld_file("alfred.twl2").read_text()


def domain_text() -> str:
    return _alfworld_file("alfred.pddl").read_text()


def engine_fingerprint() -> dict[str, str]:
    """alfworld version + hashes of the grammar and domain: command wording changed across alfworld versions."""
    return {
        "alfworld_version": version("alfworld"),
        "textworld_version": version("textworld"),
        "grammar_sha256": hashlib.sha256(grammar_text().encode()).hexdigest(),
        "domain_sha256": hashlib.sha256(domain_text().encode()).hexdigest(),
    }
