"""Tiny ALFWorld-shaped episodes for the learner tests: real EpisodeRecord rows written to real Parquet files."""

from __future__ import annotations

from pathlib import Path

ROOMS = ["fridge", "cabinet", "shelf", "drawer", "countertop", "sinkbasin"]
OBJECTS = ["apple", "mug", "book", "knife", "tomato", "plate"]


def episode(task: int, success: bool, sample: int = 0, policy: str = "expert"):
    """An ALFWorld-shaped episode: a success finds and places the object, a failure wanders and runs out of steps."""
    from oreo_agents.recording.schema import EpisodeMetadata, EpisodeRecord
    from oreo_agents.turns import StepRecord

    obj, room = OBJECTS[task % len(OBJECTS)], ROOMS[task % len(ROOMS)]
    other = ROOMS[(task + 3) % len(ROOMS)]
    goal = f"put a {obj} in {other} 1."
    init = f"You are in the middle of a room. Looking quickly around you, you see a {room} 1 and a {other} 1.\n\nYour task is to: {goal}"
    if success:
        plan = [(f"go to {room} 1", f"You arrive at {room} 1. On the {room} 1, you see a {obj} 1."),
                (f"take {obj} 1 from {room} 1", f"You pick up the {obj} 1 from the {room} 1."),
                (f"go to {other} 1", f"You arrive at {other} 1."),
                (f"move {obj} 1 to {other} 1", f"You move the {obj} 1 to the {other} 1.")]
    else:
        plan = [("look", "You are in the middle of a room. Nothing happens."),
                (f"go to {other} 1", f"You arrive at {other} 1. On the {other} 1, you see nothing."),
                ("inventory", "You are not carrying anything."),
                ("look", "Nothing happens.")]
    steps = [StepRecord(action=a, observation=o, reward=0.0) for a, o in plan]
    if success:
        steps[-1].reward, steps[-1].won = 1.0, True
    return EpisodeRecord(
        env_id="oreo_agents/ALFWorld-v0", task_id=f"task-{task}", split="train", task_type="pick_and_place_simple",
        goal=goal, initial_observation=init, steps=steps, termination="success" if success else "truncated",
        metadata=EpisodeMetadata(policy=policy, seed=task), sample_index=sample,
    )


def write_dataset(path: Path, records) -> Path:
    import datasets

    from oreo_agents.recording.schema import episode_features

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list([r.to_row() for r in records], features=episode_features()).to_parquet(str(path))
    return path
