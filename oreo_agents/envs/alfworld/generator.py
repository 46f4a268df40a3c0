"""Generate ALFWorld games offline from the FloorPlan layouts the alfworld wheel ships, in ALFWorld's own game format.

A game is a pure function of (seed, split, task type, k): the same inputs give byte-identical files in any process.
Recipe (see ``shared/ALFWORLD.md``): receptacles come from ``FloorPlanN-openable.json`` (real ids and positions);
receptacle types the scene lists but openable.json lacks get THOR-style ids at grid points of ``-layout.npy``; 1-3
instances of the scene's pickupable types go into receptacles that ``constants.VAL_RECEPTACLE_OBJECTS`` allows;
lamps stand on a desk / side table / dresser; task parameters respect ``constants.GOALS_VALID``; the goal comes from
``goal_library``. Each candidate is played by the (fixed) handcoded expert through the real engine and kept only if
the expert wins within 50 steps, so every kept game is solvable and ships its walkthrough.

Splits: ``train`` and ``valid_seen`` draw from ALFRED's training floor plans (valid_seen with its own placements),
``valid_unseen`` from the test floor plans, which train never uses.

    >>> from oreo_agents.envs.alfworld.generator import generate_game
    >>> files = generate_game(Path("/tmp/g"), seed=0, split="train", task_type="pick_two_obj_and_place", k=0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from oreo_agents.envs.alfworld.gamefiles import (
    DATA_DIR,
    GAME_FILE,
    MANIFEST,
    domain_text,
    engine_fingerprint,
    grammar_text,
)

GENERATOR_VERSION = 1
SOLVE_STEPS = 50  # the env's default step limit: a kept game is one the expert wins within it
MAX_ATTEMPTS = 40
MAX_DISTRACTOR_TYPES = 14  # keeps big kitchens playable fast; ALFWorld rooms hold a similar number of small objects
LAMP_TYPES = ("DeskLamp", "FloorLamp")
LAMP_STANDS = ("Desk", "SideTable", "Dresser")
_MANGLE = {"-": "_minus_", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"}


def mangle(name: str) -> str:
    """THOR id -> PDDL name, as ALFWorld writes them (``Sink|+01.10|...`` -> ``Sink_bar__plus_01_dot_10...``)."""
    return "".join(_MANGLE.get(ch, ch) for ch in name)


@lru_cache(maxsize=None)
def _constants() -> Any:
    import alfworld.gen.constants as constants

    return constants


@lru_cache(maxsize=None)
def _layouts_dir() -> Path:
    import alfworld

    return Path(alfworld.__file__).parent / "gen" / "layouts"


@lru_cache(maxsize=None)
def scene_numbers(split: str) -> tuple[int, ...]:
    c = _constants()
    have = {int(p.name[len("FloorPlan") :].split("-")[0]) for p in _layouts_dir().glob("FloorPlan*-openable.json")}
    pool = c.TEST_SCENE_NUMBERS if split == "valid_unseen" else c.TRAIN_SCENE_NUMBERS
    return tuple(sorted(n for n in pool if n in have))


def room_type(scene: int) -> str:
    return next(name for name, nums in _constants().SCENE_TYPE.items() if scene in nums)


@lru_cache(maxsize=None)
def _scene(scene: int) -> tuple[dict, tuple[str, ...], tuple]:
    import numpy as np

    base = _layouts_dir() / f"FloorPlan{scene}"
    openable = json.loads((base.parent / f"{base.name}-openable.json").read_text())
    objects = tuple(sorted(json.loads((base.parent / f"{base.name}-objects.json").read_text())))
    points = tuple(tuple(float(v) for v in p) for p in np.load(base.parent / f"{base.name}-layout.npy").tolist())
    return openable, objects, points


def recep_type(thor_id: str) -> str:
    parts = thor_id.split("|")
    return parts[-1] if len(parts) == 5 else parts[0]  # Sink|x|y|z|SinkBasin is a SinkBasin


def _loc(x: float, z: float, rot: int, hor: int) -> str:
    return f"loc|{round(x / 0.25)}|{round(z / 0.25)}|{rot}|{hor}"


def _thor_id(kind: str, x: float, y: float, z: float) -> str:
    return f"{kind}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"


def _task_candidates(task_type: str, recep_types: set[str], pickup: list[str], lamps: list[str]) -> list[dict]:
    """Every (object, receptacle, toggle) this room allows for the task type."""
    c = _constants()
    act = c.VAL_ACTION_OBJECTS
    need = {
        "pick_clean_then_place_in_recep": ("Cleanable", "SinkBasin"),
        "pick_heat_then_place_in_recep": ("Heatable", "Microwave"),
        "pick_cool_then_place_in_recep": ("Coolable", "Fridge"),
    }
    out = []
    if task_type == "look_at_obj_in_light":
        stands = [r for r in recep_types if r in LAMP_STANDS] or sorted(recep_types)
        for lamp in lamps:
            for obj in pickup:
                if stands:
                    out.append({"object_target": obj, "parent_target": "", "toggle_target": lamp})
        return out
    for obj in pickup:
        if task_type in need:
            group, station = need[task_type]
            if obj not in act[group] or station not in recep_types:
                continue
        # "heat X, then put it in the microwave" would be trivial: the station is never the goal receptacle.
        stations = {"Microwave", "Fridge", "SinkBasin"} if task_type in need else set()
        for recep in sorted(recep_types):
            if obj not in c.VAL_RECEPTACLE_OBJECTS.get(recep, ()) or recep in stations:
                continue
            # The object must start somewhere other than the goal receptacle type.
            if not any(obj in c.VAL_RECEPTACLE_OBJECTS.get(r, ()) for r in recep_types if r != recep):
                continue
            out.append({"object_target": obj, "parent_target": recep, "toggle_target": ""})
    return out


def sample_game(rng: random.Random, split: str, task_type: str) -> dict[str, Any] | None:
    """One candidate game (traj_data + PDDL problem + goal text), or None when the drawn room cannot host the task."""
    c = _constants()
    import alfworld.gen.goal_library as glib

    scenes = [s for s in scene_numbers(split) if room_type(s) in c.GOALS_VALID[task_type]]
    scene = rng.choice(scenes)
    openable, scene_objects, points = _scene(scene)
    static = set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)

    # Receptacles: real ids/positions from openable.json, synthetic ones for listed types it lacks.
    receps: dict[str, str] = {}  # thor id -> location
    for rid, (x, z, rot, hor) in sorted(openable.items()):
        if recep_type(rid) in static:
            receps[rid] = _loc(x, z, int(rot) // 90 % 4, int(hor))
    present = {recep_type(r) for r in receps}
    for kind in scene_objects:
        if kind in static and kind not in present and kind != "Sink":
            x, z = rng.choice(points)
            rid = _thor_id(kind, x, 0.0, z)
            if kind in ("SinkBasin", "BathtubBasin"):  # keep ALFWorld's id form or names demangle wrongly
                rid = _thor_id(kind.replace("Basin", ""), x, 0.0, z) + "|" + kind
            receps[rid] = _loc(x, z, rng.randrange(4), 30)
            present.add(kind)

    pickup = sorted(
        o for o in scene_objects
        if o not in static and o not in LAMP_TYPES and o in c.OBJECTS
        and any(o in c.VAL_RECEPTACLE_OBJECTS.get(r, ()) for r in present)
    )
    lamps = [o for o in scene_objects if o in LAMP_TYPES]
    options = _task_candidates(task_type, present, pickup, lamps)
    if not options:
        return None
    params = dict(rng.choice(options), mrecep_target="", object_sliced=False)
    target, goal_recep = params["object_target"], params["parent_target"]

    # Objects: the target (>= 2 for pick_two) plus 1-3 instances of up to MAX_DISTRACTOR_TYPES other types.
    others = [o for o in pickup if o != target]
    kinds = [target] + rng.sample(others, min(len(others), MAX_DISTRACTOR_TYPES))
    objects: list[tuple[str, str, str]] = []  # (thor id, type, receptacle id)
    used: set[str] = set()
    for kind in kinds:
        count = rng.randint(2, 3) if (kind == target and task_type == "pick_two_obj_and_place") else rng.randint(1, 3)
        allowed = [r for r in receps if kind in c.VAL_RECEPTACLE_OBJECTS.get(recep_type(r), ())]
        if kind == target:
            allowed = [r for r in allowed if recep_type(r) != goal_recep]
        if not allowed:
            continue
        for _ in range(count):
            rid = rng.choice(allowed)
            oid = _thor_id(kind, rng.uniform(-3, 3), rng.uniform(0, 2), rng.uniform(-3, 3))
            if oid not in used:
                used.add(oid)
                objects.append((oid, kind, rid))
    if sum(1 for _, k, _ in objects if k == target) < (2 if task_type == "pick_two_obj_and_place" else 1):
        return None
    lamp = None
    if params["toggle_target"]:
        stands = [r for r in receps if recep_type(r) in LAMP_STANDS] or [r for r in receps if recep_type(r) not in (
            "Fridge", "Microwave", "Cabinet", "Drawer", "Safe", "Box")]
        if not stands:
            return None
        rid = rng.choice(sorted(stands))
        lamp = (_thor_id(params["toggle_target"], rng.uniform(-3, 3), 0.9, rng.uniform(-3, 3)), params["toggle_target"], rid)

    recep_locs = set(receps.values())
    free = [p for p in points if _loc(p[0], p[1], 0, 30).rsplit("|", 2)[0] not in {l.rsplit("|", 2)[0] for l in recep_locs}]
    ax, az = rng.choice(free or list(points))
    agent_loc = _loc(ax, az, rng.randrange(4), 30)

    goal_text = rng.choice(glib.gdict[task_type]["templates"]).format(
        obj=target.lower(), recep=goal_recep.lower(), toggle=params["toggle_target"].lower(), mrecep=""
    )
    problem = _problem(f"oreo_{split}_{scene}", receps, objects, lamp, agent_loc, task_type, params)
    anns = [{"task_desc": t.format(obj=target.lower(), recep=goal_recep.lower(), toggle=params["toggle_target"].lower(),
                                   mrecep="").capitalize() + "."} for t in glib.gdict[task_type]["templates"]]
    traj = {
        "task_type": task_type,
        "pddl_params": params,
        "scene": {"floor_plan": f"FloorPlan{scene}", "scene_num": scene},
        "turk_annotations": {"anns": anns},
        "generator": {"name": "oreo_agents", "version": GENERATOR_VERSION},
    }
    return {"traj": traj, "problem": problem, "goal_text": goal_text, "scene": scene}


def _problem(name: str, receps: dict, objects: list, lamp: tuple | None, agent_loc: str, task_type: str, p: dict) -> str:
    import alfworld.gen.goal_library as glib

    c = _constants()
    static = sorted(set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES))
    classes = sorted(set(c.OBJECTS_SET) - set(static))
    things = objects + ([lamp] if lamp else [])
    locs = sorted(set(receps.values()) | {agent_loc})
    m = mangle
    decl = ["agent1 - agent"] + [f"{k} - object" for k in classes] + [f"{k}Type - otype" for k in classes]
    decl += [f"{k}Type - rtype" for k in static] + [f"{m(o)} - object" for o, _, _ in things]
    decl += [f"{m(r)} - receptacle" for r in sorted(receps)] + [f"{m(l)} - location" for l in locs]
    present = sorted({recep_type(r) for r in receps})
    init = [f"(receptacleType {m(r)} {recep_type(r)}Type)" for r in sorted(receps)]
    init += [f"(openable {m(r)})" for r in sorted(receps) if recep_type(r) in c.OPENABLE_CLASS_SET]
    init += [f"(receptacleAtLocation {m(r)} {m(l)})" for r, l in sorted(receps.items())]
    init += [f"(canContain {r}Type {o}Type)" for r in present for o in sorted(c.VAL_RECEPTACLE_OBJECTS.get(r, ()))
             if o in classes]
    init.append(f"(atLocation agent1 {m(agent_loc)})")
    for oid, kind, rid in things:
        o = m(oid)
        init += [f"(objectType {o} {kind}Type)", f"(inReceptacle {o} {m(rid)})", f"(objectAtLocation {o} {m(receps[rid])})"]
        if kind in LAMP_TYPES:
            init.append(f"(toggleable {o})")
            continue
        init.append(f"(pickupable {o})")
        if kind in c.MOVABLE_RECEPTACLES_SET:
            init.append(f"(isReceptacleObject {o})")
        for group, pred in (("Cleanable", "cleanable"), ("Heatable", "heatable"), ("Coolable", "coolable"),
                            ("Sliceable", "sliceable")):
            if kind in c.VAL_ACTION_OBJECTS[group]:
                init.append(f"({pred} {o})")
    goal = glib.gdict[task_type]["pddl"].format(
        obj=p["object_target"], recep=p["parent_target"], toggle=p["toggle_target"], mrecep=""
    ).replace("#", "-")
    sep = "\n        "
    return (f"\n(define (problem {name})\n(:domain alfred)\n(:objects\n{sep.join(decl)}\n        )\n"
            f"(:init\n{sep.join(init)}\n        )\n{goal}")


def solve(game_file: Path, steps: int = SOLVE_STEPS) -> list[str] | None:
    """The expert's winning command list for a game (through the real engine), or None if it does not win."""
    from oreo_agents.envs.alfworld.engine import TextGame
    from oreo_agents.envs.alfworld.expert import HandcodedExpert

    global _SOLVER
    if _SOLVER is None:  # one engine for every check: each engine holds its own copy of Fast Downward's library
        _SOLVER = TextGame(facts=True)
    game = _SOLVER
    state = game.load_and_reset(game_file)
    expert = HandcodedExpert(seed=0)
    action, actions = expert.reset(game_file, state), []
    for _ in range(steps):
        state = game.step(action)
        actions.append(action)
        if state["won"]:
            return actions
        action = expert.next_action(state, action)
    return None


_SOLVER: Any = None


def generate_game(root: Path, seed: int, split: str, task_type: str, k: int) -> tuple[Path, int]:
    """Write game k of (seed, split, task type) under ``root``; returns (game file, rejected candidates)."""
    rejected = 0
    for attempt in range(MAX_ATTEMPTS):
        rng = random.Random(f"oreo-alfworld:{GENERATOR_VERSION}:{seed}:{split}:{task_type}:{k}:{attempt}")
        cand = sample_game(rng, split, task_type)
        if cand is None:
            rejected += 1
            continue
        p = cand["traj"]["pddl_params"]
        folder = f"{task_type}-{p['object_target']}-None-{p['parent_target'] or p['toggle_target']}-{cand['scene']}"
        trial = root / DATA_DIR / split / folder / f"trial_s{seed}_k{k:05d}_a{attempt:02d}"
        trial.mkdir(parents=True, exist_ok=True)
        cand["traj"]["task_id"] = trial.name
        (trial / "traj_data.json").write_text(json.dumps(cand["traj"], indent=2, sort_keys=True))
        (trial / "initial_state.pddl").write_text(cand["problem"])
        game = {
            "pddl_domain": domain_text(),
            "grammar": grammar_text().replace("UNKNOWN GOAL", cand["goal_text"]),
            "pddl_problem": cand["problem"],
            "solvable": False,
            "walkthrough": [],
        }
        game_file = trial / GAME_FILE
        game_file.write_text(json.dumps(game))
        walkthrough = solve(game_file)
        if walkthrough is None:
            rejected += 1
            for f in trial.iterdir():
                f.unlink()
            trial.rmdir()
            continue
        game.update(solvable=True, walkthrough=walkthrough)
        game_file.write_text(json.dumps(game))
        return game_file, rejected
    raise RuntimeError(f"no solvable {task_type} game for seed={seed} split={split} k={k} in {MAX_ATTEMPTS} attempts")


def new_manifest(seed: int) -> dict[str, Any]:
    return {"format": 1, "generator_version": GENERATOR_VERSION, **engine_fingerprint(), "seed": seed, "splits": {},
            "counts": {}, "rejected": {}, "seconds": {}}


def generate_into(root: Path, manifest: dict, split: str, todo: list[tuple[str, int]], seed: int,
                  progress: bool = True) -> None:
    """Generate the (task type, k) games of ``todo`` into ``root`` and update its manifest after each game."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from oreo_agents.console import console

    games = manifest["splits"].setdefault(split, {})
    with Progress(TextColumn("[bold]generating ALFWorld games[/] {task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, disable=not progress,
                  transient=False) as bar:
        task = bar.add_task(f"{split} -> {root}", total=len(todo))
        for task_type, k in sorted(todo, key=lambda t: (t[1], t[0])):
            start = time.perf_counter()
            game_file, rejected = generate_game(root, seed, split, task_type, k)
            lst = games.setdefault(task_type, [])
            while len(lst) <= k:
                lst.append("")
            lst[k] = game_file.relative_to(root).as_posix()
            key = f"{split}/{task_type}"
            manifest["counts"][key] = sum(1 for g in lst if g)
            manifest["rejected"][key] = manifest["rejected"].get(key, 0) + rejected
            manifest["seconds"][key] = round(manifest["seconds"].get(key, 0.0) + time.perf_counter() - start, 2)
            (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            bar.advance(task)
